import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A persistent pool of pinned worker threads that wait for work by spinning on an atomic generation counter.
///
/// concurrentPerform wakes its threads through the kernel on every call. Where that is slow (measured under a
/// sandboxing kernel on 16 cores: about 1 ms per call) even the one call per group of training steps that
/// `PhasedWork` needs is a visible cost; these workers stay awake between calls and answer in nanoseconds, at the
/// price of burning their cores; after about a millisecond without work they back off to short sleeps. Workers are
/// pinned once, for good: worker k to `pinningMap[k]`, the caller being worker 0.
final class SpinningPool: @unchecked Sendable {
    let workerCount: Int
    private let generation = ManagedAtomic<Int>(0)
    private let finished = ManagedAtomic<Int>(0)
    private let stopping = ManagedAtomic<Bool>(false)
    nonisolated(unsafe) private var job: ((Int) -> Void)?
    private var threads: [pthread_t] = []

    private final class Start {
        let pool: SpinningPool
        let worker: Int
        let pin: (Int) -> Void
        init(pool: SpinningPool, worker: Int, pin: @escaping (Int) -> Void) {
            self.pool = pool
            self.worker = worker
            self.pin = pin
        }
    }

    /// Starts `workerCount − 1` threads; `pin(k)` is called once on worker k's thread.
    init(workerCount: Int, pin: @escaping (Int) -> Void) {
        self.workerCount = workerCount
        for worker in 1..<max(workerCount, 1) {
            let start = Unmanaged.passRetained(Start(pool: self, worker: worker, pin: pin)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                start.pin(start.worker)
                start.pool.workerLoop(worker: start.worker)
                return nil
            }, start)
            precondition(status == 0, "pthread_create failed with \(status)")
            threads.append(thread)
        }
    }

    /// Stops and joins the workers.
    func shutdown() {
        stopping.store(true, ordering: .releasing)
        generation.wrappingIncrement(ordering: .releasing)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    /// Runs `body(worker)` on every worker (the caller is worker 0) and returns when all have finished.
    func run(_ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            finished.store(0, ordering: .relaxed)
            generation.wrappingIncrement(ordering: .releasing)
            escapable(0)
            var spins = 0
            while finished.load(ordering: .acquiring) < workerCount - 1 {
                spins += 1
                if spins > 1 << 20 { sched_yield() }
            }
            job = nil
        }
    }

    private func workerLoop(worker: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins > 200_000 { usleep(50) }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            job!(worker)
            finished.wrappingIncrement(ordering: .releasing)
        }
    }
}
