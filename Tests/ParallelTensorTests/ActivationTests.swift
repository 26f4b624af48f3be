import Foundation
import ParallelTensor
import TestSupport
import XCTest

final class ActivationTests: XCTestCase {
    /// Values spanning the interesting ranges (saturation, zero crossing) and a length that leaves a SIMD tail.
    func sampleInputs() -> [Float] {
        var random = SeededRandom(seed: 11)
        return random.floats(203, in: -6...6) + [0, -0, 1e-8, -1e-8, 20, -20, 80, -80, 100, -100]
    }

    func apply(_ x: [Float], _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        Run.withBuffers([x, x]) { p in
            kernel(p[0], p[1], x.count)
            return Run.array(p[1], x.count)
        }
    }

    func testForwardMatchesReference() {
        let x = sampleInputs()
        assertAllClose(apply(x) { Elementwise.leakyReLU($0, $1, count: $2, slope: 0.2) },
                       x.map { Reference.leakyReLU($0, slope: 0.2) }, relativeTolerance: 0, absoluteTolerance: 0)
        let relu = apply(x) { Elementwise.relu($0, $1, count: $2) }
        XCTAssertEqual(relu.map(\.bitPattern), x.map { Reference.relu($0).bitPattern }, "ReLU gives +0, never −0")
        // SIMD exp: relative error ~1e-7; selu/tanh/sigmoid inherit it (absolute 3e-7 near their saturation).
        assertAllClose(apply(x) { Elementwise.selu($0, $1, count: $2) }, x.map(Reference.selu),
                       relativeTolerance: 3e-7, absoluteTolerance: 3e-7)
        assertAllClose(apply(x) { Elementwise.tanh($0, $1, count: $2) }, x.map(Reference.tanh),
                       relativeTolerance: 1e-6, absoluteTolerance: 3e-7)
        assertAllClose(apply(x) { Elementwise.sigmoid($0, $1, count: $2) }, x.map(Reference.sigmoid),
                       relativeTolerance: 1e-6, absoluteTolerance: 3e-8)
    }

    func testFastExpRelativeError() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let lanes = SIMD8<Float>(x, x + 0.01, x + 0.02, x + 0.03, x + 0.04, x + 0.05, x + 0.06, x + 0.07)
            let result = FastMath.exp(lanes)
            for lane in 0..<8 {
                let exact = Foundation.exp(Double(lanes[lane]))
                worst = max(worst, Float(abs(Double(result[lane]) - exact) / exact))
            }
            x += 0.37
        }
        XCTAssertLessThan(worst, 2e-7)
    }

    func testDerivativesByFiniteDifferences() {
        // Away from the kinks at 0, where finite differences are meaningless.
        let x = sampleInputs().filter { abs($0) > 0.05 && abs($0) < 10 }
        let upstream = SeededRandom.floatsFor(seed: 12, count: x.count)
        func check(_ name: String, forward: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                   backward: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
            let analytic: [Float] = Run.withBuffers([x, x, upstream, x]) { p in
                forward(p[0], p[1], x.count)
                backward(p[0], p[1], p[2], p[3], x.count)
                return Run.array(p[3], x.count)
            }
            for i in x.indices {
                let h: Float = 1e-3
                let plus = apply([x[i] + h], forward)[0], minus = apply([x[i] - h], forward)[0]
                let numeric = Double(upstream[i]) * (Double(plus) - Double(minus)) / (Double(x[i] + h) - Double(x[i] - h))
                XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 2e-3 * max(1, abs(numeric)), "\(name) at \(x[i])")
            }
        }
        check("leakyReLU", forward: { Elementwise.leakyReLU($0, $1, count: $2, slope: 0.2) },
              backward: { x, _, dy, dx, n in Elementwise.leakyReLUBackward(input: x, outputGradient: dy, inputGradient: dx, count: n, slope: 0.2) })
        check("relu", forward: { Elementwise.relu($0, $1, count: $2) },
              backward: { _, y, dy, dx, n in Elementwise.reluBackward(output: y, outputGradient: dy, inputGradient: dx, count: n) })
        check("selu", forward: { Elementwise.selu($0, $1, count: $2) },
              backward: { _, y, dy, dx, n in Elementwise.seluBackward(output: y, outputGradient: dy, inputGradient: dx, count: n) })
        check("tanh", forward: { Elementwise.tanh($0, $1, count: $2) },
              backward: { _, y, dy, dx, n in Elementwise.tanhBackward(output: y, outputGradient: dy, inputGradient: dx, count: n) })
        check("sigmoid", forward: { Elementwise.sigmoid($0, $1, count: $2) },
              backward: { _, y, dy, dx, n in Elementwise.sigmoidBackward(output: y, outputGradient: dy, inputGradient: dx, count: n) })
    }

    func testBinaryCrossEntropyWithLogits() {
        let logits: [Float] = [-30, -3, -0.5, 0, 0.5, 3, 30, 90]
        for label: Float in [0, 1] {
            let labels = [Float](repeating: label, count: logits.count)
            let (losses, gradients) = Run.withBuffers([logits, labels, logits, logits]) { p in
                BinaryCrossEntropy.withLogits(logits: p[0], labels: p[1], count: logits.count, losses: p[2],
                                              logitGradients: p[3], gradientScale: 0.5)
                return (Run.array(p[2], logits.count), Run.array(p[3], logits.count))
            }
            for i in logits.indices {
                let expected = Reference.binaryCrossEntropy(logit: Double(logits[i]), label: Double(label))
                XCTAssertTrue(losses[i].isFinite)
                XCTAssertEqual(Double(losses[i]), expected, accuracy: 1e-6 * max(1, expected), "loss(\(logits[i]), \(label))")
                let h = 1e-3
                let numeric = 0.5 * (Reference.binaryCrossEntropy(logit: Double(logits[i]) + h, label: Double(label))
                    - Reference.binaryCrossEntropy(logit: Double(logits[i]) - h, label: Double(label))) / (2 * h)
                XCTAssertEqual(Double(gradients[i]), numeric, accuracy: 1e-4, "dloss/dlogit(\(logits[i]), \(label))")
            }
        }
    }
}

final class SoftmaxCrossEntropyTests: XCTestCase {
    /// Losses against −log softmax by its definition, gradients against finite differences of it, on logits that
    /// include large ones (where a naive softmax overflows).
    func testLossesAndGradients() {
        var random = SeededRandom(seed: 31)
        let classes = 10, count = 7
        var logits = random.floats(count * classes, in: -4...4)
        logits[3] = 80; logits[15] = -90; logits[27] = 88
        let labels: [Int32] = (0..<count).map { Int32($0 * 3 % classes) }
        var losses = [Float](repeating: 0, count: count), gradients = [Float](repeating: 0, count: count * classes)
        labels.withUnsafeBufferPointer { labelPointer in
            SoftmaxCrossEntropy.withLogits(logits: logits, labels: labelPointer.baseAddress!, count: count,
                                           classes: classes, losses: &losses, logitGradients: &gradients,
                                           gradientScale: 0.5)
        }
        for i in 0..<count {
            let row = (0..<classes).map { Double(logits[i * classes + $0]) }
            let expected = Reference.softmaxCrossEntropy(logits: row.map { $0 - row.max()! }, label: Int(labels[i]))
            XCTAssertTrue(losses[i].isFinite)
            XCTAssertEqual(Double(losses[i]), expected, accuracy: 1e-5 * max(1, expected), "loss \(i)")
            for j in 0..<classes {
                var plus = row, minus = row
                plus[j] += 1e-4; minus[j] -= 1e-4
                let numeric = 0.5 * (Reference.softmaxCrossEntropy(logits: plus.map { $0 - row.max()! }, label: Int(labels[i]))
                    - Reference.softmaxCrossEntropy(logits: minus.map { $0 - row.max()! }, label: Int(labels[i]))) / 2e-4
                XCTAssertEqual(Double(gradients[i * classes + j]), numeric, accuracy: 1e-4, "∂loss/∂logit[\(i), \(j)]")
            }
        }
    }
}

extension SeededRandom {
    static func floatsFor(seed: UInt64, count: Int) -> [Float] {
        var random = SeededRandom(seed: seed)
        return random.floats(count)
    }
}
