/// A chain of parallel phases that `ShardedExecutor.run(_:)` executes in one parallel call: every item of a phase
/// finishes before any item of the next phase starts, and serial steps run in between.
///
/// Each parallel call wakes the worker threads once, and where waking a thread goes through a sandboxing kernel that
/// costs about a millisecond on 16 cores. A training step needs a dozen barriers (synchronised BatchNorm, the
/// all-reduces, the optimizer), so it is written as one `PhasedWork`: the workers stay inside the call and wait for
/// each other between phases by spinning on a counter.
///
/// Items are claimed from a shared counter by whichever worker is free, never assigned to a worker, so a phase
/// completes with however many workers are actually running (concurrentPerform may run fewer at once than asked,
/// and a late one finds its phases done): no worker ever waits for one that has not started. As everywhere in the
/// executor, results must not depend on which worker ran an item.
///
/// Phases and serial steps carry a label, which only a `PhaseTrace` reads (`pgan bench --phases`).
public struct PhasedWork {
    struct SerialStep {
        let label: String
        let body: () -> Void
    }

    struct Phase {
        let label: String
        let iterations: Int
        /// Multiply-adds the phase performs, for `PhaseTrace`'s GFLOP/s per phase (0: not counted).
        let multiplyAdds: Int
        let body: (_ index: Int, _ worker: Int) -> Void
        /// Serial work run in order once every item has finished, by the worker that finished the last one.
        var after: [SerialStep] = []
    }

    private(set) var phases: [Phase] = []

    public init() {}

    /// Work with a single parallel phase.
    public init(_ label: String = "", iterations: Int, _ body: @escaping (_ index: Int, _ worker: Int) -> Void) {
        parallel(label, iterations: iterations, body)
    }

    /// Appends a phase: `body(i, worker)` for every i in 0..<iterations, in any order, on any worker. `worker`
    /// (0..<threadCount) is unique among the bodies running at the same moment, for per-worker scratch memory.
    /// `multiplyAdds`: the arithmetic of all its items, so a trace can report the phase's GFLOP/s.
    public mutating func parallel(_ label: String = "", iterations: Int, multiplyAdds: Int = 0,
                                  _ body: @escaping (_ index: Int, _ worker: Int) -> Void) {
        phases.append(Phase(label: label, iterations: iterations, multiplyAdds: multiplyAdds, body: body))
    }

    /// Appends serial work: it runs after every item of the phases before it and before any item of the phases after.
    public mutating func serial(_ label: String = "", _ body: @escaping () -> Void) {
        if phases.isEmpty {
            // A phase without items exists only to carry the serial step.
            phases.append(Phase(label: "", iterations: 0, multiplyAdds: 0, body: { _, _ in }))
        }
        phases[phases.count - 1].after.append(SerialStep(label: label, body: body))
    }

    var isEmpty: Bool { phases.isEmpty }

    /// The multiply-adds its phases declare.
    public var multiplyAdds: Int { phases.reduce(0) { $0 + $1.multiplyAdds } }

    /// The most items any phase offers: more workers than this would never have anything to do.
    var widestPhase: Int { phases.map(\.iterations).max() ?? 0 }
}
