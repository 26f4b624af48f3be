import ArgumentParser
import DCGANParallel
import Foundation
import ParallelTensor

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the DCGAN (default: the built-in MNIST zeros, 10 epochs, one thread per physical core).",
        discussion: """
        Writes DIR/checkpoint.safetensors and DIR/metrics.csv every epoch, DIR/samples/epoch-NNNN.png (an 8×8 grid \
        from a fixed noise batch), DIR/progress.png (one row per epoch) and DIR/curves.svg.
        Example: pgan train --epochs 5 --threads 2 --out runs/zeros
        """)

    @Option(help: "IDX image file (raw or .gz); default: the built-in MNIST training zeros.")
    var data: String?
    @Option(help: "IDX label file matching --data (needed with --digit).")
    var labels: String?
    @Option(help: "Train on images with this label only.")
    var digit: Int?
    @Option(help: "Epochs to train (default 10).")
    var epochs: Int?
    @Option(help: "Train this many steps instead of whole epochs.")
    var steps: Int?
    @Option(help: "Minibatch size.")
    var batchSize: Int = 32
    @Option(help: "Worker threads (default: physical cores). Results do not depend on it.")
    var threads: Int?
    @Option(help: "Shards per minibatch: the unit of work and of gradient summation.")
    var shards: Int = 16
    @Option(help: "Seed of every random number (weights, noise, dropout, data order).")
    var seed: UInt64 = 42
    @Option(help: "rmsprop (the seed's, lr 1e-3) or adam (lr 2e-4, beta1 0.5).")
    var optimizer: String = "rmsprop"
    @Option(help: "Learning rate (default: the optimizer's).")
    var learningRate: Float?
    @Option(name: .customLong("out"), help: "Output directory.")
    var outputDirectory: String = "pgan-run"
    @Option(help: "Continue the run in this directory from its checkpoint (same data, seed, shards, batch size).")
    var resume: String?
    @Option(help: "dispatch (concurrentPerform, the default) or spin (a pinned pool that stays awake between calls: faster where waking threads is slow).")
    var scheduler: String = "dispatch"
    @Flag(help: "Print nothing but errors.")
    var quiet = false

    mutating func run() throws {
        guard let kind = OptimizerKind(rawValue: optimizer) else {
            throw ConfigurationError("--optimizer must be rmsprop or adam (got '\(optimizer)')")
        }
        if let epochs, epochs < 1 { throw ConfigurationError("--epochs must be at least 1 (got \(epochs))") }
        if let steps, steps < 1 { throw ConfigurationError("--steps must be at least 1 (got \(steps))") }
        if epochs != nil && steps != nil { throw ConfigurationError("give --epochs or --steps, not both") }
        if let digit, !(0...255).contains(digit) { throw ConfigurationError("--digit must be a label value 0–255 (got \(digit))") }
        if labels != nil && data == nil { throw ConfigurationError("--labels needs --data") }
        let threadCount = try checkThreads(threads)
        guard let scheduling = ShardedExecutor.Scheduling(rawValue: scheduler) else {
            throw ConfigurationError("--scheduler must be dispatch or spin (got '\(scheduler)')")
        }

        var configuration = TrainingConfiguration(batchSize: batchSize, shards: shards, seed: seed, optimizer: kind,
                                                  learningRate: learningRate)
        var checkpoint: SafeTensors?
        var directory = outputDirectory
        if let resume {
            directory = resume
            let path = "\(resume)/checkpoint.safetensors"
            let file = try SafeTensors.read(path: path)
            configuration = try Checkpoint.configuration(of: file, path: path)
            checkpoint = file
        }
        try configuration.validate()

        let dataset: ImageDataset
        if let data {
            dataset = try ImageDataset.load(imagesPath: data, labelsPath: labels, digit: digit)
        } else {
            if let digit, digit != 0 {
                throw ConfigurationError("the built-in data set holds only zeros; give --data and --labels for digit \(digit)")
            }
            dataset = try ImageDataset.defaultZeros()
        }
        let executor = ShardedExecutor(threadCount: threadCount, scheduling: scheduling)
        defer { executor.restoreCallerBinding() }
        let trainer = GANTrainer(configuration: configuration, executor: executor)
        let session = try TrainingSession(trainer: trainer, dataset: dataset, outputDirectory: directory)
        if let checkpoint, let path = resume.map({ "\($0)/checkpoint.safetensors" }) {
            guard checkpoint.metadataValue("data_crc32") == String(dataset.checksum),
                  checkpoint.metadataValue("data_images") == String(dataset.count) else {
                throw ConfigurationError("\(path): checkpoint was trained on other data than \(dataset.source)")
            }
            try Checkpoint.restore(checkpoint, path: path, into: trainer)
            session.loadEarlierLogs()
        }
        let totalSteps = steps ?? (epochs ?? 10) * session.stepsPerEpoch
        let printer = ProgressPrinter(quiet: quiet, stepsPerEpoch: session.stepsPerEpoch,
                                      batchSize: configuration.batchSize)
        printer.header([
            "pgan train: \(dataset.count) images from \(dataset.source), \(session.stepsPerEpoch) steps per epoch of \(configuration.batchSize)",
            "model: generator \(trainer.generator.trainableParameterCount + trainer.generator.stateCount) parameters, discriminator \(trainer.discriminator.trainableParameterCount); optimizer \(configuration.optimizer.rawValue) lr \(configuration.effectiveLearningRate)",
            "machine: \(Topology.shared.summary)",
            "threads \(threadCount) (\(executor.scheduling.rawValue)), shards \(configuration.shards), pinning (worker → PU): " + executor.pinningMap.enumerated().map { "\($0.offset)→\($0.element)" }.joined(separator: " "),
            trainer.step > 0 ? "resuming at step \(trainer.step) (epoch \(trainer.step / session.stepsPerEpoch + 1)) in \(directory)" : "writing to \(directory)/",
        ])
        if trainer.step >= totalSteps {
            printer.header(["nothing to do: the checkpoint is at step \(trainer.step), the run asks for \(totalSteps)"])
            return
        }
        try session.run(totalSteps: totalSteps, observer: printer)
        printer.finish(directory: directory)
    }
}
