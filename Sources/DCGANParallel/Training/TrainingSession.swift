#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// One epoch's summary: the mean of every step metric over the epoch's steps, and its speed.
public struct EpochSummary: Sendable, Equatable {
    public var epoch: Int
    public var lastStep: Int
    public var steps: Int
    public var metrics: StepMetrics
    public var seconds: Double
    public var imagesPerSecond: Double
    /// The samples' quality at the epoch's end (`--eval-every`), when measured.
    public var quality: SampleQuality?

    public static let csvHeader = "epoch,step,steps,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate,images_per_second,seconds,frechet_distance,class_rate,diversity"
    /// The header before samples were measured, still read on --resume.
    static let unmeasuredCSVHeader = "epoch,step,steps,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate,images_per_second,seconds"

    public var csvRow: String {
        func f(_ v: Double) -> String { String(printf: "%.6f", v) }
        let measured = quality.map { "\(f($0.frechetDistance)),\($0.classRate.map(f) ?? ""),\(f($0.diversity))" } ?? ",,"
        return "\(epoch),\(lastStep),\(steps),\(f(metrics.discriminatorLoss)),\(f(metrics.generatorLoss)),"
            + "\(f(metrics.discriminatorAccuracyReal)),\(f(metrics.discriminatorAccuracyFake)),"
            + "\(f(metrics.generatorFoolingRate)),\(String(printf: "%.1f", imagesPerSecond)),\(String(printf: "%.3f", seconds)),"
            + measured
    }

    public init(epoch: Int, lastStep: Int, steps: Int, metrics: StepMetrics, seconds: Double, imagesPerSecond: Double,
                quality: SampleQuality? = nil) {
        self.quality = quality
        self.epoch = epoch
        self.lastStep = lastStep
        self.steps = steps
        self.metrics = metrics
        self.seconds = seconds
        self.imagesPerSecond = imagesPerSecond
    }

    /// Parses a row written by `csvRow` (or, `measured` false, by a pgan that did not measure samples); nil unless
    /// every field is there and in range.
    public init?<Row: StringProtocol>(csvRow: Row, measured: Bool = true) {
        let f = csvRow.split(separator: ",", omittingEmptySubsequences: false)
        guard f.count == (measured ? 13 : 10), let epoch = Int(f[0]), let lastStep = Int(f[1]), let steps = Int(f[2]),
              (1...Checkpoint.maximumStep).contains(epoch), (1...Checkpoint.maximumStep).contains(lastStep),
              (1...lastStep).contains(steps) else { return nil }
        let values = f[3...9].compactMap { Double($0) }
        guard values.count == 7, values.allSatisfy(\.isFinite) else { return nil }
        var quality: SampleQuality?
        if measured && !(f[10].isEmpty && f[11].isEmpty && f[12].isEmpty) {
            guard let distance = Double(f[10]), let diversity = Double(f[12]), distance.isFinite, diversity.isFinite,
                  f[11].isEmpty || Double(f[11])?.isFinite == true else { return nil }
            quality = SampleQuality(frechetDistance: distance, classRate: Double(f[11]), diversity: diversity)
        }
        self.init(epoch: epoch, lastStep: lastStep, steps: steps,
                  metrics: StepMetrics(discriminatorLoss: values[0], generatorLoss: values[1],
                                       discriminatorAccuracyReal: values[2], discriminatorAccuracyFake: values[3],
                                       generatorFoolingRate: values[4]),
                  seconds: values[6], imagesPerSecond: values[5], quality: quality)
    }
}

/// Running means of step metrics.
public struct MetricsAccumulator: Sendable {
    public private(set) var count = 0
    var sums = [Double](repeating: 0, count: 5)

    public init() {}

    public mutating func add(_ m: StepMetrics) {
        count += 1
        for (i, v) in [m.discriminatorLoss, m.generatorLoss, m.discriminatorAccuracyReal, m.discriminatorAccuracyFake,
                       m.generatorFoolingRate].enumerated() { sums[i] += v }
    }

    public var mean: StepMetrics {
        let n = Double(max(count, 1))
        return StepMetrics(discriminatorLoss: sums[0] / n, generatorLoss: sums[1] / n,
                           discriminatorAccuracyReal: sums[2] / n, discriminatorAccuracyFake: sums[3] / n,
                           generatorFoolingRate: sums[4] / n)
    }
}

/// Told about progress; the CLI draws bars or prints lines from it.
public protocol TrainingObserver: AnyObject {
    func stepFinished(step: Int, epoch: Int, stepInEpoch: Int, stepsInEpoch: Int, running: StepMetrics,
                      imagesPerSecond: Double, secondsLeft: Double)
    func epochFinished(_ summary: EpochSummary)
}

/// Training stopped because a number stopped being finite; the last checkpoint is left as it was.
public struct TrainingDiverged: Error, CustomStringConvertible {
    public let step: Int
    public let what: String
    public let lastCheckpointStep: Int?
    public let checkpointPath: String

    public var description: String {
        let kept = lastCheckpointStep.map { "the last good checkpoint (step \($0)) is untouched: \(checkpointPath)" }
            ?? "no checkpoint was written"
        return "training diverged at step \(step): \(what); stopped, \(kept). Try a lower --learning-rate."
    }
}

/// How a call to `TrainingSession.run` ended.
public enum SessionEnd: Sendable, Equatable {
    /// The trainer reached the target step.
    case finished
    /// `stopRequested` said so; a checkpoint was written at `step`.
    case interrupted(step: Int)
}

/// Drives a trainer over a data set: data order, epochs, and the files of a run directory —
/// `checkpoint.safetensors`, `metrics.csv` (one row per epoch), `history.csv` (one row per step),
/// `samples/epoch-NNNN.png` (an 8×8 grid from a fixed noise batch), `progress.png` and `curves.svg`.
///
/// The checkpoint is the commit point of a run. At an epoch's end the logs and pictures are written first and the
/// checkpoint last, so a kill at any moment leaves a checkpoint at step s and logs that reach at least s;
/// `restoreLogs` (on `--resume`) cuts them back to s, and the steps after s are trained again to the same bits.
public final class TrainingSession {
    public let trainer: GANTrainer
    public let dataset: ImageDataset
    public let directory: RunDirectory
    public let run: RunRecord?
    public let stepsPerEpoch: Int
    public private(set) var epochs: [EpochSummary] = []
    /// Measures the samples at epoch ends (`--eval-every`): every `evaluationInterval` epochs and at the run's last
    /// step; nil or 0: never.
    public var qualityProbe: QualityProbe?
    public var evaluationInterval = 1
    public private(set) var history: [(step: Int, metrics: StepMetrics)] = []
    /// The step of the checkpoint on disk (nil until one is written or restored).
    public private(set) var checkpointStep: Int?
    /// False on the ranks of an MPI job other than 0: they train their shards and check that they hold rank 0's
    /// state, but write nothing.
    public let writesFiles: Bool

    public static let gridColumns = 8
    public static let progressColumns = 10

    public init(trainer: GANTrainer, dataset: ImageDataset, directory: RunDirectory, run: RunRecord?) throws {
        let batch = trainer.configuration.batchSize
        try Self.check(dataset: dataset, batchSize: batch, model: trainer.configuration.model)
        self.trainer = trainer
        writesFiles = trainer.reducer.rank == 0
        self.dataset = dataset
        self.directory = directory
        self.run = run
        stepsPerEpoch = dataset.count / batch
    }

    /// The data set fits the model and holds at least one batch (checked before a trainer is built).
    public static func check(dataset: ImageDataset, batchSize: Int, model: GANModel = .seed) throws {
        let image = model.imageShape
        guard dataset.height == image.height, dataset.width == image.width, dataset.channels == image.channels else {
            throw DataError(path: dataset.source, problem: "images are \(dataset.height)×\(dataset.width)×\(dataset.channels); the model needs \(image.height)×\(image.width)×\(image.channels)")
        }
        guard dataset.count >= batchSize else {
            throw DataError(path: dataset.source, problem: "holds \(dataset.count) images, fewer than one batch of \(batchSize)")
        }
    }

    public var fingerprint: DatasetFingerprint { DatasetFingerprint(count: dataset.count, checksum: dataset.checksum) }
    public var checkpointPath: String { directory.checkpointPath }
    public var metricsPath: String { "\(directory.path)/metrics.csv" }
    public var historyPath: String { "\(directory.path)/history.csv" }

    /// After `Checkpoint.restore`: reads the logs of the run up to the trainer's step and rewrites every file of the
    /// directory as it was when that checkpoint was written (rows after it dropped, sample grids of later epochs
    /// removed). Returns warnings for logs that are missing steps (a run directory someone edited).
    @discardableResult
    public func restoreLogs() throws -> [String] {
        let step = trainer.step
        checkpointStep = step
        guard writesFiles else { return [] }
        var warnings: [String] = []
        // A damaged log stops the resume with its line named; moving the file away resumes without those rows.
        func hinted(_ error: DataError) -> DataError {
            DataError(path: error.path, problem: error.problem + " (move the file away to resume without its rows)")
        }
        do {
            if let text = try readLog(historyPath) {
                history = try RunLogs.parseHistory(text, path: historyPath).filter { $0.step <= step }
            }
            if let text = try readLog(metricsPath) {
                epochs = try RunLogs.parseMetrics(text, path: metricsPath).filter { $0.lastStep <= step }
            }
        } catch let error as DataError {
            throw hinted(error)
        }
        if history.count != step {
            warnings.append("\(historyPath) holds \(history.count) of the \(step) steps before the checkpoint; the curves and this epoch's means lack the others")
        }
        let kept = Set(epochs.map(\.epoch))
        for epoch in directory.sampleEpochs() where !kept.contains(epoch) { unlink(directory.samplePath(epoch: epoch)) }
        try writeLogs()
        return warnings
    }

    func readLog(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try readFile(path: path, maximumBytes: MemoryBudget.dataBytes)
        return String(decoding: data, as: UTF8.self)
    }

    /// The real images of global step `step`: the epoch's permutation (from the seed), batch k of it.
    func gatherBatch(step: Int, permutation: [Int], into destination: UnsafeMutablePointer<Float>) {
        let batch = trainer.configuration.batchSize, size = dataset.elementsPerImage
        let k = step % stepsPerEpoch
        for i in trainer.ownedSamples { dataset.copyImage(permutation[k * batch + i], to: destination + i * size) }
    }

    /// Trains until the trainer has done `totalSteps` steps, writing the run files at every epoch end (and at the
    /// last step). Between groups of steps it asks `stopRequested`; when that says yes it writes the logs and a
    /// checkpoint at the step reached and returns `.interrupted`. A non-finite loss or weight throws
    /// `TrainingDiverged` before anything is written.
    public func run(totalSteps: Int, observer: TrainingObserver?, stopRequested: () -> Bool = { false }) throws -> SessionEnd {
        let batch = trainer.configuration.batchSize
        var permutationEpoch = -1
        var permutation: [Int] = []
        var accumulator = MetricsAccumulator()
        var epochStart = Date()
        let runStart = Date()
        let firstStep = trainer.step
        // A run resumed inside an epoch takes that epoch's earlier steps from history.csv, so its means match.
        let resumedEpochStart = firstStep - firstStep % stepsPerEpoch
        for row in history where row.step > resumedEpochStart && row.step <= firstStep { accumulator.add(row.metrics) }
        var timedSteps = 0
        while trainer.step < totalSteps {
            let step = trainer.step
            let epoch = step / stepsPerEpoch
            if epoch != permutationEpoch {
                permutation = trainer.random.permutation(count: dataset.count, epoch: UInt64(epoch))
                permutationEpoch = epoch
            }
            if step % stepsPerEpoch == 0 && step != firstStep {
                accumulator = MetricsAccumulator()
                epochStart = Date()
                timedSteps = 0
            }
            // Several steps per parallel call (the workers wake once), never across an epoch's end.
            let epochEnd = min((epoch + 1) * stepsPerEpoch, totalSteps)
            let count = min(trainer.stepsPerCall, epochEnd - step)
            let epochPermutation = permutation
            let stepMetrics = trainer.trainSteps(count: count) { [self] k, destination in
                gatherBatch(step: step + k, permutation: epochPermutation, into: destination)
            }
            try checkFinite(stepMetrics, firstStep: step + 1)
            let now = Date()
            let elapsed = max(now.timeIntervalSince(epochStart), 1e-9)
            let overallRate = Double(trainer.step - firstStep) / max(now.timeIntervalSince(runStart), 1e-9)
            let stepsInEpoch = min(stepsPerEpoch, totalSteps - epoch * stepsPerEpoch)
            for (k, metrics) in stepMetrics.enumerated() {
                history.append((step + k + 1, metrics))
                accumulator.add(metrics)
                timedSteps += 1
                observer?.stepFinished(step: step + k + 1, epoch: epoch + 1, stepInEpoch: (step + k) % stepsPerEpoch + 1,
                                       stepsInEpoch: stepsInEpoch, running: accumulator.mean,
                                       imagesPerSecond: Double(timedSteps * batch) / elapsed,
                                       secondsLeft: Double(totalSteps - step - k - 1) / max(overallRate, 1e-9))
            }
            if trainer.step % stepsPerEpoch == 0 || trainer.step == totalSteps {
                var summary = EpochSummary(epoch: epoch + 1, lastStep: trainer.step, steps: accumulator.count,
                                           metrics: accumulator.mean, seconds: elapsed,
                                           imagesPerSecond: Double(timedSteps * batch) / elapsed)
                if let qualityProbe, evaluationInterval > 0, (epoch + 1) % evaluationInterval == 0 || trainer.step == totalSteps {
                    summary.quality = trainer.withAverageGenerator { qualityProbe.measure(trainer) }
                }
                epochs.removeAll { $0.epoch >= summary.epoch }
                epochs.append(summary)
                try trainer.checkRanksAgree()
                if writesFiles { try writeEpochFiles(summary) }
                checkpointStep = trainer.step
                observer?.epochFinished(summary)
            }
            if trainer.step < totalSteps && stopRequested() {
                if checkpointStep != trainer.step {
                    try trainer.checkRanksAgree()
                    if writesFiles {
                        try writeLogs()
                        try writeCheckpoint()
                    }
                }
                return .interrupted(step: trainer.step)
            }
        }
        return .finished
    }

    /// Throws `TrainingDiverged` when a loss of the steps just run, or any weight after them, is not finite.
    func checkFinite(_ metrics: [StepMetrics], firstStep: Int) throws {
        for (k, m) in metrics.enumerated() {
            let what: String? = !m.discriminatorLoss.isFinite
                ? "the discriminator's loss is \(m.discriminatorLoss) in the D phase"
                : !m.generatorLoss.isFinite ? "the generator's loss is \(m.generatorLoss) in the G phase" : nil
            if let what {
                throw TrainingDiverged(step: firstStep + k, what: what, lastCheckpointStep: checkpointStep,
                                       checkpointPath: checkpointPath)
            }
        }
        if let name = trainer.firstNonFiniteState() {
            throw TrainingDiverged(step: trainer.step, what: "\(name) holds non-finite values after the step's updates",
                                   lastCheckpointStep: checkpointStep, checkpointPath: checkpointPath)
        }
    }

    /// At an epoch's end: the sample grid, the logs and pictures, then the checkpoint (the commit point).
    func writeEpochFiles(_ summary: EpochSummary) throws {
        let count = Self.gridColumns * Self.gridColumns
        let images = trainer.withAverageGenerator { trainer.generate(count: count, noiseSeed: trainer.configuration.seed) }
        let grid = imageGrid(images, count: count, height: dataset.height, width: dataset.width,
                             channels: dataset.channels, columns: Self.gridColumns)
        try writeAtomically(grid.pngData(), to: directory.samplePath(epoch: summary.epoch))
        try writeLogs()
        try writeCheckpoint()
    }

    func writeCheckpoint() throws {
        try Checkpoint.write(trainer: trainer, dataset: fingerprint, run: run, to: checkpointPath)
        checkpointStep = trainer.step
    }

    /// `history.csv`, `metrics.csv`, `progress.png` and `curves.svg` from what the session holds.
    func writeLogs() throws {
        try writeAtomically(Data(RunLogs.historyText(history).utf8), to: historyPath)
        try writeAtomically(Data(RunLogs.metricsText(epochs).utf8), to: metricsPath)
        try writeProgressPicture()
        try writeAtomically(Data(LossCurves.svg(history: history, epochs: epochs, stepsPerEpoch: stepsPerEpoch).utf8),
                            to: "\(directory.path)/curves.svg")
    }

    /// progress.png: row e holds the first ten images of epoch e's grid (same fixed noise), read back from the
    /// sample files so a resumed run keeps the rows of its earlier epochs.
    func writeProgressPicture() throws {
        let side = dataset.height
        var rows: [[Float]] = []
        for summary in epochs.sorted(by: { $0.epoch < $1.epoch }) {
            let path = directory.samplePath(epoch: summary.epoch)
            guard let data = FileManager.default.contents(atPath: path), let grid = try? GridImage(pngData: data),
                  grid.channels == dataset.channels,
                  let images = gridImages(grid, side: side, columns: Self.gridColumns, take: Self.progressColumns)
            else { continue }
            rows.append(images)
        }
        let progressPath = "\(directory.path)/progress.png"
        guard !rows.isEmpty else {
            unlink(progressPath)
            return
        }
        let picture = imageGrid(rows.flatMap { $0 }, count: rows.count * Self.progressColumns, height: side, width: side,
                                channels: dataset.channels, columns: Self.progressColumns)
        try writeAtomically(picture.pngData(), to: progressPath)
    }

    /// The first `take` images of a grid written by `imageGrid` (padding 2, scale 2, the grid's channels), back in
    /// [−1, 1]; nil when the picture is not such a grid.
    func gridImages(_ grid: GridImage, side: Int, columns: Int, take: Int) -> [Float]? {
        let padding = 2, scale = 2
        let rows = (take + columns - 1) / columns
        guard grid.width == (columns * (side + padding) + padding) * scale,
              grid.height >= (rows * (side + padding) + padding) * scale else { return nil }
        var images: [Float] = []
        for index in 0..<take {
            let top = (padding + (index / columns) * (side + padding)) * scale
            let left = (padding + (index % columns) * (side + padding)) * scale
            for y in 0..<side {
                for x in 0..<side {
                    let pixel = ((top + y * scale) * grid.width + left + x * scale) * grid.channels
                    for c in 0..<grid.channels { images.append(Float(grid.pixels[pixel + c]) / 127.5 - 1) }
                }
            }
        }
        return images
    }
}
