import CPUFeatures

/// Element-wise optimizer updates over flat buffers, eight lanes at a time. Lane-wise IEEE operations in a fixed
/// order, no fused multiply-adds and a correctly rounded square root, so every element gets the bits that the rule
/// written out for one float gives (`Reference.rmsprop`, `Reference.adam`), wherever its slice starts.
public enum OptimizerUpdates {
    /// RMSprop in PyTorch's form: v = ρ·v + (1 − ρ)·g²; w −= lr·g / (√v + ε). Updates `count` elements in place.
    public static func rmsprop(count: Int, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                               velocity: UnsafeMutablePointer<Float>, learningRate: Float, rho: Float,
                               epsilon: Float) {
        @inline(__always) func group(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                     _ v: UnsafeMutablePointer<Float>) {
            let gradient = Elementwise.load(g)
            let newVelocity = rho * Elementwise.load(v) + (1 - rho) * gradient * gradient
            Elementwise.store(newVelocity, v)
            let step = learningRate * gradient / (squareRoot(newVelocity) + epsilon)
            Elementwise.store(Elementwise.load(p) - step, p)
        }
        var i = 0
        while i + 8 <= count {
            group(parameters + i, gradients + i, velocity + i)
            i += 8
        }
        if i < count {
            withPaddedTail(count - i, [parameters + i, UnsafeMutablePointer(mutating: gradients + i), velocity + i]) {
                group($0[0], $0[1], $0[2])
            }
        }
    }

    /// Adam with the bias correction folded into `correctedRate`: m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
    /// w −= rate·m / (√v + ε).
    public static func adam(count: Int, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                            momentum: UnsafeMutablePointer<Float>, velocity: UnsafeMutablePointer<Float>,
                            correctedRate: Float, beta1: Float, beta2: Float, epsilon: Float) {
        @inline(__always) func group(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                     _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>) {
            let gradient = Elementwise.load(g)
            let newMomentum = beta1 * Elementwise.load(m) + (1 - beta1) * gradient
            let newVelocity = beta2 * Elementwise.load(v) + (1 - beta2) * gradient * gradient
            Elementwise.store(newMomentum, m)
            Elementwise.store(newVelocity, v)
            let step = correctedRate * newMomentum / (squareRoot(newVelocity) + epsilon)
            Elementwise.store(Elementwise.load(p) - step, p)
        }
        var i = 0
        while i + 8 <= count {
            group(parameters + i, gradients + i, momentum + i, velocity + i)
            i += 8
        }
        if i < count {
            withPaddedTail(count - i, [parameters + i, UnsafeMutablePointer(mutating: gradients + i), momentum + i,
                                       velocity + i]) {
                group($0[0], $0[1], $0[2], $0[3])
            }
        }
    }

    @inline(__always)
    static func squareRoot(_ x: SIMD8<Float>) -> SIMD8<Float> { pgan_square_root8(x) }

    /// Runs `update` on zero-padded eight-float copies of the first `count` (< 8) elements of each buffer, then
    /// copies the results back, so the same SIMD code serves a slice's last partial group.
    static func withPaddedTail(_ count: Int, _ buffers: [UnsafeMutablePointer<Float>],
                               _ update: ([UnsafeMutablePointer<Float>]) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 * buffers.count) { scratch in
            let base = scratch.baseAddress!
            base.initialize(repeating: 0, count: 8 * buffers.count)
            let copies = buffers.indices.map { base + 8 * $0 }
            for (copy, buffer) in zip(copies, buffers) { copy.update(from: buffer, count: count) }
            update(copies)
            for (copy, buffer) in zip(copies, buffers) { buffer.update(from: copy, count: count) }
        }
    }

    /// average = decay·average + (1 − decay)·current, element by element (an exponential moving average of weights).
    public static func movingAverage(count: Int, average: UnsafeMutablePointer<Float>, current: UnsafePointer<Float>,
                                     decay: Float) {
        @inline(__always) func group(_ a: UnsafeMutablePointer<Float>, _ c: UnsafePointer<Float>) {
            Elementwise.store(decay * Elementwise.load(a) + (1 - decay) * Elementwise.load(c), a)
        }
        var i = 0
        while i + 8 <= count {
            group(average + i, current + i)
            i += 8
        }
        if i < count {
            withPaddedTail(count - i, [average + i, UnsafeMutablePointer(mutating: current + i)]) { group($0[0], $0[1]) }
        }
    }
}
