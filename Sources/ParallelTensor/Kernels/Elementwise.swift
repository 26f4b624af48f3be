#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise kernels on contiguous float arrays, eight lanes at a time with a scalar tail.
public enum Elementwise {
    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
    }

    /// Applies a lane-wise function to `count` floats; the tail is padded into one more vector so that every
    /// element goes through the same arithmetic, wherever it sits.
    @inline(__always)
    static func map(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                    _ transform: (SIMD8<Float>) -> SIMD8<Float>) {
        var i = 0
        while i + 8 <= count {
            store(transform(load(x + i)), y + i)
            i += 8
        }
        if i < count {
            var lanes = SIMD8<Float>()
            for lane in 0..<(count - i) { lanes[lane] = x[i + lane] }
            let result = transform(lanes)
            for lane in 0..<(count - i) { y[i + lane] = result[lane] }
        }
    }

    /// The index of the first element that is NaN or ±infinity, or nil when all `count` are finite. Works on the bit
    /// patterns (exponent all ones), eight lanes at a time, so a whole model's weights are checked in a fraction of a
    /// millisecond.
    public static func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        let exponent = SIMD8<UInt32>(repeating: 0x7F80_0000)
        var i = 0
        while i + 8 <= count {
            let bits = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<UInt32>.self)
            if any((bits & exponent) .== exponent) { break }
            i += 8
        }
        while i < count {
            if !x[i].isFinite { return i }
            i += 1
        }
        return nil
    }

    /// destination[i] += source[i]
    @inline(__always)
    public static func add(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            store(load(destination + i) + load(source + i), destination + i)
            i += 8
        }
        while i < count {
            destination[i] += source[i]
            i += 1
        }
    }

    /// Adds `bias[c]` to every row of a (rows × channels) row-major matrix.
    public static func addBias(_ bias: UnsafePointer<Float>, to values: UnsafeMutablePointer<Float>,
                               rows: Int, channels: Int) {
        for row in 0..<rows { add(bias, into: values + row * channels, count: channels) }
    }

    /// biasGradient[c] (+)= Σ_rows gradient[row, c], rows summed in ascending order.
    public static func biasGradient(_ gradient: UnsafePointer<Float>, rows: Int, channels: Int,
                                    into biasGradient: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if !accumulate { biasGradient.update(repeating: 0, count: channels) }
        for row in 0..<rows { add(gradient + row * channels, into: biasGradient, count: channels) }
    }

    /// y = x ≥ 0 ? x : slope·x
    public static func leakyReLU(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                 slope: Float) {
        var i = 0
        while i + 8 <= count {
            let v = load(x + i)
            store(v.replacing(with: v * slope, where: v .< 0), y + i)
            i += 8
        }
        while i < count {
            y[i] = x[i] < 0 ? x[i] * slope : x[i]
            i += 1
        }
    }

    /// dx = dy · (x ≥ 0 ? 1 : slope), with x the activation's input. dx may alias dy.
    public static func leakyReLUBackward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                         inputGradient dx: UnsafeMutablePointer<Float>, count: Int, slope: Float) {
        var i = 0
        while i + 8 <= count {
            let g = load(dy + i)
            store(g.replacing(with: g * slope, where: load(x + i) .< 0), dx + i)
            i += 8
        }
        while i < count {
            dx[i] = x[i] < 0 ? dy[i] * slope : dy[i]
            i += 1
        }
    }

    /// y = max(x, 0), with +0 (not −0) for negative x. y may alias x.
    public static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count: count) { v in v.replacing(with: 0, where: .!(v .> 0)) }
    }

    /// dx = y > 0 ? dy : 0, from the forward output alone (y > 0 exactly where x > 0, as PyTorch's ReLU backward),
    /// so the input need not be kept. dx may alias dy.
    public static func reluBackward(output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                    inputGradient dx: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            store(load(dy + i).replacing(with: 0, where: .!(load(y + i) .> 0)), dx + i)
            i += 8
        }
        while i < count {
            dx[i] = y[i] > 0 ? dy[i] : 0
            i += 1
        }
    }

    public static let seluAlpha: Float = 1.6732632423543772
    public static let seluScale: Float = 1.0507009873554805

    /// y = scale · (x > 0 ? x : alpha·(eˣ − 1))
    public static func selu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let scaleAlpha = seluScale * seluAlpha
        map(x, y, count: count) { v in
            (v * seluScale).replacing(with: scaleAlpha * (FastMath.exp(v) - 1), where: v .<= 0)
        }
    }

    /// dx = dy · (y > 0 ? scale : y + scale·alpha) from the forward output y alone: y > 0 exactly where x > 0, and
    /// below zero y = scale·alpha·(eˣ−1), so the derivative scale·alpha·eˣ is y + scale·alpha. dx may alias dy.
    public static func seluBackward(output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                    inputGradient dx: UnsafeMutablePointer<Float>, count: Int) {
        let scaleAlpha = seluScale * seluAlpha
        var i = 0
        while i + 8 <= count {
            let v = load(y + i)
            let derivative = SIMD8<Float>(repeating: seluScale).replacing(with: v + scaleAlpha, where: v .<= 0)
            store(load(dy + i) * derivative, dx + i)
            i += 8
        }
        while i < count {
            dx[i] = dy[i] * (y[i] > 0 ? seluScale : y[i] + scaleAlpha)
            i += 1
        }
    }

    /// y = tanh(x)
    public static func tanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count: count) { FastMath.tanh($0) }
    }

    /// dx = dy · (1 − y²), y the forward output.
    public static func tanhBackward(output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                    inputGradient dx: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = load(y + i)
            store(load(dy + i) * (1 - v * v), dx + i)
            i += 8
        }
        while i < count {
            dx[i] = dy[i] * (1 - y[i] * y[i])
            i += 1
        }
    }

    /// y = 1 / (1 + e⁻ˣ)
    public static func sigmoid(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count: count) { FastMath.sigmoid($0) }
    }

    /// dx = dy · s(1 − s), s the forward output.
    public static func sigmoidBackward(output s: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                                       inputGradient dx: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = dy[i] * s[i] * (1 - s[i]) }
    }

    /// y = x · mask (dropout with a precomputed mask holding 0 or 1/(1−rate)). y may alias x.
    public static func multiply(_ x: UnsafePointer<Float>, by mask: UnsafePointer<Float>,
                                into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            store(load(x + i) * load(mask + i), y + i)
            i += 8
        }
        while i < count {
            y[i] = x[i] * mask[i]
            i += 1
        }
    }
}

/// Binary cross-entropy on logits, the numerically stable form
/// loss(l, y) = max(l, 0) − l·y + log(1 + e^−|l|), with ∂loss/∂l = sigmoid(l) − y.
public enum BinaryCrossEntropy {
    /// Per-sample losses and their gradients with respect to the logits, each gradient scaled by `gradientScale`
    /// (1/B for a mean over the batch).
    public static func withLogits(logits: UnsafePointer<Float>, labels: UnsafePointer<Float>, count: Int,
                                  losses: UnsafeMutablePointer<Float>, logitGradients: UnsafeMutablePointer<Float>,
                                  gradientScale: Float) {
        for i in 0..<count {
            let l = logits[i], y = labels[i]
            losses[i] = max(l, 0) - l * y + FastMath.log1p(expf(-abs(l)))
            logitGradients[i] = (FastMath.sigmoid(l) - y) * gradientScale
        }
    }
}

/// Softmax cross-entropy on logits over `classes` classes with integer labels, the stable form
/// loss = log Σ e^(l_j − m) − (l_y − m) with m = max l, and ∂loss/∂l_j = softmax_j − [j = y]. Exponentials in Double:
/// ten classes per sample cost nothing next to the network.
public enum SoftmaxCrossEntropy {
    /// Per-sample losses and the logits' gradients (each scaled by `gradientScale`: 1/B for a mean over the batch).
    /// `logits` and `logitGradients` are count × classes, row-major; `labels` count class indices in 0..<classes.
    public static func withLogits(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int, classes: Int,
                                  losses: UnsafeMutablePointer<Float>, logitGradients: UnsafeMutablePointer<Float>,
                                  gradientScale: Float) {
        for i in 0..<count {
            let row = logits + i * classes, gradient = logitGradients + i * classes
            var largest = row[0]
            for j in 1..<classes { largest = max(largest, row[j]) }
            var total = 0.0
            for j in 0..<classes { total += exp(Double(row[j] - largest)) }
            let label = Int(labels[i])
            losses[i] = Float(log(total) - Double(row[label] - largest))
            for j in 0..<classes {
                let probability = exp(Double(row[j] - largest)) / total
                gradient[j] = Float(probability - (j == label ? 1 : 0)) * gradientScale
            }
        }
    }
}
