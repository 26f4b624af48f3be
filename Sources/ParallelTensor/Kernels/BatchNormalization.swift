/// BatchNorm pieces over a (rows × channels) row-major block, rows being every (n, y, x) of an NHWC shard.
///
/// Statistics are sums, not means, so that shards can be added in a fixed order and divided once by the whole
/// minibatch's row count ("synchronised BatchNorm"); they accumulate in Double because tens of thousands of floats
/// are summed and the variance is taken as E[x²] − E[x]².
public enum BatchNormalization {
    /// sums[c] (+)= Σ x, squares[c] (+)= Σ x², rows in ascending order.
    public static func channelSums(_ x: UnsafePointer<Float>, rows: Int, channels: Int,
                                   sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>) {
        sums.update(repeating: 0, count: channels)
        squares.update(repeating: 0, count: channels)
        for row in 0..<rows {
            let values = x + row * channels
            for c in 0..<channels {
                let v = Double(values[c])
                sums[c] += v
                squares[c] += v * v
            }
        }
    }

    /// Per-channel affine map y = x·scale[c] + shift[c], which is how normalisation is applied once mean, variance,
    /// gamma and beta are folded: scale = gamma/√(var+eps), shift = beta − mean·scale. y may alias x.
    public static func applyAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int,
                                   channels: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>) {
        if channels % 8 == 0 {
            for row in 0..<rows {
                let source = x + row * channels, destination = y + row * channels
                var c = 0
                while c < channels {
                    let v = Elementwise.load(source + c)
                    Elementwise.store(Elementwise.load(shift + c).addingProduct(v, Elementwise.load(scale + c)),
                                      destination + c)
                    c += 8
                }
            }
        } else {
            for row in 0..<rows {
                for c in 0..<channels {
                    y[row * channels + c] = shift[c].addingProduct(x[row * channels + c], scale[c])
                }
            }
        }
    }

    /// Backward sums: sumGradient[c] = Σ dy, sumGradientTimesNormalized[c] = Σ dy·x̂ with x̂ = (x − mean)·inverseStd.
    public static func backwardSums(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                    rows: Int, channels: Int, mean: UnsafePointer<Float>,
                                    inverseStandardDeviation: UnsafePointer<Float>,
                                    sumGradient: UnsafeMutablePointer<Double>,
                                    sumGradientTimesNormalized: UnsafeMutablePointer<Double>) {
        sumGradient.update(repeating: 0, count: channels)
        sumGradientTimesNormalized.update(repeating: 0, count: channels)
        for row in 0..<rows {
            let values = x + row * channels, gradients = dy + row * channels
            for c in 0..<channels {
                let g = Double(gradients[c])
                sumGradient[c] += g
                sumGradientTimesNormalized[c] += g * Double((values[c] - mean[c]) * inverseStandardDeviation[c])
            }
        }
    }

    /// dx = gamma·inverseStd · (dy − (meanGradient[c] + x̂·meanGradientTimesNormalized[c])), where the two means are
    /// the whole minibatch's Σdy/N and Σdy·x̂/N. dx may alias dy.
    public static func backwardInput(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                     inputGradient dx: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                                     mean: UnsafePointer<Float>, inverseStandardDeviation: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, meanGradient: UnsafePointer<Float>,
                                     meanGradientTimesNormalized: UnsafePointer<Float>) {
        for row in 0..<rows {
            let offset = row * channels
            for c in 0..<channels {
                let normalized = (x[offset + c] - mean[c]) * inverseStandardDeviation[c]
                dx[offset + c] = gamma[c] * inverseStandardDeviation[c]
                    * (dy[offset + c] - (meanGradient[c] + normalized * meanGradientTimesNormalized[c]))
            }
        }
    }
}
