import ArgumentParser
import CSignals
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the DCGAN (default: the built-in MNIST zeros, 10 epochs, one thread per physical core).",
        discussion: """
        Writes DIR/checkpoint.safetensors, metrics.csv and history.csv every epoch, DIR/samples/epoch-NNNN.png (an \
        8×8 grid from a fixed noise batch), DIR/progress.png (one row per epoch) and DIR/curves.svg.
        Ctrl-C (or SIGTERM) finishes the steps in flight, writes a checkpoint and prints how to resume; a second one \
        stops at once. `--resume DIR` continues any run with no other flag: its data and settings are in the checkpoint.
        Example: pgan train --epochs 5 --threads 2 --out runs/zeros
        """)

    @Option(help: "Images: an IDX file (raw or .gz; 3-d grey, or 4-d with 1 or 3 channels), CIFAR-10/100 binary (a .bin file or the directory of the training batches), or a folder of PNG/JPEG images (optionally in class sub-folders); default: the built-in MNIST zeros.")
    var data: String?
    @Option(help: "IDX label file matching --data (read with --class); CIFAR files carry their own.")
    var labels: String?
    @Option(name: .customLong("class"), help: "Train on one class only: a label number, a class folder's name, or a CIFAR-10 class name (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).")
    var classLabel: String?
    @Option(help: "The same as --class N (kept for MNIST digits).")
    var digit: Int?
    @Option(help: "seed (the Keras DCGAN of this project: 28×28 or 32×32, RMSprop) or dcgan (the DCGAN paper's model as PyTorch's example builds and trains it: 16, 32, 64 or 128 pixels square, Adam).")
    var model: GANModelKind?
    @Option(help: "--model dcgan: the generator's width, ngf (default 64).")
    var generatorWidth: Int?
    @Option(help: "--model dcgan: the discriminator's width, ndf (default 64).")
    var discriminatorWidth: Int?
    @Option(help: "The side images are centre-cropped and resized to (area filter): 28 or 32 for the seed model (folders default to 32), 16, 32, 64 or 128 for dcgan (folders default to 64; other data to the next supported side).")
    var imageSize: Int?
    @Flag(help: "For a folder of images: fail on the first one that cannot be read, instead of skipping it with a warning.")
    var strict = false
    @Option(help: "Epochs to train (default 10; with --resume, the run's own target).")
    var epochs: Int?
    @Option(help: "Train this many steps instead of whole epochs.")
    var steps: Int?
    @Option(help: "Minibatch size (default 32).")
    var batchSize: Int?
    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "Shards per minibatch: the unit of work and of gradient summation (default 16).")
    var shards: Int?
    @Option(help: "Seed of every random number: weights, noise, dropout, data order (default 42).")
    var seed: UInt64?
    @Option(help: "rmsprop (the seed's, lr 1e-3) or adam (lr 2e-4, beta1 0.5).")
    var optimizer: OptimizerKind?
    @Option(parsing: .unconditional, help: "Learning rate (default: the optimizer's).")
    var learningRate: Float?
    @Option(name: .customLong("ema"), help: "The decay of the exponential moving average of the generator that samples, grids and measurements use (default 0.99; 0: none).")
    var averageDecay: Float?
    @Option(help: "Measure the samples (Fréchet distance, class rate; see pgan eval) every N epochs and at the end; 0: never (default 1 when a classifier for the images is available: the built-in one for 28×28 grey images, or --classifier).")
    var evalEvery: Int?
    @Option(help: "A classifier from pgan classifier train, for measuring the samples of other images.")
    var classifier: String?
    @Option(name: .customLong("out"), help: "Output directory (default pgan-run).")
    var outputDirectory: String?
    @Flag(help: "Start a new run in --out even if it holds one (its run files are removed first).")
    var overwrite = false
    @Option(help: "Continue the run in this directory from its checkpoint; flags that would change its results are refused.")
    var resume: String?
    @Option(help: "dispatch (concurrentPerform, the default) or spin (a pinned pool that stays awake between calls: faster where waking threads is slow).")
    var scheduler: ShardedExecutor.Scheduling = .dispatch
    @Flag(help: "Print nothing but errors.")
    var quiet = false

    /// The model a new run trains: --model, or the seed.
    var modelKind: GANModelKind { model ?? .seed }

    /// The moving average's decay a new run keeps: --ema, 0.99 by default (it lowered the default run's Fréchet
    /// distance from 15.1 to about 11.7 over three seeds; README "Measuring samples"), nil for --ema 0.
    static let defaultAverageDecay: Float = 0.99
    var newRunAverageDecay: Float? {
        let decay = averageDecay ?? Self.defaultAverageDecay
        return decay == 0 ? nil : decay
    }

    func validate() throws {
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1 (got \(epochs))") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        if epochs != nil && steps != nil { throw ValidationError("give --epochs or --steps, not both") }
        if let digit, !(0...255).contains(digit) { throw ValidationError("--digit must be a label value 0–255 (got \(digit))") }
        if digit != nil && classLabel != nil { throw ValidationError("give --class or --digit, not both") }
        let label = try selectedLabel(data: data)
        if labels != nil && data == nil { throw ValidationError("--labels needs --data") }
        if labels != nil && label == nil { throw ValidationError("--labels is only read with --class: give the label to train on") }
        if let imageSize, resume == nil, !modelKind.imageSides.contains(imageSize) {
            throw ValidationError("--image-size must be \(alternatives(modelKind.imageSides.map(String.init))), the sides --model \(modelKind.rawValue) is built for (got \(imageSize))")
        }
        for (flag, width) in [("--generator-width", generatorWidth), ("--discriminator-width", discriminatorWidth)] {
            guard let width else { continue }
            if modelKind != .dcgan && resume == nil { throw ValidationError("\(flag) sets a width of --model dcgan") }
            if !GANModel.dcganWidths.contains(width) {
                throw ValidationError("\(flag) must be \(GANModel.dcganWidths.lowerBound)–\(GANModel.dcganWidths.upperBound) (got \(width))")
            }
        }
        if data == nil, resume == nil, let label, label != 0 {
            throw ValidationError("the built-in data set holds only zeros; give --data and --labels for digit \(label)")
        }
        if let learningRate, !(learningRate > 0 && learningRate.isFinite) {
            throw ValidationError("--learning-rate must be a positive number (got \(learningRate))")
        }
        if let evalEvery, !(0...1_000_000).contains(evalEvery) {
            throw ValidationError("--eval-every must be 0 (never) or a number of epochs (got \(evalEvery))")
        }
        if outputDirectory?.isEmpty == true { throw ValidationError("--out must name a directory (got an empty string)") }
        if resume?.isEmpty == true { throw ValidationError("--resume must name a run directory (got an empty string)") }
        if let resume, let outputDirectory, outputDirectory != resume {
            throw ValidationError("--out \(outputDirectory) contradicts --resume \(resume): a resumed run writes to its own directory")
        }
        if resume != nil && overwrite { throw ValidationError("--overwrite starts a new run; it cannot be combined with --resume") }
        // A resumed run's settings are its own; flags given with --resume are compared with them in run().
        if resume == nil {
            try TrainingConfiguration(batchSize: batchSize ?? 32, shards: shards ?? 16, seed: seed ?? 42,
                                      optimizer: optimizer ?? modelKind.defaultOptimizer, learningRate: learningRate,
                                      averageDecay: newRunAverageDecay).validate()
        }
    }

    mutating func run() throws {
        pgan_catch_stop_signals()
        let group = try Cluster.join()
        // In an MPI job rank 0 holds the run directory and writes every file; the other ranks only read.
        let writer = group.rank == 0
        let threadCount = threadOptions.count
        var configuration = TrainingConfiguration(batchSize: batchSize ?? 32, shards: shards ?? 16, seed: seed ?? 42,
                                                  optimizer: optimizer ?? modelKind.defaultOptimizer, learningRate: learningRate,
                                                  averageDecay: newRunAverageDecay)
        // Image folders are resized as they are read: to the model's usual side unless --image-size says otherwise.
        let folderSide = data.map(ImageFolder.isImageFolder) == true ? (modelKind == .dcgan ? 64 : 32) : nil
        var source = DataSource(data: data.map(absolutePath), labels: labels.map(absolutePath),
                                digit: try selectedLabel(data: data), imageSide: imageSize ?? folderSide, strict: strict)
        var recordedTarget: Int?
        let directory: RunDirectory
        var checkpoint: CheckpointReader?
        if let resume {
            // A mistyped --resume must not leave an empty run directory behind: it has to hold a run already.
            let kind = isDirectory(resume)
            if writer && kind != true {
                throw DataError(path: resume, problem: "no run directory to resume (\(kind == false ? "not a directory" : "no such directory"))")
            }
            directory = writer ? try RunDirectory(path: resume) : RunDirectory(readingFrom: resume)
            if writer && !FileManager.default.fileExists(atPath: directory.checkpointPath) {
                throw DataError(path: directory.checkpointPath, problem: "no checkpoint to resume from (no such file)")
            }
            // Alone, the run reads the checkpoint's header now and its tensors straight into the trainer once it is
            // built. Under MPI rank 0 reads the file and hands its bytes to the other ranks, so only rank 0's node
            // needs the run directory.
            let reader: CheckpointReader
            if group.size > 1 {
                let bytes = writer ? [UInt8](try readFile(path: directory.checkpointPath, maximumBytes: MemoryBudget.dataBytes)) : []
                reader = try CheckpointReader(bytes: group.allGatherBytes(bytes)[0], path: directory.checkpointPath)
            } else {
                reader = try CheckpointReader(path: directory.checkpointPath)
            }
            let file = reader.metadata
            let recorded = try Checkpoint.configuration(of: file, path: directory.checkpointPath)
            try refuseContradictions(with: recorded, in: resume)
            configuration = recorded
            if let record = try Checkpoint.runRecord(of: file, path: directory.checkpointPath) {
                // A resumed run reads its images as they were read first: at its model's side.
                let recordedSource = DataSource(data: record.data, labels: record.labels, digit: record.digit,
                                                imageSide: recorded.model.imageShape.height, strict: strict)
                if let imageSize, imageSize != recorded.model.imageShape.height {
                    throw ConfigurationError("--image-size \(imageSize) contradicts the run in \(resume) (\(recorded.model.imageShape.height)); leave it out to resume it")
                }
                if data != nil || labels != nil || digit != nil || classLabel != nil, source != recordedSource {
                    throw ConfigurationError("--data/--labels/--class (\(source)) contradict the run in \(resume) (\(recordedSource)); leave them out to resume it")
                }
                source = recordedSource
                recordedTarget = record.targetSteps
            }
            checkpoint = reader
        } else {
            let path = outputDirectory ?? "pgan-run"
            directory = writer ? try RunDirectory(path: path) : RunDirectory(readingFrom: path)
        }
        guard configuration.shards >= group.size else {
            throw ConfigurationError("--shards \(configuration.shards) is fewer than the \(group.size) MPI processes: every rank needs at least one shard")
        }

        var dataset = try source.load()
        if resume == nil, modelKind == .dcgan,
           dataset.height != dataset.width || !modelKind.imageSides.contains(dataset.height) {
            // dcgan needs a power-of-two side: other data (MNIST's 28×28) goes to the next one up, as PyTorch's
            // example resizes its data sets.
            dataset = try dataset.resized(to: modelKind.imageSide(for: max(dataset.height, dataset.width)))
            source.imageSide = dataset.height
        }
        // Ranks on other nodes read their own copy of the data: it must be the same, or their shards train on
        // other images.
        let checksums = group.allGather(UInt64(dataset.checksum) << 32 | UInt64(UInt32(truncatingIfNeeded: dataset.count)))
        if let rank = checksums.indices.first(where: { checksums[$0] != checksums[0] }) {
            throw DataError(path: dataset.source, problem: "rank \(rank) read other images here than rank 0 (CRC-32 \(checksums[rank] >> 32) of \(checksums[rank] & 0xFFFF_FFFF) images vs \(checksums[0] >> 32) of \(checksums[0] & 0xFFFF_FFFF)): every node needs the same data file")
        }
        // A new run's model follows its images (their side and channels); a resumed run's is in its checkpoint.
        if resume == nil {
            configuration.model = try GANModel.make(modelKind, for: dataset.imageShape, generatorWidth: generatorWidth ?? 64,
                                                    discriminatorWidth: discriminatorWidth ?? 64, source: dataset.source)
        }
        try TrainingSession.check(dataset: dataset, batchSize: configuration.batchSize, model: configuration.model)
        let bufferBytes = try GANTrainer.checkMemory(configuration: configuration, threadCount: threadCount)
        let stepsPerEpoch = dataset.count / configuration.batchSize
        let totalSteps = try targetSteps(stepsPerEpoch: stepsPerEpoch, recorded: recordedTarget)
        // Only a run that could start replaces an earlier one: every check above comes first.
        if resume == nil && writer {
            if FileManager.default.fileExists(atPath: directory.checkpointPath) && !overwrite {
                let step = (try? CheckpointReader(path: directory.checkpointPath))?.metadata.metadataValue("step")
                throw ConfigurationError("\(directory.path) already holds a run\(step.map { " (checkpoint at step \($0))" } ?? ""); continue it with --resume \(shellQuoted(directory.path)), or start over with --overwrite")
            }
            directory.removeRunFiles()
        }

        let executor = ShardedExecutor(threadCount: threadCount, scheduling: scheduler)
        defer { executor.restoreCallerBinding() }
        // Before the trainer: the real images' features are computed in memory freed before the step's is allocated.
        let probe = try qualityProbe(dataset: dataset, source: source, model: configuration.model, executor: executor)
        let trainer = GANTrainer(configuration: configuration, executor: executor, group: group)
        let run = RunRecord(data: source.data, labels: source.labels, digit: source.digit, targetSteps: totalSteps)
        let session = try TrainingSession(trainer: trainer, dataset: dataset, directory: directory, run: run)
        if let checkpoint {
            let recorded = checkpoint.metadata
            guard recorded.metadataValue("data_crc32") == String(dataset.checksum),
                  recorded.metadataValue("data_images") == String(dataset.count) else {
                throw DataError(path: dataset.source, problem: "is not the data the run in \(directory.path) was trained on (its checkpoint records \(recorded.metadataValue("data_images") ?? "?") images with CRC-32 \(recorded.metadataValue("data_crc32") ?? "?"); these are \(dataset.count) with \(dataset.checksum)): was the file replaced?")
            }
            try Checkpoint.restore(from: checkpoint, into: trainer)
            for warning in try session.restoreLogs() { writeToStandardError("pgan: warning: \(warning)\n") }
        }
        // An MPI rank's copy of the file would otherwise stay in memory for the whole run.
        checkpoint = nil
        session.qualityProbe = probe
        session.evaluationInterval = evalEvery ?? 1
        let printer = ProgressPrinter(quiet: quiet || !writer)
        printer.header([
            "pgan train: \(dataset.count) images from \(dataset.source), \(stepsPerEpoch) steps per epoch of \(configuration.batchSize)",
            "model: \(configuration.model.identifier), generator \(trainer.generator.trainableParameterCount + trainer.generator.stateCount) parameters, discriminator \(trainer.discriminator.trainableParameterCount + trainer.discriminator.stateCount); optimizer \(configuration.optimizer.rawValue) lr \(configuration.effectiveLearningRate)",
            "machine: \(Topology.shared.summary)",
            "memory: about \(formatBytes(bufferBytes)) of model and training buffers, \(formatBytes(dataset.bytes.count)) of images",
            "threads \(threadCount) (\(executor.scheduling.rawValue)), shards \(configuration.shards), pinning (worker → PU): " + executor.pinningMap.enumerated().map { "\($0.offset)→\($0.element)" }.joined(separator: " "),
            group.size > 1 ? "MPI: \(group.size) processes; rank r trains shards " + trainer.reducer.ownedShards.enumerated().map { "\($0.offset): \($0.element.lowerBound)–\($0.element.upperBound - 1)" }.joined(separator: ", ") + " (rank 0 writes the files; `pgan topology` under mpirun shows every rank's cores)" : nil,
            probe.map { "measuring samples every \(session.evaluationInterval) epoch\(session.evaluationInterval == 1 ? "" : "s"): \($0.count) images against real ones with \($0.classifier.identifier) (real against real: FD \(String(printf: "%.3f", $0.realFloor)))" },
            configuration.averageDecay.map { "moving average of the generator: decay \($0) (samples and measurements use it)" },
            trainer.step > 0 ? "resuming at step \(trainer.step) of \(totalSteps) (epoch \(trainer.step / stepsPerEpoch + 1)) in \(directory.path)" : "writing to \(directory.path)/",
        ])
        if trainer.step >= totalSteps {
            printer.header(["nothing to do: the checkpoint is at step \(trainer.step), the run asks for \(totalSteps)"])
            return
        }
        // Every rank must stop at the same step: a signal seen by any rank stops them all.
        let stopRequested = { group.allGather(UInt64(pgan_stop_signal())).contains { $0 != 0 } }
        switch try session.run(totalSteps: totalSteps, observer: printer, stopRequested: stopRequested) {
        case .finished:
            printer.finish(directory: directory.path)
        case .interrupted(let step):
            printer.clearBar()
            let signal = group.allGather(UInt64(pgan_stop_signal())).first { $0 != 0 }.map { Int32($0) } ?? SIGINT
            if writer {
                writeToStandardError("pgan: interrupted at step \(step) of \(totalSteps); checkpoint written. Continue with: \(group.size > 1 ? "mpirun … " : "")pgan train --resume \(shellQuoted(directory.path))\n")
            }
            throw ExitCode(128 + signal)
        }
    }

    /// The measurement of samples at epoch ends: with --classifier, or the built-in one for 28×28 grey images; none
    /// with --eval-every 0 or for images no classifier reads.
    func qualityProbe(dataset: ImageDataset, source: DataSource, model: GANModel,
                      executor: ShardedExecutor) throws -> QualityProbe? {
        guard evalEvery != 0 else { return nil }
        guard let classifier = try Classifier.forImages(model.imageShape, path: self.classifier) else {
            if evalEvery != nil {
                throw ConfigurationError("--eval-every: no built-in classifier reads \(model.imageShape.height)×\(model.imageShape.width)×\(model.imageShape.channels) images; give --classifier (pgan classifier train)")
            }
            return nil
        }
        return try QualityProbe(classifier: classifier, realImages: dataset,
                                targetClass: source.measuredClass, count: 1000,
                                executor: executor)
    }

    /// `--class` as a label number (a name is looked up: a class folder of an image folder, or a CIFAR-10 class), or
    /// `--digit`; nil when neither is given.
    func selectedLabel(data: String?) throws -> Int? {
        guard let classLabel else { return digit }
        if let number = Int(classLabel) {
            guard (0...255).contains(number) else {
                throw ValidationError("--class must be a label value 0–255 or a class name (got \(classLabel))")
            }
            return number
        }
        guard let data else { throw ValidationError("--class \(classLabel) names a class of --data; give --data") }
        do {
            return try ImageDataset.classIndex(named: classLabel, dataPath: data)
        } catch let error as DataError {
            throw ValidationError(error.description)
        }
    }

    /// Flags given with --resume must agree with the run's recorded configuration.
    func refuseContradictions(with recorded: TrainingConfiguration, in directory: String) throws {
        var conflicts: [String] = []
        if let batchSize, batchSize != recorded.batchSize { conflicts.append("--batch-size \(batchSize) (the run has \(recorded.batchSize))") }
        if let shards, shards != recorded.shards { conflicts.append("--shards \(shards) (the run has \(recorded.shards))") }
        if let seed, seed != recorded.seed { conflicts.append("--seed \(seed) (the run has \(recorded.seed))") }
        if let optimizer, optimizer != recorded.optimizer {
            conflicts.append("--optimizer \(optimizer.rawValue) (the run has \(recorded.optimizer.rawValue))")
        }
        let recordedModel = recorded.model
        if let model, model != recordedModel.kind {
            conflicts.append("--model \(model.rawValue) (the run has \(recordedModel.kind.rawValue))")
        }
        for (flag, width, name) in [("--generator-width", generatorWidth, "g"), ("--discriminator-width", discriminatorWidth, "d")] {
            if let width, !recordedModel.identifier.split(separator: "-").contains(Substring("\(name)\(width)")) {
                conflicts.append("\(flag) \(width) (the run's model is \(recordedModel.identifier))")
            }
        }
        if let averageDecay, (averageDecay == 0 ? nil : averageDecay) != recorded.averageDecay {
            conflicts.append("--ema \(averageDecay) (the run has \(recorded.averageDecay.map { String($0) } ?? "none"))")
        }
        if let learningRate, learningRate != recorded.effectiveLearningRate {
            conflicts.append("--learning-rate \(learningRate) (the run has \(recorded.effectiveLearningRate))")
        }
        if !conflicts.isEmpty {
            throw ConfigurationError("\(conflicts.joined(separator: ", ")) contradict\(conflicts.count == 1 ? "s" : "") the run in \(directory); leave \(conflicts.count == 1 ? "it" : "them") out to resume it")
        }
    }

    /// The step to train to: --steps, --epochs × steps per epoch, the resumed run's own target, or 10 epochs.
    func targetSteps(stepsPerEpoch: Int, recorded: Int?) throws -> Int {
        if let steps {
            guard steps <= Checkpoint.maximumStep else { throw ConfigurationError("--steps must be at most \(Checkpoint.maximumStep) (got \(steps))") }
            return steps
        }
        if epochs == nil, let recorded { return recorded }
        let (total, overflow) = (epochs ?? 10).multipliedReportingOverflow(by: stepsPerEpoch)
        guard !overflow, total <= Checkpoint.maximumStep else {
            throw ConfigurationError("--epochs \(epochs ?? 10) at \(stepsPerEpoch) steps per epoch is more than \(Checkpoint.maximumStep) steps")
        }
        return total
    }
}

/// Where a run's images come from: a file or folder (with labels and a class to keep, and the side folder images are
/// resized to), or the built-in zeros.
struct DataSource: Equatable, CustomStringConvertible {
    var data: String?
    var labels: String?
    var digit: Int?
    /// The side images are resized to (nil: as they are; 32 for a folder) and whether an unreadable image
    /// fails the load: how to read, not what, so not compared on resume.
    var imageSide: Int? = nil
    var strict = false

    static func == (a: DataSource, b: DataSource) -> Bool {
        a.data == b.data && a.labels == b.labels && a.digit == b.digit
    }
    func load() throws -> ImageDataset {
        guard let data else {
            if let digit, digit != 0 {
                throw ConfigurationError("the built-in data set holds only zeros; give --data and --labels for digit \(digit)")
            }
            let zeros = try ImageDataset.defaultZeros()
            guard let imageSide, imageSide != zeros.height else { return zeros }
            return try zeros.resized(to: imageSide)
        }
        return try ImageDataset.load(imagesPath: data, labelsPath: labels, label: digit, imageSide: imageSide,
                                     strict: strict) { writeToStandardError("pgan: warning: \($0)\n") }
    }

    /// The class a run on these images draws, for the class rate: --class, or 0 for the built-in zeros; nil for a
    /// run on every class of --data.
    var measuredClass: Int? { digit ?? (data == nil ? 0 : nil) }

    var description: String {
        guard let data else { return "the built-in zeros" }
        return "data \(data)" + (labels.map { ", labels \($0)" } ?? "") + (digit.map { ", class \($0)" } ?? "")
    }
}

func absolutePath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.path
}

/// "a", "a or b", "a, b or c".
func alternatives(_ items: [String]) -> String {
    items.count < 2 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
}
