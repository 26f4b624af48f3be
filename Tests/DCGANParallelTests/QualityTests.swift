@testable import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// The measurement of samples (FrechetDistance, Classifier, QualityProbe) and the generator's moving average.
final class QualityTests: XCTestCase {
    /// Four points whose centred columns are orthogonal (a Hadamard matrix's last three columns): the sample
    /// covariance is exactly diag(4/3·scale²), so the distance has a closed form.
    func hadamardSet(scales: [Double], means: [Double]) -> [Float] {
        let rows: [[Double]] = [[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]]
        return rows.flatMap { row in (0..<3).map { Float(means[$0] + scales[$0] * row[$0]) } }
    }

    func testFrechetDistanceMatchesTheClosedFormAndIgnoresRotations() {
        let (s, m, t, n) = ([0.5, 1.0, 2.0], [0.0, 1.0, -1.0], [1.0, 1.0, 0.25], [0.5, 0.0, -1.0])
        let a = hadamardSet(scales: s, means: m), b = hadamardSet(scales: t, means: n)
        // Σ(m − n)² + Tr Σa + Tr Σb − 2 Tr(Σa Σb)^½ = Σ(m − n)² + 4/3·Σ(s − t)² for diagonal covariances.
        var expected = 0.0
        for j in 0..<3 {
            let meanGap: Double = m[j] - n[j], scaleGap: Double = s[j] - t[j]
            expected += meanGap * meanGap + 4.0 / 3.0 * scaleGap * scaleGap
        }
        let distance = FrechetDistance.distance(.init(features: a, count: 4, dimension: 3), .init(features: b, count: 4, dimension: 3))
        XCTAssertEqual(distance, expected, accuracy: 1e-9)
        // The same sets turned by one rotation: full covariances now, the same distance.
        let c = cos(0.7), d = sin(0.7), e = cos(1.9), f = sin(1.9)
        let rotation: [Double] = [c, -d, 0, d * e, c * e, -f, d * f, c * f, e]
        func rotated(_ points: [Float]) -> [Float] {
            var out = [Float]()
            for p in 0..<4 {
                for i in 0..<3 {
                    var sum = 0.0
                    for k in 0..<3 { sum += rotation[i * 3 + k] * Double(points[p * 3 + k]) }
                    out.append(Float(sum))
                }
            }
            return out
        }
        let turned = FrechetDistance.distance(.init(features: rotated(a), count: 4, dimension: 3),
                                              .init(features: rotated(b), count: 4, dimension: 3))
        XCTAssertEqual(turned, expected, accuracy: 1e-5, "rotation (float32 points)")
        let same = FrechetDistance.Statistics(features: rotated(a), count: 4, dimension: 3)
        XCTAssertEqual(FrechetDistance.distance(same, same), 0, accuracy: 1e-9)
    }

    func testJacobiEigendecompositionReconstructsTheMatrix() {
        var random = SeededRandom(seed: 5)
        let n = 12
        let raw = random.floats(n * n).map(Double.init)
        var matrix = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { matrix[i * n + j] = raw[i * n + j] + raw[j * n + i] } }
        let (values, vectors) = FrechetDistance.symmetricEigen(matrix, n: n)
        for i in 0..<n {
            for j in 0..<n {
                let rebuilt = (0..<n).reduce(0.0) { $0 + vectors[i * n + $1] * values[$1] * vectors[j * n + $1] }
                XCTAssertEqual(rebuilt, matrix[i * n + j], accuracy: 1e-10, "A[\(i), \(j)]")
                let dot = (0..<n).reduce(0.0) { $0 + vectors[$1 * n + i] * vectors[$1 * n + j] }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-10, "VᵀV[\(i), \(j)]")
            }
        }
    }

    /// 16×16 grey images of four classes (a bright square in one quadrant, on noise): the classifier learns them,
    /// and 1 and 3 threads give the same file.
    func testClassifierLearnsAndIsThreadIndependent() throws {
        var random = SeededRandom(seed: 8)
        let count = 192
        var bytes = [UInt8](), labels = [Int32]()
        for i in 0..<count {
            let label = i % 4
            for y in 0..<16 {
                for x in 0..<16 {
                    let inside = (y / 8) == label / 2 && (x / 8) == label % 2 && (2..<6).contains(y % 8) && (2..<6).contains(x % 8)
                    bytes.append(inside ? 230 : UInt8(random.int(in: 0...90)))
                }
            }
            labels.append(Int32(label))
        }
        let data = LabelledImages(images: ImageDataset(rawImages: bytes, count: count, height: 16, width: 16, source: "squares"),
                                  labels: labels)
        func train(threads: Int) throws -> (Data, Double) {
            let classifier = try Classifier(image: data.images.imageShape, classes: 4)
            let trainer = try ClassifierTrainer(classifier: classifier, batchSize: 16, shards: 5, seed: 3,
                                                executor: ShardedExecutor(threadCount: threads, pinsThreads: false))
            for epoch in 0..<3 {
                trainer.startEpoch(epoch)
                for batch in trainer.batches(of: data, epoch: epoch) { _ = trainer.trainStep(on: data, indices: batch) }
            }
            return (classifier.encoded(), trainer.accuracy(on: data))
        }
        let (one, accuracy) = try train(threads: 1), (three, _) = try train(threads: 3)
        XCTAssertEqual(one, three, "classifier bytes, 1 vs 3 threads")
        XCTAssertGreaterThan(accuracy, 0.95)
        let path = try makeTemporaryDirectory("classifier") + "/c.safetensors"
        try one.write(to: URL(fileURLWithPath: path))
        let read = try Classifier.read(path: path)
        XCTAssertEqual(read.encoded(), one, "read back")
        try Data("not a classifier".utf8).write(to: URL(fileURLWithPath: path))
        assertDataError(try Classifier.read(path: path), contains: "not a valid safetensors", path: path)
    }

    /// CIFAR files give their labels (CIFAR-100's fine one); IDX needs a label file of the same count.
    func testLabelledImagesFromCIFARAndIDX() throws {
        let directory = try makeTemporaryDirectory("labelled")
        try Data(cifarRecords(count: 12, hundred: true)).write(to: URL(fileURLWithPath: "\(directory)/train.bin"))
        let cifar = try LabelledImages.load(imagesPath: "\(directory)/train.bin", labelsPath: nil)
        XCTAssertEqual(cifar.labels, (0..<12).map { Int32($0 % 10) })
        XCTAssertEqual(cifar.images.imageShape, TensorShape(batch: 1, height: 32, width: 32, channels: 3))
        try Data(IDXFile(dimensions: [3, 2, 2], bytes: Array(repeating: 7, count: 12)).encoded())
            .write(to: URL(fileURLWithPath: "\(directory)/images.idx"))
        try Data(IDXFile(dimensions: [2], bytes: [1, 0]).encoded()).write(to: URL(fileURLWithPath: "\(directory)/labels.idx"))
        assertDataError(try LabelledImages.load(imagesPath: "\(directory)/images.idx", labelsPath: "\(directory)/labels.idx"),
                        contains: "expected 3 labels", path: "\(directory)/labels.idx")
        assertDataError(try LabelledImages.load(imagesPath: "\(directory)/images.idx", labelsPath: nil),
                        contains: "give --labels", path: "\(directory)/images.idx")
    }

    /// The built-in MNIST classifier tells real zeros apart, and the real-against-real floor is far below the
    /// distance of noise images.
    func testBuiltInClassifierAndProbe() throws {
        let classifier = try Classifier.builtInMNIST()
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(classifier.testAccuracy), 0.99)
        let zeros = try ImageDataset.defaultZeros().prefix(600)
        let executor = ShardedExecutor(threadCount: 2, pinsThreads: false)
        let probe = try QualityProbe(classifier: classifier, realImages: zeros, targetClass: 0, count: 200, executor: executor)
        var random = SeededRandom(seed: 2)
        let noise = random.floats(200 * 784)
        let quality = probe.measure(images: noise, executor: executor)
        XCTAssertLessThan(probe.realFloor * 5, quality.frechetDistance, "noise is far from zeros")
        let real = zeros.prefix(200).pixels
        let realQuality = probe.measure(images: real, executor: executor)
        XCTAssertGreaterThan(try XCTUnwrap(realQuality.classRate), 0.97)
        XCTAssertEqual(realQuality.diversity, 1, accuracy: 0.2)
    }

    /// The probe holds and classifies `imagesPerPass` images at a time, real or generated, to bound its memory; the
    /// figures are those of all images at once, bit for bit, for any pass size (7: odd passes, a last pass of 4).
    func testProbeFiguresDoNotDependOnImagesPerPass() throws {
        let classifier = try Classifier.builtInMNIST()
        let zeros = try ImageDataset.defaultZeros().prefix(300)
        let executor = ShardedExecutor(threadCount: 2, pinsThreads: false)
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 4), executor: executor)
        let whole = try QualityProbe(classifier: classifier, realImages: zeros, targetClass: 0, count: 130,
                                     executor: executor, imagesPerPass: 1000)
        let passes = try QualityProbe(classifier: classifier, realImages: zeros, targetClass: 0, count: 130,
                                      executor: executor, imagesPerPass: 7)
        XCTAssertEqual(whole.realFloor.bitPattern, passes.realFloor.bitPattern)
        let allAtOnce = whole.measure(images: trainer.generate(count: 130, noiseSeed: QualityProbe.noiseSeed),
                                      executor: executor)
        XCTAssertEqual(whole.measure(trainer), allAtOnce)
        XCTAssertEqual(passes.measure(trainer), allAtOnce)
        XCTAssertGreaterThan(allAtOnce.frechetDistance, whole.realFloor)
    }

    /// Measuring a trainer's samples borrows its idle discriminator arenas and kernel workspaces (`WorkerMemory`):
    /// what they hold (NaN here) does not reach the figures, each pass gets distinct buffers, and the trainer's next
    /// step is the same as without a measurement before it.
    func testMeasuringInATrainersIdleMemory() throws {
        let classifier = try Classifier.builtInMNIST()
        let zeros = try ImageDataset.defaultZeros().prefix(300)
        let executor = ShardedExecutor(threadCount: 2, pinsThreads: false)
        func makeTrainer() -> GANTrainer {
            GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 4), executor: executor)
        }
        let measured = makeTrainer(), unmeasured = makeTrainer()
        let probe = try QualityProbe(classifier: classifier, realImages: zeros, targetClass: 0, count: 60, executor: executor)
        let images = zeros.prefix(16).pixels
        images.withUnsafeBufferPointer { pointer in
            for trainer in [measured, unmeasured] { trainer.trainStep(realImages: pointer.baseAddress!) }
        }
        let memory = measured.idleWorkerMemory
        XCTAssertEqual(memory.buffers.count, 2)
        let plan = ActivationPlan(network: classifier.network, mode: .inference, firstLayer: 0, inputNeedsGradient: false)
        let arena = ActivationArena(plans: [plan], capacity: 2, borrowing: memory.buffers[0])
        let donors = Set(memory.buffers[0].map(ObjectIdentifier.init)), used = arena.buffers.map(ObjectIdentifier.init)
        XCTAssertEqual(Set(used).count, used.count, "one donor buffer lent twice")
        XCTAssertTrue(used.allSatisfy(donors.contains), "the seed's discriminator arena holds the classifier's")
        for buffer in memory.buffers.joined() { buffer.fill(with: .nan) }
        let quality = probe.measure(measured)
        XCTAssertEqual(quality, probe.measure(images: measured.generate(count: 60, noiseSeed: QualityProbe.noiseSeed),
                                              executor: executor))
        images.withUnsafeBufferPointer { pointer in
            for trainer in [measured, unmeasured] { trainer.trainStep(realImages: pointer.baseAddress! + 8 * 784) }
        }
        XCTAssertEqual(measured.generator.parameters.array, unmeasured.generator.parameters.array)
        XCTAssertEqual(measured.discriminator.parameters.array, unmeasured.discriminator.parameters.array)
    }

    /// The moving average is decay·average + (1 − decay)·weights after each G update, element by element, the same at
    /// any thread count, and a run resumed from a checkpoint keeps it bit for bit.
    func testMovingAverageOfTheGenerator() throws {
        let images = try ImageDataset.defaultZeros().prefix(48).pixels
        func trainer(threads: Int) -> GANTrainer {
            GANTrainer(configuration: TrainingConfiguration(batchSize: 16, shards: 4, seed: 3, averageDecay: 0.9),
                       executor: ShardedExecutor(threadCount: threads, pinsThreads: false))
        }
        let one = trainer(threads: 1), two = trainer(threads: 2)
        var expected = one.generator.parameters.array, expectedState = one.generator.state.array
        for step in 0..<3 {
            images.withUnsafeBufferPointer { pointer in
                one.trainStep(realImages: pointer.baseAddress! + step * 16 * 784)
                two.trainStep(realImages: pointer.baseAddress! + step * 16 * 784)
            }
            let weights = one.generator.parameters.array, state = one.generator.state.array
            expected = zip(expected, weights).map { Reference.movingAverage($0, $1, decay: 0.9) }
            expectedState = zip(expectedState, state).map { Reference.movingAverage($0, $1, decay: 0.9) }
        }
        let average = try XCTUnwrap(one.average)
        assertBitIdentical(average.parameters.array, expected, "average weights")
        assertBitIdentical(average.state.array, expectedState, "average running statistics")
        assertBitIdentical(try XCTUnwrap(two.average).parameters.array, expected, "2 threads")
        XCTAssertNotEqual(average.parameters.array, one.generator.parameters.array)
        // Sampling swaps the average in and the trained weights back.
        let before = one.generator.parameters.array, stateBefore = one.generator.state.array
        let averaged = one.withAverageGenerator { () -> [Float] in
            assertBitIdentical(one.generator.parameters.array, expected, "the average swapped in")
            assertBitIdentical(one.generator.state.array, expectedState, "its running statistics swapped in")
            return one.generate(count: 4, noiseSeed: 1)
        }
        assertBitIdentical(one.generator.parameters.array, before, "trained weights back")
        assertBitIdentical(one.generator.state.array, stateBefore, "trained running statistics back")
        assertBitIdentical(average.parameters.array, expected, "the average left as it was")
        assertBitIdentical(average.state.array, expectedState, "the average's statistics left as they were")
        XCTAssertNotEqual(averaged, one.generate(count: 4, noiseSeed: 1))
        // A checkpoint holds it; restored, the next step gives the uninterrupted run's bytes.
        let fingerprint = DatasetFingerprint(count: 48, checksum: 1)
        let file = try CheckpointReader(bytes: [UInt8](Checkpoint.encoded(trainer: one, dataset: fingerprint)), path: "checkpoint")
        XCTAssertEqual(file.metadata.metadataValue("ema_decay"), "0.9")
        let resumed = trainer(threads: 2)
        try Checkpoint.restore(from: file, into: resumed)
        images.withUnsafeBufferPointer { pointer in
            one.trainStep(realImages: pointer.baseAddress!)
            resumed.trainStep(realImages: pointer.baseAddress!)
        }
        XCTAssertEqual(Checkpoint.encoded(trainer: resumed, dataset: fingerprint),
                       Checkpoint.encoded(trainer: one, dataset: fingerprint))
    }
}
