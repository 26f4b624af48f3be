import ParallelTensor

/// One built layer of a `Network`: the layer types of Layers/, which keep their forward and backward passes side by
/// side; this enum only says, for the memory plan and the planner, what each kind reads and whether it can work in
/// place.
enum NetworkLayer: Sendable {
    case dense(DenseLayer)
    case convolution(Conv2DLayer)
    case transposedConvolution(ConvTranspose2DLayer)
    case batchNormalization(BatchNormLayer)
    case leakyReLU(LeakyReLULayer)
    case relu(ReLULayer)
    case selu(SELULayer)
    case tanh(TanhLayer)
    case dropout(DropoutLayer)
    /// Reshape or Flatten: channels-last flattening is the memory order of NHWC, so the output is the input.
    case view

    /// What the backward pass reads besides ∂loss/∂output (the mask of a dropout layer is its own).
    enum BackwardRead {
        case nothing, input, output
        /// Only whether each output element is negative.
        case outputSign
    }

    var backwardRead: BackwardRead {
        switch self {
        case .dense, .convolution, .transposedConvolution, .batchNormalization: .input
        // With a positive slope y < 0 exactly where x < 0, so the output's sign serves (and the layer may work in
        // place).
        case .leakyReLU(let layer): layer.slope > 0 ? .outputSign : .input
        case .selu, .tanh, .relu: .output
        case .dropout, .view: .nothing
        }
    }

    /// Whether writing this layer's output over its input keeps what a producer that reads its output's sign
    /// (`.outputSign`) needs. Dropout multiplies by 0 or 1/(1 − rate) > 1: a kept element keeps its sign (and cannot
    /// underflow to zero), and a dropped one passes back a gradient of ±0, which the producer's backward turns into
    /// ±0 whichever sign it reads. So the discriminator's LeakyReLU → Dropout pairs share one buffer, with the bits
    /// of two (ActivationPlanTests, the pinned digests).
    var keepsProducersSignWhereGradientFlows: Bool {
        if case .dropout = self { return true }
        return false
    }

    /// Dense and convolutions: they own weights, change the tensor's size, and write their input gradient to a new
    /// buffer. Every other kind works element by element and may write its output over its input.
    var isWeighted: Bool {
        switch self {
        case .dense, .convolution, .transposedConvolution: true
        default: false
        }
    }

    var batchNormalization: BatchNormLayer? {
        if case .batchNormalization(let layer) = self { return layer }
        return nil
    }

    var multiplyAddsPerSample: Int {
        switch self {
        case .dense(let layer): layer.multiplyAddsPerSample
        case .convolution(let layer): layer.geometry.multiplyAddsPerImage
        case .transposedConvolution(let layer): layer.geometry.multiplyAddsPerImage
        default: 0
        }
    }

    /// The kernel and bias a weighted layer owns (none for other kinds).
    var weightSlots: [ParameterSlot] {
        switch self {
        case .dense(let layer): [layer.kernel, layer.bias]
        case .convolution(let layer): [layer.kernel] + (layer.bias.map { [$0] } ?? [])
        case .transposedConvolution(let layer): [layer.kernel] + (layer.bias.map { [$0] } ?? [])
        default: []
        }
    }

    func packingJobs(parameters: UnsafePointer<Float>) -> [(matrix: PackedMatrix, source: MatrixOperand)] {
        switch self {
        case .dense(let layer): layer.packingJobs(parameters: parameters)
        case .convolution(let layer): layer.packingJobs(parameters: parameters)
        case .transposedConvolution(let layer): layer.packingJobs(parameters: parameters)
        default: []
        }
    }
}

/// Everything a layer's forward or backward pass needs besides its tensors: the weights, where gradients go, the
/// per-minibatch BatchNorm state, the random address of dropout masks and the worker's scratch.
struct LayerContext {
    let parameters: UnsafePointer<Float>
    /// nil while the network is frozen (the discriminator in the generator's phase).
    let gradients: UnsafeMutablePointer<Float>?
    /// Add the weight gradients to `gradients` instead of overwriting them (a shard's chunks after its first).
    let accumulate: Bool
    let random: CounterRandom
    let step: UInt64
    let phase: GANPhase
    /// The minibatch index of the first sample: dropout masks are addressed by sample.
    let firstSample: Int
    let workspace: KernelWorkspace
}

extension NetworkLayer {
    /// Forward pass of n samples; `mask` is the dropout layer's mask buffer.
    func forward(n: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, inputShape: TensorShape,
                 mask: UnsafeMutablePointer<Float>?, norm: BatchNormBatch?, context c: LayerContext) {
        switch self {
        case .dense(let layer):
            layer.forward(batch: n, input: input, output: output, parameters: c.parameters, workspace: c.workspace)
        case .convolution(let layer):
            layer.forward(batch: n, input: input, output: output, parameters: c.parameters, workspace: c.workspace)
        case .transposedConvolution(let layer):
            layer.forward(batch: n, input: input, output: output, parameters: c.parameters, workspace: c.workspace)
        case .batchNormalization(let layer):
            layer.forward(rows: n * inputShape.height * inputShape.width, input: input, output: output,
                          batch: norm!)
        case .leakyReLU(let layer):
            layer.forward(count: n * inputShape.elementsPerImage, input: input, output: output)
        case .relu(let layer):
            layer.forward(count: n * inputShape.elementsPerImage, input: input, output: output)
        case .selu(let layer):
            layer.forward(count: n * inputShape.elementsPerImage, input: input, output: output)
        case .tanh(let layer):
            layer.forward(count: n * inputShape.elementsPerImage, input: input, output: output)
        case .dropout(let layer):
            layer.makeMask(random: c.random, step: c.step, phase: c.phase, firstSample: c.firstSample, batch: n,
                           mask: mask!)
            layer.apply(batch: n, input: input, mask: mask!, output: output)
        case .view:
            precondition(UnsafePointer(output) == input, "a view's output is its input")
        }
    }

    /// Backward pass of n samples: `inputGradient` (nil when nobody needs it) from `outputGradient`, and the weight
    /// gradients into `context.gradients` when given. BatchNorm's backward is the planner's (it needs a reduction
    /// over the whole minibatch first), see `Network.batchNormalizationBackward`.
    func backward(n: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                  inputShape: TensorShape, mask: UnsafePointer<Float>?, context c: LayerContext) {
        switch self {
        case .dense(let layer):
            layer.backward(batch: n, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                           parameters: c.parameters, gradients: c.gradients, workspace: c.workspace,
                           accumulateGradients: c.accumulate)
        case .convolution(let layer):
            layer.backward(batch: n, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                           parameters: c.parameters, gradients: c.gradients, workspace: c.workspace,
                           accumulateGradients: c.accumulate)
        case .transposedConvolution(let layer):
            precondition(!c.accumulate, "transposed convolutions run on whole shards, never in accumulated chunks")
            layer.backward(batch: n, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                           parameters: c.parameters, gradients: c.gradients, workspace: c.workspace)
        case .batchNormalization:
            preconditionFailure("BatchNorm's backward pass needs the minibatch's gradient sums")
        case .leakyReLU(let layer):
            layer.backward(count: n * inputShape.elementsPerImage, input: layer.slope > 0 ? output : input,
                           outputGradient: outputGradient, inputGradient: inputGradient!)
        case .relu(let layer):
            layer.backward(count: n * inputShape.elementsPerImage, output: output, outputGradient: outputGradient,
                           inputGradient: inputGradient!)
        case .selu(let layer):
            layer.backward(count: n * inputShape.elementsPerImage, output: output, outputGradient: outputGradient,
                           inputGradient: inputGradient!)
        case .tanh(let layer):
            layer.backward(count: n * inputShape.elementsPerImage, output: output, outputGradient: outputGradient,
                           inputGradient: inputGradient!)
        case .dropout(let layer):
            layer.apply(batch: n, input: outputGradient, mask: mask!, output: inputGradient!)
        case .view:
            break
        }
    }
}

/// A model built from its description: its layers, the shape of every tensor between them, its parameters (one
/// flat vector, `layout`) and BatchNorm running statistics (`state`). It knows nothing of shards or threads; the
/// memory of its activations is planned by `ActivationPlan`, the work of a training step by `GANStepPlanner`.
public final class Network: @unchecked Sendable {
    /// What the network was built from.
    public let model: ModelDescription
    let layers: [NetworkLayer]
    /// `shapes[i]`: one sample's input of layer i; `shapes[layers.count]`: the network's output.
    public let shapes: [TensorShape]
    public let layout = ParameterLayout()
    public let stateLayout = ParameterLayout()
    public let parameters: AlignedBuffer
    public let state: AlignedBuffer
    /// The first layer is a Dense layer on an input that needs no gradient (the generator's noise): the planner runs
    /// it for the whole minibatch by column slices, and its tensors come last in `layout`, after every tensor whose
    /// gradient shards compute (`shardedGradientCount`).
    public let batchWideFirstLayer: Bool
    /// Glorot-uniform kernels draw from the initialisation stream at `kernelSubstream + k` for the k-th kernel.
    let kernelSubstream: UInt32

    /// `inputNeedsGradient`: whether training needs ∂loss/∂input (true for a discriminator, which the generator
    /// trains through). The k-th dropout layer draws its masks at substream `dropoutSubstream + k`, so two networks
    /// in one pass (the generator and the frozen discriminator) draw different masks. `inferenceOnly`: the network
    /// is never trained (a classifier read from its file), so its Dense and Conv2D layers pack no transposed weights
    /// for input gradients (1.6 MB for the MNIST classifier). Throws a `ModelError` naming the layer for a description
    /// that cannot be built.
    public init(_ description: ModelDescription, inputNeedsGradient: Bool, kernelSubstream: UInt32,
                dropoutSubstream: UInt32, inferenceOnly: Bool = false) throws {
        model = description
        self.kernelSubstream = kernelSubstream
        let shapes = try description.shapes()
        if case .dense = description.layers.first, !inputNeedsGradient {
            batchWideFirstLayer = true
        } else {
            batchWideFirstLayer = false
        }
        // Keras names a model's layers by kind, numbering the second and later ones: dense, dense_1, …
        var kindCounts: [String: Int] = [:]
        let names: [String?] = description.layers.map { layer in
            guard let kind = layer.kerasKind else { return nil }
            let count = kindCounts[kind, default: 0]
            kindCounts[kind] = count + 1
            return "\(description.name).\(kind)" + (count == 0 ? "" : "_\(count)")
        }
        // Layers are built in parameter-layout order: the batch-wide first layer last.
        var built: [Int: NetworkLayer] = [:]
        let order = Array(description.layers.indices.dropFirst(batchWideFirstLayer ? 1 : 0))
            + (batchWideFirstLayer ? [0] : [])
        let dropoutOrdinals = description.layers.indices.filter {
            if case .dropout = description.layers[$0] { return true } else { return false }
        }
        let dropoutCount = UInt32(dropoutOrdinals.count)
        guard dropoutSubstream + dropoutCount <= DropoutLayer.substreamsPerPhase else {
            throw ModelError("\(description.name) has \(dropoutCount) dropout layers; at most \(DropoutLayer.substreamsPerPhase - dropoutSubstream) are supported")
        }
        for index in order {
            let input = shapes[index]
            // A layer computes its input gradient when a layer before it has weights, or the input needs one.
            let needsInputGradient = !inferenceOnly
                && (inputNeedsGradient || description.layers[..<index].contains { $0.kerasKind != nil })
            switch description.layers[index] {
            case .dense(let units, _):
                built[index] = .dense(DenseLayer(name: names[index]!, inputSize: input.elementsPerImage, outputSize: units,
                                                 layout: layout, needsInputGradient: needsInputGradient))
            case .conv2D(let filters, let kernelSize, let stride, let padding, let useBias, _):
                let geometry: ConvolutionGeometry = switch padding {
                case .same: .same(inputHeight: input.height, inputWidth: input.width, inputChannels: input.channels,
                                  outputChannels: filters, kernelSize: kernelSize, stride: stride)
                case .explicit(let p): .padded(inputHeight: input.height, inputWidth: input.width,
                                               inputChannels: input.channels, outputChannels: filters,
                                               kernelSize: kernelSize, stride: stride, padding: p)
                }
                built[index] = .convolution(Conv2DLayer(name: names[index]!, geometry: geometry, layout: layout,
                                                        needsInputGradient: needsInputGradient, useBias: useBias))
            case .conv2DTranspose(let filters, let kernelSize, let stride, let padding, let useBias, _):
                let geometry: TransposedConvolutionGeometry = switch padding {
                case .same: .same(inputHeight: input.height, inputWidth: input.width, inputChannels: input.channels,
                                  outputChannels: filters, kernelSize: kernelSize, stride: stride)
                case .explicit(let p): .padded(inputHeight: input.height, inputWidth: input.width,
                                               inputChannels: input.channels, outputChannels: filters,
                                               kernelSize: kernelSize, stride: stride, padding: p)
                }
                built[index] = .transposedConvolution(ConvTranspose2DLayer(name: names[index]!, geometry: geometry,
                                                                           layout: layout, useBias: useBias))
            case .batchNormalization:
                built[index] = .batchNormalization(BatchNormLayer(name: names[index]!, channels: input.channels,
                                                                  conventions: description.conventions,
                                                                  layout: layout, stateLayout: stateLayout))
            case .reshape, .flatten:
                built[index] = .view
            case .activation:
                break
            case .dropout(let rate):
                built[index] = .dropout(DropoutLayer(rate: rate, elementsPerSample: input.elementsPerImage,
                                                     substream: dropoutSubstream + UInt32(dropoutOrdinals.firstIndex(of: index)!)))
            }
        }
        // In model order; an activation attached to a layer (Keras' `activation=`) becomes a layer of its own after
        // it, on the same shape.
        var layers: [NetworkLayer] = [], layerShapes: [TensorShape] = [shapes[0]]
        for index in description.layers.indices {
            if let layer = built[index] {
                layers.append(layer)
                layerShapes.append(shapes[index + 1])
            }
            switch description.layers[index].activation {
            case .selu: layers.append(.selu(SELULayer()))
            case .tanh: layers.append(.tanh(TanhLayer()))
            case .leakyReLU(let slope): layers.append(.leakyReLU(LeakyReLULayer(slope: slope)))
            case .relu: layers.append(.relu(ReLULayer()))
            case .sigmoid, nil: continue  // the sigmoid is the loss's
            }
            layerShapes.append(shapes[index + 1])
        }
        self.layers = layers
        self.shapes = layerShapes
        parameters = AlignedBuffer(count: layout.totalCount)
        state = AlignedBuffer(count: stateLayout.totalCount)
    }
}

extension Network {
    /// The model's initialisation (`ModelConventions`). Keras: Glorot-uniform kernels (the k-th kernel in model order
    /// from substream `kernelSubstream + k`), zero biases, BatchNorm gamma 1, beta 0. PyTorch's DCGAN `weights_init`:
    /// kernels N(0, 0.02) (the same substreams), the b-th BatchNorm's gamma N(1, 0.02) (substream
    /// `kernelSubstream + b`, index 1, so it never meets a kernel's numbers), beta 0. Running mean 0, variance 1.
    public func initialize(random: CounterRandom) {
        parameters.fill(with: 0)
        var kernels: UInt32 = 0, normalizations: UInt32 = 0
        for layer in layers {
            if let normalization = layer.batchNormalization {
                normalization.initialize(parameters: parameters.pointer, state: state.pointer)
                if model.conventions == .pytorch {
                    scaledNormal(normalization.gamma, mean: 1, deviation: 0.02, random: random,
                                 substream: kernelSubstream + normalizations, index: 1)
                }
                normalizations += 1
            }
            // A weighted layer's slots are its kernel, then its bias (left at zero).
            if let kernel = layer.weightSlots.first {
                switch model.conventions {
                case .keras:
                    glorotUniform(kernel, into: parameters.pointer, random: random, substream: kernelSubstream + kernels)
                case .pytorch:
                    scaledNormal(kernel, mean: 0, deviation: 0.02, random: random, substream: kernelSubstream + kernels,
                                 index: 0)
                }
                kernels += 1
            }
        }
        packWeights()
    }

    /// N(mean, deviation²) into `slot`, element by element from the initialisation stream.
    private func scaledNormal(_ slot: ParameterSlot, mean: Float, deviation: Float, random: CounterRandom,
                              substream: UInt32, index: Int) {
        let values = parameters.pointer + slot.offset
        random.normal(step: 0, stream: .initialization, substream: substream, index: index, count: slot.count,
                      into: values)
        for i in 0..<slot.count { values[i] = mean + deviation * values[i] }
    }

    /// Refreshes the packed weight matrices every shard multiplies by; call after every change of `parameters`
    /// outside training (the trainer packs inside its step).
    public func packWeights() {
        packingPlan().packAll()
    }

    /// The packing work of `packWeights`, panel by panel, for running it as a phase of a training step.
    public func packingPlan() -> PackingPlan {
        PackingPlan(layers.flatMap { $0.packingJobs(parameters: parameters.pointer) })
    }

    /// One sample's input and output.
    public var inputShape: TensorShape { shapes[0] }
    public var outputShape: TensorShape { shapes[layers.count] }
    public var inputElements: Int { inputShape.elementsPerImage }
    public var outputElements: Int { outputShape.elementsPerImage }
    public var trainableParameterCount: Int { layout.slots.reduce(0) { $0 + $1.count } }
    public var stateCount: Int { stateLayout.slots.reduce(0) { $0 + $1.count } }

    /// Multiply-adds of one sample's forward pass.
    public var multiplyAddsPerSample: Int { layers.reduce(0) { $0 + $1.multiplyAddsPerSample } }
    /// Multiply-adds of the first weighted layer's forward pass: the input gradient that training skips when the
    /// input needs none costs as much.
    var firstLayerMultiplyAdds: Int { layers.first(where: \.isWeighted)?.multiplyAddsPerSample ?? 0 }

    /// The layer indices of the BatchNorm layers, in model order: where a training pass stops for a reduction.
    var batchNormalizationLayers: [Int] { layers.indices.filter { layers[$0].batchNormalization != nil } }

    /// How many leading entries of the gradient vector shards compute: everything but the batch-wide first layer's
    /// tensors, which `layout` puts last.
    public var shardedGradientCount: Int {
        guard batchWideFirstLayer, case .dense(let first) = layers[0] else { return layout.totalCount }
        return first.kernel.offset
    }

    /// Positions in 0..<count of the gradient vector that a shard's pass leaves unwritten: everything but the weighted
    /// layers' kernels and biases (BatchNorm's gamma and beta come from the reductions; padding between tensors), and
    /// the batch-wide first layer's, which no shard writes.
    func unwrittenGradientRanges(count: Int) -> [Range<Int>] {
        var written: [Range<Int>] = []
        for (index, layer) in layers.enumerated() where !(index == 0 && batchWideFirstLayer) {
            written += layer.weightSlots.map { $0.offset..<($0.offset + $0.count) }
        }
        var unwritten: [Range<Int>] = [], position = 0
        for range in written.sorted(by: { $0.lowerBound < $1.lowerBound }) where range.lowerBound < count {
            if position < range.lowerBound { unwritten.append(position..<range.lowerBound) }
            position = max(position, range.upperBound)
        }
        if position < count { unwritten.append(position..<count) }
        return unwritten
    }

    /// The BatchNorm state of one minibatch, per layer index (nil for other layers).
    func makeNorms(reducer: ShardReducer) -> [BatchNormBatch?] {
        layers.map { layer in layer.batchNormalization.map { BatchNormBatch(channels: $0.channels, reducer: reducer) } }
    }

    /// Inference mode: every BatchNorm's scale and shift from its running statistics, into `norms`.
    func prepareInference(norms: [BatchNormBatch?]) {
        for (layer, norm) in zip(layers, norms) {
            layer.batchNormalization?.prepareInference(parameters: parameters.pointer, state: state.pointer, batch: norm!)
        }
    }

    /// Training mode, after every shard's statistics: each BatchNorm's reduced gamma/beta gradients into `gradients`.
    func writeNormalizationGradients(into gradients: UnsafeMutablePointer<Float>, norms: [BatchNormBatch?],
                                     accumulate: Bool = false) {
        for (layer, norm) in zip(layers, norms) {
            layer.batchNormalization?.writeParameterGradients(into: gradients, batch: norm!, accumulate: accumulate)
        }
    }
}
