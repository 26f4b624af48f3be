import DCGANParallel
import ParallelTensor
import TestSupport
import XCTest

/// The optimizer (its SIMD kernels in `OptimizerUpdates`) against the scalar rules in `Reference`, bit for bit, over
/// slices that start and end off the eight-lane grid.
final class OptimizerTests: XCTestCase {
    func testUpdatesMatchTheScalarRulesBitForBit() {
        var random = SeededRandom(seed: 11)
        let count = 203
        for kind in OptimizerKind.allCases {
            let optimizer = Optimizer(kind: kind, learningRate: 0.01, parameterCount: count)
            var parameters = random.floats(count), expected = parameters
            var first = [Float](repeating: 0, count: count), second = first
            for step in 1...3 {
                let gradients = random.floats(count, in: -2...2)
                optimizer.beginStep()
                parameters.withUnsafeMutableBufferPointer { p in
                    gradients.withUnsafeBufferPointer { g in
                        // Uneven slices, applied out of order, as parallel workers would.
                        for range in [13..<101, 0..<13, 101..<count] {
                            optimizer.apply(range, parameters: p.baseAddress!, gradients: g.baseAddress!)
                        }
                    }
                }
                let t = Double(step)
                // As the optimizer computes it: from the Float hyperparameters, in Double.
                let corrected = Float(Double(Float(0.01)) * (1 - pow(Double(Float(0.999)), t)).squareRoot()
                                      / (1 - pow(Double(Float(0.5)), t)))
                for i in 0..<count {
                    switch kind {
                    case .rmsprop:
                        Reference.rmsprop(parameter: &expected[i], gradient: gradients[i], velocity: &first[i],
                                          learningRate: 0.01, rho: 0.9, epsilon: 1e-7)
                    case .adam:
                        Reference.adam(parameter: &expected[i], gradient: gradients[i], momentum: &first[i],
                                       velocity: &second[i], correctedRate: corrected, beta1: 0.5, beta2: 0.999,
                                       epsilon: 1e-7)
                    }
                }
                assertBitIdentical(parameters, expected, "\(kind) parameters, step \(step)")
                assertBitIdentical(optimizer.first.array, first, "\(kind) first moment, step \(step)")
                if kind == .adam { assertBitIdentical(optimizer.second.array, second, "adam second moment, step \(step)") }
            }
        }
    }
}
