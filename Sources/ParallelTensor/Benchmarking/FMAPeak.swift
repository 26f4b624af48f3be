import ParallelTensorAVX512
#if canImport(Glibc)
import Glibc
#endif

/// The machine's measured fused-multiply-add peak: 12 independent chains of FMAs (enough to cover the FMA latency on
/// two ports), the same instruction mix as the GEMM micro-kernel without its loads. Each chain is c = c·a + b, one FMA
/// per link and nothing else, converging to b / (1 − a) = 0.1: no extra add lengthens a chain (an earlier loop's
/// `+ b` on one chain under-measured the AVX2 peak by about 10%) and no value runs off to infinity. Benchmarks divide
/// their GFLOP/s by this to report a fraction of peak.
public enum FMAPeak {
    /// GFLOP/s of one thread over about `seconds`, with the vector width GEMM uses (`GEMM.kernel`).
    public static func measureOneThread(seconds: Double = 0.2) -> Double {
        let run = fmaRun(seconds: seconds)
        return run.flops / run.seconds / 1e9
    }

    /// FLOPs done by one thread running the FMA chains for about `seconds`, and the seconds it took.
    static func fmaRun(seconds: Double) -> (flops: Double, seconds: Double) {
        let lanes = GEMM.kernel == .avx512 ? 16 : 8
        let iterations = 1 << 16
        var rounds = 0, checksum: Float = 0
        let start = monotonicSeconds()
        var elapsed = 0.0
        repeat {
            checksum += lanes == 16 ? MicroKernel512.fmaLoop(iterations: iterations) : fmaLoop8(iterations: iterations)
            rounds += 1
            elapsed = monotonicSeconds() - start
        } while elapsed < seconds
        // Keep the result observable so the loop is not removed.
        if !checksum.isFinite { writeToStandardError("") }
        return (Double(rounds) * Double(iterations) * 12 * Double(lanes) * 2, elapsed)
    }

    /// `iterations` rounds of 12 independent SIMD8 FMA chains (the AVX2 peak loop; `MicroKernel512.fmaLoop` is the
    /// SIMD16 one); returns a value that depends on the computation so it cannot be optimised away.
    public static func fmaLoop8(iterations: Int) -> Float {
        let a = SIMD8<Float>(repeating: 0.999_999), b = SIMD8<Float>(repeating: 1e-7)
        var c0 = SIMD8<Float>(repeating: 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0
        var c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0
        for _ in 0..<iterations {
            c0 = b.addingProduct(c0, a); c1 = b.addingProduct(c1, a)
            c2 = b.addingProduct(c2, a); c3 = b.addingProduct(c3, a)
            c4 = b.addingProduct(c4, a); c5 = b.addingProduct(c5, a)
            c6 = b.addingProduct(c6, a); c7 = b.addingProduct(c7, a)
            c8 = b.addingProduct(c8, a); c9 = b.addingProduct(c9, a)
            c10 = b.addingProduct(c10, a); c11 = b.addingProduct(c11, a)
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).sum()
    }

    /// Aggregate GFLOP/s of `executor.threadCount` threads measuring at once (each pinned like a training worker):
    /// all the FLOPs done over the wall time of the whole call. With more threads than hardware threads they cannot
    /// all run at once, and this still gives the machine's peak rather than the sum of each thread's rate.
    public static func measure(executor: ShardedExecutor, seconds: Double = 0.2) -> Double {
        let flops = DoubleBuffer(count: executor.threadCount)
        nonisolated(unsafe) let pointer = flops.pointer
        let start = monotonicSeconds()
        executor.run(iterations: executor.threadCount) { thread in
            pointer[thread] = fmaRun(seconds: seconds).flops
        }
        let wall = monotonicSeconds() - start
        return (0..<executor.threadCount).reduce(0) { $0 + pointer[$1] } / wall / 1e9
    }
}

/// Seconds from a monotonic clock.
public func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) * 1e-9
}

/// Nanoseconds from the same monotonic clock, for timestamps kept as integers.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
