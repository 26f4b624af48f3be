import Atomics
import CPUFeatures
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Runs per-shard work on `threadCount` worker threads with `DispatchQueue.concurrentPerform`, worker k pinned to the
/// core `pinningMap[k]` chosen by `Topology.pinningOrder`.
///
/// concurrentPerform hands its iterations to whichever pool threads are free, and the pool's threads change over
/// time. Pinning each thread once, in order of arrival, can put two live workers on one core while another core idles
/// (seen: 1.14× on two cores). So worker k — iteration k of concurrentPerform — binds the thread running it to slot
/// k's core, and a thread is re-bound only when it runs a different slot than it did last time (a thread-local
/// record avoids the system call otherwise).
///
/// A call wakes the workers once; `run(_ work: PhasedWork)` keeps them inside one call through a chain of phases,
/// waiting for each other between phases by spinning. With `Scheduling.spinning` the same work goes to a persistent
/// pool of pinned threads that also stay awake between calls (`SpinningPool`), for machines where waking threads
/// through the kernel is slow.
///
/// Work is handed out dynamically (atomic counters), so which thread runs which shard changes from call to call:
/// callers must make every result a function of the shard index alone. That is the whole parity contract: shards,
/// not threads, are the unit of work and of summation.
public final class ShardedExecutor: @unchecked Sendable {
    public enum Scheduling: String, Sendable, CaseIterable {
        /// `DispatchQueue.concurrentPerform` (the default).
        case dispatch
        /// A persistent pool of pinned threads that stay awake (spinning) between calls; used only while the threads
        /// fit on distinct hardware threads (spinning on a shared one would starve the thread doing the work).
        case spinning = "spin"
    }

    public let threadCount: Int
    public let topology: Topology
    public let pinsThreads: Bool
    public let scheduling: Scheduling
    private var pool: SpinningPool?
    /// When set, every item and serial step of later runs is timed into it (for profiling; it costs two clock reads
    /// per item). Its worker capacity must be at least `threadCount`.
    public var trace: PhaseTrace? {
        didSet { precondition((trace?.workerCapacity ?? threadCount) >= threadCount, "trace has too few worker logs") }
    }

    private let counters = PhaseCounters()
    /// Set while a run is in progress: `run` is not re-entrant (the phase counters are shared), and a second call
    /// while one is running is a programming error that must stop the process, not corrupt the counters.
    private let running = ManagedAtomic<Bool>(false)
    private let pinner: ThreadPinner
    private let callerBinding: [Int]?

    public init(threadCount: Int, topology: Topology = .shared, pinsThreads: Bool = true,
                scheduling: Scheduling = .dispatch) {
        precondition(threadCount >= 1, "threadCount must be at least 1")
        self.threadCount = threadCount
        self.topology = topology
        self.pinsThreads = pinsThreads
        callerBinding = pinsThreads ? topology.currentThreadBinding() : nil
        let pinner = ThreadPinner(topology: topology, pinsThreads: pinsThreads)
        self.pinner = pinner
        let spins = scheduling == .spinning && threadCount > 1 && threadCount <= topology.processingUnitCount
        self.scheduling = spins ? .spinning : .dispatch
        if spins {
            // The pool's threads pin themselves when they first run, which may be after this executor is gone:
            // they hold the pinner, never the executor.
            pool = SpinningPool(workerCount: threadCount) { worker in pinner.pinCurrentThread(toSlot: worker) }
        }
    }

    deinit {
        pool?.shutdown()
    }

    /// The PU each worker slot is pinned to (slot k → `pinningMap[k]`), as prescribed by the topology.
    public var pinningMap: [Int] { topology.pinningMap(threads: threadCount) }

    /// Slots that have actually been bound so far, slot → PU, for display and tests.
    public var observedBindings: [Int: Int] { pinner.observedBindings }

    /// Calls `body(i)` for every i in 0..<iterations, spread over the worker threads; returns when all are done.
    public func run(iterations: Int, _ body: (Int) -> Void) {
        run(iterations: iterations) { iteration, _ in body(iteration) }
    }

    /// Calls `body(i, worker)` for every i in 0..<iterations; `worker` (0..<threadCount) is unique among the bodies
    /// running at the same moment, so it can index per-worker scratch memory. Results must not depend on it.
    public func run(iterations: Int, _ body: (_ iteration: Int, _ worker: Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            run(PhasedWork(iterations: iterations, escapable))
        }
    }

    /// Runs the phases of `work` in order, each spread over the worker threads, in a single parallel call (one
    /// wake-up of the workers); returns when the last phase and its serial step are done. Not re-entrant: a body
    /// must not call `run` on the same executor (the phase counters are shared).
    public func run(_ work: PhasedWork) {
        guard beginRun() else {
            fatalError("ShardedExecutor.run called while another run of the same executor is in progress (a re-entrant or concurrent call); the phase counters are shared")
        }
        defer { endRun() }
        let trace = self.trace
        trace?.beginRun(work)
        defer { trace?.endRun() }
        let workers = min(threadCount, work.widestPhase)
        if workers <= 1 {
            if !work.isEmpty { pinner.pinCurrentThread(toSlot: 0) }
            for (index, phase) in work.phases.enumerated() {
                for i in 0..<phase.iterations { perform(trace, worker: 0, phase: index, item: i) { phase.body(i, 0) } }
                runSerialSteps(of: phase, index: index, worker: 0, trace: trace)
            }
            return
        }
        counters.reset(phaseCount: work.phases.count)
        nonisolated(unsafe) let phases = work.phases
        if let pool {
            pool.run { worker in
                self.pinner.pinCurrentThread(toSlot: worker)
                self.participate(in: phases, worker: worker, trace: trace)
            }
            return
        }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            self.pinner.pinCurrentThread(toSlot: worker)
            self.participate(in: phases, worker: worker, trace: trace)
        }
    }

    /// Claims the executor for one run; false when a run is already in progress.
    func beginRun() -> Bool {
        running.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    func endRun() {
        running.store(false, ordering: .releasing)
    }

    /// One worker's share of a `PhasedWork`: for each phase, wait until the previous one is released, then claim and
    /// run items until none are left. Whoever completes a phase's last item runs its serial steps and releases it.
    private func participate(in phases: [PhasedWork.Phase], worker: Int, trace: PhaseTrace?) {
        for (index, phase) in phases.enumerated() {
            if index > 0 { counters.waitUntilReleased(index) }
            // A phase with no items still has one (empty) claim, so that its serial steps run and it is released.
            let claims = max(phase.iterations, 1)
            let claimed = counters.claimed[index], completed = counters.completed[index]
            while true {
                let item = claimed.loadThenWrappingIncrement(ordering: .relaxed)
                if item >= claims { break }
                if item < phase.iterations {
                    perform(trace, worker: worker, phase: index, item: item) { phase.body(item, worker) }
                }
                if completed.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) == claims {
                    runSerialSteps(of: phase, index: index, worker: worker, trace: trace)
                    counters.release(index + 1)
                }
            }
        }
    }

    @inline(__always)
    private func runSerialSteps(of phase: PhasedWork.Phase, index: Int, worker: Int, trace: PhaseTrace?) {
        for (step, serial) in phase.after.enumerated() {
            perform(trace, worker: worker, phase: index, item: -1 - step, serial.body)
        }
    }

    @inline(__always)
    private func perform(_ trace: PhaseTrace?, worker: Int, phase: Int, item: Int, _ body: () -> Void) {
        if let trace {
            trace.record(worker: worker, phase: phase, item: item, body)
        } else {
            body()
        }
    }

    /// Calls `body(range)` over slices of 0..<count of `sliceLength` elements, in parallel.
    public func runSlices(count: Int, sliceLength: Int, _ body: (Range<Int>) -> Void) {
        let slices = (count + sliceLength - 1) / sliceLength
        run(iterations: slices) { slice in
            let start = slice * sliceLength
            body(start..<min(start + sliceLength, count))
        }
    }

    /// Puts the calling thread back on the PUs it had when the executor was made (the caller's thread is also a
    /// worker of concurrentPerform and so gets pinned).
    public func restoreCallerBinding() {
        if let callerBinding { topology.bindCurrentThread(toProcessingUnits: callerBinding) }
        pinner.forgetCurrentThread()
    }
}

/// Binds worker threads to their slots' PUs, once per thread and slot, and records what it bound. Shared by an
/// executor and its spinning pool's threads, which may outlive the executor by the moment they take to start.
final class ThreadPinner: @unchecked Sendable {
    let topology: Topology
    let pinsThreads: Bool
    /// Thread-local: 1 + the slot the thread is bound to (0: not bound by this pinner).
    private var pinnedKey = pthread_key_t()
    private let bindingsLock = PThreadMutex()
    private var bindings: [Int: Int] = [:]

    nonisolated(unsafe) private static var warnedAboutBinding = false
    private static let warningLock = PThreadMutex()

    init(topology: Topology, pinsThreads: Bool) {
        self.topology = topology
        self.pinsThreads = pinsThreads
        pthread_key_create(&pinnedKey, nil)
    }

    deinit {
        pthread_key_delete(pinnedKey)
    }

    var observedBindings: [Int: Int] {
        bindingsLock.lock()
        defer { bindingsLock.unlock() }
        return bindings
    }

    /// Forgets the calling thread's slot: a later pinner may be handed the same pthread key.
    func forgetCurrentThread() {
        pthread_setspecific(pinnedKey, nil)
    }

    func pinCurrentThread(toSlot slot: Int) {
        guard pinsThreads, Int(bitPattern: pthread_getspecific(pinnedKey)) != slot + 1 else { return }
        pthread_setspecific(pinnedKey, UnsafeRawPointer(bitPattern: slot + 1))
        let unit = topology.processingUnit(forSlot: slot)
        if topology.bindCurrentThread(toProcessingUnit: unit) {
            bindingsLock.lock()
            bindings[slot] = unit
            bindingsLock.unlock()
        } else {
            Self.warnOnce("warning: could not pin worker threads to cores (\(topology.unavailableReason ?? "hwloc_set_cpubind failed")); running unpinned")
        }
    }

    static func warnOnce(_ message: String) {
        warningLock.lock()
        defer { warningLock.unlock() }
        guard !warnedAboutBinding else { return }
        warnedAboutBinding = true
        writeToStandardError(message + "\n")
    }
}

/// The shared counters of the `PhasedWork` being run: per phase, items claimed and items completed; and how many
/// phases have been released (completed, serial step included).
final class PhaseCounters: @unchecked Sendable {
    private(set) var claimed: [ManagedAtomic<Int>] = []
    private(set) var completed: [ManagedAtomic<Int>] = []
    private let released = ManagedAtomic<Int>(0)
    /// Spin-wait rounds (each a `pause`, ~40-140 cycles) before a waiting worker starts yielding its core.
    static let spinsBeforeYield = 1 << 14

    /// Called only between runs, when no worker is inside one.
    func reset(phaseCount: Int) {
        while claimed.count < phaseCount {
            claimed.append(ManagedAtomic(0))
            completed.append(ManagedAtomic(0))
        }
        for phase in 0..<phaseCount {
            claimed[phase].store(0, ordering: .relaxed)
            completed[phase].store(0, ordering: .relaxed)
        }
        released.store(0, ordering: .releasing)
    }

    func release(_ phase: Int) {
        released.store(phase, ordering: .releasing)
    }

    @inline(__always)
    func waitUntilReleased(_ phase: Int) {
        var spins = 0
        while released.load(ordering: .acquiring) < phase {
            if spins < Self.spinsBeforeYield {
                spins += 1
                pgan_cpu_relax()
            } else {
                sched_yield()
            }
        }
    }
}

/// Writes text to file descriptor 2 (the C `stderr` global is not concurrency-safe in Swift 6).
public func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 { return }
        offset += written
    }
}
