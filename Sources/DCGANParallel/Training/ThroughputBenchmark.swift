import Foundation
import ParallelTensor

/// One point of the scaling benchmark.
public struct BenchmarkPoint: Sendable {
    public let scheduler: String
    public let threads: Int
    public let batchSize: Int
    public let shards: Int
    public let imagesPerSecond: Double
    public let repetitions: [Double]
    public let speedup: Double?
    public let efficiency: Double?
    public let gflops: Double
    /// The FMA peak of `threads` threads running the peak loop at once, measured just before the point.
    public let peakGflops: Double
    public let peakFraction: Double
    public let oversubscribed: Bool
    /// With `--phases`: the step split by phase, from a separate traced run after the timed ones.
    public let phaseProfile: PhaseProfile?

    public static let tableHeader = "scheduler  threads  batch  shards    images/s  speedup  efficiency   GFLOP/s  peak GFLOP/s  % of peak  note\n"
        + "---------  -------  -----  ------  ----------  -------  ----------  --------  ------------  ---------  ----"

    public var tableRow: String {
        scheduler.rightAligned(9)
            + String(format: "  %7d  %5d  %6d  %10.1f  ", threads, batchSize, shards, imagesPerSecond)
            + (speedup.map { String(format: "%.2f×", $0) } ?? "–").rightAligned(7) + "  "
            + (efficiency.map { String(format: "%.0f%%", $0 * 100) } ?? "–").rightAligned(10)
            + String(format: "  %8.1f  %12.1f  %8.1f%%  ", gflops, peakGflops, peakFraction * 100)
            + (oversubscribed ? "oversubscribed" : "")
    }

    public static let csvHeader = "scheduler,threads,batch_size,shards,images_per_second,speedup,efficiency,gflops,peak_gflops,peak_fraction,oversubscribed"

    public var csvRow: String {
        "\(scheduler),\(threads),\(batchSize),\(shards),\(String(format: "%.2f", imagesPerSecond)),"
            + "\(speedup.map { String(format: "%.4f", $0) } ?? ""),\(efficiency.map { String(format: "%.4f", $0) } ?? ""),"
            + "\(String(format: "%.3f", gflops)),\(String(format: "%.1f", peakGflops)),\(String(format: "%.4f", peakFraction)),\(oversubscribed)"
    }

    public var json: String {
        func number(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "null" }
        return "{\"scheduler\":\"\(scheduler)\",\"threads\":\(threads),\"batch_size\":\(batchSize),\"shards\":\(shards),"
            + "\"images_per_second\":\(String(format: "%.2f", imagesPerSecond)),\"speedup\":\(number(speedup)),"
            + "\"efficiency\":\(number(efficiency)),\"gflops\":\(String(format: "%.3f", gflops)),"
            + "\"peak_gflops\":\(String(format: "%.1f", peakGflops)),"
            + "\"peak_fraction\":\(String(format: "%.4f", peakFraction)),\"oversubscribed\":\(oversubscribed),"
            + "\"repetitions_images_per_second\":[\(repetitions.map { String(format: "%.2f", $0) }.joined(separator: ","))]"
            + (phaseProfile.map { ",\"phases\":" + $0.json } ?? "") + "}"
    }
}

/// Trains on random images (uniform in [−1, 1], from the counter-based generator) and times whole steps.
public struct ThroughputBenchmark: Sendable {
    public let steps: Int
    public let warmup: Int
    public let repeats: Int
    public let shards: Int
    /// Also trace `steps` more steps phase by phase (`PhaseProfile`).
    public let tracesPhases: Bool

    public init(steps: Int, warmup: Int, repeats: Int, shards: Int, tracesPhases: Bool = false) {
        self.steps = steps
        self.warmup = warmup
        self.repeats = repeats
        self.shards = shards
        self.tracesPhases = tracesPhases
    }

    /// `baseline`: images/s of the one-thread point at this batch size, for speedup and efficiency.
    public func measure(threads: Int, batchSize: Int, topology: Topology, scheduling: ShardedExecutor.Scheduling,
                        baseline: Double?) -> BenchmarkPoint {
        let executor = ShardedExecutor(threadCount: threads, topology: topology, scheduling: scheduling)
        defer { executor.restoreCallerBinding() }
        // The peak these threads can reach together: on machines whose "cores" share FMA units (SMT presented as
        // cores by a hypervisor) it grows less than the thread count, and that bounds any speedup.
        let peak = FMAPeak.measure(executor: executor, seconds: 0.2)
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: batchSize, shards: shards),
                                 executor: executor)
        let images = AlignedBuffer(count: batchSize * trainer.discriminator.inputElements)
        CounterRandom(seed: 7).uniform(step: 0, stream: .sampleNoise, index: 0, count: images.count, into: images.pointer)
        for i in 0..<images.count { images[i] = images[i] * 2 - 1 }
        nonisolated(unsafe) let source = images.pointer
        let count = images.count
        // Steps go to the trainer in groups, exactly as `pgan train` hands them over.
        func train(_ steps: Int) {
            var done = 0
            while done < steps {
                let group = min(trainer.stepsPerCall, steps - done)
                _ = trainer.trainSteps(count: group) { _, destination in destination.update(from: source, count: count) }
                done += group
            }
        }
        train(warmup)
        var rates: [Double] = []
        for _ in 0..<repeats {
            let start = monotonicSeconds()
            train(steps)
            rates.append(Double(steps * batchSize) / (monotonicSeconds() - start))
        }
        let median = rates.sorted()[rates.count / 2]
        var profile: PhaseProfile?
        if tracesPhases {
            let trace = PhaseTrace(workers: threads)
            executor.trace = trace
            train(steps)
            executor.trace = nil
            profile = PhaseProfile(trace: trace, steps: steps, threads: threads, peakGflops: peak)
        }
        let flopsPerImage = 2 * Double(trainer.multiplyAddsPerStep) / Double(batchSize)
        let gflops = median * flopsPerImage / 1e9
        let speedup = baseline.map { median / $0 } ?? (threads == 1 ? 1 : nil)
        return BenchmarkPoint(scheduler: scheduling.rawValue, threads: threads, batchSize: batchSize, shards: shards, imagesPerSecond: median,
                              repetitions: rates, speedup: speedup, efficiency: speedup.map { $0 / Double(threads) },
                              gflops: gflops, peakGflops: peak, peakFraction: gflops / peak,
                              oversubscribed: threads > topology.processingUnitCount, phaseProfile: profile)
    }
}
