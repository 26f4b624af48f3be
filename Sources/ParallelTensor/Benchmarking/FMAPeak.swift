import ParallelTensorAVX512
#if canImport(Glibc)
import Glibc
#endif

/// The machine's measured fused-multiply-add peak: 12 independent chains of `SIMD8<Float>` FMAs (enough to cover the
/// FMA latency on two ports), the same instruction mix as the GEMM micro-kernel without its loads. Benchmarks divide
/// their GFLOP/s by this to report a fraction of peak.
public enum FMAPeak {
    /// GFLOP/s of one thread over about `seconds`, with the vector width GEMM uses (`GEMM.kernel`).
    public static func measureOneThread(seconds: Double = 0.2) -> Double {
        let run = fmaRun(seconds: seconds)
        return run.flops / run.seconds / 1e9
    }

    /// FLOPs done by one thread running the FMA chains for about `seconds`, and the seconds it took.
    static func fmaRun(seconds: Double) -> (flops: Double, seconds: Double) {
        if GEMM.kernel == .avx512 {
            let iterations = 1 << 16
            var rounds = 0, checksum: Float = 0
            let start = monotonicSeconds()
            var elapsed = 0.0
            repeat {
                checksum += MicroKernel512.fmaLoop(iterations: iterations)
                rounds += 1
                elapsed = monotonicSeconds() - start
            } while elapsed < seconds
            if checksum == .infinity { writeToStandardError("") }
            return (Double(rounds) * Double(iterations) * 12 * 16 * 2, elapsed)
        }
        var accumulators = [SIMD8<Float>](repeating: SIMD8(repeating: 0), count: 12)
        let a = SIMD8<Float>(repeating: 0.999_999), b = SIMD8<Float>(repeating: 1e-7)
        let iterationsPerRound = 1 << 16
        var rounds = 0
        let start = monotonicSeconds()
        var elapsed = 0.0
        repeat {
            var c0 = accumulators[0], c1 = accumulators[1], c2 = accumulators[2], c3 = accumulators[3]
            var c4 = accumulators[4], c5 = accumulators[5], c6 = accumulators[6], c7 = accumulators[7]
            var c8 = accumulators[8], c9 = accumulators[9], c10 = accumulators[10], c11 = accumulators[11]
            for _ in 0..<iterationsPerRound {
                c0 = c0.addingProduct(c0, a) + b; c1 = c1.addingProduct(c1, a)
                c2 = c2.addingProduct(c2, a); c3 = c3.addingProduct(c3, a)
                c4 = c4.addingProduct(c4, a); c5 = c5.addingProduct(c5, a)
                c6 = c6.addingProduct(c6, a); c7 = c7.addingProduct(c7, a)
                c8 = c8.addingProduct(c8, a); c9 = c9.addingProduct(c9, a)
                c10 = c10.addingProduct(c10, a); c11 = c11.addingProduct(c11, a)
            }
            accumulators = [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]
            rounds += 1
            elapsed = monotonicSeconds() - start
        } while elapsed < seconds
        // Keep the result observable so the loop is not removed.
        if accumulators.reduce(SIMD8<Float>(), +).sum() == .infinity { writeToStandardError("") }
        return (Double(rounds) * Double(iterationsPerRound) * 12 * 8 * 2, elapsed)
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
