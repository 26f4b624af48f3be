import ParallelTensor

/// LeakyReLU(0.2), as the seed discriminator uses it.
public struct LeakyReLULayer: Sendable {
    public let slope: Float

    public init(slope: Float = 0.2) { self.slope = slope }

    public func forward(count: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        Elementwise.leakyReLU(input, output, count: count, slope: slope)
    }

    /// `input` may be the forward output instead when the slope is positive: the sign test is all backward reads.
    public func backward(count: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>) {
        Elementwise.leakyReLUBackward(input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                                      count: count, slope: slope)
    }
}

/// ReLU, the DCGAN paper's generator activation.
public struct ReLULayer: Sendable {
    public init() {}

    public func forward(count: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        Elementwise.relu(input, output, count: count)
    }

    /// From the output alone (y > 0 exactly where x > 0), so ReLU may write over its input.
    public func backward(count: Int, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>) {
        Elementwise.reluBackward(output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                                 count: count)
    }
}

/// SELU, the activation of the generator's first transposed convolution.
public struct SELULayer: Sendable {
    public init() {}

    public func forward(count: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        Elementwise.selu(input, output, count: count)
    }

    /// The derivative comes from the output alone (y > 0 exactly where x > 0), so the input need not be kept.
    public func backward(count: Int, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>) {
        Elementwise.seluBackward(output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                                 count: count)
    }
}

/// tanh, the generator's output activation (images in [−1, 1]).
public struct TanhLayer: Sendable {
    public init() {}

    public func forward(count: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        Elementwise.tanh(input, output, count: count)
    }

    public func backward(count: Int, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>) {
        Elementwise.tanhBackward(output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                                 count: count)
    }
}

/// Keras Reshape/Flatten between a dense vector and an NHWC image. Channels-last flattening is (h, w, c) order, the
/// memory order of NHWC, so both are views: this type only checks that the sizes agree.
public struct ReshapeLayer: Sendable {
    public let shape: TensorShape

    public init(height: Int, width: Int, channels: Int) {
        shape = TensorShape(batch: 1, height: height, width: width, channels: channels)
    }

    public func checkCompatible(elementsPerSample: Int) {
        precondition(elementsPerSample == shape.elementsPerImage,
                     "Reshape: \(elementsPerSample) elements cannot be viewed as \(shape.height)×\(shape.width)×\(shape.channels)")
    }
}

/// Sigmoid + binary cross-entropy, computed from logits (the stable form); the discriminator's Dense(1, sigmoid) is
/// a Dense(1) whose output goes here. Probabilities (for accuracies) are sigmoid(logit), i.e. logit > 0 ⇔ p > 0.5.
public struct SigmoidCrossEntropyLoss: Sendable {
    public init() {}

    /// Per-sample losses and ∂(mean loss)/∂logit for a minibatch of `totalBatch` samples.
    public func evaluate(count: Int, logits: UnsafePointer<Float>, labels: UnsafePointer<Float>, totalBatch: Int,
                         losses: UnsafeMutablePointer<Float>, logitGradients: UnsafeMutablePointer<Float>) {
        BinaryCrossEntropy.withLogits(logits: logits, labels: labels, count: count, losses: losses,
                                      logitGradients: logitGradients, gradientScale: 1 / Float(totalBatch))
    }
}
