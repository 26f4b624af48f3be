import ParallelTensor
import XCTest

final class PhaseTraceTests: XCTestCase {
    func testMakespanClaimsItemsInIndexOrder() {
        // Worker 0 takes the long item while worker 1 takes the three short ones.
        XCTAssertEqual(PhaseTrace.makespan([3, 1, 1, 1], workers: 2), 3)
        // A long item claimed last lands on a worker that is already busy.
        XCTAssertEqual(PhaseTrace.makespan([1, 1, 1, 3], workers: 2), 4)
        XCTAssertEqual(PhaseTrace.makespan([2, 2, 2], workers: 1), 6)
        XCTAssertEqual(PhaseTrace.makespan([2, 5], workers: 16), 5)
        XCTAssertEqual(PhaseTrace.makespan([], workers: 4), 0)
    }

    func testPooledOccurrencesUseEachItemsMedian() {
        // Item 1 stalled once (9); its median over the three occurrences is 1.
        let occurrences: [[Double]] = [[1, 1], [1, 9], [1, 1]]
        XCTAssertEqual(PhaseTrace.pooledSeconds(occurrences, workers: 2), 3)
        XCTAssertEqual(PhaseTrace.pooledSeconds(occurrences, workers: 1), 6)
        // An even count takes the mean of the middle two; a systematically slow item stays slow.
        XCTAssertEqual(PhaseTrace.pooledSeconds([[4, 1], [2, 1]], workers: 2), 6)
        XCTAssertEqual(PhaseTrace.pooledSeconds([], workers: 2), 0)
    }

    func testTraceRecordsEveryItemAndSerialStepOnce() {
        for (threads, scheduling) in [(1, ShardedExecutor.Scheduling.dispatch), (3, .dispatch), (2, .spinning)] {
            let executor = ShardedExecutor(threadCount: threads, pinsThreads: false, scheduling: scheduling)
            let trace = PhaseTrace(workers: threads)
            executor.trace = trace
            let sink = AlignedBuffer(count: 64)
            nonisolated(unsafe) let pointer = sink.pointer
            for _ in 0..<2 {
                var work = PhasedWork()
                work.serial("set-up") { pointer[63] += 1 }
                work.parallel("first", iterations: 10) { i, _ in
                    for k in 0..<2000 { pointer[i] += Float(k & 1) }
                }
                work.serial("between") { pointer[62] += 1 }
                work.parallel("second", iterations: 5) { i, _ in pointer[10 + i] += 1 }
                work.parallel("empty", iterations: 0) { _, _ in XCTFail("a phase without items ran one") }
                executor.run(work)
            }
            executor.trace = nil
            executor.run(iterations: 4) { pointer[20 + $0] += 1 }  // not recorded

            let summaries = trace.summaries()
            XCTAssertEqual(summaries.map(\.label), ["set-up", "first", "between", "second"], "\(threads) threads")
            XCTAssertEqual(summaries.map(\.isSerial), [true, false, true, false])
            XCTAssertEqual(summaries.map(\.occurrences), [2, 2, 2, 2])
            XCTAssertEqual(summaries.map(\.items), [2, 20, 2, 10])
            for summary in summaries {
                XCTAssertGreaterThan(summary.busySeconds, 0, summary.label)
                XCTAssertLessThanOrEqual(summary.longestItemSeconds, summary.busySeconds, summary.label)
            }
            let busy = summaries.reduce(0) { $0 + $1.busySeconds }
            XCTAssertGreaterThan(trace.projectedSeconds(workers: 4), 0)
            XCTAssertLessThanOrEqual(trace.projectedSeconds(workers: 4), trace.projectedSeconds(workers: 1))
            // The work happened inside the runs, on at most `threads` workers at once.
            XCTAssertLessThanOrEqual(busy, trace.wallSeconds * Double(threads), "\(threads) threads")
            trace.reset()
            XCTAssertEqual(trace.summaries(), [])
        }
    }
}
