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

    /// High and low 32-bit halves of `multiplier` × each lane, as 32-bit lanes. Written on 64-bit lanes (even and odd
    /// 32-bit lanes separately) so that it compiles to `vpmuludq` and a few shifts, not to lane-by-lane code.
    @inline(__always)
    static func multiplyHighLow(_ lanes: SIMD16<UInt32>, by multiplier: UInt64)
        -> (high: SIMD16<UInt32>, low: SIMD16<UInt32>)
    {
        let wide = unsafeBitCast(lanes, to: SIMD8<UInt64>.self)
        let lowMask = SIMD8<UInt64>(repeating: 0xFFFF_FFFF)
        let even = (wide & lowMask) &* multiplier  // products of lanes 0, 2, 4, 6
        let odd = (wide &>> 32) &* multiplier  // products of lanes 1, 3, 5, 7
        let high = (even &>> 32) | (odd & ~lowMask)
        let low = (even & lowMask) | (odd &<< 32)
        return (unsafeBitCast(high, to: SIMD16<UInt32>.self), unsafeBitCast(low, to: SIMD16<UInt32>.self))
    }

    /// Sixteen consecutive blocks at once (lane b = block firstBlock + b): the same ten rounds on SIMD lanes. Sixteen
    /// lanes are two independent 256-bit chains on AVX2, which hides the multiplies' latency.
    @inline(__always)
    func sixteenBlocks(firstBlock: Int, step: UInt64, stream: RandomStream, substream: UInt32, index: Int)
        -> (SIMD16<UInt32>, SIMD16<UInt32>, SIMD16<UInt32>, SIMD16<UInt32>)
    {
        var c0 = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            &+ UInt32(truncatingIfNeeded: firstBlock)
        var c1 = SIMD16<UInt32>(repeating: UInt32(truncatingIfNeeded: index))
        var c2 = SIMD16<UInt32>(repeating: UInt32(truncatingIfNeeded: step))
        var c3 = SIMD16<UInt32>(repeating: stream.rawValue | (substream << 8)
                                    | (UInt32(truncatingIfNeeded: step >> 32) << 24))
        let (k0, k1) = generator.key
        // Unrolled by hand: as a loop, the compiler interleaves the rounds' lanes into shuffles.
        @inline(__always) func round(_ index: UInt32) {
            let p0 = Self.multiplyHighLow(c0, by: 0xD251_1F53)
            let p1 = Self.multiplyHighLow(c2, by: 0xCD9E_8D57)
            let roundKey0 = SIMD16<UInt32>(repeating: k0 &+ index &* 0x9E37_79B9)
            let roundKey1 = SIMD16<UInt32>(repeating: k1 &+ index &* 0xBB67_AE85)
            (c0, c1, c2, c3) = (p1.high ^ c1 ^ roundKey0, p1.low, p0.high ^ c3 ^ roundKey1, p0.low)
        }
        round(0); round(1); round(2); round(3); round(4); round(5); round(6); round(7); round(8); round(9)
        return (c0, c1, c2, c3)
    }

    /// Fills `count` uniforms in [0, 1) for (step, stream, substream, index). Element e is word e mod 4 of block
    /// e / 4; whole groups of sixteen blocks are computed on SIMD lanes, the rest one block at a time (same words).
    public func uniform(step: UInt64, stream: RandomStream, substream: UInt32 = 0, index: Int, count: Int,
                        into destination: UnsafeMutablePointer<Float>) {
        var element = 0
        var block = 0
        let scale = SIMD16<Float>(repeating: 1.0 / 16_777_216.0)
        @inline(__always) func unit(_ w: SIMD16<UInt32>) -> SIMD16<Float> {
            SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: w &>> 8)) * scale
        }
        while element + 64 <= count {
            let (w0, w1, w2, w3) = sixteenBlocks(firstBlock: block, step: step, stream: stream, substream: substream,
                                                 index: index)
            let f0 = unit(w0), f1 = unit(w1), f2 = unit(w2), f3 = unit(w3)
            // Element order is block-major: a 4×16 transpose of (f0, f1, f2, f3), two blocks per SIMD8.
            let out = UnsafeMutableRawPointer(destination + element)
            for pair in 0..<8 {
                let a = 2 * pair, b = 2 * pair + 1
                out.storeBytes(of: SIMD8(f0[a], f1[a], f2[a], f3[a], f0[b], f1[b], f2[b], f3[b]),
                               toByteOffset: 32 * pair, as: SIMD8<Float>.self)
            }
            element += 64
            block += 16
        }
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
