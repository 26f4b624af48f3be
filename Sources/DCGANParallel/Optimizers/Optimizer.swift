import Foundation
import ParallelTensor

public enum OptimizerKind: String, Sendable, CaseIterable {
    case rmsprop
    case adam

    /// The seed's RMSprop uses Keras' default rate; Adam uses the DCGAN paper's.
    public var defaultLearningRate: Float { self == .rmsprop ? 1e-3 : 2e-4 }
}

/// RMSprop (Keras defaults: rho 0.9, epsilon 1e-7, no momentum; the update w −= lr·g / (√v + ε) as PyTorch writes
/// it, so the peer script steps the same way) or Adam (beta1 0.5 as in the DCGAN paper, beta2 0.999, epsilon 1e-7,
/// bias-corrected). The update is element-wise, so it is cut into slices and run in parallel without touching the
/// parity contract.
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public let learningRate: Float
    public let rho: Float = 0.9
    public let beta1: Float = 0.5
    public let beta2: Float = 0.999
    public let epsilon: Float = 1e-7
    /// RMSprop: the running mean of g² ("velocity"); Adam: the first moment ("momentum").
    public let first: AlignedBuffer
    /// Adam only: the second moment ("velocity").
    public let second: AlignedBuffer
    public var iterations: Int = 0

    public init(kind: OptimizerKind, learningRate: Float, parameterCount: Int) {
        self.kind = kind
        self.learningRate = learningRate
        first = AlignedBuffer(count: parameterCount)
        second = AlignedBuffer(count: kind == .adam ? parameterCount : 0)
    }

    /// The names of the per-parameter state tensors, in checkpoint order.
    public var slotNames: [String] { kind == .rmsprop ? ["velocity"] : ["momentum", "velocity"] }

    public func stateBuffer(named name: String) -> AlignedBuffer? {
        switch (kind, name) {
        case (.rmsprop, "velocity"), (.adam, "momentum"): return first
        case (.adam, "velocity"): return second
        default: return nil
        }
    }

    /// Adam's bias-corrected rate for the current step (set by `beginStep`).
    private var correctedRate: Float = 0

    /// Starts an update: counts the step. Then `apply` every slice of the parameter vector, in any order.
    public func beginStep() {
        iterations += 1
        let t = Double(iterations)
        correctedRate = Float(Double(learningRate) * (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t)))
    }

    /// Updates `parameters[range]` from `gradients[range]`. Element-wise, so slices can run in parallel. Eight
    /// elements at a time on SIMD lanes (a last partial group through zero-padded lanes): lane-wise IEEE operations
    /// in a fixed order, no fused multiply-adds, so an element's bits do not depend on where its slice starts.
    public func apply(_ range: Range<Int>, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>) {
        var start = range.lowerBound
        while start < range.upperBound {
            let count = min(8, range.upperBound - start)
            if count == 8 {
                update(parameters: parameters + start, gradients: gradients + start, first: first.pointer + start,
                       second: second.pointer + start)
            } else {
                // Copies of the tail, padded with zeros, so the same SIMD code reads and writes whole groups.
                var scratch = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
                withUnsafeMutableBytes(of: &scratch) { raw in
                    let lanes = raw.bindMemory(to: Float.self).baseAddress!
                    let sources: [UnsafeMutablePointer<Float>] = [parameters, UnsafeMutablePointer(mutating: gradients),
                                                                  first.pointer, second.pointer]
                    let hasSecond = kind == .adam
                    for (slot, source) in sources.enumerated() where slot < 3 || hasSecond {
                        (lanes + 8 * slot).update(from: source + start, count: count)
                    }
                    update(parameters: lanes, gradients: lanes + 8, first: lanes + 16, second: lanes + 24)
                    parameters.advanced(by: start).update(from: lanes, count: count)
                    first.pointer.advanced(by: start).update(from: lanes + 16, count: count)
                    if hasSecond { second.pointer.advanced(by: start).update(from: lanes + 24, count: count) }
                }
            }
            start += count
        }
    }

    /// Eight elements of the update, in place.
    @inline(__always)
    private func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                        first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>) {
        func load(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
            UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
        }
        func store(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
        }
        let g = load(gradients), p = load(parameters)
        switch kind {
        case .rmsprop:
            let velocity = rho * load(first) + (1 - rho) * g * g
            store(velocity, first)
            store(p - learningRate * g / (velocity.squareRoot() + epsilon), parameters)
        case .adam:
            let m = beta1 * load(first) + (1 - beta1) * g
            let v = beta2 * load(second) + (1 - beta2) * g * g
            store(m, first)
            store(v, second)
            store(p - correctedRate * m / (v.squareRoot() + epsilon), parameters)
        }
    }
}
