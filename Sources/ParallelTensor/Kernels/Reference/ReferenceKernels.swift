#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scalar twins of the convolution, activation, BatchNorm and loss kernels: direct loops over the definitions, in
/// Double, on Swift arrays. Deliberately share no code with the fast kernels (no im2col, no GEMM) so that a test
/// comparing the two checks the fast path against the mathematics rather than against itself.
extension Reference {
    /// Direct Conv2D: out[n, oy, ox, co] = Σ in[n, oy·s + ky − padTop, ox·s + kx − padLeft, ci] · w[ky, kx, ci, co].
    public static func convolutionForward(_ g: ConvolutionGeometry, batch: Int, input: [Float], weights: [Float])
        -> [Float]
    {
        var output = [Float](repeating: 0, count: batch * g.outputElementsPerImage)
        for n in 0..<batch {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for co in 0..<g.outputChannels {
                        var sum = 0.0
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideY + ky - g.padTop
                            guard iy >= 0 && iy < g.inputHeight else { continue }
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideX + kx - g.padLeft
                                guard ix >= 0 && ix < g.inputWidth else { continue }
                                for ci in 0..<g.inputChannels {
                                    let x = input[((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + ci]
                                    let w = weights[((ky * g.kernelWidth + kx) * g.inputChannels + ci) * g.outputChannels + co]
                                    sum += Double(x) * Double(w)
                                }
                            }
                        }
                        output[((n * g.outputHeight + oy) * g.outputWidth + ox) * g.outputChannels + co] = Float(sum)
                    }
                }
            }
        }
        return output
    }

    /// Direct adjoint of `convolutionForward` with respect to its input (scatter of every tap).
    public static func convolutionBackwardData(_ g: ConvolutionGeometry, batch: Int, outputGradient: [Float],
                                               weights: [Float]) -> [Float] {
        var gradient = [Double](repeating: 0, count: batch * g.inputElementsPerImage)
        for n in 0..<batch {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for co in 0..<g.outputChannels {
                        let dy = Double(outputGradient[((n * g.outputHeight + oy) * g.outputWidth + ox) * g.outputChannels + co])
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideY + ky - g.padTop
                            guard iy >= 0 && iy < g.inputHeight else { continue }
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideX + kx - g.padLeft
                                guard ix >= 0 && ix < g.inputWidth else { continue }
                                for ci in 0..<g.inputChannels {
                                    let w = weights[((ky * g.kernelWidth + kx) * g.inputChannels + ci) * g.outputChannels + co]
                                    gradient[((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + ci] += dy * Double(w)
                                }
                            }
                        }
                    }
                }
            }
        }
        return gradient.map { Float($0) }
    }

    /// Direct weight gradient of `convolutionForward`.
    public static func convolutionBackwardWeights(_ g: ConvolutionGeometry, batch: Int, input: [Float],
                                                  outputGradient: [Float]) -> [Float] {
        var gradient = [Double](repeating: 0, count: g.weightCount)
        for n in 0..<batch {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    for co in 0..<g.outputChannels {
                        let dy = Double(outputGradient[((n * g.outputHeight + oy) * g.outputWidth + ox) * g.outputChannels + co])
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideY + ky - g.padTop
                            guard iy >= 0 && iy < g.inputHeight else { continue }
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideX + kx - g.padLeft
                                guard ix >= 0 && ix < g.inputWidth else { continue }
                                for ci in 0..<g.inputChannels {
                                    let x = input[((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + ci]
                                    gradient[((ky * g.kernelWidth + kx) * g.inputChannels + ci) * g.outputChannels + co] += dy * Double(x)
                                }
                            }
                        }
                    }
                }
            }
        }
        return gradient.map { Float($0) }
    }

    /// Conv2DTranspose by its textbook definition: every input pixel scatters kernel × value into the full
    /// (H−1)·s + k output, which is then cropped. Keras "same" (`padding` nil) crops (k − s)/2 before and keeps H·s;
    /// PyTorch's `padding=p` crops p on every side, keeping (H−1)·s + k − 2p. Kernel (kh, kw, out, in).
    public static func transposedConvolutionForward(inputHeight: Int, inputWidth: Int, inputChannels: Int,
                                                    outputChannels: Int, kernelSize k: Int, stride s: Int, batch: Int,
                                                    input: [Float], weights: [Float], padding: Int? = nil) -> [Float] {
        let fullHeight = (inputHeight - 1) * s + k, fullWidth = (inputWidth - 1) * s + k
        let outputHeight = padding.map { fullHeight - 2 * $0 } ?? inputHeight * s
        let outputWidth = padding.map { fullWidth - 2 * $0 } ?? inputWidth * s
        let cropTop = padding ?? max(k - s, 0) / 2, cropLeft = padding ?? max(k - s, 0) / 2
        var output = [Float](repeating: 0, count: batch * outputHeight * outputWidth * outputChannels)
        for n in 0..<batch {
            var full = [Double](repeating: 0, count: fullHeight * fullWidth * outputChannels)
            for iy in 0..<inputHeight {
                for ix in 0..<inputWidth {
                    for ci in 0..<inputChannels {
                        let x = Double(input[((n * inputHeight + iy) * inputWidth + ix) * inputChannels + ci])
                        for ky in 0..<k {
                            for kx in 0..<k {
                                for co in 0..<outputChannels {
                                    let w = Double(weights[((ky * k + kx) * outputChannels + co) * inputChannels + ci])
                                    full[((iy * s + ky) * fullWidth + ix * s + kx) * outputChannels + co] += x * w
                                }
                            }
                        }
                    }
                }
            }
            for oy in 0..<outputHeight {
                for ox in 0..<outputWidth {
                    for co in 0..<outputChannels {
                        let fy = oy + cropTop, fx = ox + cropLeft
                        guard fy < fullHeight && fx < fullWidth else { continue }
                        output[((n * outputHeight + oy) * outputWidth + ox) * outputChannels + co] =
                            Float(full[(fy * fullWidth + fx) * outputChannels + co])
                    }
                }
            }
        }
        return output
    }

    public static func leakyReLU(_ x: Float, slope: Float) -> Float { x < 0 ? slope * x : x }
    public static func relu(_ x: Float) -> Float { x > 0 ? x : 0 }

    public static func firstNonFinite(_ x: [Float]) -> Int? { x.firstIndex { $0.isNaN || $0.isInfinite } }

    public static func selu(_ x: Float) -> Float {
        let alpha = 1.6732632423543772, scale = 1.0507009873554805
        let v = Double(x)
        return Float(v > 0 ? scale * v : scale * alpha * (Glibc.exp(v) - 1))
    }

    public static func tanh(_ x: Float) -> Float { Float(Glibc.tanh(Double(x))) }
    public static func sigmoid(_ x: Float) -> Float { Float(1 / (1 + Glibc.exp(-Double(x)))) }

    /// −[y·log σ(l) + (1 − y)·log(1 − σ(l))] in Double.
    /// −log softmax(l)_y by its definition.
    public static func softmaxCrossEntropy(logits: [Double], label: Int) -> Double {
        -Glibc.log(Glibc.exp(logits[label]) / logits.reduce(0) { $0 + Glibc.exp($1) })
    }

    public static func binaryCrossEntropy(logit l: Double, label y: Double) -> Double {
        let logSigmoid = -Glibc.log1p(Glibc.exp(-abs(l))) + min(l, 0)
        let logOneMinusSigmoid = -Glibc.log1p(Glibc.exp(-abs(l))) - max(l, 0)
        return -(y * logSigmoid + (1 - y) * logOneMinusSigmoid)
    }

    /// Training-mode BatchNorm over a (rows × channels) matrix: batch mean and biased variance, then gamma·x̂ + beta.
    public static func batchNormForward(_ x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float],
                                        epsilon: Double) -> (output: [Float], mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: channels), variance = mean
        for r in 0..<rows { for c in 0..<channels { mean[c] += Double(x[r * channels + c]) } }
        for c in 0..<channels { mean[c] /= Double(rows) }
        for r in 0..<rows {
            for c in 0..<channels {
                let d = Double(x[r * channels + c]) - mean[c]
                variance[c] += d * d
            }
        }
        for c in 0..<channels { variance[c] /= Double(rows) }
        var output = [Float](repeating: 0, count: rows * channels)
        for r in 0..<rows {
            for c in 0..<channels {
                let normalized = (Double(x[r * channels + c]) - mean[c]) / (variance[c] + epsilon).squareRoot()
                output[r * channels + c] = Float(Double(gamma[c]) * normalized + Double(beta[c]))
            }
        }
        return (output, mean, variance)
    }
}

/// The optimizer rules for one float at a time, as written in `OptimizerUpdates`.
extension Reference {
    public static func movingAverage(_ average: Float, _ current: Float, decay: Float) -> Float {
        decay * average + (1 - decay) * current
    }

    public static func rmsprop(parameter: inout Float, gradient g: Float, velocity: inout Float, learningRate: Float,
                               rho: Float, epsilon: Float) {
        velocity = rho * velocity + (1 - rho) * g * g
        parameter -= learningRate * g / (velocity.squareRoot() + epsilon)
    }

    public static func adam(parameter: inout Float, gradient g: Float, momentum: inout Float, velocity: inout Float,
                            correctedRate: Float, beta1: Float, beta2: Float, epsilon: Float) {
        momentum = beta1 * momentum + (1 - beta1) * g
        velocity = beta2 * velocity + (1 - beta2) * g * g
        parameter -= correctedRate * momentum / (velocity.squareRoot() + epsilon)
    }
}

extension Reference {
    /// Scalar twin of `ShardTreeGradient.denseGradients`, in the same float order: per shard and element an FMA
    /// chain over the shard's samples from zero, restarted every `GEMM.blockK` samples and the blocks added in order;
    /// the bias the shard's rows added to zero in order; the shards' terms summed by `ShardReduction.referenceSum`.
    /// Returns the kernel (inputs × columns.count) and the bias (columns.count).
    public static func shardTreeDenseGradients(input: [Float], inputs: Int, outputGradient: [Float], outputStride: Int,
                                               columns: Range<Int>, shards: [Range<Int>]) -> (kernel: [Float], bias: [Float]) {
        let width = columns.count
        let terms: [[Float]] = shards.map { range in
            var term = [Float](repeating: 0, count: (inputs + 1) * width)
            for (c, j) in columns.enumerated() {
                for i in 0..<inputs {
                    var total: Float = 0
                    for block in stride(from: range.lowerBound, to: range.upperBound, by: GEMM.blockK) {
                        var sum: Float = 0
                        for k in block..<min(block + GEMM.blockK, range.upperBound) {
                            sum = sum.addingProduct(input[k * inputs + i], outputGradient[k * outputStride + j])
                        }
                        total = block == range.lowerBound ? sum : total + sum
                    }
                    term[i * width + c] = total
                }
                var bias: Float = 0
                for k in range { bias += outputGradient[k * outputStride + j] }
                term[inputs * width + c] = bias
            }
            return term
        }
        let total = ShardReduction.referenceSum(terms)
        return (Array(total[..<(inputs * width)]), Array(total[(inputs * width)...]))
    }
}
