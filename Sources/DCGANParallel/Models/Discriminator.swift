import ParallelTensor

/// The seed discriminator (docs/ARCHITECTURE.md §1): Conv2D(64, 5×5, s2) → LeakyReLU(0.2) → Dropout(0.3) →
/// Conv2D(128, 5×5, s2) → LeakyReLU(0.2) → Dropout(0.3) → Flatten → Dense(1) whose logit goes to the sigmoid
/// cross-entropy.
public final class Discriminator: @unchecked Sendable {
    public let layout = ParameterLayout()
    public let convolution1: Conv2DLayer
    public let activation = LeakyReLULayer(slope: 0.2)
    public let dropout1: DropoutLayer
    public let convolution2: Conv2DLayer
    public let dropout2: DropoutLayer
    public let flatten: ReshapeLayer
    public let dense: DenseLayer
    public let parameters: AlignedBuffer

    /// Samples per forward/backward pass. The discriminator has no batch statistics, so a shard's samples can go
    /// through it a few at a time, which keeps its activations (~300 KB a sample) small whatever the batch size.
    public static let chunkSize = 2

    public init(imageSide: Int = Generator.imageSide) {
        convolution1 = Conv2DLayer(name: "discriminator.conv2d",
                                   geometry: .same(inputHeight: imageSide, inputWidth: imageSide, inputChannels: 1,
                                                   outputChannels: 64, kernelSize: 5, stride: 2),
                                   layout: layout)
        dropout1 = DropoutLayer(rate: 0.3, elementsPerSample: convolution1.outputElements, substream: 0)
        let middle = convolution1.geometry.outputHeight
        convolution2 = Conv2DLayer(name: "discriminator.conv2d_1",
                                   geometry: .same(inputHeight: middle, inputWidth: middle, inputChannels: 64,
                                                   outputChannels: 128, kernelSize: 5, stride: 2),
                                   layout: layout)
        dropout2 = DropoutLayer(rate: 0.3, elementsPerSample: convolution2.outputElements, substream: 1)
        flatten = ReshapeLayer(height: convolution2.geometry.outputHeight, width: convolution2.geometry.outputWidth,
                               channels: 128)
        dense = DenseLayer(name: "discriminator.dense", inputSize: convolution2.outputElements, outputSize: 1,
                           layout: layout)
        flatten.checkCompatible(elementsPerSample: dense.inputSize)
        parameters = AlignedBuffer(count: layout.totalCount)
    }

    public func initialize(random: CounterRandom) {
        parameters.fill(with: 0)
        glorotUniform(convolution1.kernel, into: parameters.pointer, random: random, substream: 10)
        glorotUniform(convolution2.kernel, into: parameters.pointer, random: random, substream: 11)
        glorotUniform(dense.kernel, into: parameters.pointer, random: random, substream: 12)
        packWeights()
    }

    /// Refreshes the packed weight matrices every shard multiplies by; call after every change of `parameters`
    /// outside training (the trainer packs inside its step).
    public func packWeights() {
        packingPlan().packAll()
    }

    /// The packing work of `packWeights`, panel by panel, for running it as a phase of a training step.
    public func packingPlan() -> PackingPlan {
        PackingPlan(convolution1.packingJobs(parameters: parameters.pointer)
                    + convolution2.packingJobs(parameters: parameters.pointer)
                    + dense.packingJobs(parameters: parameters.pointer))
    }

    public var imageElements: Int { convolution1.inputElements }
    public var trainableParameterCount: Int { layout.slots.reduce(0) { $0 + $1.count } }

    public var multiplyAddsPerSample: Int {
        convolution1.geometry.multiplyAddsPerImage + convolution2.geometry.multiplyAddsPerImage
            + dense.multiplyAddsPerSample
    }

    public func makeActivations(capacity: Int) -> DiscriminatorActivations {
        DiscriminatorActivations(capacity: capacity, imageSize: imageElements, firstSize: convolution1.outputElements,
                                 secondSize: convolution2.outputElements)
    }

    /// Training-mode forward (dropout active) of `n` images at `input`: logits in `activations.logits`. Dropout masks
    /// are those of samples firstSample..<firstSample+n at (step, phase).
    public func forward(batch n: Int, input: UnsafePointer<Float>, random: CounterRandom, step: UInt64, phase: GANPhase,
                        firstSample: Int, activations a: DiscriminatorActivations, workspace: KernelWorkspace) {
        let p = UnsafePointer(parameters.pointer)
        a.input = input
        convolution1.forward(batch: n, input: input, output: a.convolved1.pointer, parameters: p, workspace: workspace)
        activation.forward(count: n * convolution1.outputElements, input: a.convolved1.pointer,
                           output: a.dropped1.pointer)
        dropout1.makeMask(random: random, step: step, phase: phase, firstSample: firstSample, batch: n,
                          mask: a.mask1.pointer)
        dropout1.apply(batch: n, input: a.dropped1.pointer, mask: a.mask1.pointer, output: a.dropped1.pointer)
        convolution2.forward(batch: n, input: a.dropped1.pointer, output: a.convolved2.pointer, parameters: p,
                             workspace: workspace)
        activation.forward(count: n * convolution2.outputElements, input: a.convolved2.pointer,
                           output: a.dropped2.pointer)
        dropout2.makeMask(random: random, step: step, phase: phase, firstSample: firstSample, batch: n,
                          mask: a.mask2.pointer)
        dropout2.apply(batch: n, input: a.dropped2.pointer, mask: a.mask2.pointer, output: a.dropped2.pointer)
        dense.forward(batch: n, input: a.dropped2.pointer, output: a.logits.pointer, parameters: p,
                      workspace: workspace)
    }

    /// Backward from ∂loss/∂logit (in `activations.logitGradients`). Parameter gradients go to `gradients` (nil when
    /// the discriminator is frozen, as in the generator's phase); ∂loss/∂input to `inputGradient` when given.
    /// With `accumulateGradients` the parameter gradients are added to `gradients` (for the chunks of a shard
    /// after its first).
    public func backward(batch n: Int, activations a: DiscriminatorActivations,
                         gradients: UnsafeMutablePointer<Float>?, inputGradient: UnsafeMutablePointer<Float>?,
                         workspace: KernelWorkspace, accumulateGradients: Bool = false) {
        let p = UnsafePointer(parameters.pointer)
        let second = a.convolution2Gradient.pointer, first = a.convolution1Gradient.pointer
        dense.backward(batch: n, input: a.dropped2.pointer, outputGradient: a.logitGradients.pointer,
                       inputGradient: second, parameters: p, gradients: gradients, workspace: workspace,
                       accumulateGradients: accumulateGradients)
        dropout2.apply(batch: n, input: second, mask: a.mask2.pointer, output: second)
        activation.backward(count: n * convolution2.outputElements, input: a.convolved2.pointer,
                            outputGradient: second, inputGradient: second)
        convolution2.backward(batch: n, input: a.dropped1.pointer, outputGradient: second,
                              inputGradient: first, parameters: p, gradients: gradients,
                              workspace: workspace, accumulateGradients: accumulateGradients)
        dropout1.apply(batch: n, input: first, mask: a.mask1.pointer, output: first)
        activation.backward(count: n * convolution1.outputElements, input: a.convolved1.pointer,
                            outputGradient: first, inputGradient: first)
        convolution1.backward(batch: n, input: a.input!, outputGradient: first,
                              inputGradient: inputGradient, parameters: p, gradients: gradients, workspace: workspace,
                              accumulateGradients: accumulateGradients)
    }
}

/// One shard's discriminator activations (NHWC, `capacity` samples) and gradient scratch.
public final class DiscriminatorActivations: @unchecked Sendable {
    /// The images the last forward pass read (kept for the first layer's weight gradient).
    public var input: UnsafePointer<Float>?
    public let images: AlignedBuffer
    public let convolved1, mask1, dropped1, convolved2, mask2, dropped2: AlignedBuffer
    public let logits, labels, losses, logitGradients: AlignedBuffer
    /// ∂loss/∂(output of the first and of the second convolution), each worked in place back through its dropout
    /// and activation.
    public let convolution1Gradient, convolution2Gradient: AlignedBuffer

    init(capacity: Int, imageSize: Int, firstSize: Int, secondSize: Int) {
        images = AlignedBuffer(count: capacity * imageSize)
        convolved1 = AlignedBuffer(count: capacity * firstSize)
        mask1 = AlignedBuffer(count: capacity * firstSize)
        dropped1 = AlignedBuffer(count: capacity * firstSize)
        convolved2 = AlignedBuffer(count: capacity * secondSize)
        mask2 = AlignedBuffer(count: capacity * secondSize)
        dropped2 = AlignedBuffer(count: capacity * secondSize)
        logits = AlignedBuffer(count: capacity)
        labels = AlignedBuffer(count: capacity)
        losses = AlignedBuffer(count: capacity)
        logitGradients = AlignedBuffer(count: capacity)
        convolution1Gradient = AlignedBuffer(count: capacity * firstSize)
        convolution2Gradient = AlignedBuffer(count: capacity * secondSize)
    }
}
