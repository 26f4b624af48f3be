#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
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
    /// The FMA peak of `threads` threads running the peak loop at once: the median of the peaks measured just before
    /// each timed repetition.
    public let peakGflops: Double
    /// The median over the repetitions of each one's GFLOP/s over the peak measured just before it: on a machine whose
    /// speed drifts (a shared VM: ±10–25% within minutes) a peak measured once, apart from the steps, moves this ratio
    /// by as much as the drift.
    public let peakFraction: Double
    public let oversubscribed: Bool
    /// With `--phases`: the step split by phase, from a separate traced run after the timed ones.
    public let phaseProfile: PhaseProfile?
    /// Under mpirun (`pgan bench` fills it in): the processes, each with `threads` threads.
    public var cluster: ClusterFigures?

    /// What a point measured of the processes working together, from rank 0.
    public struct ClusterFigures: Sendable {
        public let ranks: Int
        /// Seconds per step and, of those, seconds inside MPI calls; bytes handed to MPI per step by every rank (they
        /// differ when ranks own different numbers of blocks).
        public let secondsPerStep: Double
        public let mpiSecondsPerStep: Double
        public let bytesSentPerStepByRank: [Double]
        /// Rank 0's bytes per step, the CSV's and JSON's figure.
        public var bytesSentPerStep: Double { bytesSentPerStepByRank[0] }
        /// Rank 0 alone (one process, the same threads), images/s: the base of the speedup; 0 until measured.
        public var oneProcessImagesPerSecond: Double = 0
    }

    /// Aggregate images/s over rank 0 alone's.
    public var speedupOverOneProcess: Double? {
        guard let cluster, cluster.oneProcessImagesPerSecond > 0 else { return nil }
        return imagesPerSecond / cluster.oneProcessImagesPerSecond
    }

    /// Under mpirun, a second table line: the speedup over one process and the exchange's share of a step.
    public var clusterRow: String? {
        guard let cluster else { return nil }
        return String(printf: "  %d processes × %d threads: %.1f images/s; one process alone %.1f → %.2f× (%.0f%% of %d×); per step %.2f ms of %.2f ms in MPI on rank 0 (%.1f%%); MB sent per step by rank 0, 1, …: ",
                      cluster.ranks, threads, imagesPerSecond, cluster.oneProcessImagesPerSecond, speedupOverOneProcess ?? 0,
                      100 * (speedupOverOneProcess ?? 0) / Double(cluster.ranks), cluster.ranks,
                      1000 * cluster.mpiSecondsPerStep, 1000 * cluster.secondsPerStep,
                      100 * cluster.mpiSecondsPerStep / cluster.secondsPerStep)
            + cluster.bytesSentPerStepByRank.map { String(printf: "%.2f", $0 / 1e6) }.joined(separator: ", ")
    }

    public static let tableHeader = "scheduler  threads  batch  shards    images/s  speedup  efficiency   GFLOP/s  peak GFLOP/s  % of peak  note\n"
        + "---------  -------  -----  ------  ----------  -------  ----------  --------  ------------  ---------  ----"

    public var tableRow: String {
        scheduler.rightAligned(9)
            + String(printf: "  %7d  %5d  %6d  %10.1f  ", threads, batchSize, shards, imagesPerSecond)
            + (speedup.map { String(printf: "%.2f×", $0) } ?? "–").rightAligned(7) + "  "
            + (efficiency.map { String(printf: "%.0f%%", $0 * 100) } ?? "–").rightAligned(10)
            + String(printf: "  %8.1f  %12.1f  %8.1f%%  ", gflops, peakGflops, peakFraction * 100)
            + (oversubscribed ? "oversubscribed" : "")
    }

    public static let csvHeader = "scheduler,threads,batch_size,shards,images_per_second,speedup,efficiency,gflops,peak_gflops,peak_fraction,oversubscribed,ranks,one_process_images_per_second,mpi_ms_per_step,ms_per_step,bytes_sent_per_step"

    public var csvRow: String {
        "\(scheduler),\(threads),\(batchSize),\(shards),\(String(printf: "%.2f", imagesPerSecond)),"
            + "\(speedup.map { String(printf: "%.4f", $0) } ?? ""),\(efficiency.map { String(printf: "%.4f", $0) } ?? ""),"
            + "\(String(printf: "%.3f", gflops)),\(String(printf: "%.1f", peakGflops)),\(String(printf: "%.4f", peakFraction)),\(oversubscribed),"
            + (cluster.map { String(printf: "%d,%.2f,%.4f,%.4f,%.0f", $0.ranks, $0.oneProcessImagesPerSecond,
                                    1000 * $0.mpiSecondsPerStep, 1000 * $0.secondsPerStep, $0.bytesSentPerStep) } ?? "1,,,,")
    }

    public var json: String {
        func number(_ v: Double?) -> String { v.map { String(printf: "%.4f", $0) } ?? "null" }
        return "{\"scheduler\":\"\(scheduler)\",\"threads\":\(threads),\"batch_size\":\(batchSize),\"shards\":\(shards),"
            + "\"images_per_second\":\(String(printf: "%.2f", imagesPerSecond)),\"speedup\":\(number(speedup)),"
            + "\"efficiency\":\(number(efficiency)),\"gflops\":\(String(printf: "%.3f", gflops)),"
            + "\"peak_gflops\":\(String(printf: "%.1f", peakGflops)),"
            + "\"peak_fraction\":\(String(printf: "%.4f", peakFraction)),\"oversubscribed\":\(oversubscribed),"
            + "\"repetitions_images_per_second\":[\(repetitions.map { String(printf: "%.2f", $0) }.joined(separator: ","))]"
            + (phaseProfile.map { ",\"phases\":" + $0.json } ?? "")
            + (cluster.map { String(printf: ",\"ranks\":%d,\"one_process_images_per_second\":%.2f,\"mpi_ms_per_step\":%.4f,\"ms_per_step\":%.4f,\"bytes_sent_per_step\":%.0f", $0.ranks, $0.oneProcessImagesPerSecond, 1000 * $0.mpiSecondsPerStep, 1000 * $0.secondsPerStep, $0.bytesSentPerStep) } ?? "") + "}"
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

    /// What is trained, with the optimizer its own code uses (`GANModelKind.defaultOptimizer`).
    public let model: GANModel

    public init(steps: Int, warmup: Int, repeats: Int, shards: Int, tracesPhases: Bool = false, model: GANModel = .seed) {
        self.model = model
        self.steps = steps
        self.warmup = warmup
        self.repeats = repeats
        self.shards = shards
        self.tracesPhases = tracesPhases
    }

    /// The training configuration of a point.
    public func configuration(batchSize: Int) -> TrainingConfiguration {
        TrainingConfiguration(batchSize: batchSize, shards: shards, optimizer: model.kind.defaultOptimizer, model: model)
    }

    /// `baseline`: images/s of the one-thread point at this batch size, for speedup and efficiency.
    /// `group`: under mpirun, every rank calls this together and trains its own shards; the figures are rank 0's,
    /// images/s counts the whole minibatch, and the peak is the sum of the ranks' peaks.
    public func measure(threads: Int, batchSize: Int, topology: Topology, scheduling: ShardedExecutor.Scheduling,
                        baseline: Double?, group: ProcessGroup = SingleProcess.shared) -> BenchmarkPoint {
        let executor = ShardedExecutor(threadCount: threads, topology: topology, scheduling: scheduling)
        defer { executor.restoreCallerBinding() }
        // The peak these threads can reach together: on machines whose "cores" share FMA units (SMT presented as
        // cores by a hypervisor) it grows less than the thread count, and that bounds any speedup. Measured again
        // before every timed repetition, so each repetition's fraction of the peak compares figures taken together.
        func measurePeak() -> (own: Double, job: Double) {
            let own = FMAPeak.measure(executor: executor, seconds: 0.2)
            return (own, group.allGather(own.bitPattern).reduce(0) { $0 + Double(bitPattern: $1) })
        }
        let trainer = GANTrainer(configuration: configuration(batchSize: batchSize), executor: executor, group: group)
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
        var rates: [Double] = [], ownPeaks: [Double] = [], jobPeaks: [Double] = []
        var elapsed = 0.0, traffic = ProcessTraffic()  // of the timed steps only, not of the peaks' gathering
        for _ in 0..<repeats {
            let peak = measurePeak()
            ownPeaks.append(peak.own)
            jobPeaks.append(peak.job)
            let trafficBefore = group.traffic, start = monotonicSeconds()
            train(steps)
            let seconds = monotonicSeconds() - start
            elapsed += seconds
            traffic = traffic + (group.traffic - trafficBefore)
            rates.append(Double(steps * batchSize) / seconds)
        }
        let timedSteps = Double(repeats * steps)
        let bytesByRank = group.allGather(UInt64(traffic.bytesSent)).map { Double($0) / timedSteps }
        let cluster = group.size == 1 ? nil : BenchmarkPoint.ClusterFigures(
            ranks: group.size, secondsPerStep: elapsed / timedSteps, mpiSecondsPerStep: traffic.seconds / timedSteps,
            bytesSentPerStepByRank: bytesByRank)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let imagesPerSecond = median(rates)
        var profile: PhaseProfile?
        if tracesPhases {
            let trace = PhaseTrace(workers: threads)
            executor.trace = trace
            train(steps)
            executor.trace = nil
            // The trace is rank 0's alone: its phases against its own peak.
            profile = PhaseProfile(trace: trace, steps: steps, threads: threads, peakGflops: median(ownPeaks))
        }
        let gigaflopsPerImage = 2 * Double(trainer.multiplyAddsPerStep) / Double(batchSize) / 1e9
        let speedup = baseline.map { imagesPerSecond / $0 } ?? (threads == 1 ? 1 : nil)
        let fractions = zip(rates, jobPeaks).map { rate, peak in rate * gigaflopsPerImage / peak }
        return BenchmarkPoint(scheduler: scheduling.rawValue, threads: threads, batchSize: batchSize, shards: shards,
                              imagesPerSecond: imagesPerSecond, repetitions: rates, speedup: speedup,
                              efficiency: speedup.map { $0 / Double(threads) },
                              gflops: imagesPerSecond * gigaflopsPerImage, peakGflops: median(jobPeaks),
                              peakFraction: median(fractions),
                              oversubscribed: threads > topology.processingUnitCount, phaseProfile: profile,
                              cluster: cluster)
    }
}
