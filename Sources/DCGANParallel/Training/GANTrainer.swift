#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// What a training run is: everything the numbers depend on. The thread count is deliberately not here — it only
/// decides how fast the same numbers come out.
public struct TrainingConfiguration: Sendable, Equatable {
    public var batchSize: Int = 32
    public var shards: Int = 16
    public var seed: UInt64 = 42
    public var optimizer: OptimizerKind = .rmsprop
    public var learningRate: Float?
    /// The two networks; the seed DCGAN unless a caller builds another.
    public var model: GANModel = .seed
    /// The decay of an exponential moving average of the generator (`AverageGenerator`); nil: none.
    public var averageDecay: Float?

    public init(batchSize: Int = 32, shards: Int = 16, seed: UInt64 = 42, optimizer: OptimizerKind = .rmsprop,
                learningRate: Float? = nil, model: GANModel = .seed, averageDecay: Float? = nil) {
        self.model = model
        self.averageDecay = averageDecay
        self.batchSize = batchSize
        self.shards = shards
        self.seed = seed
        self.optimizer = optimizer
        self.learningRate = learningRate
    }

    public var effectiveLearningRate: Float { learningRate ?? optimizer.defaultLearningRate }

    /// Every sample of a minibatch keeps about 160 KB of activations; 65 536 of them are 10 GB.
    public static let maximumBatchSize = 1 << 16
    /// Every shard has its own gradient buffers (about 0.9 MB).
    public static let maximumShards = 1024

    /// Checks the values a user can get wrong; the message names the flag.
    public func validate() throws {
        guard (1...Self.maximumBatchSize).contains(batchSize) else {
            throw ConfigurationError("--batch-size must be 1–\(Self.maximumBatchSize) (got \(batchSize))")
        }
        guard (1...Self.maximumShards).contains(shards) else {
            throw ConfigurationError("--shards must be 1–\(Self.maximumShards) (got \(shards))")
        }
        guard batchSize >= shards else {
            throw ConfigurationError("--batch-size \(batchSize) is smaller than --shards \(shards): every shard needs at least one sample")
        }
        guard effectiveLearningRate > 0, effectiveLearningRate.isFinite else {
            throw ConfigurationError("--learning-rate must be a positive number (got \(effectiveLearningRate))")
        }
        if let averageDecay, !(averageDecay > 0 && averageDecay < 1) {
            throw ConfigurationError("--ema must be a decay between 0 and 1, such as 0.99, or 0 for none (got \(averageDecay))")
        }
    }
}

/// A flag or value the user got wrong; the CLI exits with status 2 for it.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Two ranks of one job hold different model states: their results would no longer be one process's.
public struct RanksDisagree: Error, CustomStringConvertible {
    public let step: Int
    public let rank: Int
    public let checksum: UInt32
    public let rankZeroChecksum: UInt32

    public var description: String {
        "rank \(rank)'s model state differs from rank 0's after step \(step) (CRC-32 \(checksum) vs \(rankZeroChecksum)): "
            + "the ranks must run the same pgan build on the same data and CPU kind; stopped before writing a checkpoint"
    }
}

/// The numbers one training step produces.
public struct StepMetrics: Sendable, Equatable {
    public var discriminatorLoss: Double
    public var generatorLoss: Double
    /// Fraction of real images the discriminator calls real (p > 0.5).
    public var discriminatorAccuracyReal: Double
    /// Fraction of fakes the discriminator calls fake (p ≤ 0.5).
    public var discriminatorAccuracyFake: Double
    /// Fraction of the generator-phase fakes the discriminator calls real.
    public var generatorFoolingRate: Double

    public init(discriminatorLoss: Double, generatorLoss: Double, discriminatorAccuracyReal: Double,
                discriminatorAccuracyFake: Double, generatorFoolingRate: Double) {
        self.discriminatorLoss = discriminatorLoss
        self.generatorLoss = generatorLoss
        self.discriminatorAccuracyReal = discriminatorAccuracyReal
        self.discriminatorAccuracyFake = discriminatorAccuracyFake
        self.generatorFoolingRate = generatorFoolingRate
    }
}

/// Trains a GAN data-parallel over shards (docs/ARCHITECTURE.md §2–3): the networks built from the configuration's
/// model, their optimizers, and the step counter. What a step does, and in which phases, is `GANStepPlan`'s.
public final class GANTrainer: @unchecked Sendable {
    public let configuration: TrainingConfiguration
    public let generator: Network
    public let discriminator: Network
    public let generatorOptimizer: Optimizer
    public let discriminatorOptimizer: Optimizer
    public let random: CounterRandom
    public let executor: ShardedExecutor
    /// The generator's moving average, with `configuration.averageDecay`.
    public let average: AverageGenerator?
    /// Steps completed so far; the counter of every random draw of the next step.
    public var step: Int = 0
    let plan: GANStepPlan
    /// Every sum over shards, and which shards this process owns (`group`'s rank's; all of them in one process).
    public let reducer: ShardReducer
    /// Per owned shard: the step's D loss, G loss and the real, fake and fooled counts, summed over the shard's
    /// samples.
    let shardMetricSums: [DoubleBuffer]
    let shardMetricPointers: [UnsafeMutablePointer<Double>]

    /// `group`: the processes the run is spread over; each computes its own shards (`ShardReducer.ownedShards`)
    /// and they exchange only sums, so every rank ends each step with the same weights as one process would.
    public init(configuration: TrainingConfiguration, executor: ShardedExecutor,
                group: ProcessGroup = SingleProcess.shared) {
        self.configuration = configuration
        self.executor = executor
        reducer = ShardReducer(shards: configuration.shards, group: group)
        random = CounterRandom(seed: configuration.seed)
        (generator, discriminator) = Self.networks(configuration.model)
        generator.initialize(random: random)
        discriminator.initialize(random: random)
        let rate = configuration.effectiveLearningRate
        let conventions = configuration.model.conventions
        generatorOptimizer = Optimizer(kind: configuration.optimizer, learningRate: rate,
                                       parameterCount: generator.parameters.count, conventions: conventions)
        discriminatorOptimizer = Optimizer(kind: configuration.optimizer, learningRate: rate,
                                           parameterCount: discriminator.parameters.count, conventions: conventions)
        if let decay = configuration.averageDecay {
            average = AverageGenerator(decay: decay, copying: generator)
        } else {
            average = nil
        }
        plan = GANStepPlan(generator: generator, discriminator: discriminator, generatorOptimizer: generatorOptimizer,
                           discriminatorOptimizer: discriminatorOptimizer, average: average, random: random,
                           batch: configuration.batchSize, reducer: reducer, threadCount: executor.threadCount)
        shardMetricSums = reducer.owned.map { _ in DoubleBuffer(count: 5) }
        shardMetricPointers = shardMetricSums.map(\.pointer)
    }

    /// The generator needs no gradient for its noise; the discriminator's input gradient trains the generator.
    /// Kernels draw their initial values from substreams 0… (generator) and 10… (discriminator); dropout masks
    /// from substreams 8… (generator) and 0… (discriminator).
    static func networks(_ model: GANModel) -> (generator: Network, discriminator: Network) {
        // GANModel checked both descriptions when it was made.
        (try! Network(model.generator, inputNeedsGradient: false, kernelSubstream: 0, dropoutSubstream: 8),
         try! Network(model.discriminator, inputNeedsGradient: true, kernelSubstream: 10, dropoutSubstream: 0))
    }

    /// The memory a trainer with this configuration allocates, from the same plans `init` makes (the per-shard
    /// generator activations and gradient buffers, the per-worker scratch, the batch-wide buffers, the weights and
    /// their optimizer state), so a run that would not fit can be refused before anything large is allocated. The
    /// program itself adds about 40 MiB (measured peak RSS minus this, at batch 32–2048).
    public static func estimatedBytes(configuration: TrainingConfiguration, threadCount: Int) -> Int {
        let (generator, discriminator) = networks(configuration.model)
        // Weights, up to two optimizer slots and the packed copy of the weights the GEMM reads.
        let fixed = 4 * (generator.parameters.count + discriminator.parameters.count)
        let floats = GANStepPlan.estimatedFloats(generator: generator, discriminator: discriminator,
                                                 batch: configuration.batchSize, shards: configuration.shards,
                                                 threadCount: threadCount)
        return (floats + fixed).multipliedReportingOverflow(by: 4).partialValue
    }

    /// Refuses, naming the flags, a configuration whose trainer would need more than three quarters of the machine's
    /// memory (`physicalBytes`); returns the estimate otherwise.
    @discardableResult
    public static func checkMemory(configuration: TrainingConfiguration, threadCount: Int,
                                   physicalBytes: Int = MemoryBudget.physicalBytes) throws -> Int {
        let needed = estimatedBytes(configuration: configuration, threadCount: threadCount)
        guard needed <= physicalBytes / 4 * 3 else {
            throw ConfigurationError("--batch-size \(configuration.batchSize) with --shards \(configuration.shards) needs about "
                + "\(formatBytes(needed)) of memory; this machine has \(formatBytes(physicalBytes))")
        }
        return needed
    }

    /// The name of the first model state (weights, BatchNorm statistics, optimizer state) that holds a NaN or an
    /// infinity, or nil when all are finite.
    public func firstNonFiniteState() -> String? {
        var buffers: [(String, AlignedBuffer)] = [("the generator's weights", generator.parameters),
                                                  ("the generator's BatchNorm statistics", generator.state),
                                                  ("the discriminator's weights", discriminator.parameters),
                                                  ("the discriminator's BatchNorm statistics", discriminator.state)]
        for (owner, optimizer) in [("generator", generatorOptimizer), ("discriminator", discriminatorOptimizer)] {
            for name in optimizer.slotNames {
                buffers.append(("the \(owner) optimizer's \(name)", optimizer.stateBuffer(named: name)!))
            }
        }
        return buffers.first { Elementwise.firstNonFinite($0.1.pointer, count: $0.1.count) != nil }?.0
    }

    /// CRC-32 of the state a checkpoint holds: weights, BatchNorm statistics, optimizer state, and the step.
    public func stateChecksum() -> UInt32 {
        var crc: UInt32 = 0
        var buffers = [generator.parameters, generator.state, discriminator.parameters, discriminator.state]
        if let average { buffers += [average.parameters, average.state] }
        for optimizer in [generatorOptimizer, discriminatorOptimizer] {
            buffers += optimizer.slotNames.compactMap { optimizer.stateBuffer(named: $0) }
        }
        for buffer in buffers {
            crc = Gzip.crc32(UnsafeRawBufferPointer(start: buffer.pointer, count: 4 * buffer.count), initial: crc)
        }
        return withUnsafeBytes(of: UInt64(step).littleEndian) { Gzip.crc32($0, initial: crc) }
    }

    /// In a job of several processes: every rank's `stateChecksum` against rank 0's, so a rank that drifted (a
    /// different binary, data file or CPU kernel) stops the job before rank 0 writes another checkpoint. Collective.
    public func checkRanksAgree() throws {
        let group = reducer.group
        guard group.size > 1 else { return }
        let sums = group.allGather(UInt64(stateChecksum()))
        if let rank = sums.indices.first(where: { sums[$0] != sums[0] }) {
            throw RanksDisagree(step: step, rank: rank, checksum: UInt32(sums[rank]), rankZeroChecksum: UInt32(sums[0]))
        }
    }

    /// What the last step computed, for the golden and parity tests: per-sample logits (D phase: fakes 0..<B then
    /// reals), the fakes of both phases, and the all-reduced gradients (laid out like the models' parameter vectors).
    struct StepOutputs {
        let discriminatorLogits: UnsafePointer<Float>
        let generatorLogits: UnsafePointer<Float>
        let discriminatorPhaseFakes: UnsafePointer<Float>
        let generatorPhaseFakes: [Float]
        let discriminatorGradients: UnsafePointer<Float>
        let generatorGradients: UnsafePointer<Float>
    }

    var lastStep: StepOutputs {
        StepOutputs(discriminatorLogits: plan.discriminatorLogits.pointer, generatorLogits: plan.generatorLogits.pointer,
                    discriminatorPhaseFakes: plan.discriminatorPhaseFakes.pointer,
                    generatorPhaseFakes: plan.generatorPhaseFakes(),
                    discriminatorGradients: plan.discriminatorShardPointers[0],
                    generatorGradients: plan.generatorShardPointers[0])
    }

    /// Multiply-adds of one step (D phase + G phase), counted from the layer shapes. FLOPs = 2 × this.
    public var multiplyAddsPerStep: Int {
        let b = configuration.batchSize
        let g = generator.multiplyAddsPerSample, d = discriminator.multiplyAddsPerSample
        let dInputFree = discriminator.firstLayerMultiplyAdds  // D's first layer needs no dX in the D phase
        let gInputFree = generator.firstLayerMultiplyAdds  // the noise needs no gradient
        let judging = 2 * b * (d + d + (d - dInputFree))  // D fwd, dW, dX on fakes and reals
        let training = b * (d + d + g + (g - gInputFree))  // D fwd, D dX, G dW, G dX
        switch configuration.model.conventions {
        case .keras: return b * g + judging + b * g + training  // G inference for D, G training for G
        case .pytorch: return b * g + judging + training  // one G forward serves both
        }
    }

    /// Trains one step on the real images `realImages` (B × image elements, scaled to [−1, 1]) and returns its
    /// metrics.
    @discardableResult
    public func trainStep(realImages: UnsafePointer<Float>) -> StepMetrics {
        let count = configuration.batchSize * discriminator.inputElements
        nonisolated(unsafe) let source = realImages
        return trainSteps(count: 1) { _, destination in destination.update(from: source, count: count) }[0]
    }

    /// How many steps `TrainingSession` and the benchmark hand to one `trainSteps` call: about 256 images' worth, so
    /// the workers wake once per several small steps while progress still updates several times a second.
    public var stepsPerCall: Int { max(1, min(8, 256 / configuration.batchSize)) }

    /// The minibatch's samples this process computes (all of them in one process).
    public var ownedSamples: Range<Int> { plan.ownedSamples }

    /// Trains `count` consecutive steps in one parallel call, so the worker threads wake once for all of them.
    /// `gatherRealImages(k, destination)` writes step k's real images (B × image elements, in [−1, 1]; only the rows
    /// of `ownedSamples` are read); it runs between steps, serially, on one of the workers. Returns each step's metrics. The result is the same as
    /// `count` calls of `trainStep`, bit for bit.
    public func trainSteps(count: Int, gatherRealImages: @escaping (_ step: Int, _ destination: UnsafeMutablePointer<Float>) -> Void)
        -> [StepMetrics] {
        var work = PhasedWork()
        let metrics = UnsafeMutableBufferPointer<StepMetrics>.allocate(capacity: count)
        defer { metrics.deallocate() }
        for k in 0..<count {
            work.serial("real images, optimizer and inference-norm set-up") { [self] in
                gatherRealImages(k, plan.realBatch.pointer)
                generator.prepareInference(norms: plan.inferenceNorms)
                discriminatorOptimizer.beginStep()
                generatorOptimizer.beginStep()
            }
            plan.append(to: &work, step: UInt64(step + k))
            work.serial("metrics") { [self] in metrics.initializeElement(at: k, to: lastStepMetrics()) }
        }
        executor.run(work)
        step += count
        return Array(metrics)
    }

    /// Losses and accuracies of the last step: per shard, its fakes' then its reals' D losses, its G losses and the
    /// three counts, summed over every rank's shards by the tree every sum over shards follows.
    func lastStepMetrics() -> StepMetrics {
        let batch = configuration.batchSize
        let discriminatorLosses = plan.discriminatorLosses, discriminatorLogits = plan.discriminatorLogits
        let generatorLosses = plan.generatorLosses, generatorLogits = plan.generatorLogits
        for (index, range) in plan.shardRanges[plan.owned].enumerated() {
            var dLoss = 0.0, gLoss = 0.0, real = 0.0, fake = 0.0, fooled = 0.0
            for i in range {
                dLoss += Double(discriminatorLosses[i])
                fake += discriminatorLogits[i] <= 0 ? 1 : 0
            }
            for i in range {
                dLoss += Double(discriminatorLosses[batch + i])
                real += discriminatorLogits[batch + i] > 0 ? 1 : 0
            }
            for i in range {
                gLoss += Double(generatorLosses[i])
                fooled += generatorLogits[i] > 0 ? 1 : 0
            }
            let sums = shardMetricPointers[index]
            (sums[0], sums[1], sums[2], sums[3], sums[4]) = (dLoss, gLoss, real, fake, fooled)
        }
        reducer.sum(shardMetricPointers, count: 5)
        let total = shardMetricPointers[0], b = Double(batch)
        return StepMetrics(discriminatorLoss: total[0] / (2 * b), generatorLoss: total[1] / b,
                           discriminatorAccuracyReal: total[2] / b, discriminatorAccuracyFake: total[3] / b,
                           generatorFoolingRate: total[4] / b)
    }

    /// Generates images in inference mode from the noise of (sampleNoise stream, `seed`, index i) for i in
    /// firstIndex..<firstIndex + count, so a long series can be made in pieces with the same images.
    /// Returns count × image elements in [−1, 1]. Uses the workers' buffers, so not during a step.
    /// Runs `body` with the generator holding its moving average's weights and statistics (when there is one), then
    /// puts the trained ones back: what samples and measurements are drawn with.
    public func withAverageGenerator<R>(_ body: () throws -> R) rethrows -> R {
        guard let average else { return try body() }
        // The two sets are exchanged in place and back, not copied aside: a copy would add a whole generator to the
        // run's peak memory at every epoch's end.
        func exchange() {
            for (trained, averaged) in [(generator.parameters, average.parameters), (generator.state, average.state)] {
                for i in 0..<trained.count { swap(&trained.pointer[i], &averaged.pointer[i]) }
            }
            generator.packWeights()
        }
        exchange()
        defer { exchange() }
        return try body()
    }

    /// Per worker, memory only a step uses (its kernel workspaces; the discriminator's activation arenas, per worker
    /// in the Keras step, per shard in the PyTorch one), for a pass between steps.
    var idleWorkerMemory: WorkerMemory {
        let arenas = plan.discriminatorArenas.isEmpty ? plan.discriminatorShardArenas : plan.discriminatorArenas
        return WorkerMemory(workspaces: plan.workspaces, buffers: arenas.map(\.buffers))
    }

    public func generate(count: Int, noiseSeed: UInt64, firstIndex: Int = 0) -> [Float] {
        generator.prepareInference(norms: plan.inferenceNorms)
        let imageSize = generator.outputElements, codings = generator.inputElements
        let capacity = GANStepPlan.discriminatorChunk
        var images = [Float](repeating: 0, count: count * imageSize)
        let noiseRandom = CounterRandom(seed: noiseSeed)
        images.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let destination = output.baseAddress!
            executor.run(PhasedWork("samples", iterations: (count + capacity - 1) / capacity) { [self] chunk, worker in
                let start = chunk * capacity, n = min(capacity, count - start)
                let noise = plan.samplingNoise[worker].pointer
                for i in 0..<n {
                    noiseRandom.normal(step: 0, stream: .sampleNoise, index: firstIndex + start + i, count: codings,
                                       into: noise + i * codings)
                }
                let generated = plan.generatorInferencePass(plan: plan.generatorSampling, input: noise, n: n,
                                                            worker: worker)
                (destination + start * imageSize).update(from: generated, count: n * imageSize)
            })
        }
        return images
    }
}

