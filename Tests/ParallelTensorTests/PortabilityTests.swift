import Foundation
import ParallelTensor
import XCTest

final class PortabilityTests: XCTestCase {
    func testCPUsWithoutAVX2OrFMAGetOneClearLine() throws {
        XCTAssertNil(CPURequirements.error(hasAVX2: true, hasFMA: true))
        for (avx2, fma, missing) in [(false, true, "AVX2"), (true, false, "FMA"), (false, false, "AVX2 and FMA")] {
            let message = try XCTUnwrap(CPURequirements.error(hasAVX2: avx2, hasFMA: fma))
            XCTAssertTrue(message.hasPrefix("pgan: error: this CPU lacks \(missing),"), message)
            XCTAssertEqual(message.filter { $0 == "\n" }.count, 1, "one line")
        }
    }

    /// The C header is shared by every architecture Package.swift builds for; it must compile for aarch64 too (its
    /// Arm branch once held a function body pasted inside another function). Uses the toolchain's own clang.
    func testCPUFeaturesHeaderCompilesForAarch64() throws {
        let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/CPUFeatures/include/cpu_features.h").path
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/clang" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let clang = path else { throw XCTSkip("clang is not on PATH (it comes with the Swift toolchain)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: clang)
        process.arguments = ["-target", "aarch64-linux-gnu", "-ffreestanding", "-fsyntax-only", "-x", "c", header]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
    }
}

final class FMAPeakTests: XCTestCase {
    /// The peak loops converge (c = c·a + b → 0.1 per lane) instead of running off to infinity.
    func testPeakLoopsStayFinite() {
        let eight = FMAPeak.fmaLoop8(iterations: 1 << 20)
        XCTAssertTrue(eight.isFinite && eight > 0 && eight < 12 * 8, "\(eight)")
        XCTAssertEqual(FMAPeak.fmaLoop8(iterations: 1 << 24) / (12 * 8), 0.1, accuracy: 0.01)
        XCTAssertGreaterThan(FMAPeak.measureOneThread(seconds: 0.01), 0)
    }
}
