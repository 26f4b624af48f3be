import Foundation
import ParallelTensor

/// What a training run is: everything the numbers depend on. The thread count is deliberately not here — it only
/// decides how fast the same numbers come out.
public struct TrainingConfiguration: Sendable, Equatable {
    public var batchSize: Int = 32
    public var shards: Int = 16
    public var seed: UInt64 = 42
    public var optimizer: OptimizerKind = .rmsprop
    public var learningRate: Float?

    public init(batchSize: Int = 32, shards: Int = 16, seed: UInt64 = 42, optimizer: OptimizerKind = .rmsprop,
                learningRate: Float? = nil) {
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
    }
}

/// A flag or value the user got wrong; the CLI exits with status 2 for it.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
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

/// One DCGAN training step, data-parallel over shards (docs/ARCHITECTURE.md §1–3).
///
/// D phase: B fakes from the generator in inference mode and the B real images, labels 0 then 1, form a 2B batch cut
/// into S shards; each shard runs forward and backward into its own gradient buffer; the buffers are all-reduced in a
/// fixed tree and RMSprop steps the discriminator. G phase: B fresh noise vectors, generator in training mode
/// (synchronised BatchNorm: the forward and backward passes stop at each BatchNorm for a whole-minibatch reduction),
/// through the frozen discriminator with labels 1, all-reduce, step the generator.
public final class GANTrainer: @unchecked Sendable {
    public let configuration: TrainingConfiguration
    public let generator: Generator
    public let discriminator: Discriminator
    public let generatorOptimizer: Optimizer
    public let discriminatorOptimizer: Optimizer
    public let random: CounterRandom
    public let executor: ShardedExecutor
    /// Steps completed so far; the counter of every random draw of the next step.
    public var step: Int = 0

    /// Per shard: the generator's activations live from its forward pass to its backward pass.
    let generatorActivations: [GeneratorActivations]
    /// Per worker thread: the discriminator runs a few samples at a time, forward then backward, in one shard's turn.
    let discriminatorActivations: [DiscriminatorActivations]
    /// Per worker thread: GEMM packing and im2col scratch.
    let workspaces: [KernelWorkspace]
    let generatorGradients: [AlignedBuffer]
    let discriminatorGradients: [AlignedBuffer]
    /// Made once, as everything a step reads: pointers to the shards' gradient buffers, each shard's sample count,
    /// and the weight-packing plans (they hold pointers into the parameter vectors, which never move).
    let generatorShardPointers, discriminatorShardPointers: [UnsafeMutablePointer<Float>]
    /// Shard s owns samples [s·B/S, (s+1)·B/S).
    let shardRanges: [Range<Int>]
    /// Both phases' noise for the whole minibatch (B × codings each, in sample order), drawn at the start of a step so
    /// the dense layer can run by column slices over every shard; and where each shard's dense outputs go.
    let discriminatorNoise, generatorNoise: AlignedBuffer
    let inferenceDenseOutputs, trainingDenseOutputs: [UnsafeMutablePointer<Float>]
    let generatorPacking, discriminatorPacking: PackingPlan
    let inferenceNorms: GeneratorNorms
    let trainingNorms: GeneratorNorms
    let realBatch: AlignedBuffer
    /// Per-sample results of the last step, indexed by sample (fakes 0..<B, reals B..<2B for the D phase).
    let discriminatorLogits, discriminatorLosses, generatorLogits, generatorLosses: AlignedBuffer
    /// The fakes of the last step's two phases (B × H·W each), in sample order.
    let discriminatorPhaseFakes, generatorPhaseFakes: AlignedBuffer
    /// Per shard: the step's D loss, G loss and the real, fake and fooled counts, summed over the shard's samples.
    let shardMetricSums: [DoubleBuffer]
    let shardMetricPointers: [UnsafeMutablePointer<Double>]

    public init(configuration: TrainingConfiguration, executor: ShardedExecutor) {
        self.configuration = configuration
        self.executor = executor
        random = CounterRandom(seed: configuration.seed)
        let generator = Generator(), discriminator = Discriminator()
        self.generator = generator
        self.discriminator = discriminator
        generator.initialize(random: random)
        discriminator.initialize(random: random)
        let rate = configuration.effectiveLearningRate
        generatorOptimizer = Optimizer(kind: configuration.optimizer, learningRate: rate,
                                       parameterCount: generator.parameters.count)
        discriminatorOptimizer = Optimizer(kind: configuration.optimizer, learningRate: rate,
                                           parameterCount: discriminator.parameters.count)
        let shards = configuration.shards, batch = configuration.batchSize
        let generatorCapacity = max((batch + shards - 1) / shards, Discriminator.chunkSize)
        generatorActivations = (0..<shards).map { _ in generator.makeActivations(capacity: generatorCapacity) }
        // Scratch that does not outlive one shard's turn belongs to the worker running it, not to the shard.
        discriminatorActivations = (0..<executor.threadCount).map { _ in
            discriminator.makeActivations(capacity: Discriminator.chunkSize)
        }
        workspaces = (0..<executor.threadCount).map { _ in KernelWorkspace() }
        // Shard 0's buffer receives the all-reduced total and the batch-wide dense gradient, so it is full size; the
        // others hold only the prefix that shards compute.
        generatorGradients = (0..<shards).map {
            AlignedBuffer(count: $0 == 0 ? generator.parameters.count : generator.shardedGradientCount)
        }
        discriminatorGradients = (0..<shards).map { _ in AlignedBuffer(count: discriminator.parameters.count) }
        generatorShardPointers = generatorGradients.map(\.pointer)
        discriminatorShardPointers = discriminatorGradients.map(\.pointer)
        shardRanges = (0..<shards).map { ($0 * batch / shards)..<(($0 + 1) * batch / shards) }
        discriminatorNoise = AlignedBuffer(count: batch * generator.codings)
        generatorNoise = AlignedBuffer(count: batch * generator.codings)
        // The D phase's fakes start from dense outputs in gradientB, which the G phase only uses after the D phase.
        inferenceDenseOutputs = generatorActivations.map(\.gradientB.pointer)
        trainingDenseOutputs = generatorActivations.map(\.dense.pointer)
        generatorPacking = generator.packingPlan()
        discriminatorPacking = discriminator.packingPlan()
        inferenceNorms = GeneratorNorms(generator: generator, shards: shards)
        self.trainingNorms = GeneratorNorms(generator: generator, shards: shards)
        realBatch = AlignedBuffer(count: batch * discriminator.imageElements)
        discriminatorLogits = AlignedBuffer(count: 2 * batch)
        discriminatorLosses = AlignedBuffer(count: 2 * batch)
        generatorLogits = AlignedBuffer(count: batch)
        generatorLosses = AlignedBuffer(count: batch)
        discriminatorPhaseFakes = AlignedBuffer(count: batch * discriminator.imageElements)
        generatorPhaseFakes = AlignedBuffer(count: batch * discriminator.imageElements)
        shardMetricSums = (0..<shards).map { _ in DoubleBuffer(count: 5) }
        shardMetricPointers = shardMetricSums.map(\.pointer)
    }

    /// The memory a trainer with this configuration allocates, from the same sizes `init` uses (the per-shard
    /// generator activations and gradient buffers, the per-worker scratch, the batch-wide buffers, the weights and
    /// their optimizer state), so a run that would not fit can be refused before anything large is allocated. The
    /// program itself adds about 40 MiB (measured peak RSS minus this, at batch 32–2048).
    public static func estimatedBytes(configuration: TrainingConfiguration, threadCount: Int) -> Int {
        let generator = Generator(), discriminator = Discriminator()
        let shards = configuration.shards, batch = configuration.batchSize
        let capacity = max((batch + shards - 1) / shards, Discriminator.chunkSize)
        let activationsPerSample = generator.codings + 2 * generator.dense.outputSize
            + 2 * generator.upsample1.outputElements + 2 * generator.imageElements
        let perShard = capacity * activationsPerSample + discriminator.parameters.count + generator.shardedGradientCount
        let perSample = 2 * generator.codings + 3 * discriminator.imageElements + 6
        // Weights, up to two optimizer slots and the packed copy of the weights the GEMM reads.
        let fixed = 4 * (generator.parameters.count + discriminator.parameters.count)
        // A chunk's discriminator activations (its images; output, mask, dropped output and gradient of both
        // convolutions; see DiscriminatorActivations), and an allowance for the GEMM packing and im2col scratch.
        let chunkActivations = Discriminator.chunkSize * (discriminator.imageElements
            + 4 * (discriminator.convolution1.outputElements + discriminator.convolution2.outputElements))
        let perWorker = chunkActivations + Self.workspaceAllowance
        let floats = shards.multipliedReportingOverflow(by: perShard).partialValue + batch * perSample + fixed
            + threadCount * perWorker
        return floats.multipliedReportingOverflow(by: 4).partialValue
    }

    /// Floats set aside per worker for `KernelWorkspace` (GEMM packing, im2col columns), which grows as kernels ask.
    static let workspaceAllowance = 1 << 18

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
                                                  ("the discriminator's weights", discriminator.parameters)]
        for (owner, optimizer) in [("generator", generatorOptimizer), ("discriminator", discriminatorOptimizer)] {
            for name in optimizer.slotNames {
                buffers.append(("the \(owner) optimizer's \(name)", optimizer.stateBuffer(named: name)!))
            }
        }
        return buffers.first { Elementwise.firstNonFinite($0.1.pointer, count: $0.1.count) != nil }?.0
    }

    /// What the last step computed, for inspection: per-sample logits (D phase: fakes 0..<B then reals), the fakes of
    /// both phases, and the all-reduced gradients (laid out like the models' parameter vectors).
    public struct StepOutputs {
        public let discriminatorLogits: UnsafePointer<Float>
        public let generatorLogits: UnsafePointer<Float>
        public let discriminatorPhaseFakes: UnsafePointer<Float>
        public let generatorPhaseFakes: UnsafePointer<Float>
        public let discriminatorGradients: UnsafePointer<Float>
        public let generatorGradients: UnsafePointer<Float>
    }

    public var lastStep: StepOutputs {
        StepOutputs(discriminatorLogits: discriminatorLogits.pointer, generatorLogits: generatorLogits.pointer,
                    discriminatorPhaseFakes: discriminatorPhaseFakes.pointer,
                    generatorPhaseFakes: generatorPhaseFakes.pointer,
                    discriminatorGradients: discriminatorGradients[0].pointer,
                    generatorGradients: generatorGradients[0].pointer)
    }

    /// One chunk through the discriminator: forward on `input` with the dropout masks of `phase`, the loss against
    /// `label` as part of a mean over `totalBatch`, the per-sample logits and losses stored at the chunk's indices
    /// `samples`, then backward into `gradients` (nil while the discriminator is frozen) and, when given,
    /// `inputGradient`.
    func discriminatorPass(input: UnsafePointer<Float>, samples: Range<Int>, label: Float, phase: GANPhase,
                           totalBatch: Int, logits: AlignedBuffer, losses: AlignedBuffer, worker: Int,
                           gradients: UnsafeMutablePointer<Float>?, accumulate: Bool,
                           inputGradient: UnsafeMutablePointer<Float>?, step: UInt64) {
        let d = discriminatorActivations[worker], n = samples.count
        d.labels.pointer.update(repeating: label, count: n)
        discriminator.forward(batch: n, input: input, random: random, step: step, phase: phase,
                              firstSample: samples.lowerBound, activations: d, workspace: workspaces[worker])
        SigmoidCrossEntropyLoss().evaluate(count: n, logits: d.logits.pointer, labels: d.labels.pointer,
                                           totalBatch: totalBatch, losses: d.losses.pointer,
                                           logitGradients: d.logitGradients.pointer)
        (logits.pointer + samples.lowerBound).update(from: d.logits.pointer, count: n)
        (losses.pointer + samples.lowerBound).update(from: d.losses.pointer, count: n)
        discriminator.backward(batch: n, activations: d, gradients: gradients, inputGradient: inputGradient,
                               workspace: workspaces[worker], accumulateGradients: accumulate)
    }

    /// A shard's samples cut into consecutive chunks of at most Discriminator.chunkSize.
    @inline(__always)
    func chunks(of range: Range<Int>) -> SampleChunks {
        SampleChunks(range: range, size: Discriminator.chunkSize)
    }

    /// Multiply-adds of one step (D phase + G phase), counted from the layer shapes. FLOPs = 2 × this.
    public var multiplyAddsPerStep: Int {
        let b = configuration.batchSize
        let g = generator.multiplyAddsPerSample, d = discriminator.multiplyAddsPerSample
        let dInputFree = discriminator.convolution1.geometry.multiplyAddsPerImage  // D's first layer needs no dX
        let gInputFree = generator.dense.multiplyAddsPerSample  // the noise needs no gradient
        let discriminatorStep = b * g + 2 * b * (d + d + (d - dInputFree))  // G fwd; D fwd, dW, dX
        let generatorStep = b * (g + d + (d - 0) + g + (g - gInputFree))  // G fwd, D fwd, D dX, G dW, G dX
        return discriminatorStep + generatorStep
    }

    /// Trains one step on the real images `realImages` (B × H·W, scaled to [−1, 1]) and returns its metrics.
    @discardableResult
    public func trainStep(realImages: UnsafePointer<Float>) -> StepMetrics {
        let count = configuration.batchSize * discriminator.imageElements
        nonisolated(unsafe) let source = realImages
        return trainSteps(count: 1) { _, destination in destination.update(from: source, count: count) }[0]
    }

    /// How many steps `TrainingSession` and the benchmark hand to one `trainSteps` call: about 256 images' worth, so
    /// the workers wake once per several small steps while progress still updates several times a second.
    public var stepsPerCall: Int { max(1, min(8, 256 / configuration.batchSize)) }

    /// Trains `count` consecutive steps in one parallel call, so the worker threads wake once for all of them.
    /// `gatherRealImages(k, destination)` writes step k's real images (B × H·W, in [−1, 1]); it runs between steps,
    /// serially, on one of the workers. Returns each step's metrics. The result is the same as `count` calls of
    /// `trainStep`, bit for bit.
    public func trainSteps(count: Int, gatherRealImages: @escaping (_ step: Int, _ destination: UnsafeMutablePointer<Float>) -> Void)
        -> [StepMetrics] {
        var work = PhasedWork()
        let metrics = UnsafeMutableBufferPointer<StepMetrics>.allocate(capacity: count)
        defer { metrics.deallocate() }
        for k in 0..<count {
            work.serial("real images, optimizer and inference-norm set-up") { [self] in
                gatherRealImages(k, realBatch.pointer)
                generator.prepareInference(norms: inferenceNorms)
                discriminatorOptimizer.beginStep()
                generatorOptimizer.beginStep()
            }
            appendStep(to: &work, stepCounter: UInt64(step + k))
            work.serial("metrics") { [self] in metrics.initializeElement(at: k, to: lastStepMetrics()) }
        }
        executor.run(work)
        step += count
        return Array(metrics)
    }

    /// Appends the phases of one training step to `work`. The real images must be in `realBatch` and the optimizers'
    /// `beginStep` and the generator's `prepareInference` done before the first phase runs.
    func appendStep(to work: inout PhasedWork, stepCounter: UInt64) {
        let batch = configuration.batchSize, shards = configuration.shards
        let imageSize = discriminator.imageElements

        // Work that does not depend on a barrier shares a phase with work that does: the discriminator's update and
        // packing run beside the G phase's first stages, which do not read the discriminator.

        // Both phases' noise, then the generator's dense layer for both, by column slices over the whole minibatch:
        // the G weights do not change before the G optimizer at the end of the step.
        let codings = generator.codings
        work.parallel("noise for both phases", iterations: shards) { [self] shard, _ in
            for i in shardRanges[shard] {
                random.normal(step: stepCounter, stream: .discriminatorNoise, index: i, count: codings,
                              into: discriminatorNoise.pointer + i * codings)
                random.normal(step: stepCounter, stream: .generatorNoise, index: i, count: codings,
                              into: generatorNoise.pointer + i * codings)
            }
        }
        work.parallel("G dense forward, both phases, by column slices",
                      iterations: generator.denseForwardSliceCount) { [self] slice, worker in
            generator.denseForwardSlice(slice, noise: discriminatorNoise.pointer, shardRanges: shardRanges,
                                        destinations: inferenceDenseOutputs, workspace: workspaces[worker])
            generator.denseForwardSlice(slice, noise: generatorNoise.pointer, shardRanges: shardRanges,
                                        destinations: trainingDenseOutputs, workspace: workspaces[worker])
        }

        // D phase. Shard s owns fakes F and the reals B + F for its range F of 0..<B, so every shard makes the same
        // number of fakes (generator inference is a third of a fake's cost); its samples go through the
        // discriminator in chunks of Discriminator.chunkSize, fakes first, gradients accumulating.
        work.parallel("D phase: G inference, D forward+backward on fakes and reals",
                      iterations: shards) { [self] shard, worker in
            let g = generatorActivations[shard], d = discriminatorActivations[worker], workspace = workspaces[worker]
            let own = shardRanges[shard]
            for chunk in chunks(of: own) {
                generator.inferenceForwardFromDense(first: chunk.lowerBound - own.lowerBound, count: chunk.count,
                                                    activations: g, norms: inferenceNorms, workspace: workspace)
                d.images.pointer.update(from: g.image.pointer, count: chunk.count * imageSize)
                (discriminatorPhaseFakes.pointer + chunk.lowerBound * imageSize)
                    .update(from: g.image.pointer, count: chunk.count * imageSize)
                discriminatorPass(input: d.images.pointer, samples: chunk, label: 0, phase: .discriminatorStep, totalBatch: 2 * batch,
                                  logits: discriminatorLogits, losses: discriminatorLosses, worker: worker,
                                  gradients: discriminatorGradients[shard].pointer,
                                  accumulate: chunk.lowerBound != own.lowerBound, inputGradient: nil,
                                  step: stepCounter)
            }
            for chunk in chunks(of: own) {
                d.images.pointer.update(from: realBatch.pointer + chunk.lowerBound * imageSize,
                                        count: chunk.count * imageSize)
                discriminatorPass(input: d.images.pointer, samples: (batch + chunk.lowerBound)..<(batch + chunk.upperBound),
                                  label: 1, phase: .discriminatorStep, totalBatch: 2 * batch, logits: discriminatorLogits,
                                  losses: discriminatorLosses, worker: worker,
                                  gradients: discriminatorGradients[shard].pointer, accumulate: true,
                                  inputGradient: nil, step: stepCounter)
            }
        }

        // Each slice of D's gradients summed over shards then stepped by the optimizer; each shard's statistics for
        // G's first BatchNorm.
        let discriminatorShards = discriminatorShardPointers
        let discriminatorCount = discriminator.parameters.count
        let discriminatorSlices = (discriminatorCount + ShardReduction.sliceLength - 1) / ShardReduction.sliceLength
        work.parallel("D all-reduce+optimizer | G BatchNorm 0 statistics",
                      iterations: discriminatorSlices + shards) { [self] index, _ in
            if index < discriminatorSlices {
                let start = index * ShardReduction.sliceLength
                let range = start..<min(start + ShardReduction.sliceLength, discriminatorCount)
                ShardReduction.sumSlice(discriminatorShards, range: range)
                discriminatorOptimizer.apply(range, parameters: discriminator.parameters.pointer,
                                             gradients: discriminatorShards[0])
                return
            }
            let shard = index - discriminatorSlices
            generator.trainingStatistics0(shard: shard, batch: shardRanges[shard].count,
                                          activations: generatorActivations[shard], norms: trainingNorms)
        }
        let rows0 = generator.rows0, rows1 = generator.rows1
        work.serial("G BatchNorm 0 statistics") { [self] in
            generator.normalization0.finishStatistics(totalRows: batch * rows0, parameters: generator.parameters.pointer,
                                                      state: generator.state.pointer, batch: trainingNorms.first)
        }

        // G's middle stage; D's weights packed.
        // Items are claimed in index order, so the long ones (a shard's transposed convolution) come first and the
        // short packing panels fill in behind them.
        work.parallel("G middle forward | D weight packing",
                      iterations: shards + discriminatorPacking.panelCount) { [self] index, worker in
            guard index < shards else {
                discriminatorPacking.packPanel(index - shards)
                return
            }
            generator.trainingForwardMiddle(shard: index, batch: shardRanges[index].count,
                                            activations: generatorActivations[index], norms: trainingNorms,
                                            workspace: workspaces[worker])
        }
        work.serial("G BatchNorm 1 statistics") { [self] in
            generator.normalization1.finishStatistics(totalRows: batch * rows1, parameters: generator.parameters.pointer,
                                                      state: generator.state.pointer, batch: trainingNorms.second)
        }

        // G's output stage, through the frozen discriminator and back to the second BatchNorm.
        work.parallel("G output forward, frozen D forward+backward, G output backward",
                      iterations: shards) { [self] shard, worker in
            let range = shardRanges[shard]
            let g = generatorActivations[shard], workspace = workspaces[worker]
            generator.trainingForwardOutput(batch: range.count, activations: g, norms: trainingNorms,
                                            workspace: workspace)
            (generatorPhaseFakes.pointer + range.lowerBound * imageSize)
                .update(from: g.image.pointer, count: range.count * imageSize)
            for chunk in chunks(of: range) {
                let offset = (chunk.lowerBound - range.lowerBound) * imageSize
                discriminatorPass(input: g.image.pointer + offset, samples: chunk, label: 1, phase: .generatorStep, totalBatch: batch,
                                  logits: generatorLogits, losses: generatorLosses, worker: worker, gradients: nil,
                                  accumulate: false, inputGradient: g.imageGradient.pointer + offset,
                                  step: stepCounter)
            }
            generator.backwardOutput(shard: shard, batch: range.count, activations: g, norms: trainingNorms,
                                     gradients: generatorGradients[shard].pointer, workspace: workspace)
        }
        work.serial("G BatchNorm 1 gradient sums") { [self] in
            generator.normalization1.finishGradientSums(totalRows: batch * rows1, batch: trainingNorms.second)
        }
        work.parallel("G middle backward", iterations: shards) { [self] shard, worker in
            generator.backwardMiddle(shard: shard, batch: shardRanges[shard].count,
                                     activations: generatorActivations[shard], norms: trainingNorms,
                                     gradients: generatorGradients[shard].pointer, workspace: workspaces[worker])
        }
        work.serial("G BatchNorm 0 gradient sums") { [self] in
            generator.normalization0.finishGradientSums(totalRows: batch * rows0, batch: trainingNorms.first)
        }
        work.parallel("G BatchNorm 0 backward", iterations: shards) { [self] shard, _ in
            generator.backwardNormalization0(batch: shardRanges[shard].count,
                                             activations: generatorActivations[shard], norms: trainingNorms)
        }

        // The shard all-reduce and the batch-wide dense gradient in one phase, then the optimizer step, then the
        // generator's weights packed for the next step.
        let generatorShards = generatorShardPointers
        let reduceSlices = (generator.shardedGradientCount + ShardReduction.sliceLength - 1) / ShardReduction.sliceLength
        work.parallel("G all-reduce | G dense weight gradient",
                      iterations: reduceSlices + generator.denseGradientSliceCount) { [self] index, worker in
            if index < reduceSlices {
                let start = index * ShardReduction.sliceLength
                ShardReduction.sumSlice(generatorShards,
                                   range: start..<min(start + ShardReduction.sliceLength, generator.shardedGradientCount))
            } else {
                generator.denseGradientSlice(index - reduceSlices, noise: generatorNoise.pointer,
                                             shardRanges: shardRanges, activations: generatorActivations,
                                             workspace: workspaces[worker], gradients: generatorShards[0])
            }
        }
        work.serial("G BatchNorm gradients") { [self] in
            generator.writeNormalizationGradients(into: generatorShards[0], norms: trainingNorms)
        }
        let generatorCount = generator.parameters.count
        work.parallel("G optimizer",
                      iterations: (generatorCount + ShardReduction.sliceLength - 1) / ShardReduction.sliceLength) { [self] slice, _ in
            let start = slice * ShardReduction.sliceLength
            generatorOptimizer.apply(start..<min(start + ShardReduction.sliceLength, generatorCount),
                                     parameters: generator.parameters.pointer, gradients: generatorShards[0])
        }
        work.parallel("G weight packing",
                      iterations: generatorPacking.panelCount) { [self] panel, _ in generatorPacking.packPanel(panel) }
    }

    /// Losses and accuracies of the last step: per shard, its fakes' then its reals' D losses, its G losses and the
    /// three counts, summed over shards by `ShardReduction`, the tree every sum over shards follows.
    func lastStepMetrics() -> StepMetrics {
        let batch = configuration.batchSize
        for (shard, range) in shardRanges.enumerated() {
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
            let sums = shardMetricPointers[shard]
            (sums[0], sums[1], sums[2], sums[3], sums[4]) = (dLoss, gLoss, real, fake, fooled)
        }
        ShardReduction.sum(shardMetricPointers, count: 5)
        let total = shardMetricPointers[0], b = Double(batch)
        return StepMetrics(discriminatorLoss: total[0] / (2 * b), generatorLoss: total[1] / b,
                           discriminatorAccuracyReal: total[2] / b, discriminatorAccuracyFake: total[3] / b,
                           generatorFoolingRate: total[4] / b)
    }

    /// Generates images in inference mode from the noise of (sampleNoise stream, `seed`, index i) for i in
    /// firstIndex..<firstIndex + count, so a long series can be made in pieces with the same images.
    /// Returns count × H·W floats in [−1, 1]. Uses the shards' buffers, so not during a step.
    public func generate(count: Int, noiseSeed: UInt64, firstIndex: Int = 0) -> [Float] {
        generator.prepareInference(norms: inferenceNorms)
        let imageSize = generator.imageElements
        let capacity = generatorActivations[0].noise.count / generator.codings
        var images = [Float](repeating: 0, count: count * imageSize)
        let noiseRandom = CounterRandom(seed: noiseSeed)
        let chunks = (count + capacity - 1) / capacity
        images.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let destination = output.baseAddress!
            // Chunk c runs in shard c mod S's buffers; chunks sharing a shard are serialised by running in rounds,
            // one phase each, all in one parallel call.
            var work = PhasedWork()
            for first in stride(from: 0, to: chunks, by: configuration.shards) {
                work.parallel(iterations: min(configuration.shards, chunks - first)) { [self] slot, worker in
                    let chunk = first + slot
                    let start = chunk * capacity, n = min(capacity, count - start)
                    let g = generatorActivations[slot]
                    for i in 0..<n {
                        noiseRandom.normal(step: 0, stream: .sampleNoise, index: firstIndex + start + i, count: generator.codings,
                                           into: g.noise.pointer + i * generator.codings)
                    }
                    generator.inferenceForward(batch: n, activations: g, norms: inferenceNorms,
                                               workspace: workspaces[worker])
                    (destination + start * imageSize).update(from: g.image.pointer, count: n * imageSize)
                }
            }
            executor.run(work)
        }
        return images
    }
}

/// Consecutive subranges of `range`, each at most `size` long.
struct SampleChunks: Sequence, IteratorProtocol {
    let range: Range<Int>
    let size: Int
    var start: Int

    init(range: Range<Int>, size: Int) {
        self.range = range
        self.size = size
        start = range.lowerBound
    }

    mutating func next() -> Range<Int>? {
        guard start < range.upperBound else { return nil }
        defer { start += size }
        return start..<Swift.min(start + size, range.upperBound)
    }
}
