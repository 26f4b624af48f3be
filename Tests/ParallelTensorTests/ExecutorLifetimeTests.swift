@testable import ParallelTensor
import XCTest

final class ExecutorLifetimeTests: XCTestCase {
    /// The spinning pool's threads pin themselves when they first run. An executor dropped before that used to leave
    /// them an unowned reference to a freed executor ("Attempted to read an unowned reference", 8 of 8 tries within
    /// 100 cycles); they now hold only the pinner.
    func testSpinningExecutorsCanBeDroppedAtOnce() {
        for cycle in 0..<1000 {
            let executor = ShardedExecutor(threadCount: 2, scheduling: .spinning)
            if cycle % 100 == 0 {
                let ran = AlignedBuffer(count: 2)
                nonisolated(unsafe) let flags = ran.pointer
                executor.run(iterations: 2) { flags[$0] = 1 }
                XCTAssertEqual(ran.array, [1, 1])
            }
            executor.restoreCallerBinding()
        }
    }

    func testASecondRunWhileOneIsInProgressIsRefused() {
        for scheduling in [ShardedExecutor.Scheduling.dispatch, .spinning] {
            let executor = ShardedExecutor(threadCount: 2, pinsThreads: false, scheduling: scheduling)
            let refused = AlignedBuffer(count: 4)
            nonisolated(unsafe) let flags = refused.pointer
            executor.run(iterations: 4) { i in flags[i] = executor.beginRun() ? 0 : 1 }
            XCTAssertEqual(refused.array, [1, 1, 1, 1], "\(scheduling): every item saw the run in progress")
            XCTAssertTrue(executor.beginRun(), "the executor is free again after a run")
            executor.endRun()
        }
    }
}
