import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a checkpoint's samples: Fréchet distance to real images, class rate, diversity.",
        discussion: """
        Generates --count images from fixed noise (the EMA generator when the checkpoint has one), runs them and \
        --count real images of the run's data through a classifier (the built-in MNIST one for 28×28 grey images, or \
        --classifier from pgan classifier train), and prints the Fréchet distance between their features, the real \
        against real floor, the share classified as the run's class and the diversity. See README, "Measuring samples".
        Example: pgan eval --checkpoint pgan-run/checkpoint.safetensors
        """)

    @Option(help: "A checkpoint written by pgan train.")
    var checkpoint: String
    @Option(help: "Generated and real images compared (default 1000).")
    var count: Int = 1000
    @Option(help: "A classifier from pgan classifier train (default: the built-in MNIST classifier, for 28×28 grey images).")
    var classifier: String?
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard (2...100_000).contains(count) else { throw ValidationError("--count must be 2–100000 (got \(count))") }
    }

    mutating func run() throws {
        let start = monotonicSeconds()
        let reader = try CheckpointReader(path: checkpoint), file = reader.metadata
        let record = try Checkpoint.runRecord(of: file, path: checkpoint)
        let executor = ShardedExecutor(threadCount: threadOptions.count)
        defer { executor.restoreCallerBinding() }
        let (trainer, averaged) = try Checkpoint.sampler(reader, executor: executor)
        let image = trainer.configuration.model.imageShape
        let source = DataSource(data: record?.data, labels: record?.labels, digit: record?.digit, imageSide: image.height)
        let probe = try QualityProbe(classifier: try loadClassifier(image: image), realImages: try source.load(),
                                     targetClass: source.measuredClass, count: count,
                                     executor: executor)
        let quality = probe.measure(trainer)
        print("pgan eval: \(checkpoint) (step \(file.metadataValue("step") ?? "?")\(averaged ? ", EMA generator" : "")), \(count) generated images against \(probe.floorImages) real ones from \(source), classifier \(probe.classifier.identifier)")
        print(String(printf: "Fréchet distance   %.3f   (real against real: %.3f)", quality.frechetDistance, probe.realFloor))
        if let rate = quality.classRate {
            print(String(printf: "class rate         %.3f   (classified as class %d)", rate, probe.targetClass!))
        }
        print(String(printf: "diversity          %.3f   (mean feature distance over real images')", quality.diversity))
        print(String(printf: "took %.1f s", monotonicSeconds() - start))
    }

    func loadClassifier(image: TensorShape) throws -> Classifier {
        guard let loaded = try Classifier.forImages(image, path: classifier) else {
            throw ConfigurationError("the built-in classifier reads 28×28 grey images; this model makes \(image.height)×\(image.width)×\(image.channels): give --classifier (pgan classifier train)")
        }
        return loaded
    }
}
