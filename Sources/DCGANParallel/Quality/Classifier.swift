import CBuiltInData
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Images with a class label each: what the classifier trains and is tested on.
public struct LabelledImages: Sendable {
    public let images: ImageDataset
    /// One class index per image.
    public let labels: [Int32]
    public var classCount: Int { Int(labels.max() ?? 0) + 1 }

    public init(images: ImageDataset, labels: [Int32]) {
        precondition(images.count == labels.count)
        self.images = images
        self.labels = labels
    }

    /// IDX images with an IDX label file (MNIST, Fashion-MNIST), or CIFAR-10/100, whose files carry their labels.
    public static func load(imagesPath: String, labelsPath: String?) throws -> LabelledImages {
        if let cifar = try CIFAR.loadLabelled(path: imagesPath) {
            if labelsPath != nil {
                throw DataError(path: imagesPath, problem: "CIFAR files carry their labels; leave out --labels")
            }
            return cifar
        }
        let images = try ImageDataset.load(imagesPath: imagesPath, labelsPath: nil, label: nil)
        guard let labelsPath else {
            throw DataError(path: imagesPath, problem: "a classifier needs the images' labels: give --labels")
        }
        let file = try IDXFile.read(path: labelsPath)
        guard file.dimensions.count == 1, file.dimensions[0] == images.count else {
            throw DataError(path: labelsPath, problem: "expected \(images.count) labels (1 dimension) for \(imagesPath), found dimensions \(file.dimensions)")
        }
        return LabelledImages(images: images, labels: file.bytes.map { Int32($0) })
    }
}

/// A small convolutional classifier pgan trains itself (docs/ARCHITECTURE.md §8), whose penultimate layer's 128
/// features measure generated images (`SampleQuality`): three 3×3 convolutions (16, 32 and 64 filters, the last two
/// stride 2, ReLU), Dense(128, ReLU), Dense(classes). Trained with softmax cross-entropy and Adam, data-parallel over
/// shards like the GAN and bit-identical at any thread count.
public enum ClassifierModel {
    public static let featureCount = 128

    public static func description(image: TensorShape, classes: Int) -> ModelDescription {
        ModelDescription(name: "classifier", input: image, layers: [
            .conv2D(filters: 16, kernelSize: 3, stride: 1, activation: .relu),
            .conv2D(filters: 32, kernelSize: 3, stride: 2, activation: .relu),
            .conv2D(filters: 64, kernelSize: 3, stride: 2, activation: .relu),
            .flatten,
            .dense(units: featureCount, activation: .relu),
            .dense(units: classes),
        ])
    }

    /// Names the classifier in its file: the images it reads and the classes it tells apart.
    public static func identifier(image: TensorShape, classes: Int) -> String {
        "classifier-\(image.height)x\(image.width)x\(image.channels)-\(classes)"
    }
}

/// A classifier's network with its weights: trained by `ClassifierTrainer`, stored as safetensors, and run in
/// inference to give each image its features and its class.
public final class Classifier: @unchecked Sendable {
    public let network: Network
    public let classes: Int
    /// Test accuracy recorded when it was trained (nil when never tested).
    public var testAccuracy: Double?

    /// `inferenceOnly`: for measuring only, never trained (`Network`'s option: no transposed weight packs).
    public init(image: TensorShape, classes: Int, inferenceOnly: Bool = false) throws {
        self.classes = classes
        network = try Network(ClassifierModel.description(image: image, classes: classes), inputNeedsGradient: false,
                              kernelSubstream: 20, dropoutSubstream: 0, inferenceOnly: inferenceOnly)
    }

    public var imageShape: TensorShape { network.inputShape }
    public var identifier: String { ClassifierModel.identifier(image: imageShape, classes: classes) }

    static let format = "pgan-classifier"

    /// The weights and what they are, as a safetensors file.
    public func encoded() -> Data {
        var metadata: [(key: String, value: String)] = [("format", Self.format), ("model", identifier),
                                                        ("classes", String(classes))]
        if let testAccuracy { metadata.append(("test_accuracy", String(testAccuracy))) }
        let tensors = network.layout.slots.map { slot in
            SafeTensors.Tensor(name: slot.name, shape: slot.shape,
                               values: Array(UnsafeBufferPointer(start: network.parameters.pointer + slot.offset,
                                                                 count: slot.count)))
        }
        return SafeTensors(metadata: metadata, tensors: tensors).encoded()
    }

    /// A classifier from its file, checked to be one, for measuring (built `inferenceOnly`).
    public static func read(path: String) throws -> Classifier {
        try read(try CheckpointReader(path: path), path: path)
    }

    private static func read(_ reader: CheckpointReader, path: String) throws -> Classifier {
        let file = reader.metadata
        guard file.metadataValue("format") == format, let model = file.metadataValue("model"),
              let classes = file.metadataValue("classes").flatMap(Int.init), (2...1000).contains(classes) else {
            throw DataError(path: path, problem: "not a pgan classifier (made by `pgan classifier train`)")
        }
        let parts = model.split(separator: "-")
        let size = parts.count == 3 ? parts[1].split(separator: "x").compactMap { Int($0) } : []
        guard size.count == 3, (1...4096).contains(size[0]), (1...4096).contains(size[1]), [1, 3].contains(size[2]) else {
            throw DataError(path: path, problem: "corrupt classifier metadata: model \(model)")
        }
        let classifier = try Classifier(image: TensorShape(batch: 1, height: size[0], width: size[1], channels: size[2]),
                                        classes: classes, inferenceOnly: true)
        try reader.readTensors(into: classifier.network.layout.checkpointTensors(in: classifier.network.parameters))
        classifier.network.packWeights()
        classifier.testAccuracy = file.metadataValue("test_accuracy").flatMap(Double.init)
        return classifier
    }

    /// The classifier at `path` when given, else the built-in one for images of this shape; nil when there is none.
    public static func forImages(_ image: TensorShape, path: String?) throws -> Classifier? {
        if let path { return try read(path: path) }
        return image == TensorShape(batch: 1, height: 28, width: 28, channels: 1) ? try builtInMNIST() : nil
    }

    /// The MNIST classifier pgan ships inside its binary (Sources/CBuiltInData; scripts/make-mnist-classifier.sh
    /// makes it), for 28×28 grey images.
    public static func builtInMNIST() throws -> Classifier {
        let file = pgan_built_in_classifier(), path = "built-in mnist-classifier.safetensors"
        let bytes = Array(UnsafeBufferPointer(start: file.bytes, count: file.count))
        pgan_built_in_release(file)
        return try read(try CheckpointReader(bytes: bytes, path: path), path: path)
    }

    /// The class with the largest of `classes` logits (the first of equal ones).
    static func predictedClass(_ logits: UnsafePointer<Float>, classes: Int) -> Int {
        var best = 0
        for j in 1..<classes where logits[j] > logits[best] { best = j }
        return best
    }

    /// Per image of `images` (count × the classifier's image elements, in [−1, 1]): its `featureCount` penultimate
    /// features and its predicted class, in parallel over chunks of images on `executor`; in `memory` when given
    /// (an idle trainer's), else in memory of its own.
    public func evaluate(images: UnsafePointer<Float>, count: Int, executor: ShardedExecutor)
        -> (features: [Float], predictions: [Int]) {
        evaluate(images: images, count: count, executor: executor, memory: nil)
    }

    func evaluate(images: UnsafePointer<Float>, count: Int, executor: ShardedExecutor, memory: WorkerMemory?)
        -> (features: [Float], predictions: [Int]) {
        let plan = ActivationPlan(network: network, mode: .inference, firstLayer: 0, inputNeedsGradient: false)
        let chunk = 2, chunks = (count + chunk - 1) / chunk
        let arenas = (0..<executor.threadCount).map { worker in
            ActivationArena(plans: [plan], capacity: chunk,
                            borrowing: memory.map { worker < $0.buffers.count ? $0.buffers[worker] : [] } ?? [])
        }
        let workspaces = memory?.workspaces ?? (0..<executor.threadCount).map { _ in KernelWorkspace() }
        let last = network.layers.count, inputSize = network.inputElements, classes = self.classes
        let featureSize = plan.shapes[last - 1].elementsPerImage
        let features = AlignedBuffer(count: count * featureSize), predictions = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { predictions.deallocate() }
        nonisolated(unsafe) let predicted = predictions
        let random = CounterRandom(seed: 0), network = self.network
        executor.run(PhasedWork("classifier", iterations: chunks) { index, worker in
            let first = index * chunk, n = min(chunk, count - first)
            let context = LayerContext(parameters: network.parameters.pointer, gradients: nil, accumulate: false,
                                       random: random, step: 0, phase: .discriminatorStep, firstSample: first,
                                       workspace: workspaces[worker])
            let pass = ActivationPass(plan: plan, arena: arenas[worker],
                                      input: UnsafeMutablePointer(mutating: images + first * inputSize),
                                      inputGradient: nil, norms: Array(repeating: nil, count: last), context: context, n: n)
            pass.forward(0..<last)
            (features.pointer + first * featureSize).update(from: pass.tensor(last - 1), count: n * featureSize)
            let logits = pass.tensor(last)
            for i in 0..<n { predicted[first + i] = Self.predictedClass(logits + i * classes, classes: classes) }
        })
        return (features.array, Array(predictions))
    }
}
