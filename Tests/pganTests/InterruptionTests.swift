import DCGANParallel
import Foundation
import TestSupport
import XCTest

/// A run killed at any moment — by SIGKILL, or SIGTERM's graceful stop — and resumed as often as it takes ends with
/// exactly the files of a run that was never stopped.
final class InterruptionTests: XCTestCase {
    var directory: String!
    var tinyData: String!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-kill")
        tinyData = try CommandLineTests.writeTinyData(in: directory)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func start(_ arguments: [String], errors: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        XCTAssertTrue(FileManager.default.createFile(atPath: errors, contents: nil))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        return process
    }

    /// Every file under `root` (relative paths), except the lock file, whose content is its holder's PID.
    func files(_ root: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: root))
        for case let path as String in enumerator where path != RunDirectory.lockName {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(root)/\(path)", isDirectory: &isDirectory), !isDirectory.boolValue { result[path] = try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(path)")) }
        }
        return result
    }

    /// metrics.csv without its two wall-clock columns (images/s and seconds).
    func withoutClock(_ data: Data?) -> [String] {
        String(decoding: data ?? Data(), as: UTF8.self).split(separator: "\n").map { $0.split(separator: ",").prefix(8).joined(separator: ",") }
    }

    enum Moment: CaseIterable {
        case randomKill, randomTerminate, duringCheckpointWrite, rightAfterCheckpointRename
    }

    /// Waits until `condition` holds or the process ends; true when the condition was met while it ran.
    func wait(for process: Process, until condition: () -> Bool) -> Bool {
        while process.isRunning {
            if condition() { return true }
            usleep(200)
        }
        return false
    }

    func testKillsAtRandomMomentsLoseNothing() throws {
        let flags = ["--data", tinyData!, "--batch-size", "16", "--shards", "4", "--epochs", "5", "--quiet"]
        let reference = "\(directory!)/reference"
        let began = Date()
        let whole = try start(["train", "--threads", "2", "--out", reference] + flags, errors: "\(directory!)/reference.err")
        whole.waitUntilExit()
        XCTAssertEqual(whole.terminationStatus, 0)
        let duration = Date().timeIntervalSince(began)
        let expected = try files(reference)
        XCTAssertEqual(expected.keys.filter { $0.hasPrefix("samples/") }.count, 5)

        var random = SeededRandom(seed: 20261201)
        var kills = 0, graceful = 0, scenario = 0
        var seen = Set<String>()
        while kills < 24 {
            scenario += 1
            let run = "\(directory!)/run-\(scenario)"
            var attempts = 0
            while true {
                attempts += 1
                XCTAssertLessThan(attempts, 80, "scenario \(scenario) never finished")
                if attempts >= 80 { return }
                let threads = String(random.int(in: 1...2))
                let resuming = FileManager.default.fileExists(atPath: "\(run)/checkpoint.safetensors")
                let arguments = resuming ? ["train", "--resume", run, "--threads", threads, "--quiet"]
                    : ["train", "--threads", threads, "--out", run, "--overwrite"] + flags
                let errors = "\(directory!)/errors-\(scenario)-\(attempts)"
                let process = try start(arguments, errors: errors)
                let moment = Moment.allCases[(kills + scenario) % Moment.allCases.count]
                var signal = SIGKILL
                var fired = false
                switch moment {
                case .randomKill, .randomTerminate:
                    if moment == .randomTerminate { signal = SIGTERM }
                    let deadline = Date().addingTimeInterval(Double(random.int(in: 0...1000)) / 1000 * duration)
                    fired = wait(for: process) { Date() >= deadline }
                case .duringCheckpointWrite:
                    fired = wait(for: process) {
                        ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? [])
                            .contains { $0.hasPrefix(".checkpoint.safetensors.pgan-tmp-") }
                    }
                case .rightAfterCheckpointRename:
                    let before = try? FileManager.default.attributesOfItem(atPath: "\(run)/checkpoint.safetensors")[.systemFileNumber] as? Int
                    fired = wait(for: process) {
                        let now = try? FileManager.default.attributesOfItem(atPath: "\(run)/checkpoint.safetensors")[.systemFileNumber] as? Int
                        return now != nil && now != before
                    }
                }
                if fired && kill(process.processIdentifier, signal) == 0 {
                    kills += 1
                    seen.insert("\(moment)")
                }
                process.waitUntilExit()
                let status = process.terminationStatus
                let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                if status == 0 { break }
                if process.terminationReason == .exit && status == 143 {
                    graceful += 1
                    XCTAssertTrue(message.contains("Continue with: pgan train --resume \(run)"), message)
                    XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/checkpoint.safetensors"))
                } else {
                    // Killed: by SIGKILL, or by SIGTERM before pgan had installed its handler.
                    XCTAssertEqual(process.terminationReason, .uncaughtSignal, "status \(status): \(message)")
                }
            }
            let actual = try files(run)
            XCTAssertEqual(Set(actual.keys), Set(expected.keys), "scenario \(scenario): the same files")
            for (path, data) in expected where path != "metrics.csv" {
                XCTAssertTrue(actual[path] == data, "scenario \(scenario): \(path) differs from the uninterrupted run")
            }
            XCTAssertEqual(withoutClock(actual["metrics.csv"]), withoutClock(expected["metrics.csv"]), "scenario \(scenario)")
        }
        print("kill test: \(kills) kills over \(scenario) scenarios (\(graceful) graceful SIGTERM stops), moments: \(seen.sorted())")
        XCTAssertGreaterThanOrEqual(kills, 20)
        XCTAssertGreaterThan(graceful, 0, "some SIGTERMs were handled gracefully")
        XCTAssertEqual(seen.count, Moment.allCases.count, "every kind of moment was hit: \(seen)")
    }
}
