@testable import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// The data-parallel contract (docs/ARCHITECTURE.md §2): for fixed data, seed and shard count, any thread count gives
/// the same bits — weights, optimizer state, BatchNorm running statistics, losses and the checkpoint file.
final class ParityTests: XCTestCase {
    static let dataset = try! ImageDataset.defaultZeros().prefix(96)

    struct RunResult {
        let metrics: [StepMetrics]
        let generator: [Float]
        let state: [Float]
        let discriminator: [Float]
        let optimizerState: [Float]
        let checkpoint: Data
    }

    /// Three steps (each with BatchNorm in both modes and dropout in both phases) on fixed batches.
    /// `grouped`: all steps in one `trainSteps` call instead of one `trainStep` call each.
    func train(threads: Int, shards: Int, batchSize: Int = 16, optimizer: OptimizerKind = .rmsprop, steps: Int = 3,
               scheduling: ShardedExecutor.Scheduling = .dispatch, grouped: Bool = false) -> RunResult {
        Self.train(threads: threads, shards: shards, batchSize: batchSize, optimizer: optimizer, steps: steps,
                   scheduling: scheduling, grouped: grouped)
    }

    /// `group`: this run is one rank of several (`ThreadRanks`); each rank returns the state it ends with.
    /// `model` trains on `images` (steps × batchSize of its images, in [−1, 1]); the seed on MNIST zeros by default.
    static func train(threads: Int, shards: Int, batchSize: Int = 16, optimizer: OptimizerKind = .rmsprop,
                      steps: Int = 3, scheduling: ShardedExecutor.Scheduling = .dispatch, grouped: Bool = false,
                      group: ProcessGroup = SingleProcess.shared, model: GANModel = .seed,
                      images: [Float]? = nil) -> RunResult {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: batchSize, shards: shards, seed: 7,
                                                                      optimizer: optimizer, model: model),
                                 executor: ShardedExecutor(threadCount: threads, pinsThreads: false,
                                                           scheduling: scheduling), group: group)
        var metrics: [StepMetrics] = []
        let size = model.imageShape.elementsPerImage
        (images ?? Self.dataset.pixels).withUnsafeBufferPointer { pixels in
            nonisolated(unsafe) let base = pixels.baseAddress!
            if grouped {
                metrics = trainer.trainSteps(count: steps) { step, destination in
                    destination.update(from: base + step * batchSize * size, count: batchSize * size)
                }
                return
            }
            for step in 0..<steps {
                metrics.append(trainer.trainStep(realImages: base + step * batchSize * size))
            }
        }
        let optimizerState = trainer.generatorOptimizer.first.array + trainer.generatorOptimizer.second.array
            + trainer.discriminatorOptimizer.first.array + trainer.discriminatorOptimizer.second.array
        return RunResult(metrics: metrics, generator: trainer.generator.parameters.array,
                         state: trainer.generator.state.array + trainer.discriminator.state.array,
                         discriminator: trainer.discriminator.parameters.array, optimizerState: optimizerState,
                         checkpoint: Checkpoint.encoded(trainer: trainer, dataset: DatasetFingerprint(count: 96, checksum: 1)))
    }

    func assertIdentical(_ a: RunResult, _ b: RunResult, _ label: String) {
        XCTAssertEqual(a.metrics, b.metrics, "losses and accuracies, \(label)")
        assertBitIdentical(a.generator, b.generator, "generator weights, \(label)")
        assertBitIdentical(a.state, b.state, "BatchNorm running statistics, \(label)")
        assertBitIdentical(a.discriminator, b.discriminator, "discriminator weights, \(label)")
        assertBitIdentical(a.optimizerState, b.optimizerState, "optimizer state, \(label)")
        XCTAssertEqual(a.checkpoint, b.checkpoint, "checkpoint bytes, \(label)")
    }

    func testAnyThreadCountGivesBitIdenticalResults() {
        let reference = train(threads: 1, shards: 8)
        XCTAssertTrue(reference.metrics.allSatisfy { $0.discriminatorLoss.isFinite && $0.generatorLoss.isFinite })
        for threads in [2, 3, 5, 16] {
            assertIdentical(train(threads: threads, shards: 8), reference, "threads \(threads) vs 1")
        }
        // Several steps in one parallel call, as `pgan train` runs them.
        for threads in [1, 2, 16] {
            assertIdentical(train(threads: threads, shards: 8, grouped: true), reference,
                            "three steps in one call, threads \(threads) vs 1")
        }
        // The spinning pool is used while the threads fit on the machine's hardware threads.
        let fitting = min(2, Topology.shared.processingUnitCount)
        assertIdentical(train(threads: fitting, shards: 8, scheduling: .spinning), reference, "spinning pool, \(fitting) threads")
    }

    func testUnevenShardsAndAdamAreThreadIndependentToo() {
        // 12 samples over 5 shards: shard sizes 2 and 3, and D-phase shards that straddle fakes and reals.
        let reference = train(threads: 1, shards: 5, batchSize: 12, optimizer: .adam)
        for threads in [3, 16] {
            assertIdentical(train(threads: threads, shards: 5, batchSize: 12, optimizer: .adam), reference,
                            "adam, 5 shards, threads \(threads)")
        }
    }

    /// The DCGAN paper's model (BatchNorm in both networks, PyTorch's step) keeps the contract too, at 32×32 and
    /// 64×64 RGB (narrow, so the test stays quick; the widths change no code path), with Adam as it trains.
    func testTheDCGANModelIsThreadIndependent() throws {
        for (side, shards, batch) in [(32, 5, 12), (64, 4, 8)] {
            let model = try XCTUnwrap(GANModel.dcgan(imageSide: side, channels: 3, generatorWidth: 8, discriminatorWidth: 8))
            var random = SeededRandom(seed: UInt64(side))
            let images = random.floats(3 * batch * model.imageShape.elementsPerImage)
            func run(_ threads: Int) -> RunResult {
                Self.train(threads: threads, shards: shards, batchSize: batch, optimizer: .adam, model: model, images: images)
            }
            let reference = run(1)
            XCTAssertTrue(reference.metrics.allSatisfy { $0.discriminatorLoss.isFinite && $0.generatorLoss.isFinite })
            XCTAssertFalse(reference.state.allSatisfy { $0 == 0 || $0 == 1 }, "running statistics moved")
            for threads in [2, 3, 16] {
                assertIdentical(run(threads), reference, "dcgan \(side)×\(side)×3, threads \(threads) vs 1")
            }
        }
    }

    /// Every side and channel count `--model dcgan` offers builds, makes images of its size and trains a step to finite
    /// losses (narrow widths: the layers' count and shapes are what differ); other sizes are refused.
    func testTheDCGANModelAtEverySize() throws {
        for side in GANModel.dcganImageSides {
            for channels in GANModel.dcganChannels {
                let model = try XCTUnwrap(GANModel.dcgan(imageSide: side, channels: channels, generatorWidth: 2,
                                                         discriminatorWidth: 2))
                XCTAssertEqual(model.imageShape, TensorShape(batch: 1, height: side, width: side, channels: channels))
                XCTAssertEqual(model.generator.layers.count, 3 * (side.trailingZeroBitCount - 2) + 1, "\(side)")
                XCTAssertEqual(GANModel.named(model.identifier), model)
                var random = SeededRandom(seed: UInt64(side))
                let result = Self.train(threads: 2, shards: 2, batchSize: 2, optimizer: .adam, steps: 1, model: model,
                                        images: random.floats(2 * model.imageShape.elementsPerImage))
                XCTAssertTrue(result.metrics.allSatisfy { $0.discriminatorLoss.isFinite && $0.generatorLoss.isFinite }, "\(side)×\(channels)")
            }
        }
        XCTAssertNil(GANModel.dcgan(imageSide: 48, channels: 3))
        XCTAssertNil(GANModel.dcgan(imageSide: 64, channels: 2))
        XCTAssertNil(GANModel.dcgan(imageSide: 64, channels: 3, generatorWidth: 0))
        XCTAssertNil(GANModel.named("dcgan-64x64x3-g64"))
    }

    /// The bits of a short run of the seed model, pinned: a refactoring (of the layers, the planner, the reducer)
    /// must not move them. The digest is the checkpoint's CRC-32 of all its tensors (weights, BatchNorm statistics,
    /// optimizer state). A change that moves them on purpose says so in its commit message and updates the values.
    func testTheSeedModelsBitsArePinned() throws {
        func digest(_ result: RunResult) throws -> String? {
            try SafeTensors.decode(result.checkpoint, path: "checkpoint").metadataValue("tensors_crc32")
        }
        XCTAssertEqual(try digest(train(threads: 2, shards: 8)), "4004242489", "RMSprop, 8 shards")
        XCTAssertEqual(try digest(train(threads: 2, shards: 5, batchSize: 12, optimizer: .adam)), "4047914719",
                       "Adam, 5 uneven shards")
    }

    /// S = 1 (the whole batch at once) against S = 16: the same sums in another order, so the first step's losses,
    /// logits and every gradient agree to float rounding (rtol 1e-5, plus 1e-4 of the tensor's RMS for elements near
    /// zero). Later steps do not stay that close: RMSprop's update lr·g/(√v+ε) is about lr·√10·sign(g) early on, so
    /// a rounding-level difference in a near-zero gradient moves a weight by a whole step, and the GAN's dynamics
    /// spread that to the next steps' gradients (measured: after three steps most generator weights differ by more
    /// than 1e-5 relative). What stays true, and is checked: every weight within the size of the updates made, the
    /// mean difference far below one update, and the losses within 1e-3.
    func testShardCountChangesOnlyRounding() {
        func firstStep(shards: Int) -> (StepMetrics, GANTrainer) {
            let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 16, shards: shards, seed: 7),
                                     executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
            let metrics = Self.dataset.pixels.withUnsafeBufferPointer { trainer.trainStep(realImages: $0.baseAddress!) }
            return (metrics, trainer)
        }
        let (wholeMetrics, whole) = firstStep(shards: 1), (shardedMetrics, sharded) = firstStep(shards: 16)
        XCTAssertEqual(wholeMetrics.discriminatorLoss, shardedMetrics.discriminatorLoss, accuracy: 1e-5 * shardedMetrics.discriminatorLoss)
        XCTAssertEqual(wholeMetrics.generatorLoss, shardedMetrics.generatorLoss, accuracy: 1e-5 * shardedMetrics.generatorLoss)
        func array(_ pointer: UnsafePointer<Float>, _ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
        assertAllClose(array(whole.lastStep.discriminatorLogits, 32), array(sharded.lastStep.discriminatorLogits, 32),
                       relativeTolerance: 1e-5, absoluteTolerance: 1e-6, "D logits")
        for (layout, a, b) in [(whole.generator.layout, whole.lastStep.generatorGradients, sharded.lastStep.generatorGradients),
                               (whole.discriminator.layout, whole.lastStep.discriminatorGradients, sharded.lastStep.discriminatorGradients)] {
            for slot in layout.slots {
                let expected = array(b + slot.offset, slot.count)
                let rms = (expected.reduce(0) { $0 + $1 * $1 } / Float(slot.count)).squareRoot()
                // 1e-4 of the tensor's RMS for elements that are small because their terms cancel (a bias feeding a
                // BatchNorm): their rounding error is relative to the terms, not to the result.
                assertAllClose(array(a + slot.offset, slot.count), expected, relativeTolerance: 1e-5,
                               absoluteTolerance: 1e-4 * rms, "∂loss/∂\(slot.name)")
            }
        }

        let threeWhole = train(threads: 2, shards: 1), threeSharded = train(threads: 2, shards: 16)
        for (a, b) in zip(threeWhole.metrics, threeSharded.metrics) {
            XCTAssertEqual(a.discriminatorLoss, b.discriminatorLoss, accuracy: 1e-3 * b.discriminatorLoss)
            XCTAssertEqual(a.generatorLoss, b.generatorLoss, accuracy: 1e-3 * b.generatorLoss)
        }
        assertAllClose(threeWhole.state, threeSharded.state, relativeTolerance: 1e-3, absoluteTolerance: 1e-5,
                       "running statistics")
        let maximumStep: Float = 3 * 2 * 1e-3 * Float(10).squareRoot()
        for (name, a, b) in [("generator", threeWhole.generator, threeSharded.generator),
                             ("discriminator", threeWhole.discriminator, threeSharded.discriminator)] {
            var total: Double = 0
            for i in a.indices {
                XCTAssertLessThanOrEqual(abs(a[i] - b[i]), maximumStep, "\(name)[\(i)]")
                total += Double(abs(a[i] - b[i]))
            }
            // On average far below one update (3·lr·√10 ≈ 9.5e-3 over three steps).
            XCTAssertLessThan(total / Double(a.count), 1e-3, "\(name): mean difference")
        }
    }
}
