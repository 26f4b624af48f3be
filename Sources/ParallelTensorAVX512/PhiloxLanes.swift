/// Philox-4x32-10 on SIMD lanes, sixteen blocks at a time, and the uniforms of `CounterRandom.uniform` made from them.
///
/// The code is `@inlinable`, so ParallelTensor compiles `uniforms` into `CounterRandom.uniform` for the CPUs it is
/// built for (AVX2: each `SIMD16<UInt32>` is two ymm registers); `uniformsAVX512` is the same code compiled in this
/// module for AVX-512 (one zmm register a vector), reached only after ParallelTensor has checked the CPU. Every
/// operation is exact integer arithmetic or an exact conversion, so both give the same bits (PhiloxTests).
public enum PhiloxLanes {
    /// High and low 32-bit halves of `multiplier` × each lane. The high halves come from 64-bit products of the even
    /// and odd lanes (`vpmuludq`). The low halves: for AVX-512 a 32-bit lane multiply (`vpmulld`); otherwise from the
    /// same 64-bit products, which is cheaper on AVX2 but which LLVM turns into a full 64-bit multiply (`vpmullq`,
    /// several times slower) once AVX-512DQ is there.
    @inlinable @inline(__always)
    static func multiplyHighLow(_ lanes: SIMD16<UInt32>, by multiplier: UInt32, forAVX512: Bool)
        -> (high: SIMD16<UInt32>, low: SIMD16<UInt32>)
    {
        let wide = unsafeBitCast(lanes, to: SIMD8<UInt64>.self)
        let lowMask = SIMD8<UInt64>(repeating: 0xFFFF_FFFF)
        let even = (wide & lowMask) &* UInt64(multiplier)  // products of lanes 0, 2, 4, …
        let odd = (wide &>> 32) &* UInt64(multiplier)  // products of lanes 1, 3, 5, …
        let high = unsafeBitCast((even &>> 32) | (odd & ~lowMask), to: SIMD16<UInt32>.self)
        if forAVX512 { return (high, lanes &* multiplier) }
        return (high, unsafeBitCast((even & lowMask) | (odd &<< 32), to: SIMD16<UInt32>.self))
    }

    /// Blocks `firstBlock ..< firstBlock + 16` (lane b: block firstBlock + b) of the counter (block, c1, c2, c3) under
    /// `key`: the ten rounds of `Philox4x32.block` on lanes.
    @inlinable @inline(__always)
    static func sixteenBlocks(key: (UInt32, UInt32), firstBlock: UInt32, c1: UInt32, c2: UInt32, c3: UInt32,
                              forAVX512: Bool)
        -> (SIMD16<UInt32>, SIMD16<UInt32>, SIMD16<UInt32>, SIMD16<UInt32>)
    {
        var w0 = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) &+ firstBlock
        var w1 = SIMD16<UInt32>(repeating: c1)
        var w2 = SIMD16<UInt32>(repeating: c2)
        var w3 = SIMD16<UInt32>(repeating: c3)
        let (k0, k1) = key
        // Unrolled by hand: as a loop, the compiler interleaves the rounds' lanes into shuffles.
        @inline(__always) func round(_ index: UInt32) {
            let p0 = multiplyHighLow(w0, by: 0xD251_1F53, forAVX512: forAVX512)
            let p1 = multiplyHighLow(w2, by: 0xCD9E_8D57, forAVX512: forAVX512)
            let roundKey0 = SIMD16<UInt32>(repeating: k0 &+ index &* 0x9E37_79B9)
            let roundKey1 = SIMD16<UInt32>(repeating: k1 &+ index &* 0xBB67_AE85)
            (w0, w1, w2, w3) = (p1.high ^ w1 ^ roundKey0, p1.low, p0.high ^ w3 ^ roundKey1, p0.low)
        }
        round(0); round(1); round(2); round(3); round(4); round(5); round(6); round(7); round(8); round(9)
        return (w0, w1, w2, w3)
    }

    /// Uniforms in [0, 1) for elements 0 ..< 64·groups of the counter (block, c1, c2, c3): element e is word e mod 4
    /// of block e / 4, a float from the word's top 24 bits (exact) times 2⁻²⁴ (`CounterRandom.unitFloat`).
    @inlinable @inline(__always)
    public static func uniforms(key: (UInt32, UInt32), c1: UInt32, c2: UInt32, c3: UInt32, groups: Int,
                                into destination: UnsafeMutablePointer<Float>, forAVX512: Bool = false) {
        let scale = SIMD16<Float>(repeating: 1.0 / 16_777_216.0)
        let twoToThe23 = SIMD16<Float>(repeating: 8_388_608), exponent = SIMD16<UInt32>(repeating: 0x4B00_0000)
        // The word's top 24 bits as a float. The generic integer-to-float SIMD conversion is a call per vector in the
        // AVX-512 build (and still the faster way on AVX2, measured), so there it is done exactly with float
        // arithmetic: 2²³ + n with n < 2²³ is a float whose mantissa is n, so less 2²³ it is n exactly; the top 16
        // bits times 256 plus the next 8 is then exact below 2²⁴, and times 2⁻²⁴ exact too.
        @inline(__always) func unit(_ w: SIMD16<UInt32>) -> SIMD16<Float> {
            guard forAVX512 else { return SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: w &>> 8)) * scale }
            let high = unsafeBitCast(exponent | (w &>> 16), to: SIMD16<Float>.self) - twoToThe23
            let low = unsafeBitCast(exponent | ((w &>> 8) & 0xFF), to: SIMD16<Float>.self) - twoToThe23
            return (high * 256 + low) * scale
        }
        for group in 0..<groups {
            let (w0, w1, w2, w3) = sixteenBlocks(key: key, firstBlock: UInt32(truncatingIfNeeded: 16 &* group),
                                                 c1: c1, c2: c2, c3: c3, forAVX512: forAVX512)
            // Element order is block-major: a 4×16 transpose of the four words' vectors, as two interleavings
            // (words 0 with 1 and 2 with 3, then those pairs as 64-bit lanes).
            var pairs01 = SIMD32<Float>(), pairs23 = SIMD32<Float>()
            pairs01.evenHalf = unit(w0)
            pairs01.oddHalf = unit(w1)
            pairs23.evenHalf = unit(w2)
            pairs23.oddHalf = unit(w3)
            var blocks = SIMD32<UInt64>()
            blocks.evenHalf = unsafeBitCast(pairs01, to: SIMD16<UInt64>.self)
            blocks.oddHalf = unsafeBitCast(pairs23, to: SIMD16<UInt64>.self)
            UnsafeMutableRawPointer(destination + 64 &* group).storeBytes(of: blocks, as: SIMD32<UInt64>.self)
        }
    }

    /// `uniforms` compiled for AVX-512. Call it only on a CPU that has AVX-512F and DQ.
    public static func uniformsAVX512(key: (UInt32, UInt32), c1: UInt32, c2: UInt32, c3: UInt32, groups: Int,
                                      into destination: UnsafeMutablePointer<Float>) {
        uniforms(key: key, c1: c1, c2: c2, c3: c3, groups: groups, into: destination, forAVX512: true)
    }
}
