import ParallelTensor

/// Keras Conv2D on NHWC: kernel (kh, kw, in, out), bias (out) unless `useBias` is false; the padding is the
/// geometry's.
public struct Conv2DLayer: Sendable {
    public let geometry: ConvolutionGeometry
    public let kernel: ParameterSlot
    public let bias: ParameterSlot?
    public let packed: PackedWeights

    /// `needsInputGradient`: whether backward must produce ∂loss/∂input (false for a first layer fed with data only).
    public init(name: String, geometry: ConvolutionGeometry, layout: ParameterLayout, needsInputGradient: Bool = true,
                useBias: Bool = true) {
        self.geometry = geometry
        kernel = layout.add("\(name).kernel", shape: [geometry.kernelHeight, geometry.kernelWidth,
                                                      geometry.inputChannels, geometry.outputChannels])
        bias = useBias ? layout.add("\(name).bias", shape: [geometry.outputChannels]) : nil
        packed = PackedWeights(depth: geometry.patchSize, columns: geometry.outputChannels,
                               withTranspose: needsInputGradient)
    }

    public func packingJobs(parameters: UnsafePointer<Float>) -> [(matrix: PackedMatrix, source: MatrixOperand)] {
        packed.jobs(parameters + kernel.offset)
    }

    public var inputElements: Int { geometry.inputElementsPerImage }
    public var outputElements: Int { geometry.outputElementsPerImage }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, workspace: KernelWorkspace) {
        Convolution.forward(geometry, batch: batch, input: input, weights: parameters + kernel.offset, output: output,
                            workspace: workspace, packedWeights: packed.matrix)
        if let bias {
            Elementwise.addBias(parameters + bias.offset, to: output, rows: batch * geometry.outputPixelsPerImage,
                                channels: geometry.outputChannels)
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>?, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>?, workspace: KernelWorkspace,
                         accumulateGradients: Bool = false) {
        if let gradients {
            Convolution.backwardWeights(geometry, batch: batch, input: input, outputGradient: outputGradient,
                                        weightGradient: gradients + kernel.offset,
                                        accumulate: accumulateGradients, workspace: workspace)
            if let bias {
                Elementwise.biasGradient(outputGradient, rows: batch * geometry.outputPixelsPerImage,
                                         channels: geometry.outputChannels, into: gradients + bias.offset,
                                         accumulate: accumulateGradients)
            }
        }
        if let inputGradient {
            Convolution.backwardData(geometry, batch: batch, outputGradient: outputGradient,
                                     weights: parameters + kernel.offset, inputGradient: inputGradient,
                                     workspace: workspace, packedWeights: packed.transposed)
        }
    }
}
