#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

public enum OptimizerKind: String, Sendable, CaseIterable {
    case rmsprop
    case adam

    /// The seed's RMSprop uses Keras' default rate; Adam uses the DCGAN paper's.
    public var defaultLearningRate: Float { self == .rmsprop ? 1e-3 : 2e-4 }
}

/// RMSprop (Keras defaults: rho 0.9, epsilon 1e-7, no momentum; the update w −= lr·g / (√v + ε) as PyTorch writes
/// it, so the peer script steps the same way) or Adam (beta1 0.5 as in the DCGAN paper, beta2 0.999, epsilon 1e-7 —
/// 1e-8 placed as `torch.optim.Adam` places it for models with PyTorch conventions —
/// bias-corrected). The update is element-wise, so it is cut into slices and run in parallel without touching the
/// parity contract.
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public var learningRate: Float
    public let rho: Float = 0.9
    public let beta1: Float = 0.5
    public let beta2: Float = 0.999
    /// 1e-7 (Keras) or 1e-8 (PyTorch, whose Adam adds it after the bias correction of √v: `stepEpsilon`).
    public let epsilon: Float
    public let conventions: ModelConventions
    /// RMSprop: the running mean of g² ("velocity"); Adam: the first moment ("momentum").
    public let first: AlignedBuffer
    /// Adam only: the second moment ("velocity").
    public let second: AlignedBuffer
    public var iterations: Int = 0

    public init(kind: OptimizerKind, learningRate: Float, parameterCount: Int, conventions: ModelConventions = .keras) {
        self.kind = kind
        self.conventions = conventions
        epsilon = conventions == .keras ? 1e-7 : 1e-8
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
    /// The epsilon of the update w −= correctedRate·m / (√v + ε̂) this step: Keras' ε̂ = ε; PyTorch divides √v by
    /// √(1 − β2ᵗ) before adding ε, which is the same update with ε̂ = ε·√(1 − β2ᵗ).
    private var stepEpsilon: Float = 0

    /// Starts an update: counts the step. Then `apply` every slice of the parameter vector, in any order.
    public func beginStep() {
        iterations += 1
        let t = Double(iterations)
        let varianceCorrection = (1 - pow(Double(beta2), t)).squareRoot()
        correctedRate = Float(Double(learningRate) * varianceCorrection / (1 - pow(Double(beta1), t)))
        stepEpsilon = conventions == .keras ? epsilon : Float(Double(epsilon) * varianceCorrection)
    }

    /// Updates `parameters[range]` from `gradients[range]`. Element-wise, so slices can run in parallel.
    public func apply(_ range: Range<Int>, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>) {
        let start = range.lowerBound
        switch kind {
        case .rmsprop:
            OptimizerUpdates.rmsprop(count: range.count, parameters: parameters + start, gradients: gradients + start,
                                     velocity: first.pointer + start, learningRate: learningRate, rho: rho,
                                     epsilon: epsilon)
        case .adam:
            OptimizerUpdates.adam(count: range.count, parameters: parameters + start, gradients: gradients + start,
                                  momentum: first.pointer + start, velocity: second.pointer + start,
                                  correctedRate: correctedRate, beta1: beta1, beta2: beta2, epsilon: stepEpsilon)
        }
    }
}
