import ParallelTensor

/// The seed generator (docs/ARCHITECTURE.md §1): Dense(100 → 7·7·128) → Reshape(7, 7, 128) → BatchNorm →
/// Conv2DTranspose(64, 5×5, s2, selu) → BatchNorm → Conv2DTranspose(1, 5×5, s2, tanh) → 28×28×1.
///
/// The model owns its weights (one flat `parameters` vector, layout in `layout`) and the BatchNorm running statistics
/// (`state`). Activations live in per-shard `GeneratorActivations`; the forward and backward passes are split into
/// the stages between which synchronised BatchNorm needs a whole-minibatch reduction.
public final class Generator: @unchecked Sendable {
    public let codings: Int
    public let layout = ParameterLayout()
    public let stateLayout = ParameterLayout()
    public let dense: DenseLayer
    public let reshape: ReshapeLayer
    public let normalization0: BatchNormLayer
    public let upsample1: ConvTranspose2DLayer
    public let selu = SELULayer()
    public let normalization1: BatchNormLayer
    public let upsample2: ConvTranspose2DLayer
    public let tanh = TanhLayer()
    public let parameters: AlignedBuffer
    public let state: AlignedBuffer

    public static let imageSide = 28

    public init(codings: Int = 100) {
        self.codings = codings
        let base = Generator.imageSide / 4
        let denseSize = base * base * 128
        reshape = ReshapeLayer(height: base, width: base, channels: 128)
        normalization0 = BatchNormLayer(name: "generator.batch_norm", channels: 128, layout: layout,
                                        stateLayout: stateLayout)
        upsample1 = ConvTranspose2DLayer(
            name: "generator.conv_transpose", geometry: .same(inputHeight: base, inputWidth: base, inputChannels: 128,
                                                              outputChannels: 64, kernelSize: 5, stride: 2),
            layout: layout)
        normalization1 = BatchNormLayer(name: "generator.batch_norm_1", channels: 64, layout: layout,
                                        stateLayout: stateLayout)
        upsample2 = ConvTranspose2DLayer(
            name: "generator.conv_transpose_1", geometry: .same(inputHeight: 2 * base, inputWidth: 2 * base,
                                                                inputChannels: 64, outputChannels: 1, kernelSize: 5,
                                                                stride: 2),
            layout: layout)
        // The dense layer's tensors come last in the parameter vector: its gradient is computed for the whole
        // minibatch at once (`denseGradientSlice`), so shards only need gradient buffers for the prefix before it.
        dense = DenseLayer(name: "generator.dense", inputSize: codings, outputSize: denseSize, layout: layout,
                           needsInputGradient: false)
        reshape.checkCompatible(elementsPerSample: dense.outputSize)
        parameters = AlignedBuffer(count: layout.totalCount)
        state = AlignedBuffer(count: stateLayout.totalCount)
    }

    /// Keras initialisation from the seed: Glorot-uniform kernels, zero biases, gamma 1, beta 0, running mean 0,
    /// running variance 1.
    public func initialize(random: CounterRandom) {
        parameters.fill(with: 0)
        glorotUniform(dense.kernel, into: parameters.pointer, random: random, substream: 0)
        glorotUniform(upsample1.kernel, into: parameters.pointer, random: random, substream: 1)
        glorotUniform(upsample2.kernel, into: parameters.pointer, random: random, substream: 2)
        normalization0.initialize(parameters: parameters.pointer, state: state.pointer)
        normalization1.initialize(parameters: parameters.pointer, state: state.pointer)
        packWeights()
    }

    /// Refreshes the packed weight matrices every shard multiplies by; call after every change of `parameters`
    /// outside training (the trainer packs inside its step).
    public func packWeights() {
        packingPlan().packAll()
    }

    /// The packing work of `packWeights`, panel by panel, for running it as a phase of a training step.
    public func packingPlan() -> PackingPlan {
        PackingPlan(dense.packingJobs(parameters: parameters.pointer)
                    + upsample1.packingJobs(parameters: parameters.pointer)
                    + upsample2.packingJobs(parameters: parameters.pointer))
    }

    public var imageElements: Int { upsample2.outputElements }
    public var trainableParameterCount: Int { layout.slots.reduce(0) { $0 + $1.count } }
    public var stateCount: Int { stateLayout.slots.reduce(0) { $0 + $1.count } }
    var rows0: Int { upsample1.geometry.inputHeight * upsample1.geometry.inputWidth }
    var rows1: Int { upsample1.geometry.outputHeight * upsample1.geometry.outputWidth }

    /// Multiply-adds of one sample's forward pass.
    public var multiplyAddsPerSample: Int {
        dense.multiplyAddsPerSample + upsample1.geometry.multiplyAddsPerImage + upsample2.geometry.multiplyAddsPerImage
    }

    public func makeActivations(capacity: Int) -> GeneratorActivations {
        GeneratorActivations(capacity: capacity, codings: codings, denseSize: dense.outputSize,
                             middleSize: upsample1.outputElements, imageSize: imageElements)
    }

    /// Inference mode (BatchNorm on running statistics, prepared in `norms`): noise in `activations.noise` →
    /// images in `activations.image`.
    public func inferenceForward(batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                                 workspace: KernelWorkspace) {
        dense.forward(batch: n, input: a.noise.pointer, output: a.dense.pointer, parameters: parameters.pointer,
                      workspace: workspace)
        forwardFromDense(batch: n, activations: a, norms: norms, workspace: workspace)
        forwardFromActivated1(batch: n, activations: a, norms: norms, workspace: workspace)
    }

    public func prepareInference(norms: GeneratorNorms) {
        normalization0.prepareInference(parameters: parameters.pointer, state: state.pointer, batch: norms.first)
        normalization1.prepareInference(parameters: parameters.pointer, state: state.pointer, batch: norms.second)
    }

    // MARK: the dense layer for the whole minibatch, by column slices
    //
    // A shard of two samples multiplies 100 × 6 272 weights (2.5 MB) for 1.25 M multiply-adds: streaming the weights
    // costs 15× the arithmetic. Cut by output columns instead, each work item reads 128 columns of the weights once
    // and applies them to every shard's rows; every element gets the same bits as a per-shard multiply.

    static let denseForwardSliceWidth = 128
    public var denseForwardSliceCount: Int {
        (dense.outputSize + Self.denseForwardSliceWidth - 1) / Self.denseForwardSliceWidth
    }

    /// Output columns of slice `slice` of the dense layer for the whole minibatch: `noise` (B × codings, in sample
    /// order) times one slice of the weights in one multiply, then each shard's rows `shardRanges[s]` copied to
    /// `destinations[s]` (that shard's rows × 7·7·128, from its row 0).
    public func denseForwardSlice(_ slice: Int, noise: UnsafePointer<Float>, shardRanges: [Range<Int>],
                                  destinations: [UnsafeMutablePointer<Float>], workspace: KernelWorkspace) {
        precondition(Self.denseForwardSliceWidth % dense.packedColumnAlignment == 0)
        let first = slice * Self.denseForwardSliceWidth
        let columns = first..<min(first + Self.denseForwardSliceWidth, dense.outputSize)
        let batch = shardRanges.last?.upperBound ?? 0, width = columns.count
        let rows = workspace.scratch(atLeast: batch * width)
        dense.forward(columns: columns, batch: batch, input: noise, output: rows, outputStride: width,
                      parameters: parameters.pointer, workspace: workspace)
        for (range, destination) in zip(shardRanges, destinations) {
            for (row, sample) in range.enumerated() {
                (destination + row * dense.outputSize + first).update(from: rows + sample * width, count: width)
            }
        }
    }

    /// Inference mode from dense outputs already in `activations.gradientB` (by `denseForwardSlice`): its rows
    /// first..<first + n → images in `activations.image` rows 0..<n. BatchNorm 0 runs in place on those rows.
    public func inferenceForwardFromDense(first: Int, count n: Int, activations a: GeneratorActivations,
                                          norms: GeneratorNorms, workspace: KernelWorkspace) {
        let rows = a.gradientB.pointer + first * dense.outputSize
        normalization0.forward(rows: n * rows0, input: rows, output: rows, batch: norms.first)
        upsample1.forward(batch: n, input: rows, output: a.activated1.pointer, parameters: parameters.pointer,
                          workspace: workspace)
        selu.forward(count: n * upsample1.outputElements, input: a.activated1.pointer, output: a.activated1.pointer)
        forwardFromActivated1(batch: n, activations: a, norms: norms, workspace: workspace)
    }

    // MARK: training mode, stage by stage (a whole-minibatch reduction separates each stage)
    //
    // To keep a shard's memory small only what backward cannot cheaply recompute is kept per sample: the dense output,
    // the SELU output and the image. The BatchNorm outputs are recomputed (one multiply-add per element) into the
    // gradient scratch buffers when needed, and SELU's and tanh's derivatives come from their outputs.

    /// This shard's statistics for the first BatchNorm, from its dense outputs in `activations.dense`.
    public func trainingStatistics0(shard: Int, batch n: Int, activations a: GeneratorActivations,
                                    norms: GeneratorNorms) {
        normalization0.accumulateStatistics(shard: shard, rows: n * rows0, input: a.dense.pointer, batch: norms.first)
    }

    /// First BatchNorm, first transposed convolution and SELU, then this shard's statistics for the second BatchNorm.
    public func trainingForwardMiddle(shard: Int, batch n: Int, activations a: GeneratorActivations,
                                      norms: GeneratorNorms, workspace: KernelWorkspace) {
        forwardFromDense(batch: n, activations: a, norms: norms, workspace: workspace)
        normalization1.accumulateStatistics(shard: shard, rows: n * rows1, input: a.activated1.pointer,
                                            batch: norms.second)
    }

    /// Second BatchNorm, second transposed convolution and tanh: images in `activations.image`.
    public func trainingForwardOutput(batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                                      workspace: KernelWorkspace) {
        forwardFromActivated1(batch: n, activations: a, norms: norms, workspace: workspace)
    }

    /// BatchNorm 0 (into the scratch `gradientB`), transposed convolution 1 and SELU, in place in `activated1`.
    func forwardFromDense(batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                          workspace: KernelWorkspace) {
        normalization0.forward(rows: n * rows0, input: a.dense.pointer, output: a.gradientB.pointer, batch: norms.first)
        upsample1.forward(batch: n, input: a.gradientB.pointer, output: a.activated1.pointer,
                          parameters: parameters.pointer, workspace: workspace)
        selu.forward(count: n * upsample1.outputElements, input: a.activated1.pointer, output: a.activated1.pointer)
    }

    /// BatchNorm 1 (into the scratch `gradientA`), transposed convolution 2 and tanh, in place in `image`.
    func forwardFromActivated1(batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                               workspace: KernelWorkspace) {
        normalization1.forward(rows: n * rows1, input: a.activated1.pointer, output: a.gradientA.pointer,
                               batch: norms.second)
        upsample2.forward(batch: n, input: a.gradientA.pointer, output: a.image.pointer, parameters: parameters.pointer,
                          workspace: workspace)
        tanh.forward(count: n * imageElements, input: a.image.pointer, output: a.image.pointer)
    }

    /// From ∂loss/∂image (in `activations.imageGradient`) back to the second BatchNorm's output, into `gradientA`;
    /// accumulates its backward sums.
    public func backwardOutput(shard: Int, batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                               gradients: UnsafeMutablePointer<Float>, workspace: KernelWorkspace) {
        tanh.backward(count: n * imageElements, output: a.image.pointer, outputGradient: a.imageGradient.pointer,
                      inputGradient: a.imageGradient.pointer)
        // The layer's input (BatchNorm 1's output) is recomputed into gradientA, which the same call then overwrites
        // with ∂loss/∂input: the layer computes its weight gradient before its input gradient.
        normalization1.forward(rows: n * rows1, input: a.activated1.pointer, output: a.gradientA.pointer,
                               batch: norms.second)
        upsample2.backward(batch: n, input: a.gradientA.pointer, outputGradient: a.imageGradient.pointer,
                           inputGradient: a.gradientA.pointer, parameters: parameters.pointer, gradients: gradients,
                           workspace: workspace)
        normalization1.accumulateGradientSums(shard: shard, rows: n * rows1, input: a.activated1.pointer,
                                              outputGradient: a.gradientA.pointer, batch: norms.second)
    }

    /// Through the second BatchNorm, SELU and the first transposed convolution, into `gradientB`; accumulates the
    /// first BatchNorm's backward sums.
    public func backwardMiddle(shard: Int, batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms,
                               gradients: UnsafeMutablePointer<Float>, workspace: KernelWorkspace) {
        let count = n * upsample1.outputElements
        normalization1.backward(rows: n * rows1, input: a.activated1.pointer, outputGradient: a.gradientA.pointer,
                                inputGradient: a.gradientA.pointer, parameters: parameters.pointer, batch: norms.second)
        selu.backward(count: count, output: a.activated1.pointer, outputGradient: a.gradientA.pointer,
                      inputGradient: a.gradientA.pointer)
        // As in backwardOutput: BatchNorm 0's output is recomputed into gradientB, read for the weight gradient, then
        // overwritten by the input gradient.
        normalization0.forward(rows: n * rows0, input: a.dense.pointer, output: a.gradientB.pointer, batch: norms.first)
        upsample1.backward(batch: n, input: a.gradientB.pointer, outputGradient: a.gradientA.pointer,
                           inputGradient: a.gradientB.pointer, parameters: parameters.pointer, gradients: gradients,
                           workspace: workspace)
        normalization0.accumulateGradientSums(shard: shard, rows: n * rows0, input: a.dense.pointer,
                                              outputGradient: a.gradientB.pointer, batch: norms.first)
    }

    /// Through the first BatchNorm, down to ∂loss/∂(dense output) in `activations.gradientB`.
    public func backwardNormalization0(batch n: Int, activations a: GeneratorActivations, norms: GeneratorNorms) {
        normalization0.backward(rows: n * rows0, input: a.dense.pointer, outputGradient: a.gradientB.pointer,
                                inputGradient: a.gradientB.pointer, parameters: parameters.pointer, batch: norms.first)
    }

    /// How many leading entries of the gradient vector shards compute; the dense layer's (the rest) is computed for
    /// the whole batch by `denseGradientSlice`.
    public var shardedGradientCount: Int { dense.kernel.offset }

    /// The dense layer's kernel and bias gradients for the whole minibatch: per shard noiseᵀ·∂loss/∂output and the
    /// column sums of ∂loss/∂output, summed over shards in `ShardReduction`'s tree like every other gradient.
    /// Per-shard buffers for this 627 200-float tensor would cost 2.5 MB each; instead the output columns are cut into
    /// `denseGradientSliceCount` slices, and each slice produces the shards' partial sums one after another into a
    /// small stack (`ShardReduction.sumProduced`). Slices are independent units of parallel work.
    public var denseGradientSliceCount: Int { (dense.outputSize + Self.denseSliceWidth - 1) / Self.denseSliceWidth }
    static let denseSliceWidth = 256

    /// `noise`: the G phase's noise, B × codings in sample order; shard s owns its rows `shardRanges[s]`.
    public func denseGradientSlice(_ slice: Int, noise: UnsafePointer<Float>, shardRanges: [Range<Int>],
                                   activations: [GeneratorActivations], workspace: KernelWorkspace,
                                   gradients: UnsafeMutablePointer<Float>) {
        let columns = dense.outputSize, inputs = dense.inputSize
        let first = slice * Self.denseSliceWidth, width = min(Self.denseSliceWidth, columns - first)
        // One partial sum: the kernel slice (inputs × width) then the bias slice (width).
        let partial = (inputs + 1) * width
        let stack = workspace.scratch(atLeast: (ShardReduction.stackDepth(shards: shardRanges.count) + 1) * partial)
        let total = stack + ShardReduction.stackDepth(shards: shardRanges.count) * partial
        ShardReduction.sumProduced(shards: shardRanges.count, count: partial, stack: stack, into: total) { shard, sum in
            let range = shardRanges[shard], upstream = activations[shard].gradientB.pointer + first
            GEMM.multiply(rows: inputs, columns: width, depth: range.count,
                          a: .transposed(noise + range.lowerBound * inputs, columns: inputs),
                          b: MatrixOperand(base: upstream, rowStride: columns, columnStride: 1),
                          c: sum, ldc: width, accumulate: false, workspace: workspace)
            let bias = sum + inputs * width
            bias.update(repeating: 0, count: width)
            for row in 0..<range.count { Elementwise.add(upstream + row * columns, into: bias, count: width) }
        }
        for input in 0..<inputs {
            (gradients + dense.kernel.offset + input * columns + first).update(from: total + input * width, count: width)
        }
        (gradients + dense.bias.offset + first).update(from: total + inputs * width, count: width)
    }

    /// The reduced BatchNorm gamma/beta gradients, written into the (all-reduced) gradient vector.
    public func writeNormalizationGradients(into gradients: UnsafeMutablePointer<Float>, norms: GeneratorNorms) {
        normalization0.writeParameterGradients(into: gradients, batch: norms.first)
        normalization1.writeParameterGradients(into: gradients, batch: norms.second)
    }
}

/// The two BatchNorm layers' per-minibatch state.
public final class GeneratorNorms: @unchecked Sendable {
    public let first: BatchNormBatch
    public let second: BatchNormBatch

    public init(generator: Generator, shards: Int) {
        first = BatchNormBatch(channels: generator.normalization0.channels, shards: shards)
        second = BatchNormBatch(channels: generator.normalization1.channels, shards: shards)
    }
}

/// One shard's generator activations (NHWC, `capacity` samples): the noise, the dense output (BatchNorm 0's input),
/// the SELU output (BatchNorm 1's input), the image and its gradient, and two gradient buffers that also hold the
/// recomputed BatchNorm outputs.
public final class GeneratorActivations: @unchecked Sendable {
    public let noise, dense, activated1, image, imageGradient: AlignedBuffer
    /// Middle-sized (14×14×64 per sample): BatchNorm 1's output, then gradients at that size.
    public let gradientA: AlignedBuffer
    /// Dense-sized (7×7×128 per sample): BatchNorm 0's output, then gradients at that size.
    public let gradientB: AlignedBuffer

    init(capacity: Int, codings: Int, denseSize: Int, middleSize: Int, imageSize: Int) {
        noise = AlignedBuffer(count: capacity * codings)
        dense = AlignedBuffer(count: capacity * denseSize)
        activated1 = AlignedBuffer(count: capacity * middleSize)
        image = AlignedBuffer(count: capacity * imageSize)
        imageGradient = AlignedBuffer(count: capacity * imageSize)
        gradientA = AlignedBuffer(count: capacity * middleSize)
        gradientB = AlignedBuffer(count: capacity * denseSize)
    }
}
