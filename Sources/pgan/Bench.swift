import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput against thread count (images/s, speedup, efficiency, GFLOP/s, % of FMA peak).",
        discussion: """
        Each point trains a model (the seed DCGAN unless --model says otherwise) on random data: --warmup steps, then \
        --repeats timed runs of --steps steps; \
        images/s is the median. One image is one real image through a D step and the matching G step.
        Under mpirun (a pgan built with --traits MPI) every rank runs --threads threads on its own shards; each point \
        reports the job's images/s, rank 0 alone's (the speedup's base), and per step the time in MPI and the bytes \
        rank 0 sent.
        Example: pgan bench --threads 1,2 --batch-size 32,256 --format table
        Example: pgan bench --model dcgan --image-size 64 --channels 3 --batch-size 64 --threads 1,2
        Example: mpirun -np 2 pgan bench --threads 1 --batch-size 32,256
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, csv, json
    }

    @Option(help: "Comma-separated thread counts (default: 1, 2, 4, … up to the physical cores).",
            transform: { try positiveIntegers($0, flag: "threads").map(checkThreads) })
    var threads: [Int]?
    @Option(help: "Comma-separated batch sizes.", transform: { try positiveIntegers($0, flag: "batch-size") })
    var batchSize: [Int] = [32]
    @Option(help: "Timed steps per repetition (1–100000).")
    var steps: Int = 20
    @Option(help: "Untimed steps before timing (0–100000).")
    var warmup: Int = 3
    @Option(help: "Timed repetitions, the median is reported (1–1000).")
    var repeats: Int = 3
    @Option(help: "Shards per minibatch.")
    var shards: Int = 16
    @Option(help: "table, csv or json.")
    var format: Format = .table
    @Option(help: "Comma-separated schedulers to compare: dispatch (concurrentPerform), spin (pinned spinning pool).",
            transform: { text in
                try text.split(separator: ",", omittingEmptySubsequences: false).map { name in
                    guard let kind = ShardedExecutor.Scheduling(rawValue: String(name)) else {
                        throw ValidationError("--scheduler must be a list of dispatch and spin (got '\(text)')")
                    }
                    return kind
                }
            })
    var scheduler: [ShardedExecutor.Scheduling] = [.dispatch]
    @Option(help: "seed or dcgan (see pgan train --model).")
    var model: GANModelKind = .seed
    @Option(help: "Image side (default: 28 for the seed, 64 for dcgan).")
    var imageSize: Int?
    @Option(help: "Image channels: 1 (grey, the default) or 3 (RGB).")
    var channels: Int = 1
    @Option(help: "--model dcgan: the generator's width, ngf (default 64).")
    var generatorWidth: Int = 64
    @Option(help: "--model dcgan: the discriminator's width, ndf (default 64).")
    var discriminatorWidth: Int = 64
    @Flag(help: "Also split each point's step by phase (busy and wall time per phase, serial steps, barriers) and project the speedup its phase structure allows on more threads.")
    var phases = false

    func validate() throws {
        // --phases keeps a timing record per item of every traced step, so the counts bound memory as well as time.
        guard (1...100_000).contains(steps), (0...100_000).contains(warmup), (1...1000).contains(repeats) else {
            throw ValidationError("--steps must be 1–100000, --warmup 0–100000 and --repeats 1–1000 (got \(steps), \(warmup), \(repeats))")
        }
        if phases && format == .csv {
            throw ValidationError("--phases needs --format table or json, not csv (a phase breakdown is not one CSV row)")
        }
        for batch in batchSize { try TrainingConfiguration(batchSize: batch, shards: shards).validate() }
        _ = try benchmarkedModel()
    }

    /// The model --model, --image-size, --channels and the widths describe, or a usage error naming what is supported.
    func benchmarkedModel() throws -> GANModel {
        let side = imageSize ?? (model == .seed ? 28 : 64)
        let image = TensorShape(batch: 1, height: side, width: side, channels: channels)
        do {
            return try GANModel.make(model, for: image, generatorWidth: generatorWidth,
                                     discriminatorWidth: discriminatorWidth, source: "--image-size/--channels")
        } catch let error as DataError {
            throw ValidationError(error.description)
        }
    }

    mutating func run() throws {
        let group = try Cluster.join()
        guard shards >= group.size else {
            throw ConfigurationError("--shards \(shards) is fewer than the \(group.size) MPI processes: every rank needs at least one shard")
        }
        let topology = Topology.shared
        var defaultThreads = [1]
        while defaultThreads.last! * 2 <= topology.coreCount { defaultThreads.append(defaultThreads.last! * 2) }
        if defaultThreads.last! != topology.coreCount { defaultThreads.append(topology.coreCount) }
        let threadCounts = threads ?? defaultThreads
        let batches = batchSize, schedulers = scheduler
        let benchmark = ThroughputBenchmark(steps: steps, warmup: warmup, repeats: repeats, shards: shards,
                                            tracesPhases: phases, model: try benchmarkedModel())
        for batch in batches {
            try GANTrainer.checkMemory(configuration: benchmark.configuration(batchSize: batch),
                                       threadCount: threadCounts.max()!)
        }
        // Under mpirun rank 0 speaks for the job; the other ranks only train.
        let tableFormat = format == .table, speaks = group.rank == 0
        let log: (String) -> Void = { line in
            guard speaks else { return }
            if tableFormat { print(line) } else { writeToStandardError(line + "\n") }
        }
        let peakPerCore = FMAPeak.measureOneThread(seconds: 0.3)
        for line in MachineDescription.current(topology: topology).lines { log(line) }
        log("model: \(benchmark.model.identifier), optimizer \(benchmark.model.kind.defaultOptimizer.rawValue)")
        log(String(printf: "FMA peak: %.1f GFLOP/s on one core", peakPerCore)
            + " (measured, \(GEMM.kernel == .avx512 ? "SIMD16" : "SIMD8") FMA loop; GEMM kernel \(GEMM.kernel.rawValue)); each point's peak is measured with its own thread count before each repetition, and its % of peak is the median of the repetitions' ratios")
        let maximumThreads = threadCounts.max()!
        log("pinning map for \(maximumThreads) threads (worker → PU): "
            + topology.pinningMap(threads: maximumThreads).enumerated().map { "\($0.offset)→\($0.element)" }.joined(separator: " "))
        var points: [BenchmarkPoint] = []
        for (kind, batch) in schedulers.flatMap({ kind in batches.map { (kind, $0) } }) {
            var baseline: Double?
            for threadCount in threadCounts {
                var point = benchmark.measure(threads: threadCount, batchSize: batch, topology: topology,
                                              scheduling: kind, baseline: baseline, group: group)
                if group.size > 1 {
                    // Rank 0 alone, same threads: the base of the speedup. The others wait in the all-gather.
                    var alone = 0.0
                    if group.rank == 0 {
                        alone = benchmark.measure(threads: threadCount, batchSize: batch, topology: topology,
                                                  scheduling: kind, baseline: nil).imagesPerSecond
                    }
                    _ = group.allGather(UInt64(0))
                    point.cluster?.oneProcessImagesPerSecond = alone
                }
                if baseline == nil { baseline = threadCount == 1 ? point.imagesPerSecond : nil }
                points.append(point)
                guard speaks else { continue }
                if format == .table && points.count == 1 { print(BenchmarkPoint.tableHeader) }
                if format == .table { print(point.tableRow) }
                if format == .table, let row = point.clusterRow { print(row) }
                if format == .table, let profile = point.phaseProfile {
                    print("\nphases at \(threadCount) thread\(threadCount == 1 ? "" : "s"), batch \(batch) (\(steps) traced steps):")
                    print(profile.table + "\n")
                }
                fflush(nil)
            }
        }
        guard speaks else { return }
        switch format {
        case .csv:
            print(BenchmarkPoint.csvHeader)
            for point in points { print(point.csvRow) }
        case .json:
            print("[" + points.map(\.json).joined(separator: ",\n ") + "]")
        case .table: break
        }
    }
}
