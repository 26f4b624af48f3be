import ParallelTensor

/// Keras Conv2DTranspose on NHWC: kernel (kh, kw, out, in), bias (out) unless `useBias` is false; the padding is
/// the geometry's ("same": output = input × stride).
public struct ConvTranspose2DLayer: Sendable {
    public let geometry: TransposedConvolutionGeometry
    public let kernel: ParameterSlot
    public let bias: ParameterSlot?
    public let packed: PackedWeights

    public init(name: String, geometry: TransposedConvolutionGeometry, layout: ParameterLayout, useBias: Bool = true) {
        self.geometry = geometry
        kernel = layout.add("\(name).kernel", shape: [geometry.adjoint.kernelHeight, geometry.adjoint.kernelWidth,
                                                      geometry.outputChannels, geometry.inputChannels])
        bias = useBias ? layout.add("\(name).bias", shape: [geometry.outputChannels]) : nil
        // The forward pass multiplies by the adjoint convolution's transposed weights, backward-data by its weights.
        packed = PackedWeights(depth: geometry.adjoint.patchSize, columns: geometry.inputChannels, withTranspose: true)
    }

    public func packingJobs(parameters: UnsafePointer<Float>) -> [(matrix: PackedMatrix, source: MatrixOperand)] {
        packed.jobs(parameters + kernel.offset)
    }

    public var inputElements: Int { geometry.inputElementsPerImage }
    public var outputElements: Int { geometry.outputElementsPerImage }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, workspace: KernelWorkspace) {
        TransposedConvolution.forward(geometry, batch: batch, input: input, weights: parameters + kernel.offset,
                                      output: output, workspace: workspace, packedWeights: packed.transposed)
        if let bias {
            Elementwise.addBias(parameters + bias.offset, to: output,
                                rows: batch * geometry.outputHeight * geometry.outputWidth, channels: geometry.outputChannels)
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>?, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>?, workspace: KernelWorkspace) {
        if let gradients {
            TransposedConvolution.backwardWeights(geometry, batch: batch, input: input, outputGradient: outputGradient,
                                                  weightGradient: gradients + kernel.offset, accumulate: false,
                                                  workspace: workspace)
            if let bias {
                Elementwise.biasGradient(outputGradient, rows: batch * geometry.outputHeight * geometry.outputWidth,
                                         channels: geometry.outputChannels, into: gradients + bias.offset,
                                         accumulate: false)
            }
        }
        if let inputGradient {
            TransposedConvolution.backwardData(geometry, batch: batch, outputGradient: outputGradient,
                                               weights: parameters + kernel.offset, inputGradient: inputGradient,
                                               workspace: workspace, packedWeights: packed.matrix)
        }
    }
}
