import Foundation
import ParallelTensor
import TestSupport
import XCTest

final class TopologyTests: XCTestCase {
    func run(_ command: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    func testCountsAgreeWithTheOperatingSystem() throws {
        let topology = Topology.shared
        XCTAssertNil(topology.unavailableReason)
        let online = try XCTUnwrap(run("nproc --all").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        XCTAssertEqual(topology.processingUnitCount, online)
        XCTAssertEqual(topology.coresProcessingUnits.flatMap { $0 }.sorted(), Array(0..<online))
        // lscpu's core count (unique core ids) when available.
        if let cores = run("lscpu -p=CORE,SOCKET | grep -v '^#' | sort -u | wc -l").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            XCTAssertEqual(topology.coreCount, cores)
        }
        if let lstopo = run("hwloc-calc --number-of core all 2>/dev/null || lstopo-no-graphics --only core | wc -l"),
           let cores = Int(lstopo.trimmingCharacters(in: .whitespacesAndNewlines)) {
            XCTAssertEqual(topology.coreCount, cores)
        }
        XCTAssertGreaterThanOrEqual(topology.packageCount, 1)
        XCTAssertFalse(topology.summary.isEmpty)
    }

    func testPinningMapPutsDistinctCoresFirstThenWraps() {
        let topology = Topology.shared
        let order = topology.pinningOrder
        let firstPerCore = topology.coresProcessingUnits.map { $0[0] }
        XCTAssertEqual(Array(order.prefix(topology.coreCount)), firstPerCore)
        XCTAssertEqual(topology.pinningMap(threads: 1), [firstPerCore[0]])
        let two = topology.pinningMap(threads: 2)
        XCTAssertEqual(two, (0..<2).map { order[$0 % order.count] })
        if topology.coreCount >= 2 { XCTAssertNotEqual(two[0], two[1]) }
        let sixteen = topology.pinningMap(threads: 16)
        XCTAssertEqual(sixteen.count, 16)
        for slot in 0..<16 { XCTAssertEqual(sixteen[slot], order[slot % order.count]) }
    }

    func testBindingMovesTheThreadAndExecutorPinsWorkers() throws {
        let topology = Topology.shared
        let saved = topology.currentThreadBinding()
        defer { if let saved { topology.bindCurrentThread(toProcessingUnits: saved) } }
        let target = topology.pinningOrder.last!
        XCTAssertTrue(topology.bindCurrentThread(toProcessingUnit: target))
        XCTAssertEqual(topology.currentThreadBinding(), [target])
        XCTAssertEqual(Topology.currentProcessingUnit(), target)

        let executor = ShardedExecutor(threadCount: 2)
        executor.run(iterations: 8) { _ in }
        executor.restoreCallerBinding()
        let bound = executor.observedBindings
        XCTAssertFalse(bound.isEmpty)
        for (slot, unit) in bound { XCTAssertEqual(unit, executor.pinningMap[slot]) }
    }

    func testExecutorRunsEveryIterationOnce() {
        for (threads, scheduling) in [(1, ShardedExecutor.Scheduling.dispatch), (2, .dispatch), (5, .dispatch),
                                      (2, .spinning)] {
            let executor = ShardedExecutor(threadCount: threads, pinsThreads: false, scheduling: scheduling)
            let hits = AlignedBuffer(count: 100)
            nonisolated(unsafe) let pointer = hits.pointer
            for _ in 0..<3 { executor.run(iterations: 100) { pointer[$0] += 1 } }
            XCTAssertEqual(hits.array, [Float](repeating: 3, count: 100), "\(threads) threads, \(scheduling)")
        }
    }

    func testPhasedWorkRunsPhasesInOrderWithSerialStepsBetween() {
        for (threads, scheduling) in [(1, ShardedExecutor.Scheduling.dispatch), (2, .dispatch), (3, .dispatch),
                                      (16, .dispatch), (2, .spinning)] {
            let executor = ShardedExecutor(threadCount: threads, pinsThreads: false, scheduling: scheduling)
            let first = AlignedBuffer(count: 64), second = AlignedBuffer(count: 64), serial = AlignedBuffer(count: 3)
            nonisolated(unsafe) let a = first.pointer, b = second.pointer, s = serial.pointer
            for round in 0..<4 {
                var work = PhasedWork()
                work.parallel(iterations: 64) { i, _ in a[i] = Float(i + round) }
                // Sees every item of the phase before it.
                work.serial { s[0] = (0..<64).reduce(0) { $0 + a[$1] } }
                work.parallel(iterations: 0) { _, _ in XCTFail("a phase without items ran one") }
                work.serial { s[1] += 1 }
                work.serial { s[2] = s[1] }
                // Reads items written by other workers in the first phase and the serial steps' results.
                work.parallel(iterations: 64) { i, _ in b[i] = a[63 - i] + s[0] + s[2] }
                executor.run(work)
                let total = Float((0..<64).reduce(0) { $0 + $1 + round })
                XCTAssertEqual(second.array, (0..<64).map { Float(63 - $0 + round) + total + Float(round + 1) },
                               "\(threads) threads, \(scheduling), round \(round)")
                XCTAssertEqual(serial[1], Float(round + 1), "each serial step runs once per run")
            }
        }
    }
}
