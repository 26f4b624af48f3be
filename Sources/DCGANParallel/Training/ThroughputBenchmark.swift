import Foundation
import ParallelTensor

/// One point of the scaling benchmark.
public struct BenchmarkPoint: Sendable {
    public let threads: Int
    public let batchSize: Int
    public let shards: Int
    public let imagesPerSecond: Double
    public let repetitions: [Double]
    public let speedup: Double?
    public let efficiency: Double?
    public let gflops: Double
    public let peakFraction: Double
    public let oversubscribed: Bool

    public static let tableHeader = "threads  batch  shards    images/s  speedup  efficiency   GFLOP/s  % of peak  note\n"
        + "-------  -----  ------  ----------  -------  ----------  --------  ---------  ----"

    public var tableRow: String {
        String(format: "%7d  %5d  %6d  %10.1f  %7@  %10@  %8.1f  %8.1f%%  %@", threads, batchSize, shards,
               imagesPerSecond, speedup.map { String(format: "%.2f×", $0) } ?? "–",
               efficiency.map { String(format: "%.0f%%", $0 * 100) } ?? "–", gflops, peakFraction * 100,
               oversubscribed ? "oversubscribed" : "")
    }

    public static let csvHeader = "threads,batch_size,shards,images_per_second,speedup,efficiency,gflops,peak_fraction,oversubscribed"

    public var csvRow: String {
        "\(threads),\(batchSize),\(shards),\(String(format: "%.2f", imagesPerSecond)),"
            + "\(speedup.map { String(format: "%.4f", $0) } ?? ""),\(efficiency.map { String(format: "%.4f", $0) } ?? ""),"
            + "\(String(format: "%.3f", gflops)),\(String(format: "%.4f", peakFraction)),\(oversubscribed)"
    }

    public var json: String {
        func number(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "null" }
        return "{\"threads\":\(threads),\"batch_size\":\(batchSize),\"shards\":\(shards),"
            + "\"images_per_second\":\(String(format: "%.2f", imagesPerSecond)),\"speedup\":\(number(speedup)),"
            + "\"efficiency\":\(number(efficiency)),\"gflops\":\(String(format: "%.3f", gflops)),"
            + "\"peak_fraction\":\(String(format: "%.4f", peakFraction)),\"oversubscribed\":\(oversubscribed),"
            + "\"repetitions_images_per_second\":[\(repetitions.map { String(format: "%.2f", $0) }.joined(separator: ","))]}"
    }
}

/// Trains on random images (uniform in [−1, 1], from the counter-based generator) and times whole steps.
public struct ThroughputBenchmark: Sendable {
    public let steps: Int
    public let warmup: Int
    public let repeats: Int
    public let shards: Int

    public init(steps: Int, warmup: Int, repeats: Int, shards: Int) {
        self.steps = steps
        self.warmup = warmup
        self.repeats = repeats
        self.shards = shards
    }

    public func measure(threads: Int, batchSize: Int, topology: Topology, peakPerCore: Double,
                        baseline: Double?) -> BenchmarkPoint {
        let executor = ShardedExecutor(threadCount: threads, topology: topology)
        defer { executor.restoreCallerBinding() }
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: batchSize, shards: shards),
                                 executor: executor)
        let images = AlignedBuffer(count: batchSize * trainer.discriminator.imageElements)
        CounterRandom(seed: 7).uniform(step: 0, stream: .sampleNoise, index: 0, count: images.count, into: images.pointer)
        for i in 0..<images.count { images[i] = images[i] * 2 - 1 }
        for _ in 0..<warmup { trainer.trainStep(realImages: images.pointer) }
        var rates: [Double] = []
        for _ in 0..<repeats {
            let start = monotonicSeconds()
            for _ in 0..<steps { trainer.trainStep(realImages: images.pointer) }
            rates.append(Double(steps * batchSize) / (monotonicSeconds() - start))
        }
        let median = rates.sorted()[rates.count / 2]
        let flopsPerImage = 2 * Double(trainer.multiplyAddsPerStep) / Double(batchSize)
        let gflops = median * flopsPerImage / 1e9
        let usableCores = min(threads, topology.coreCount)
        let speedup = baseline.map { median / $0 } ?? (threads == 1 ? 1 : nil)
        return BenchmarkPoint(threads: threads, batchSize: batchSize, shards: shards, imagesPerSecond: median,
                              repetitions: rates, speedup: speedup, efficiency: speedup.map { $0 / Double(threads) },
                              gflops: gflops, peakFraction: gflops / (peakPerCore * Double(usableCores)),
                              oversubscribed: threads > topology.processingUnitCount)
    }
}
