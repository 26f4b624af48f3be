import Foundation
import ParallelTensor

/// One epoch's summary: the mean of every step metric over the epoch's steps, and its speed.
public struct EpochSummary: Sendable, Equatable {
    public var epoch: Int
    public var lastStep: Int
    public var steps: Int
    public var metrics: StepMetrics
    public var seconds: Double
    public var imagesPerSecond: Double

    public static let csvHeader = "epoch,step,steps,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate,images_per_second,seconds"

    public var csvRow: String {
        func f(_ v: Double) -> String { String(format: "%.6f", v) }
        return "\(epoch),\(lastStep),\(steps),\(f(metrics.discriminatorLoss)),\(f(metrics.generatorLoss)),"
            + "\(f(metrics.discriminatorAccuracyReal)),\(f(metrics.discriminatorAccuracyFake)),"
            + "\(f(metrics.generatorFoolingRate)),\(String(format: "%.1f", imagesPerSecond)),\(String(format: "%.3f", seconds))"
    }

    public init(epoch: Int, lastStep: Int, steps: Int, metrics: StepMetrics, seconds: Double, imagesPerSecond: Double) {
        self.epoch = epoch
        self.lastStep = lastStep
        self.steps = steps
        self.metrics = metrics
        self.seconds = seconds
        self.imagesPerSecond = imagesPerSecond
    }

    public init?(csvRow: String) {
        let f = csvRow.split(separator: ",").map(String.init)
        guard f.count == 10, let epoch = Int(f[0]), let lastStep = Int(f[1]), let steps = Int(f[2]),
              let values = Optional(f[3...9].compactMap(Double.init)), values.count == 7 else { return nil }
        self.init(epoch: epoch, lastStep: lastStep, steps: steps,
                  metrics: StepMetrics(discriminatorLoss: values[0], generatorLoss: values[1],
                                       discriminatorAccuracyReal: values[2], discriminatorAccuracyFake: values[3],
                                       generatorFoolingRate: values[4]),
                  seconds: values[6], imagesPerSecond: values[5])
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

/// Drives a trainer over a data set: data order, epochs, and the files of a run directory —
/// `checkpoint.safetensors` (every epoch), `metrics.csv`, `history.csv` (every step), `samples/epoch-NNNN.png`
/// (an 8×8 grid from a fixed noise batch), `progress.png` and `curves.svg`.
public final class TrainingSession {
    public let trainer: GANTrainer
    public let dataset: ImageDataset
    public let outputDirectory: String
    public let stepsPerEpoch: Int
    public private(set) var epochs: [EpochSummary] = []
    public private(set) var history: [(step: Int, metrics: StepMetrics)] = []

    public static let gridColumns = 8
    public static let progressColumns = 10

    public init(trainer: GANTrainer, dataset: ImageDataset, outputDirectory: String) throws {
        let batch = trainer.configuration.batchSize
        guard dataset.height == Generator.imageSide, dataset.width == Generator.imageSide else {
            throw DataError(path: dataset.source, problem: "images are \(dataset.height)×\(dataset.width); the seed DCGAN needs \(Generator.imageSide)×\(Generator.imageSide)")
        }
        guard dataset.count >= batch else {
            throw DataError(path: dataset.source, problem: "holds \(dataset.count) images, fewer than one batch of \(batch)")
        }
        self.trainer = trainer
        self.dataset = dataset
        self.outputDirectory = outputDirectory
        stepsPerEpoch = dataset.count / batch
        try prepareDirectory()
    }

    public var fingerprint: DatasetFingerprint { DatasetFingerprint(count: dataset.count, checksum: dataset.checksum) }
    public var checkpointPath: String { "\(outputDirectory)/checkpoint.safetensors" }
    public var metricsPath: String { "\(outputDirectory)/metrics.csv" }
    public var historyPath: String { "\(outputDirectory)/history.csv" }
    public var samplesDirectory: String { "\(outputDirectory)/samples" }

    func prepareDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: samplesDirectory, withIntermediateDirectories: true)
        } catch {
            throw DataError(path: outputDirectory, problem: "cannot create the output directory (\(error.localizedDescription))")
        }
        guard access(outputDirectory, W_OK) == 0 else {
            throw DataError(path: outputDirectory, problem: "output directory is not writable")
        }
    }

    /// Picks up the epoch and step logs of an earlier run in the same directory, up to the trainer's step.
    public func loadEarlierLogs() {
        if let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) {
            epochs = text.split(separator: "\n").dropFirst().compactMap { EpochSummary(csvRow: String($0)) }
                .filter { $0.lastStep <= trainer.step }
        }
        if let text = try? String(contentsOfFile: historyPath, encoding: .utf8) {
            history = text.split(separator: "\n").dropFirst().compactMap { line in
                let f = line.split(separator: ",").compactMap { Double($0) }
                guard f.count == 6, Int(f[0]) <= trainer.step else { return nil }
                return (Int(f[0]), StepMetrics(discriminatorLoss: f[1], generatorLoss: f[2],
                                               discriminatorAccuracyReal: f[3], discriminatorAccuracyFake: f[4],
                                               generatorFoolingRate: f[5]))
            }
        }
    }

    /// The real images of global step `step`: the epoch's permutation (from the seed), batch k of it.
    func gatherBatch(step: Int, permutation: [Int], into destination: UnsafeMutablePointer<Float>) {
        let batch = trainer.configuration.batchSize, size = dataset.elementsPerImage
        let k = step % stepsPerEpoch
        for i in 0..<batch { dataset.copyImage(permutation[k * batch + i], to: destination + i * size) }
    }

    /// Trains until the trainer has done `totalSteps` steps, writing the run files at every epoch end (and at the
    /// last step).
    public func run(totalSteps: Int, observer: TrainingObserver?) throws {
        let batch = trainer.configuration.batchSize
        var permutationEpoch = -1
        var permutation: [Int] = []
        var accumulator = MetricsAccumulator()
        var epochStart = Date()
        let runStart = Date()
        let firstStep = trainer.step
        while trainer.step < totalSteps {
            let step = trainer.step
            let epoch = step / stepsPerEpoch
            if epoch != permutationEpoch {
                permutation = trainer.random.permutation(count: dataset.count, epoch: UInt64(epoch))
                permutationEpoch = epoch
            }
            if step % stepsPerEpoch == 0 || step == firstStep {
                accumulator = MetricsAccumulator()
                epochStart = Date()
            }
            // Several steps per parallel call (the workers wake once), never across an epoch's end.
            let epochEnd = min((epoch + 1) * stepsPerEpoch, totalSteps)
            let count = min(trainer.stepsPerCall, epochEnd - step)
            let epochPermutation = permutation
            let stepMetrics = trainer.trainSteps(count: count) { [self] k, destination in
                gatherBatch(step: step + k, permutation: epochPermutation, into: destination)
            }
            let now = Date()
            let elapsed = now.timeIntervalSince(epochStart)
            let overallRate = Double(trainer.step - firstStep) / max(now.timeIntervalSince(runStart), 1e-9)
            let stepsInEpoch = min(stepsPerEpoch, totalSteps - epoch * stepsPerEpoch)
            for (k, metrics) in stepMetrics.enumerated() {
                history.append((step + k + 1, metrics))
                accumulator.add(metrics)
                let imagesPerSecond = Double(accumulator.count * batch) / max(elapsed, 1e-9)
                observer?.stepFinished(step: step + k + 1, epoch: epoch + 1, stepInEpoch: (step + k) % stepsPerEpoch + 1,
                                       stepsInEpoch: stepsInEpoch, running: accumulator.mean,
                                       imagesPerSecond: imagesPerSecond,
                                       secondsLeft: Double(totalSteps - step - k - 1) / max(overallRate, 1e-9))
            }
            if trainer.step % stepsPerEpoch == 0 || trainer.step == totalSteps {
                let imagesPerSecond = Double(accumulator.count * batch) / max(elapsed, 1e-9)
                let summary = EpochSummary(epoch: epoch + 1, lastStep: trainer.step, steps: accumulator.count,
                                           metrics: accumulator.mean, seconds: elapsed, imagesPerSecond: imagesPerSecond)
                epochs.removeAll { $0.epoch == summary.epoch }
                epochs.append(summary)
                try writeEpochFiles(summary)
                observer?.epochFinished(summary)
            }
        }
    }

    func writeEpochFiles(_ summary: EpochSummary) throws {
        try Checkpoint.write(trainer: trainer, dataset: fingerprint, to: checkpointPath)
        try writeAtomically(Data(([EpochSummary.csvHeader] + epochs.map(\.csvRow)).joined(separator: "\n").utf8 + [10]),
                            to: metricsPath)
        var historyText = "step,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate\n"
        for (step, m) in history {
            historyText += "\(step),\(m.discriminatorLoss),\(m.generatorLoss),\(m.discriminatorAccuracyReal),"
                + "\(m.discriminatorAccuracyFake),\(m.generatorFoolingRate)\n"
        }
        try writeAtomically(Data(historyText.utf8), to: historyPath)
        let count = Self.gridColumns * Self.gridColumns
        let images = trainer.generate(count: count, noiseSeed: trainer.configuration.seed)
        let grid = imageGrid(images, count: count, height: dataset.height, width: dataset.width, columns: Self.gridColumns)
        try writeAtomically(grid.pngData(), to: "\(samplesDirectory)/epoch-\(String(format: "%04d", summary.epoch)).png")
        try writeProgressPicture()
        try writeAtomically(Data(LossCurves.svg(history: history, epochs: epochs, stepsPerEpoch: stepsPerEpoch).utf8),
                            to: "\(outputDirectory)/curves.svg")
    }

    /// progress.png: row e holds the first ten images of epoch e's grid (same fixed noise), read back from the
    /// sample files so a resumed run keeps the rows of its earlier epochs.
    func writeProgressPicture() throws {
        let side = dataset.height
        var rows: [[Float]] = []
        for summary in epochs.sorted(by: { $0.epoch < $1.epoch }) {
            let path = "\(samplesDirectory)/epoch-\(String(format: "%04d", summary.epoch)).png"
            guard let data = FileManager.default.contents(atPath: path), let grid = try? GreyImage(pngData: data) else { continue }
            rows.append(gridImages(grid, side: side, columns: Self.gridColumns, take: Self.progressColumns))
        }
        guard !rows.isEmpty else { return }
        let picture = imageGrid(rows.flatMap { $0 }, count: rows.count * Self.progressColumns, height: side, width: side,
                                columns: Self.progressColumns)
        try writeAtomically(picture.pngData(), to: "\(outputDirectory)/progress.png")
    }

    /// The first `take` images of a grid written by `imageGrid` (padding 2, scale 2), back in [−1, 1].
    func gridImages(_ grid: GreyImage, side: Int, columns: Int, take: Int) -> [Float] {
        let padding = 2, scale = 2
        var images: [Float] = []
        for index in 0..<take {
            let top = (padding + (index / columns) * (side + padding)) * scale
            let left = (padding + (index % columns) * (side + padding)) * scale
            for y in 0..<side {
                for x in 0..<side {
                    let byte = grid.pixels[(top + y * scale) * grid.width + left + x * scale]
                    images.append(Float(byte) / 127.5 - 1)
                }
            }
        }
        return images
    }
}
