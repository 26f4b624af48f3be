import ParallelTensorAVX512
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based generator.
/// Every random number is a pure function of (key, counter), so any thread can draw sample i's numbers for step t
/// without a shared stream: the results cannot depend on which thread runs which shard.
public struct Philox4x32: Sendable {
    public let key: (UInt32, UInt32)

    public init(key: (UInt32, UInt32)) { self.key = key }

    /// Key from a 64-bit seed.
    public init(seed: UInt64) { key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)) }

    @inline(__always)
    static func multiplyHighLow(_ a: UInt32, _ b: UInt32) -> (high: UInt32, low: UInt32) {
        let product = UInt64(a) &* UInt64(b)
        return (UInt32(truncatingIfNeeded: product >> 32), UInt32(truncatingIfNeeded: product))
    }

    /// The ten-round block function: four 32-bit outputs for a 128-bit counter.
    @inline(__always)
    public func block(_ counter: (UInt32, UInt32, UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
            let p0 = Self.multiplyHighLow(0xD251_1F53, c0)
            let p1 = Self.multiplyHighLow(0xCD9E_8D57, c2)
            (c0, c1, c2, c3) = (p1.high ^ c1 ^ k0, p1.low, p0.high ^ c3 ^ k1, p0.low)
        }
        return (c0, c1, c2, c3)
    }
}

/// Which consumer of randomness a draw belongs to; part of every counter, so streams never overlap.
public enum RandomStream: UInt32, Sendable {
    case initialization = 1
    case discriminatorNoise = 2
    case generatorNoise = 3
    case dropout = 4
    case shuffle = 5
    case sampleNoise = 6
}

/// Random numbers addressed by (step, stream, index, element): the counter is (element block, index, step, stream |
/// substream << 8). A draw is the same bits whoever asks for it, whenever.
public struct CounterRandom: Sendable {
    public let generator: Philox4x32

    public init(seed: UInt64) { generator = Philox4x32(seed: seed) }

    @inline(__always)
    func words(step: UInt64, stream: RandomStream, substream: UInt32, index: Int, block: Int)
        -> (UInt32, UInt32, UInt32, UInt32)
    {
        generator.block((UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: index),
                         UInt32(truncatingIfNeeded: step),
                         stream.rawValue | (substream << 8) | (UInt32(truncatingIfNeeded: step >> 32) << 24)))
    }

    /// A uniform in [0, 1) from the top 24 bits of a word (exactly representable floats).
    @inline(__always)
    public static func unitFloat(_ word: UInt32) -> Float { Float(word >> 8) * (1.0 / 16_777_216.0) }

    /// Fills `count` uniforms in [0, 1) for (step, stream, substream, index). Element e is word e mod 4 of block
    /// e / 4; whole groups of sixteen blocks are computed on SIMD lanes, the rest one block at a time (same words).
    public func uniform(step: UInt64, stream: RandomStream, substream: UInt32 = 0, index: Int, count: Int,
                        into destination: UnsafeMutablePointer<Float>) {
        // Whole groups of sixteen blocks (64 elements) on SIMD lanes (`PhiloxLanes`; on AVX-512 CPUs its AVX-512 build:
        // 0.86–0.93 against 1.10–1.21 ns per float, kernel-benchmarks), the rest one block at a time.
        let groups = count / 64
        let c1 = UInt32(truncatingIfNeeded: index), c2 = UInt32(truncatingIfNeeded: step)
        let c3 = stream.rawValue | (substream << 8) | (UInt32(truncatingIfNeeded: step >> 32) << 24)
        if GEMM.kernel == .avx512 {
            PhiloxLanes.uniformsAVX512(key: generator.key, c1: c1, c2: c2, c3: c3, groups: groups, into: destination)
        } else {
            PhiloxLanes.uniforms(key: generator.key, c1: c1, c2: c2, c3: c3, groups: groups, into: destination)
        }
        var element = 64 * groups
        var block = 16 * groups
        while element < count {
            let w = words(step: step, stream: stream, substream: substream, index: index, block: block)
            let values = (w.0, w.1, w.2, w.3)
            withUnsafeBytes(of: values) { raw in
                for lane in 0..<min(4, count - element) {
                    destination[element + lane] = Self.unitFloat(raw.load(fromByteOffset: lane * 4, as: UInt32.self))
                }
            }
            element += 4
            block += 1
        }
    }

    /// Fills `count` standard normals (Box–Muller on pairs of uniforms) for (step, stream, substream, index).
    public func normal(step: UInt64, stream: RandomStream, substream: UInt32 = 0, index: Int, count: Int,
                       into destination: UnsafeMutablePointer<Float>) {
        var element = 0
        var block = 0
        while element < count {
            let w = words(step: step, stream: stream, substream: substream, index: index, block: block)
            let first = Self.boxMuller(w.0, w.1), second = Self.boxMuller(w.2, w.3)
            let values = (first.0, first.1, second.0, second.1)
            withUnsafeBytes(of: values) { raw in
                for lane in 0..<min(4, count - element) {
                    destination[element + lane] = raw.load(fromByteOffset: lane * 4, as: Float.self)
                }
            }
            element += 4
            block += 1
        }
    }

    /// Two independent standard normals from two words; computed in Double so the tails are exact to float precision.
    @inline(__always)
    static func boxMuller(_ first: UInt32, _ second: UInt32) -> (Float, Float) {
        let u1 = (Double(first) + 0.5) / 4_294_967_296.0  // in (0, 1): log never sees 0
        let u2 = Double(second) / 4_294_967_296.0
        let radius = sqrt(-2 * log(u1))
        let angle = 2 * Double.pi * u2
        return (Float(radius * cos(angle)), Float(radius * sin(angle)))
    }

    /// A uniform integer in 0..<bound for (step, stream, index), by 64-bit multiply-shift (bias < 2⁻³²·bound).
    public func integer(below bound: Int, step: UInt64, stream: RandomStream, index: Int) -> Int {
        let w = words(step: step, stream: stream, substream: 0, index: index, block: 0)
        let random = UInt64(w.0) | (UInt64(w.1) << 32)
        return Int(random.multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// A permutation of 0..<count (Fisher–Yates) determined by (epoch, stream).
    public func permutation(count: Int, epoch: UInt64, stream: RandomStream = .shuffle) -> [Int] {
        var order = Array(0..<count)
        if count < 2 { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = integer(below: i + 1, step: epoch, stream: stream, index: i)
            order.swapAt(i, j)
        }
        return order
    }
}
