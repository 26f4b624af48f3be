import Foundation
import ParallelTensor
import TestSupport
import XCTest

final class TopologyTests: XCTestCase {
    /// Runs an OS tool and returns its standard output; skips the test, naming the package, when the tool is not
    /// installed (a missing tool is never read as an answer), and fails when it runs but does not succeed.
    func toolOutput(_ tool: String, _ arguments: [String], package: String) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw XCTSkip("\(tool) is not installed (Debian package \(package)); cross-check skipped") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(tool) \(arguments.joined(separator: " ")) failed")
        return String(decoding: data, as: UTF8.self)
    }

    func testProcessingUnitsAgreeWithTheKernel() {
        let topology = Topology.shared
        XCTAssertNil(topology.unavailableReason)
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertEqual(topology.processingUnitCount, online)
        XCTAssertEqual(topology.coresProcessingUnits.flatMap { $0 }.count, online)
        XCTAssertGreaterThanOrEqual(topology.packageCount, 1)
        XCTAssertFalse(topology.summary.isEmpty)
    }

    func testCoreCountAgreesWithLscpu() throws {
        let lines = try toolOutput("lscpu", ["-p=CORE,SOCKET"], package: "util-linux").split(separator: "\n")
            .filter { !$0.hasPrefix("#") }
        XCTAssertFalse(lines.isEmpty, "lscpu listed no processors")
        XCTAssertEqual(Topology.shared.coreCount, Set(lines).count)
    }

    func testCoreCountAgreesWithHwlocCalc() throws {
        let text = try toolOutput("hwloc-calc", ["--number-of", "core", "all"], package: "hwloc-nox")
        let cores = try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "hwloc-calc said '\(text)'")
        XCTAssertEqual(Topology.shared.coreCount, cores)
    }

    /// The pinning rule on machines this test does not run on: distinct cores first (in core order), then every
    /// core's second hardware thread, then wrapping.
    func testPinningRulesOnSyntheticTopologies() throws {
        let smt = try Topology.synthetic("package:2 core:4 pu:2")
        XCTAssertEqual([smt.packageCount, smt.coreCount, smt.processingUnitCount], [2, 8, 16])
        XCTAssertEqual(smt.coresProcessingUnits, (0..<8).map { [2 * $0, 2 * $0 + 1] })
        XCTAssertEqual(smt.pinningOrder, [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15])
        XCTAssertEqual(smt.pinningMap(threads: 3), [0, 2, 4])
        XCTAssertEqual(smt.pinningMap(threads: 18), smt.pinningOrder + [0, 2])
        XCTAssertFalse(smt.bindCurrentThread(toProcessingUnit: 0), "a synthetic machine cannot bind threads")
        XCTAssertNil(smt.currentThreadBinding())

        let plain = try Topology.synthetic("core:3 pu:1")
        XCTAssertEqual(plain.pinningMap(threads: 5), [0, 1, 2, 0, 1])

        XCTAssertThrowsError(try Topology.synthetic("core:banana"), "hwloc accepted a nonsense description")
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
