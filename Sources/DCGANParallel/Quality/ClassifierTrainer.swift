#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Trains a `Classifier` data-parallel over shards, as the GAN trains (docs/ARCHITECTURE.md §2): shard s owns samples
/// [s·B/S, (s+1)·B/S), runs them through the network a few at a time in a worker's memory (forward, softmax
/// cross-entropy, backward, gradients accumulating in the shard's buffer); the shards' gradients are summed in the
/// fixed tree (`ShardReducer`), then Adam steps and the weights are packed. Nothing depends on which worker ran what,
/// so any thread count gives the same bits.
public final class ClassifierTrainer: @unchecked Sendable {
    public let classifier: Classifier
    public let batchSize: Int
    public let shards: Int
    public let seed: UInt64
    public let executor: ShardedExecutor
    let optimizer: Optimizer
    let reducer: ShardReducer
    let plan: ActivationPlan
    let random: CounterRandom
    let shardRanges: [Range<Int>]
    let gradientBuffers: [AlignedBuffer]
    let gradientPointers: [UnsafeMutablePointer<Float>]
    let arenas: [ActivationArena]
    let workspaces: [KernelWorkspace]
    let packing: PackingPlan
    /// The step's batch: images, labels, and per sample its loss and whether it was classified right.
    let images: AlignedBuffer
    let labels: UnsafeMutableBufferPointer<Int32>
    let losses: AlignedBuffer
    let correct: AlignedBuffer
    public private(set) var step = 0
    public let initialLearningRate: Float
    static let chunk = 4

    public init(classifier: Classifier, batchSize: Int, shards: Int, seed: UInt64, learningRate: Float = 1e-3,
                executor: ShardedExecutor) throws {
        guard (1...TrainingConfiguration.maximumShards).contains(shards), batchSize >= shards,
              batchSize <= TrainingConfiguration.maximumBatchSize else {
            throw ConfigurationError("--batch-size must be 1–\(TrainingConfiguration.maximumBatchSize) and at least --shards (1–\(TrainingConfiguration.maximumShards)); got \(batchSize) and \(shards)")
        }
        self.classifier = classifier
        initialLearningRate = learningRate
        self.batchSize = batchSize
        self.shards = shards
        self.seed = seed
        self.executor = executor
        let network = classifier.network
        random = CounterRandom(seed: seed)
        network.initialize(random: random)
        optimizer = Optimizer(kind: .adam, learningRate: learningRate, parameterCount: network.parameters.count)
        reducer = ShardReducer(shards: shards)
        plan = ActivationPlan(network: network, mode: .training, firstLayer: 0, inputNeedsGradient: false)
        shardRanges = (0..<shards).map { ($0 * batchSize / shards)..<(($0 + 1) * batchSize / shards) }
        gradientBuffers = (0..<shards).map { _ in AlignedBuffer(count: network.parameters.count) }
        gradientPointers = gradientBuffers.map(\.pointer)
        arenas = (0..<executor.threadCount).map { [plan] _ in
            ActivationArena(plans: [plan], capacity: Self.chunk, minimumScratch0: 0)
        }
        workspaces = (0..<executor.threadCount).map { _ in KernelWorkspace() }
        packing = network.packingPlan()
        images = AlignedBuffer(count: batchSize * network.inputElements)
        labels = .allocate(capacity: batchSize)
        labels.initialize(repeating: 0)
        losses = AlignedBuffer(count: batchSize)
        correct = AlignedBuffer(count: batchSize)
    }

    deinit { labels.deallocate() }

    /// One step on the minibatch of `data` given by `indices` (batchSize of them): its mean loss and accuracy.
    public func trainStep(on data: LabelledImages, indices: ArraySlice<Int>) -> (loss: Double, accuracy: Double) {
        precondition(indices.count == batchSize)
        let network = classifier.network, size = network.inputElements, classes = classifier.classes
        for (row, index) in indices.enumerated() {
            data.images.copyImage(index, to: images.pointer + row * size)
            labels[row] = data.labels[index]
        }
        optimizer.beginStep()
        let last = network.layers.count, step = UInt64(self.step)
        var work = PhasedWork()
        work.parallel("classifier forward+backward", iterations: shards) { [self] shard, worker in
            let range = shardRanges[shard]
            var first = range.lowerBound
            while first < range.upperBound {
                let n = min(Self.chunk, range.upperBound - first)
                let context = LayerContext(parameters: network.parameters.pointer, gradients: gradientPointers[shard],
                                           accumulate: first != range.lowerBound, random: random, step: step,
                                           phase: .discriminatorStep, firstSample: first, workspace: workspaces[worker])
                let pass = ActivationPass(plan: plan, arena: arenas[worker], input: images.pointer + first * size,
                                          inputGradient: nil, norms: Array(repeating: nil, count: last),
                                          context: context, n: n)
                pass.forward(0..<last)
                let logits = pass.tensor(last)
                SoftmaxCrossEntropy.withLogits(logits: logits, labels: labels.baseAddress! + first, count: n,
                                               classes: classes, losses: losses.pointer + first,
                                               logitGradients: pass.gradient(last)!,
                                               gradientScale: 1 / Float(batchSize))
                for i in 0..<n {
                    let predicted = Classifier.predictedClass(logits + i * classes, classes: classes)
                    correct[first + i] = predicted == Int(labels[first + i]) ? 1 : 0
                }
                pass.backward(0..<last)
                first += n
            }
        }
        let count = network.parameters.count
        work.parallel("classifier all-reduce+optimizer", iterations: GANStepPlan.sliceCount(of: count)) { [self] slice, _ in
            let range = GANStepPlan.slice(slice, of: count)
            reducer.sumOwnBlocks(gradientPointers, range: range)
            optimizer.apply(range, parameters: network.parameters.pointer, gradients: gradientPointers[0])
        }
        work.parallel("classifier weight packing", iterations: packing.panelCount) { [self] panel, _ in
            packing.packPanel(panel)
        }
        executor.run(work)
        self.step += 1
        // Summed in sample order: the same at any thread count.
        var loss = 0.0, right = 0.0
        for i in 0..<batchSize {
            loss += Double(losses[i])
            right += Double(correct[i])
        }
        return (loss / Double(batchSize), right / Double(batchSize))
    }

    /// Adam's rate for `epoch` (from 0): the initial rate times 0.6^epoch, so the last epochs settle.
    public func startEpoch(_ epoch: Int) {
        optimizer.learningRate = initialLearningRate * Float(pow(0.6, Double(epoch)))
    }

    /// The data set's samples in a shuffled order for `epoch`, cut into whole minibatches (the rest is left out).
    public func batches(of data: LabelledImages, epoch: Int) -> [ArraySlice<Int>] {
        let order = random.permutation(count: data.images.count, epoch: UInt64(epoch))
        return stride(from: 0, through: order.count - batchSize, by: batchSize).map { order[$0..<($0 + batchSize)] }
    }

    /// The fraction of `data` the classifier labels right.
    public func accuracy(on data: LabelledImages) -> Double {
        let pixels = data.images.pixels
        let predictions = pixels.withUnsafeBufferPointer {
            classifier.evaluate(images: $0.baseAddress!, count: data.images.count, executor: executor).predictions
        }
        let right = zip(predictions, data.labels).filter { $0 == Int($1) }.count
        return Double(right) / Double(max(data.images.count, 1))
    }
}
