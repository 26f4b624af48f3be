/// BatchNorm pieces over a (rows × channels) row-major block, rows being every (n, y, x) of an NHWC shard.
///
/// Statistics are sums, not means, so that shards can be added in a fixed order and divided once by the whole
/// minibatch's row count ("synchronised BatchNorm"); they accumulate in Double because tens of thousands of floats
/// are summed and the variance is taken as E[x²] − E[x]².
public enum BatchNormalization {
    /// Channels go eight at a time through `SIMD8` lanes, each lane doing exactly the scalar loop's operations in the
    /// same order (no fused multiply-adds), so a channel's bits never depend on which path it took; the channels past
    /// the last multiple of eight take the scalar loop. A test runs each channel alone against the whole block.
    static let lanes = 8

    /// sums[c] = Σ x, squares[c] = Σ x², rows in ascending order.
    public static func channelSums(_ x: UnsafePointer<Float>, rows: Int, channels: Int,
                                   sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>) {
        pairedSums(rows: rows, channels: channels, into: sums, and: squares, lanes: { offset, _ in
            let v = SIMD8<Double>(Elementwise.load(x + offset))
            return (v, v * v)
        }, scalar: { offset, _ in
            let v = Double(x[offset])
            return (v, v * v)
        })
    }

    /// Two per-channel sums over the rows, in ascending row order: terms(offset of (row, c), c) gives each row's two
    /// terms, for eight channels at once (`lanes`) or one (`scalar`). The sums stay in registers across the rows.
    @inline(__always)
    static func pairedSums(rows: Int, channels: Int, into first: UnsafeMutablePointer<Double>,
                           and second: UnsafeMutablePointer<Double>,
                           lanes vectorTerms: (_ offset: Int, _ channel: Int) -> (SIMD8<Double>, SIMD8<Double>),
                           scalar scalarTerms: (_ offset: Int, _ channel: Int) -> (Double, Double)) {
        let vectorChannels = channels / lanes * lanes
        var c = 0
        while c < vectorChannels {
            var sum = SIMD8<Double>(), otherSum = SIMD8<Double>()
            for row in 0..<rows {
                let terms = vectorTerms(row &* channels &+ c, c)
                sum += terms.0
                otherSum += terms.1
            }
            UnsafeMutableRawPointer(first + c).storeBytes(of: sum, as: SIMD8<Double>.self)
            UnsafeMutableRawPointer(second + c).storeBytes(of: otherSum, as: SIMD8<Double>.self)
            c += lanes
        }
        for c in vectorChannels..<channels {
            var sum = 0.0, otherSum = 0.0
            for row in 0..<rows {
                let terms = scalarTerms(row &* channels &+ c, c)
                sum += terms.0
                otherSum += terms.1
            }
            first[c] = sum
            second[c] = otherSum
        }
    }

    /// Per-channel affine map y = x·scale[c] + shift[c], which is how normalisation is applied once mean, variance,
    /// gamma and beta are folded: scale = gamma/√(var+eps), shift = beta − mean·scale. y may alias x.
    public static func applyAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int,
                                   channels: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>) {
        let vectorChannels = channels / lanes * lanes
        for row in 0..<rows {
            let source = x + row &* channels, destination = y + row &* channels
            var c = 0
            while c < vectorChannels {
                let v = Elementwise.load(source + c)
                Elementwise.store(Elementwise.load(shift + c).addingProduct(v, Elementwise.load(scale + c)),
                                  destination + c)
                c += lanes
            }
            for c in vectorChannels..<channels {
                destination[c] = shift[c].addingProduct(source[c], scale[c])
            }
        }
    }

    /// Backward sums: sumGradient[c] = Σ dy, sumGradientTimesNormalized[c] = Σ dy·x̂ with x̂ = (x − mean)·inverseStd.
    public static func backwardSums(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                    rows: Int, channels: Int, mean: UnsafePointer<Float>,
                                    inverseStandardDeviation: UnsafePointer<Float>,
                                    sumGradient: UnsafeMutablePointer<Double>,
                                    sumGradientTimesNormalized: UnsafeMutablePointer<Double>) {
        pairedSums(rows: rows, channels: channels, into: sumGradient, and: sumGradientTimesNormalized, lanes: { offset, c in
            let g = SIMD8<Double>(Elementwise.load(dy + offset))
            let normalized = (Elementwise.load(x + offset) - Elementwise.load(mean + c))
                * Elementwise.load(inverseStandardDeviation + c)
            return (g, g * SIMD8<Double>(normalized))
        }, scalar: { offset, c in
            let g = Double(dy[offset])
            return (g, g * Double((x[offset] - mean[c]) * inverseStandardDeviation[c]))
        })
    }

    /// dx = gamma·inverseStd · (dy − (meanGradient[c] + x̂·meanGradientTimesNormalized[c])), where the two means are
    /// the whole minibatch's Σdy/N and Σdy·x̂/N. dx may alias dy.
    public static func backwardInput(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                     inputGradient dx: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                                     mean: UnsafePointer<Float>, inverseStandardDeviation: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, meanGradient: UnsafePointer<Float>,
                                     meanGradientTimesNormalized: UnsafePointer<Float>) {
        let vectorChannels = channels / lanes * lanes
        for row in 0..<rows {
            let offset = row &* channels
            var c = 0
            while c < vectorChannels {
                let inverse = Elementwise.load(inverseStandardDeviation + c)
                let normalized = (Elementwise.load(x + offset + c) - Elementwise.load(mean + c)) * inverse
                let centred = Elementwise.load(dy + offset + c)
                    - (Elementwise.load(meanGradient + c) + normalized * Elementwise.load(meanGradientTimesNormalized + c))
                Elementwise.store(Elementwise.load(gamma + c) * inverse * centred, dx + offset + c)
                c += lanes
            }
            for c in vectorChannels..<channels {
                let normalized = (x[offset + c] - mean[c]) * inverseStandardDeviation[c]
                dx[offset + c] = gamma[c] * inverseStandardDeviation[c]
                    * (dy[offset + c] - (meanGradient[c] + normalized * meanGradientTimesNormalized[c]))
            }
        }
    }
}
