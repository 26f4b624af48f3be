import ParallelTensor

/// The labels of the GAN step: what the discriminator is taught to say of fakes and reals, and what the generator
/// wants it to say of fakes.
struct GANLabels {
    var fake: Float = 0
    var real: Float = 1
    var generatorTarget: Float = 1
}

/// The memory and the phases of one GAN training step, derived from the two networks (docs/ARCHITECTURE.md §3).
///
/// The step is the seed's: a D phase (B fakes from the generator in inference mode, then the B reals, through D
/// forward and backward, one optimizer step on D) and a G phase (B fresh fakes from the generator in training mode,
/// through the frozen D into G, one optimizer step on G). The planner turns that into `PhasedWork` by these rules:
/// - The generator in training stops at each BatchNorm: a phase ends where its statistics (forward) or its gradient
///   sums (backward) need every shard, and a serial step reduces them.
/// - A Dense first layer on the noise runs for the whole minibatch by column slices (both phases' fakes at once),
///   and its gradient the same way, summed over shards in the tree in registers (`ShardTreeGradient`): a shard of
///   two samples would read all its weights for a tiny multiply.
/// - Passes without a reduction inside (G inference, D forward + loss + backward) run `discriminatorChunk` samples
///   at a time in a worker's memory, so their activations do not grow with the batch.
/// - Work that does not wait for a barrier fills a phase that does: D's all-reduce and optimizer go beside the
///   first G-phase stage, D's weight packing beside the second (both before the frozen D is read); long items are
///   listed first, since workers claim items in index order.
/// - Every sum over shards goes through `ShardReduction`.
final class GANStepPlan: @unchecked Sendable {
    /// Samples per pass of a chunked network: small enough that a worker's activations stay in cache.
    static let discriminatorChunk = 2
    /// Output columns per item of the batch-wide first layer (forward) and of its gradient.
    static let firstLayerForwardColumns = 128
    static let firstLayerGradientColumns = 256

    let generator: Network
    let discriminator: Network
    let generatorOptimizer: Optimizer
    let discriminatorOptimizer: Optimizer
    let random: CounterRandom
    let labels = GANLabels()
    let batch: Int
    /// Shard s owns samples [s·B/S, (s+1)·B/S).
    let shardRanges: [Range<Int>]
    /// Every sum over shards; says which shards this process owns (all of them unless it is one rank of several).
    let reducer: ShardReducer
    /// This process's shards, and their samples: every per-shard array below holds these shards only, shard
    /// `owned.lowerBound + i` at index i.
    let owned: Range<Int>
    let ownedSamples: Range<Int>

    let generatorTraining, generatorInference, generatorSampling, discriminatorTraining: ActivationPlan
    /// Per owned shard: the generator's training activations, alive from its forward pass to its backward pass. In the D
    /// phase, the buffer `firstLayerParking` names holds the shard's inference fakes' first-layer outputs (the G phase
    /// writes it later).
    let generatorArenas: [ActivationArena]
    let firstLayerParking: TensorHome
    /// Per worker, `discriminatorChunk` samples: the generator in inference (the D phase's fakes, `generate`) and the
    /// discriminator. Per worker, not per shard, so they do not grow with the batch (sized by the shard, the inference
    /// arenas cost 18 MB at batch 256 on 16 threads); separate, because sharing one arena between the two measured 7%
    /// slower at 1 thread, batch 32.
    let inferenceArenas, discriminatorArenas: [ActivationArena]
    let workerLabels: [AlignedBuffer]
    let samplingNoise: [AlignedBuffer]
    /// Per worker: GEMM packing and im2col scratch.
    let workspaces: [KernelWorkspace]
    let trainingNorms, inferenceNorms: [BatchNormBatch?]
    /// Per owned shard gradient buffers. The root of each of the process's aligned blocks (shard 0 alone in one
    /// process) has two full-size buffers: they receive the block's sums, the batch-wide first layer's gradient, and
    /// in the first one the all-reduced totals, which the tests read after the step. Every other shard has one buffer
    /// that holds D's gradient from the D phase to D's all-reduce and G's (the prefix shards compute,
    /// `shardedGradientCount`) from G's last stages to G's all-reduce: the two are never live at once, and sharing
    /// saves (S − 1) × 0.85 MB for the seed.
    let gradientBuffers: [AlignedBuffer]
    let generatorShardPointers, discriminatorShardPointers: [UnsafeMutablePointer<Float>]
    /// Positions of a shard's buffer that its pass does not write (BatchNorm slots, padding between tensors), zeroed
    /// before each pass so the all-reduce sums zeros there, as it would in buffers of their own.
    let generatorUnwritten, discriminatorUnwritten: [Range<Int>]
    let generatorPacking, discriminatorPacking: PackingPlan
    /// Both phases' noise for the whole minibatch (B × codings each, in sample order).
    let discriminatorNoise, generatorNoise: AlignedBuffer
    let realBatch: AlignedBuffer
    /// Per-sample results of the last step, indexed by sample (fakes 0..<B, reals B..<2B for the D phase).
    let discriminatorLogits, discriminatorLosses, generatorLogits, generatorLosses: AlignedBuffer
    /// The fakes of the D phase (B × image elements), in sample order: D's input there. The G phase's stay in the
    /// generator's shard arenas (`generatorPhaseFakes()`).
    let discriminatorPhaseFakes: AlignedBuffer
    /// Per owned shard, with a batch-wide first layer: where its G-phase outputs go and where backward leaves their
    /// gradient.
    private(set) var firstLayerOutputs: [UnsafeMutablePointer<Float>] = []
    /// Per owned shard: its G-phase noise and, after backward, ∂loss/∂(first layer's output), for that layer's gradient.
    private(set) var firstLayerShards: [ShardTreeGradient.Shard] = []
    /// The Keras step's discriminator has no BatchNorm (`GANModel`): no per-layer state.
    let discriminatorNorms: [BatchNormBatch?]
    /// The PyTorch step (`GANStepPlan+PyTorch.swift`) only, per owned shard: the discriminator's training activations
    /// for twice the shard (the D phase judges its reals and fakes in one pass; the G phase its fakes), alive from a
    /// pass's forward to its backward.
    let discriminatorShardArenas: [ActivationArena]
    /// The PyTorch step only: the discriminator's BatchNorm state for the reals (reused by the G phase's pass) and for
    /// the fakes, whose gamma/beta gradients are summed into D's gradient.
    let discriminatorRealNorms, discriminatorFakeNorms: [BatchNormBatch?]
    /// The PyTorch step only: rows of zeros and of ones, a shard long, as the loss's labels.
    let fakeLabelRow, realLabelRow: AlignedBuffer
    /// The PyTorch step only, per owned shard: its reals then its fakes, the input of one discriminator pass over both.
    let discriminatorInputs: [AlignedBuffer]

    /// The generator's moving average, moved after each of its updates; nil without `--ema`.
    let average: AverageGenerator?

    init(generator: Network, discriminator: Network, generatorOptimizer: Optimizer, discriminatorOptimizer: Optimizer,
         average: AverageGenerator? = nil, random: CounterRandom, batch: Int, reducer: ShardReducer, threadCount: Int) {
        self.average = average
        self.generator = generator
        self.discriminator = discriminator
        self.generatorOptimizer = generatorOptimizer
        self.discriminatorOptimizer = discriminatorOptimizer
        self.random = random
        self.batch = batch
        let shards = reducer.shards
        shardRanges = (0..<shards).map { ($0 * batch / shards)..<(($0 + 1) * batch / shards) }
        self.reducer = reducer
        owned = reducer.owned
        ownedSamples = shardRanges[owned.lowerBound].lowerBound..<shardRanges[owned.upperBound - 1].upperBound
        let plans = Plans(generator: generator, discriminator: discriminator)
        (generatorTraining, generatorInference, generatorSampling, discriminatorTraining) =
            (plans.generatorTraining, plans.generatorInference, plans.generatorSampling, plans.discriminatorTraining)
        let capacity = Self.shardCapacity(batch: batch, shards: shards)
        let minimumScratch0 = plans.minimumScratch0
        firstLayerParking = plans.firstLayerParking
        generatorArenas = owned.map { [generatorTraining] _ in
            ActivationArena(plans: [generatorTraining], capacity: capacity, minimumScratch0: minimumScratch0)
        }
        inferenceArenas = (0..<threadCount).map { [generatorInference, generatorSampling] _ in
            ActivationArena(plans: [generatorInference, generatorSampling], capacity: Self.discriminatorChunk,
                            minimumScratch0: 0)
        }
        let pytorchStep = generator.model.conventions == .pytorch
        discriminatorArenas = pytorchStep ? [] : (0..<threadCount).map { [discriminatorTraining] _ in
            ActivationArena(plans: [discriminatorTraining], capacity: Self.discriminatorChunk, minimumScratch0: 0)
        }
        discriminatorShardArenas = !pytorchStep ? [] : owned.map { [discriminatorTraining] _ in
            ActivationArena(plans: [discriminatorTraining], capacity: 2 * capacity, minimumScratch0: 0)
        }
        discriminatorInputs = !pytorchStep ? [] : owned.map { _ in
            AlignedBuffer(count: 2 * capacity * discriminator.inputElements)
        }
        discriminatorRealNorms = discriminator.makeNorms(reducer: reducer)
        discriminatorFakeNorms = discriminator.makeNorms(reducer: reducer)
        fakeLabelRow = AlignedBuffer(count: pytorchStep ? capacity : 0)
        realLabelRow = AlignedBuffer(count: pytorchStep ? capacity : 0)
        fakeLabelRow.fill(with: labels.fake)
        realLabelRow.fill(with: labels.real)
        workerLabels = (0..<threadCount).map { _ in AlignedBuffer(count: Self.discriminatorChunk) }
        samplingNoise = (0..<threadCount).map { _ in AlignedBuffer(count: Self.discriminatorChunk * generator.inputElements) }
        workspaces = (0..<threadCount).map { _ in KernelWorkspace() }
        trainingNorms = generator.makeNorms(reducer: reducer)
        inferenceNorms = generator.makeNorms(reducer: ShardReducer(shards: 1))
        let shared = max(generator.shardedGradientCount, discriminator.parameters.count)
        var buffers: [AlignedBuffer] = [], generatorPointers: [UnsafeMutablePointer<Float>] = []
        var discriminatorPointers: [UnsafeMutablePointer<Float>] = []
        for shard in owned {
            if reducer.isBlockRoot(shard) {
                let pair = [AlignedBuffer(count: generator.parameters.count),
                            AlignedBuffer(count: discriminator.parameters.count)]
                buffers += pair
                generatorPointers.append(pair[0].pointer)
                discriminatorPointers.append(pair[1].pointer)
            } else {
                buffers.append(AlignedBuffer(count: shared))
                generatorPointers.append(buffers.last!.pointer)
                discriminatorPointers.append(buffers.last!.pointer)
            }
        }
        gradientBuffers = buffers
        generatorShardPointers = generatorPointers
        discriminatorShardPointers = discriminatorPointers
        generatorUnwritten = generator.unwrittenGradientRanges(count: generator.shardedGradientCount)
        discriminatorUnwritten = discriminator.unwrittenGradientRanges(count: discriminator.parameters.count)
        generatorPacking = generator.packingPlan()
        discriminatorPacking = discriminator.packingPlan()
        discriminatorNoise = AlignedBuffer(count: batch * generator.inputElements)
        generatorNoise = AlignedBuffer(count: batch * generator.inputElements)
        let image = discriminator.inputElements
        realBatch = AlignedBuffer(count: batch * image)
        discriminatorLogits = AlignedBuffer(count: 2 * batch)
        discriminatorLosses = AlignedBuffer(count: 2 * batch)
        generatorLogits = AlignedBuffer(count: batch)
        generatorLosses = AlignedBuffer(count: batch)
        discriminatorPhaseFakes = AlignedBuffer(count: batch * image)
        discriminatorNorms = Array(repeating: nil, count: discriminator.layers.count)
        if generator.batchWideFirstLayer {
            firstLayerOutputs = owned.map { generatorPass(shard: $0, worker: 0, step: 0).tensor(1) }
            firstLayerShards = owned.map {
                ShardTreeGradient.Shard(input: generatorNoise.pointer + shardRanges[$0].lowerBound * generator.inputElements,
                                        outputGradient: generatorPass(shard: $0, worker: 0, step: 0).gradient(1)!,
                                        samples: shardRanges[$0].count)
            }
        }
    }

    /// The memory plans of a step, made once for `init` and once for `estimatedFloats`, so the estimate cannot drift
    /// from what is allocated.
    struct Plans {
        let generatorTraining, generatorInference, generatorSampling, discriminatorTraining: ActivationPlan
        /// Where a shard's arena keeps the D phase's batch-wide first-layer outputs while the G phase's own (tensor
        /// 1, computed at the same time) wait: the smallest other stored buffer that holds them, idle until the G
        /// phase's forward pass, else scratch buffer 0, grown to hold them (`minimumScratch0` floats a sample).
        let firstLayerParking: TensorHome
        let minimumScratch0: Int

        init(generator: Network, discriminator: Network) {
            let first = generator.batchWideFirstLayer ? 1 : 0
            // With a batch-wide first layer, the planner needs ∂loss/∂(its output) for that layer's gradient.
            generatorTraining = ActivationPlan(network: generator, mode: .training, firstLayer: first,
                                               inputNeedsGradient: generator.batchWideFirstLayer)
            generatorInference = ActivationPlan(network: generator, mode: .inference, firstLayer: first,
                                                inputNeedsGradient: false)
            generatorSampling = ActivationPlan(network: generator, mode: .inference, firstLayer: 0,
                                               inputNeedsGradient: false)
            discriminatorTraining = ActivationPlan(network: discriminator, mode: .training, firstLayer: 0,
                                                   inputNeedsGradient: true)
            let output = generator.batchWideFirstLayer ? generator.shapes[1].elementsPerImage : 0
            let sizes = generatorTraining.storedSizes, outputHome = generatorTraining.homes[first]
            let parking = sizes.indices.filter { .stored($0) != outputHome && sizes[$0] >= output }
                .min { sizes[$0] < sizes[$1] }
            firstLayerParking = parking.map { .stored($0) } ?? .scratch(0)
            minimumScratch0 = parking == nil ? output : 0
        }
    }

    /// Samples a shard's arena holds: the largest shard's share of the minibatch.
    static func shardCapacity(batch: Int, shards: Int) -> Int {
        (batch + shards - 1) / shards
    }

    /// Floats this plan allocates, from the same plans `init` builds, for refusing a configuration that would not fit
    /// before allocating anything large.
    static func estimatedFloats(generator: Network, discriminator: Network, batch: Int, shards: Int,
                                threadCount: Int) -> Int {
        let plans = Plans(generator: generator, discriminator: discriminator)
        let inference = [plans.generatorInference, plans.generatorSampling], judging = plans.discriminatorTraining
        let capacity = shardCapacity(batch: batch, shards: shards)
        let perShardGeneratorFloats = capacity * ActivationArena.elementsPerSample(plans: [plans.generatorTraining],
                                                                    minimumScratch0: plans.minimumScratch0)
            + max(discriminator.parameters.count, generator.shardedGradientCount)
        let judgingPerSample = ActivationArena.elementsPerSample(plans: [judging], minimumScratch0: 0)
        // The Keras step judges two samples at a time in a worker's memory, the PyTorch step whole shards.
        let pytorchStep = generator.model.conventions == .pytorch
        let perShard = perShardGeneratorFloats
            + (pytorchStep ? 2 * capacity * (judgingPerSample + discriminator.inputElements + 1) : 0)
        let perWorker = discriminatorChunk * (ActivationArena.elementsPerSample(plans: inference, minimumScratch0: 0)
                                              + generator.inputElements)
            + (pytorchStep ? 0 : discriminatorChunk * judgingPerSample)
            + workspaceAllowance
        let perSample = 2 * generator.inputElements + 2 * discriminator.inputElements + 6
        let total = shards.multipliedReportingOverflow(by: perShard).partialValue
            .addingReportingOverflow(threadCount.multipliedReportingOverflow(by: perWorker).partialValue).partialValue
        return total.addingReportingOverflow(batch.multipliedReportingOverflow(by: perSample).partialValue).partialValue
    }

    /// Floats set aside per worker for `KernelWorkspace` (GEMM packing, im2col columns), which grows as kernels ask.
    static let workspaceAllowance = 1 << 18

    // MARK: the passes

    func context(_ network: Network, gradients: UnsafeMutablePointer<Float>?, accumulate: Bool = false,
                 step: UInt64, phase: GANPhase, firstSample: Int, worker: Int) -> LayerContext {
        LayerContext(parameters: network.parameters.pointer, gradients: gradients, accumulate: accumulate,
                     random: random, step: step, phase: phase, firstSample: firstSample, workspace: workspaces[worker])
    }

    /// One chunk through the discriminator: forward on `input` with the dropout masks of `phase`, the loss against
    /// `label` as part of a mean over `totalBatch`, the per-sample logits and losses stored at the chunk's indices
    /// `samples`, then backward into `gradients` (nil while the discriminator is frozen) and, when given,
    /// `inputGradient`.
    func discriminatorPass(input: UnsafeMutablePointer<Float>, samples: Range<Int>, label: Float, phase: GANPhase,
                           totalBatch: Int, logits: AlignedBuffer, losses: AlignedBuffer, worker: Int,
                           gradients: UnsafeMutablePointer<Float>?, accumulate: Bool,
                           inputGradient: UnsafeMutablePointer<Float>?, step: UInt64) {
        let n = samples.count, last = discriminatorTraining.layers.count
        let pass = ActivationPass(plan: discriminatorTraining, arena: discriminatorArenas[worker], input: input,
                                  inputGradient: inputGradient, norms: discriminatorNorms, context: context(
                                    discriminator, gradients: gradients, accumulate: accumulate, step: step,
                                    phase: phase, firstSample: samples.lowerBound, worker: worker), n: n)
        pass.forward(0..<last)
        let labelRow = workerLabels[worker].pointer
        labelRow.update(repeating: label, count: n)
        BinaryCrossEntropy.withLogits(logits: pass.tensor(last), labels: labelRow, count: n,
                                      losses: losses.pointer + samples.lowerBound,
                                      logitGradients: pass.gradient(last)!, gradientScale: 1 / Float(totalBatch))
        (logits.pointer + samples.lowerBound).update(from: pass.tensor(last), count: n)
        pass.backward(0..<last)
    }

    /// The generator in inference on `n` samples whose input (first-layer output when that layer is batch-wide,
    /// noise otherwise) is at `input`; returns the images.
    func generatorInferencePass(plan: ActivationPlan, input: UnsafeMutablePointer<Float>, n: Int, worker: Int)
        -> UnsafeMutablePointer<Float> {
        let pass = ActivationPass(plan: plan, arena: inferenceArenas[worker], input: input, inputGradient: nil,
                                  norms: inferenceNorms, context: context(generator, gradients: nil, step: 0,
                                                                          phase: .discriminatorStep, firstSample: 0,
                                                                          worker: worker), n: n)
        pass.forward(plan.firstLayer..<plan.layers.count)
        return pass.tensor(plan.layers.count)
    }

    /// The last step's G-phase fakes (B × image elements, in sample order; this process's shards, zeros elsewhere),
    /// for tests: the generator's outputs, still in its shard arenas after the step (the PyTorch step's G phase judges
    /// the D phase's fakes again).
    func generatorPhaseFakes() -> [Float] {
        if generator.model.conventions == .pytorch { return discriminatorPhaseFakes.array }
        let image = discriminator.inputElements
        var fakes = [Float](repeating: 0, count: batch * image)
        for shard in owned {
            let range = shardRanges[shard]
            let images = generatorPass(shard: shard, worker: 0, step: 0).tensor(generatorTraining.layers.count)
            for i in 0..<(range.count * image) { fakes[range.lowerBound * image + i] = images[i] }
        }
        return fakes
    }

    /// A shard's generator pass in training mode.
    func generatorPass(shard: Int, worker: Int, step: UInt64) -> ActivationPass {
        ActivationPass(plan: generatorTraining, arena: generatorArenas[shard - owned.lowerBound],
                       input: generatorNoise.pointer + shardRanges[shard].lowerBound * generator.inputElements,
                       inputGradient: nil, norms: trainingNorms,
                       context: context(generator, gradients: generatorShardPointers[shard - owned.lowerBound], step: step,
                                        phase: .generatorStep, firstSample: shardRanges[shard].lowerBound,
                                        worker: worker),
                       n: shardRanges[shard].count)
    }

    /// Zeroes the positions of shard `shard`'s shared gradient buffer that the coming pass of `network` leaves
    /// unwritten. A block root's buffers are its own: zero where no pass writes, or overwritten after the sum.
    func clearUnwritten(_ ranges: [Range<Int>], of pointers: [UnsafeMutablePointer<Float>], shard: Int) {
        guard !reducer.isBlockRoot(shard) else { return }
        let buffer = pointers[shard - owned.lowerBound]
        for range in ranges { (buffer + range.lowerBound).update(repeating: 0, count: range.count) }
    }

    /// A shard's samples cut into consecutive chunks of at most `discriminatorChunk`.
    func chunks(of range: Range<Int>) -> SampleChunks { SampleChunks(range: range, size: Self.discriminatorChunk) }

    // MARK: the batch-wide first layer

    var firstLayer: DenseLayer? {
        guard generator.batchWideFirstLayer, case .dense(let layer) = generator.layers[0] else { return nil }
        return layer
    }

    /// Output columns of slice `slice` of the first layer for the process's samples: their rows of `noise`
    /// (B × codings) times one slice of the weights in one multiply, then each owned shard's rows copied to
    /// `destination(shard)` (that shard's rows × outputs, from its row 0). Every element gets the same bits as a
    /// per-shard multiply.
    func firstLayerForwardSlice(_ slice: Int, layer: DenseLayer, noise: UnsafePointer<Float>, workspace: KernelWorkspace,
                                destination: (Int) -> UnsafeMutablePointer<Float>) {
        precondition(Self.firstLayerForwardColumns % layer.packedColumnAlignment == 0)
        let first = slice * Self.firstLayerForwardColumns
        let columns = first..<min(first + Self.firstLayerForwardColumns, layer.outputSize)
        let width = columns.count
        let samples = ownedSamples
        let rows = workspace.scratch(atLeast: samples.count * width)
        layer.forward(columns: columns, batch: samples.count, input: noise + samples.lowerBound * layer.inputSize,
                      output: rows, outputStride: width, parameters: generator.parameters.pointer, workspace: workspace)
        for shard in owned {
            let target = destination(shard)
            for (row, sample) in shardRanges[shard].enumerated() {
                (target + row * layer.outputSize + first).update(from: rows + (sample - samples.lowerBound) * width,
                                                                 count: width)
            }
        }
    }

    /// The first layer's kernel and bias gradients for columns of slice `slice`, summed over the shards of `block`
    /// (one of the process's aligned blocks: all shards in one process) into its root's buffer: per shard
    /// noiseᵀ·∂loss/∂output and the column sums of ∂loss/∂output, summed in `ShardReduction`'s tree in registers
    /// (`ShardTreeGradient`), so no shard's partial gradient is ever stored.
    func firstLayerGradientSlice(_ slice: Int, layer: DenseLayer, block: Range<Int>) {
        let first = slice * Self.firstLayerGradientColumns
        let columns = first..<min(first + Self.firstLayerGradientColumns, layer.outputSize)
        let local = (block.lowerBound - owned.lowerBound)..<(block.upperBound - owned.lowerBound)
        let gradients = generatorShardPointers[local.lowerBound]
        ShardTreeGradient.denseGradients(shards: Array(firstLayerShards[local]), inputs: layer.inputSize,
                                         outputStride: layer.outputSize,
                                         columns: columns, kernel: gradients + layer.kernel.offset + first,
                                         kernelStride: layer.outputSize, bias: gradients + layer.bias.offset + first)
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
