import ParallelTensor
import ParallelTensorAVX512
import TestSupport
import XCTest

final class PhiloxTests: XCTestCase {
    /// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors.
    func testKnownAnswers() {
        let zero = Philox4x32(key: (0, 0)).block((0, 0, 0, 0))
        XCTAssertEqual([zero.0, zero.1, zero.2, zero.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = Philox4x32(key: (0xffff_ffff, 0xffff_ffff)).block((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff))
        XCTAssertEqual([ones.0, ones.1, ones.2, ones.3], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = Philox4x32(key: (0xa409_3822, 0x299f_31d0)).block((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344))
        XCTAssertEqual([pi.0, pi.1, pi.2, pi.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    func testDrawsAreAddressedNotSequential() {
        let random = CounterRandom(seed: 42)
        var a = [Float](repeating: 0, count: 10), b = a, c = a
        random.normal(step: 3, stream: .generatorNoise, index: 7, count: 10, into: &a)
        random.normal(step: 3, stream: .generatorNoise, index: 7, count: 10, into: &b)
        random.normal(step: 3, stream: .generatorNoise, index: 8, count: 10, into: &c)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        // A prefix of a longer draw is the shorter draw.
        var long = [Float](repeating: 0, count: 13)
        random.normal(step: 3, stream: .generatorNoise, index: 7, count: 13, into: &long)
        XCTAssertEqual(Array(long.prefix(10)), a)
    }

    /// The SIMD path (whole groups of eight blocks) must give the words of the block function itself.
    func testUniformMatchesTheBlockFunction() {
        let random = CounterRandom(seed: 0x1234_5678_9ABC)
        var values = [Float](repeating: 0, count: 141)  // two SIMD groups of 64 and a scalar tail
        random.uniform(step: 5, stream: .dropout, substream: 3, index: 11, count: values.count, into: &values)
        for element in values.indices {
            let w = random.generator.block((UInt32(element / 4), 11, 5, RandomStream.dropout.rawValue | (3 << 8)))
            let word = [w.0, w.1, w.2, w.3][element % 4]
            XCTAssertEqual(values[element], CounterRandom.unitFloat(word), "element \(element)")
        }
    }

    /// Both builds of the lane code — ParallelTensor's (AVX2) and the AVX-512 module's, which computes the low
    /// halves and the floats differently — give the block function's words, whichever `uniform` uses here.
    func testBothLaneBuildsMatchTheBlockFunction() throws {
        let random = CounterRandom(seed: 0x0F0F_1234_5678)
        let (step, index, substream): (UInt32, UInt32, UInt32) = (0xFFFF_FFF0, 0x8000_0001, 7)
        let c3 = RandomStream.dropout.rawValue | (substream << 8)
        var expected = [Float](repeating: 0, count: 3 * 64)
        for element in expected.indices {
            let w = random.generator.block((UInt32(element / 4), index, step, c3))
            expected[element] = CounterRandom.unitFloat([w.0, w.1, w.2, w.3][element % 4])
        }
        var lanes = [Float](repeating: -1, count: expected.count)
        PhiloxLanes.uniforms(key: random.generator.key, c1: index, c2: step, c3: c3, groups: 3, into: &lanes)
        XCTAssertEqual(lanes.map(\.bitPattern), expected.map(\.bitPattern))
        try XCTSkipUnless(GEMM.Kernel.avx512.isSupported, "no AVX-512 on this CPU")
        var wide = [Float](repeating: -1, count: expected.count)
        PhiloxLanes.uniformsAVX512(key: random.generator.key, c1: index, c2: step, c3: c3, groups: 3, into: &wide)
        XCTAssertEqual(wide.map(\.bitPattern), expected.map(\.bitPattern))
    }

    func testDistributions() {
        let random = CounterRandom(seed: 7)
        var normals = [Float](repeating: 0, count: 40_000), uniforms = normals
        random.normal(step: 0, stream: .sampleNoise, index: 0, count: normals.count, into: &normals)
        random.uniform(step: 0, stream: .dropout, index: 0, count: uniforms.count, into: &uniforms)
        let mean = normals.reduce(0, +) / Float(normals.count)
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(normals.count)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(variance, 1, accuracy: 0.03)
        XCTAssertTrue(uniforms.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(uniforms.reduce(0, +) / Float(uniforms.count), 0.5, accuracy: 0.01)
        let below = uniforms.filter { $0 < 0.3 }.count
        XCTAssertEqual(Double(below) / Double(uniforms.count), 0.3, accuracy: 0.01)
    }

    func testPermutationIsAPermutationAndDependsOnEpoch() {
        let random = CounterRandom(seed: 1)
        let first = random.permutation(count: 1000, epoch: 0), second = random.permutation(count: 1000, epoch: 1)
        XCTAssertEqual(first.sorted(), Array(0..<1000))
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(first, random.permutation(count: 1000, epoch: 0))
    }
}
