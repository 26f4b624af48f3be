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
public struct PhasedWork {
    struct Phase {
        let iterations: Int
        let body: (_ index: Int, _ worker: Int) -> Void
        /// Serial work run once every item has finished, by the worker that finished the last one.
        var after: (() -> Void)?
    }

    private(set) var phases: [Phase] = []

    public init() {}

    /// Work with a single parallel phase.
    public init(iterations: Int, _ body: @escaping (_ index: Int, _ worker: Int) -> Void) {
        parallel(iterations: iterations, body)
    }

    /// Appends a phase: `body(i, worker)` for every i in 0..<iterations, in any order, on any worker. `worker`
    /// (0..<threadCount) is unique among the bodies running at the same moment, for per-worker scratch memory.
    public mutating func parallel(iterations: Int, _ body: @escaping (_ index: Int, _ worker: Int) -> Void) {
        phases.append(Phase(iterations: iterations, body: body, after: nil))
    }

    /// Appends serial work: it runs after every item of the phases before it and before any item of the phases after.
    public mutating func serial(_ body: @escaping () -> Void) {
        guard let last = phases.indices.last else {
            parallel(iterations: 1) { _, _ in body() }
            return
        }
        if let previous = phases[last].after {
            phases[last].after = { previous(); body() }
        } else {
            phases[last].after = body
        }
    }

    var isEmpty: Bool { phases.isEmpty }

    /// The most items any phase offers: more workers than this would never have anything to do.
    var widestPhase: Int { phases.map(\.iterations).max() ?? 0 }
}
