import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// `pgan classifier train`: the feature network `pgan eval` and `--eval-every` measure samples with.
struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train the small classifier whose features measure generated images (pgan eval).",
        subcommands: [TrainClassifier.self])
}

struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a classifier on labelled images (MNIST, Fashion-MNIST, CIFAR-10/100).",
        discussion: """
        Data-parallel over --shards and bit-identical at any thread count, like pgan train. Each epoch prints the mean \
        loss and training accuracy; with --test-data, the test accuracy is printed and stored in the file.
        Example: pgan classifier train --data train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz \
        --test-data t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte.gz --out mnist-classifier.safetensors
        """)

    @Option(help: "Training images: IDX (with --labels) or CIFAR-10/100 binary.")
    var data: String
    @Option(help: "IDX label file for --data.")
    var labels: String?
    @Option(help: "Test images, as --data.")
    var testData: String?
    @Option(help: "IDX label file for --test-data.")
    var testLabels: String?
    @Option(name: .customLong("out"), help: "The classifier file to write (.safetensors).")
    var output: String
    @Option(help: "Epochs (default 6).")
    var epochs: Int = 6
    @Option(help: "Minibatch size (default 128).")
    var batchSize: Int = 128
    @Option(help: "Shards per minibatch (default 16).")
    var shards: Int = 16
    @Option(help: "Seed of the weights and the data order (default 1).")
    var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Adam's learning rate in the first epoch, ×0.6 each epoch after (default 2e-3).")
    var learningRate: Float = 2e-3
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be 1–1000 (got \(epochs))") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate must be a positive number (got \(learningRate))")
        }
        if (testData == nil) != (testLabels == nil) && !(testData.map { CIFAR.kind(at: $0) != nil } ?? false) {
            throw ValidationError("give --test-data with --test-labels (CIFAR test files carry their own)")
        }
        guard output.lowercased().hasSuffix(".safetensors") else {
            throw ValidationError("--out \(output): the classifier is written as .safetensors")
        }
    }

    mutating func run() throws {
        let training = try LabelledImages.load(imagesPath: data, labelsPath: labels)
        let test = try testData.map { try LabelledImages.load(imagesPath: $0, labelsPath: testLabels) }
        if let test, test.images.imageShape != training.images.imageShape {
            throw DataError(path: testData!, problem: "holds \(test.images.height)×\(test.images.width)×\(test.images.channels) images; --data holds \(training.images.height)×\(training.images.width)×\(training.images.channels)")
        }
        let classes = max(training.classCount, test?.classCount ?? 0)
        guard classes >= 2 else { throw DataError(path: labels ?? data, problem: "holds only one class") }
        guard training.images.count >= batchSize else {
            throw ConfigurationError("--batch-size \(batchSize) is larger than the \(training.images.count) training images")
        }
        let executor = ShardedExecutor(threadCount: threadOptions.count)
        defer { executor.restoreCallerBinding() }
        let classifier = try Classifier(image: training.images.imageShape, classes: classes)
        let trainer = try ClassifierTrainer(classifier: classifier, batchSize: batchSize, shards: shards, seed: seed,
                                            learningRate: learningRate, executor: executor)
        print("pgan classifier train: \(training.images.count) images of \(classes) classes from \(training.images.source); \(classifier.identifier), \(classifier.network.trainableParameterCount) parameters; threads \(executor.threadCount), shards \(shards)")
        for epoch in 0..<epochs {
            let start = monotonicSeconds()
            var loss = 0.0, accuracy = 0.0
            trainer.startEpoch(epoch)
            let batches = trainer.batches(of: training, epoch: epoch)
            for batch in batches {
                let result = trainer.trainStep(on: training, indices: batch)
                loss += result.loss
                accuracy += result.accuracy
            }
            let seconds = monotonicSeconds() - start
            var line = String(printf: "epoch %3d  loss %.4f  train accuracy %.4f  %.0f img/s", epoch + 1,
                              loss / Double(batches.count), accuracy / Double(batches.count),
                              Double(batches.count * batchSize) / seconds)
            if let test {
                classifier.testAccuracy = trainer.accuracy(on: test)
                line += String(printf: "  test accuracy %.4f", classifier.testAccuracy!)
            }
            print(line)
            fflush(nil)
        }
        try writeAtomically(classifier.encoded(), to: output)
        print("wrote \(output)")
    }
}
