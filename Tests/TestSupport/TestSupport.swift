import DCGANParallel
import Foundation
import ParallelTensor
import XCTest

/// The project's shared MNIST files (`../shared/data/mnist` beside the repository), present on developers' machines
/// and in CI; tests that use them skip or fall back when they are missing.
public let sharedMNISTDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/mnist").path

/// A new empty directory under the system's temporary directory, named `prefix-UUID`; remove it in `tearDown`.
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Asserts that `expression` throws a `DataError` whose problem contains `text` (and that names `path`, when given).
public func assertDataError(_ expression: @autoclosure () throws -> Any, contains text: String, path: String? = nil,
                            file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        guard let error = error as? DataError else { return XCTFail("not a DataError: \(error)", file: file, line: line) }
        if let path { XCTAssertEqual(error.path, path, file: file, line: line) }
        XCTAssertTrue(error.problem.contains(text), "'\(error.problem)' lacks '\(text)'", file: file, line: line)
    }
}

/// SplitMix64: a tiny seeded generator so every test draws the same "random" shapes and values on every run.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }

    public mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
}

/// Asserts |actual − expected| ≤ absoluteTolerance + relativeTolerance·|expected| element-wise, reporting the worst
/// element.
public func assertAllClose(_ actual: [Float], _ expected: [Float], relativeTolerance: Float = 1e-5,
                           absoluteTolerance: Float = 1e-6, _ message: @autoclosure () -> String = "",
                           file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("sizes differ: \(actual.count) vs \(expected.count) \(message())", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    for i in 0..<actual.count {
        let allowed = absoluteTolerance + relativeTolerance * abs(expected[i])
        let error = abs(actual[i] - expected[i])
        if !(error <= allowed) && (worst < 0 || error - allowed > worstExcess || error.isNaN) {
            worst = i
            worstExcess = error - allowed
        }
    }
    if worst >= 0 {
        XCTFail("element \(worst) of \(actual.count): \(actual[worst]) vs expected \(expected[worst]) \(message())",
                file: file, line: line)
    }
}

/// Asserts two float arrays are equal bit for bit.
public func assertBitIdentical(_ actual: [Float], _ expected: [Float], _ message: @autoclosure () -> String = "",
                               file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("sizes differ: \(actual.count) vs \(expected.count) \(message())", file: file, line: line)
        return
    }
    if let i = actual.indices.first(where: { actual[$0].bitPattern != expected[$0].bitPattern }) {
        XCTFail("element \(i) differs: \(actual[i]) vs \(expected[i]) \(message())", file: file, line: line)
    }
}

/// Central finite differences of a scalar function of float inputs: ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h,
/// with f evaluated in Double. Checks `indices` (all by default) — pass a sample for large inputs.
public func numericalGradient(of function: ([Float]) -> Double, at point: [Float], step: Float = 1e-2,
                              indices: [Int]? = nil) -> [Int: Double] {
    var result: [Int: Double] = [:]
    var x = point
    for i in indices ?? Array(point.indices) {
        let original = x[i]
        x[i] = original + step
        let plus = function(x)
        x[i] = original - step
        let minus = function(x)
        x[i] = original
        // Divide by the step as actually represented in Float, not the nominal 2h.
        result[i] = (plus - minus) / (Double(original + step) - Double(original - step))
    }
    return result
}

/// Compares an analytic gradient with finite differences at the given indices: |a − n| ≤ tol·max(1, |n|).
public func assertGradientMatches(_ analytic: [Float], _ numeric: [Int: Double], tolerance: Double = 2e-2,
                                  _ message: @autoclosure () -> String = "",
                                  file: StaticString = #filePath, line: UInt = #line) {
    for (index, expected) in numeric.sorted(by: { $0.key < $1.key }) {
        let actual = Double(analytic[index])
        if abs(actual - expected) > tolerance * max(1, abs(expected)) {
            XCTFail("gradient[\(index)] = \(actual), finite differences say \(expected) \(message())",
                    file: file, line: line)
            return
        }
    }
}

/// Helpers to run fast kernels on Swift arrays.
public enum Run {
    public static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeMutablePointer<Float>]) -> R) -> R {
        let buffers = arrays.map { AlignedBuffer($0) }
        return withExtendedLifetime(buffers) { body(buffers.map(\.pointer)) }
    }

    public static func array(_ pointer: UnsafePointer<Float>, _ count: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: pointer, count: count))
    }
}

/// A dot product in Double, the usual scalar loss Σ output·weights for gradient checks.
public func weightedSum(_ values: [Float], _ weights: [Float]) -> Double {
    zip(values, weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// `count` CIFAR binary records (CIFAR-10, or CIFAR-100 with a coarse label first): image i has label i % 10 (the fine
/// label; coarse i % 20), and byte p of colour plane c is (i·7 + c·50 + p) mod 256.
public func cifarRecords(count: Int, hundred: Bool, first: Int = 0) -> [UInt8] {
    var bytes: [UInt8] = []
    for i in first..<(first + count) {
        if hundred { bytes.append(UInt8(i % 20)) }
        bytes.append(UInt8(i % 10))
        for c in 0..<3 { for p in 0..<1024 { bytes.append(UInt8((i * 7 + c * 50 + p) % 256)) } }
    }
    return bytes
}
