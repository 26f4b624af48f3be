import ParallelTensor

/// Keras Dense: output (n, out) = input (n, in) · kernel (in, out) + bias (out).
public struct DenseLayer: Sendable {
    public let inputSize: Int
    public let outputSize: Int
    public let kernel: ParameterSlot
    public let bias: ParameterSlot
    public let packed: PackedWeights

    /// `needsInputGradient`: whether backward must produce ∂loss/∂input (false when the input is noise).
    public init(name: String, inputSize: Int, outputSize: Int, layout: ParameterLayout, needsInputGradient: Bool = true) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        kernel = layout.add("\(name).kernel", shape: [inputSize, outputSize])
        bias = layout.add("\(name).bias", shape: [outputSize])
        // A single output is summed directly (`Dense.forwardSingleOutput`), not through packed weights.
        packed = PackedWeights(depth: inputSize, columns: outputSize, withTranspose: needsInputGradient,
                               withMatrix: outputSize > 1)
    }

    public func packingJobs(parameters: UnsafePointer<Float>) -> [(matrix: PackedMatrix, source: MatrixOperand)] {
        packed.jobs(parameters + kernel.offset)
    }

    public var multiplyAddsPerSample: Int { inputSize * outputSize }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, workspace: KernelWorkspace) {
        Dense.forward(batch: batch, inputSize: inputSize, outputSize: outputSize, input: input,
                      weights: parameters + kernel.offset, output: output, workspace: workspace,
                      packedWeights: packed.matrix)
        Elementwise.addBias(parameters + bias.offset, to: output, rows: batch, channels: outputSize)
    }

    /// Output columns `columns` only, of `batch` rows, into `output` (n × columns.count, row stride `outputStride`).
    /// The range must start on a packed panel (`packedColumnAlignment`). Each element gets the same bits as
    /// `forward`'s, so a large layer can be cut by columns into parallel items that each read one slice of the weights.
    public func forward(columns: Range<Int>, batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        outputStride: Int, parameters: UnsafePointer<Float>, workspace: KernelWorkspace) {
        guard let matrix = packed.matrix else { preconditionFailure("forward(columns:) needs more than one output") }
        GEMM.multiply(rows: batch, a: .rowMajor(input, columns: inputSize), packedB: matrix, columns: columns,
                      c: output, ldc: outputStride, accumulate: false, workspace: workspace)
        let bias = parameters + self.bias.offset + columns.lowerBound
        for row in 0..<batch { Elementwise.add(bias, into: output + row * outputStride, count: columns.count) }
    }

    /// Column ranges for `forward(columns:)` must start on a multiple of this.
    public var packedColumnAlignment: Int { GEMM.kernel.microColumns }

    /// Writes the input gradient when `inputGradient` is given, and the parameter gradients when `gradients` is given
    /// (nil for a frozen layer) — overwriting them, or adding to them with `accumulateGradients`.
    public func backward(batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>?, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>?, workspace: KernelWorkspace,
                         accumulateGradients: Bool = false) {
        if let gradients {
            Dense.backwardWeights(batch: batch, inputSize: inputSize, outputSize: outputSize, input: input,
                                  outputGradient: outputGradient, weightGradient: gradients + kernel.offset,
                                  accumulate: accumulateGradients, workspace: workspace)
            Elementwise.biasGradient(outputGradient, rows: batch, channels: outputSize, into: gradients + bias.offset,
                                     accumulate: accumulateGradients)
        }
        if let inputGradient {
            Dense.backwardData(batch: batch, inputSize: inputSize, outputSize: outputSize,
                               outputGradient: outputGradient, weights: parameters + kernel.offset,
                               inputGradient: inputGradient, workspace: workspace, packedWeights: packed.transposed)
        }
    }
}
