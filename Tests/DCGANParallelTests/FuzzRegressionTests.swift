import DCGANParallel
import Foundation
import XCTest

/// The fuzzers' inputs as regression tests: every file of the seed corpus (`scripts/make-fuzz-corpus.py`) and every
/// input a fuzzer found crashing (`Fuzz/crashes/<target>/`, written by `scripts/fuzz.sh`) goes through its reader,
/// which must answer with a value or a `DataError`, never a trap.
final class FuzzRegressionTests: XCTestCase {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    func inputs(_ target: String) throws -> [(name: String, data: Data)] {
        var found: [(String, Data)] = []
        for folder in ["corpus", "crashes"] {
            let directory = "\(Self.fuzz)/\(folder)/\(target)"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                found.append(("\(folder)/\(target)/\(name)", try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))))
            }
        }
        return found.sorted { $0.0 < $1.0 }
    }

    func assertValueOrDataError(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            XCTAssertTrue(error is DataError, "\(name): \(error)")
        }
    }

    func testIDXInputs() throws {
        let files = try inputs("idx")
        XCTAssertGreaterThanOrEqual(files.count, 6, "the seed corpus is committed")
        for (name, data) in files {
            assertValueOrDataError(name) { _ = try IDXFile.parse(data, path: name, maximumBytes: 1 << 22) }
        }
        let valid = try XCTUnwrap(files.first { $0.name.hasSuffix("corpus/idx/images.idx.gz") })
        XCTAssertEqual(try IDXFile.parse(valid.data, path: "images.idx.gz").dimensions, [3, 4, 4])
    }

    func testSafeTensorsInputs() throws {
        let files = try inputs("safetensors")
        XCTAssertGreaterThanOrEqual(files.count, 3)
        for (name, data) in files {
            assertValueOrDataError(name) {
                let file = try SafeTensors.decode(data, path: name)
                _ = try Checkpoint.configuration(of: file, path: name)
                _ = try Checkpoint.runRecord(of: file, path: name)
            }
        }
    }

    func testRunLogInputs() throws {
        let files = try inputs("runlogs")
        XCTAssertGreaterThanOrEqual(files.count, 3)
        for (name, data) in files {
            let text = String(decoding: data, as: UTF8.self)
            assertValueOrDataError(name) { _ = try RunLogs.parseHistory(text, path: name) }
            assertValueOrDataError(name) { _ = try RunLogs.parseMetrics(text, path: name) }
        }
    }
}
