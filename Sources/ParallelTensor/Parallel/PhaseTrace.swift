/// Records when each item and serial step of a `ShardedExecutor`'s runs started and ended, and on which worker, so
/// that a step's time can be split by phase and its scaling projected (`pgan bench --phases`).
///
/// Attach one with `ShardedExecutor.trace`; while none is attached the executor only tests for nil. Every worker
/// appends to its own log, so recording takes no lock.
public final class PhaseTrace: @unchecked Sendable {
    struct Event {
        let run: Int32
        let phase: Int32
        /// ≥ 0: the item; < 0: serial step −1 − item of the phase.
        let item: Int32
        let start: UInt64
        let end: UInt64
    }

    struct Run {
        let phases: [(label: String, iterations: Int, multiplyAdds: Int, serialLabels: [String])]
        let start: UInt64
        var end: UInt64 = 0
    }

    final class WorkerLog {
        var events: [Event] = []
    }

    private let logs: [WorkerLog]
    private var runs: [Run] = []

    /// `workers`: at least the thread count of the executor it is attached to.
    public init(workers: Int) {
        logs = (0..<max(workers, 1)).map { _ in WorkerLog() }
    }

    public var workerCapacity: Int { logs.count }

    func beginRun(_ work: PhasedWork) {
        runs.append(Run(phases: work.phases.map { ($0.label, $0.iterations, $0.multiplyAdds, $0.after.map(\.label)) },
                        start: monotonicNanoseconds()))
    }

    func endRun() {
        runs[runs.count - 1].end = monotonicNanoseconds()
    }

    /// Runs `body` and records it as item `item` (or serial step −1 − item) of `phase` in the current run.
    @inline(__always)
    func record(worker: Int, phase: Int, item: Int, _ body: () -> Void) {
        let start = monotonicNanoseconds()
        body()
        logs[worker].events.append(Event(run: Int32(runs.count - 1), phase: Int32(phase), item: Int32(item),
                                         start: start, end: monotonicNanoseconds()))
    }

    /// Forgets everything recorded so far.
    public func reset() {
        runs = []
        for log in logs { log.events = [] }
    }

    /// Time spent in one labelled phase or serial step, over every run recorded.
    public struct PhaseSummary: Sendable, Equatable {
        public let label: String
        public let isSerial: Bool
        /// How many times it ran (a training step's phases run once per step).
        public let occurrences: Int
        public let items: Int
        /// Sum of the items' durations: the work, whatever the number of threads.
        public let busySeconds: Double
        /// From the phase's release (the end of the previous phase and its serial steps) to its last item's end:
        /// what the phase cost the run, waiting and stragglers included.
        public let wallSeconds: Double
        public let longestItemSeconds: Double
        /// The multiply-adds its occurrences declared (`PhasedWork.parallel(_:iterations:multiplyAdds:_:)`).
        public let multiplyAdds: Int
    }

    /// Each (runs, phase) item's and serial step's duration, in seconds, in index order.
    private func durations() -> [[(items: [Double], serials: [Double], release: UInt64, finish: UInt64)]] {
        var table = runs.map { run in
            run.phases.map { phase in
                (items: [Double](repeating: 0, count: phase.iterations),
                 serials: [Double](repeating: 0, count: phase.serialLabels.count),
                 release: UInt64.max, finish: UInt64(0))
            }
        }
        for log in logs {
            for event in log.events {
                let seconds = Double(event.end - event.start) * 1e-9
                let (run, phase) = (Int(event.run), Int(event.phase))
                if event.item >= 0 {
                    table[run][phase].items[Int(event.item)] = seconds
                } else {
                    table[run][phase].serials[Int(-1 - event.item)] = seconds
                }
                table[run][phase].finish = max(table[run][phase].finish, event.end)
            }
        }
        // A phase is released when the one before it (with its serial steps) has finished.
        for run in table.indices {
            for phase in table[run].indices {
                table[run][phase].release = phase == 0 ? runs[run].start : table[run][phase - 1].finish
                if table[run][phase].finish == 0 { table[run][phase].finish = table[run][phase].release }
            }
        }
        return table
    }

    /// Phases and serial steps grouped by label, in order of first appearance.
    public func summaries() -> [PhaseSummary] {
        var order: [String] = []
        var totals: [String: PhaseSummary] = [:]
        func add(_ key: String, _ label: String, serial: Bool, items: [Double], wall: Double, multiplyAdds: Int) {
            if totals[key] == nil {
                order.append(key)
                totals[key] = PhaseSummary(label: label, isSerial: serial, occurrences: 0, items: 0, busySeconds: 0,
                                           wallSeconds: 0, longestItemSeconds: 0, multiplyAdds: 0)
            }
            let old = totals[key]!
            totals[key] = PhaseSummary(label: label, isSerial: serial, occurrences: old.occurrences + 1,
                                       items: old.items + items.count, busySeconds: old.busySeconds + items.reduce(0, +),
                                       wallSeconds: old.wallSeconds + wall,
                                       longestItemSeconds: max(old.longestItemSeconds, items.max() ?? 0),
                                       multiplyAdds: old.multiplyAdds + multiplyAdds)
        }
        let table = durations()
        for (run, phases) in table.enumerated() {
            for (index, phase) in phases.enumerated() {
                let description = runs[run].phases[index]
                if description.iterations > 0 {
                    // Serial steps end the phase's wall time, so its items end where the first serial step starts.
                    let serialTime = phase.serials.reduce(0, +)
                    let wall = max(0, Double(phase.finish &- phase.release) * 1e-9 - serialTime)
                    add("p:" + description.label, description.label, serial: false, items: phase.items, wall: wall,
                        multiplyAdds: description.multiplyAdds)
                }
                for (step, seconds) in phase.serials.enumerated() {
                    let label = description.serialLabels[step]
                    add("s:" + label, label, serial: true, items: [seconds], wall: seconds, multiplyAdds: 0)
                }
            }
        }
        return order.map { totals[$0]! }
    }

    /// Wall time of all recorded runs, from the call to its return.
    public var wallSeconds: Double {
        runs.reduce(0) { $0 + Double($1.end &- $1.start) * 1e-9 }
    }

    /// The wall time the recorded runs would take on `workers` workers if every item took as long as it did here
    /// and barriers cost nothing: each phase's items are claimed in index order by whichever worker is free first,
    /// as the executor does, and serial steps add their time. What it leaves out — memory bandwidth and caches
    /// shared by more threads, the clock dropping as more cores work, waking and barrier latency — only lowers the
    /// real figure, so it is a ceiling on the speedup the phase structure allows.
    ///
    /// Repeated occurrences of a phase (same label, items and serial steps: a training step's phases, step after
    /// step) are pooled by `pooledSeconds`, so a one-off stall of the machine is not taken for structure.
    public func projectedSeconds(workers: Int) -> Double {
        precondition(workers >= 1)
        var groups: [String: (items: [[Double]], serials: [[Double]])] = [:]
        for (run, phases) in durations().enumerated() {
            for (index, phase) in phases.enumerated() {
                let description = runs[run].phases[index]
                let key = "\(description.label)\u{0}\(description.iterations)\u{0}"
                    + description.serialLabels.joined(separator: "\u{0}")
                groups[key, default: ([], [])].items.append(phase.items)
                groups[key, default: ([], [])].serials.append(phase.serials)
            }
        }
        return groups.values.reduce(0) { total, group in
            total + Self.pooledSeconds(group.items, workers: workers)
                + Self.pooledSeconds(group.serials, workers: 1)
        }
    }

    /// Occurrences of one phase (each its items' durations, in index order), projected on `workers` workers: every
    /// item index takes its median over the occurrences, and each occurrence costs the makespan of those medians.
    public static func pooledSeconds(_ occurrences: [[Double]], workers: Int) -> Double {
        guard let count = occurrences.first?.count, count > 0 else { return 0 }
        let medians = (0..<count).map { item -> Double in
            let values = occurrences.map { $0[item] }.sorted()
            let middle = values.count / 2
            return values.count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2
        }
        return Double(occurrences.count) * makespan(medians, workers: workers)
    }

    /// Greedy list scheduling in index order: each item goes to the worker that becomes free first.
    public static func makespan(_ items: [Double], workers: Int) -> Double {
        guard !items.isEmpty else { return 0 }
        var free = [Double](repeating: 0, count: min(workers, items.count))
        for duration in items {
            var earliest = 0
            for worker in free.indices where free[worker] < free[earliest] { earliest = worker }
            free[earliest] += duration
        }
        return free.max()!
    }
}
