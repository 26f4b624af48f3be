import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

final class SessionTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-session")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A weight that turns NaN after the first epoch's checkpoint: the next steps stop with the step named, and the
    /// checkpoint on disk is the good one, byte for byte.
    func testDivergenceLeavesTheLastGoodCheckpointUntouched() throws {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 16, shards: 4, seed: 3),
                                 executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
        let dataset = try ImageDataset.defaultZeros().prefix(64)
        let session = try TrainingSession(trainer: trainer, dataset: dataset,
                                          directory: RunDirectory(path: "\(directory!)/run"), run: nil)
        XCTAssertEqual(try session.run(totalSteps: 4, observer: nil), .finished)
        let good = try Data(contentsOf: URL(fileURLWithPath: session.checkpointPath))
        trainer.generator.parameters[100] = .infinity
        XCTAssertThrowsError(try session.run(totalSteps: 8, observer: nil)) { error in
            guard let diverged = error as? TrainingDiverged else { return XCTFail("\(error)") }
            XCTAssertEqual(diverged.step, 5)
            XCTAssertEqual(diverged.lastCheckpointStep, 4)
            XCTAssertTrue(diverged.description.contains("the last good checkpoint (step 4) is untouched"), diverged.description)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: session.checkpointPath)), good)
    }

    /// A stop request between groups of steps writes a checkpoint at the step reached, mid-epoch.
    func testAStopRequestWritesACheckpointMidEpoch() throws {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 16, shards: 4, seed: 3),
                                 executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        let dataset = try ImageDataset.defaultZeros().prefix(320)  // 20 steps per epoch, groups of 8
        let session = try TrainingSession(trainer: trainer, dataset: dataset,
                                          directory: RunDirectory(path: "\(directory!)/run"), run: nil)
        XCTAssertEqual(try session.run(totalSteps: 40, observer: nil, stopRequested: { true }), .interrupted(step: 8))
        let file = try SafeTensors.read(path: session.checkpointPath)
        XCTAssertEqual(file.metadataValue("step"), "8")
        XCTAssertEqual(session.epochs.count, 0, "no epoch finished")
        XCTAssertEqual(session.history.count, 8)
    }

    /// Images made in rounds (as `pgan sample` writes large IDX files) are the images made at once.
    func testGeneratingInRoundsGivesTheSameImages() {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 16, shards: 4, seed: 3),
                                 executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
        let whole = trainer.generate(count: 37, noiseSeed: 9)
        let rounds = trainer.generate(count: 20, noiseSeed: 9) + trainer.generate(count: 17, noiseSeed: 9, firstIndex: 20)
        assertBitIdentical(rounds, whole)
    }

    /// The trainer's memory is estimated from its buffer sizes before any is allocated; a configuration that would
    /// not fit is refused with the flags named.
    func testMemoryEstimateGrowsWithTheBatchAndRefusesWhatDoesNotFit() throws {
        func estimate(_ batch: Int, _ shards: Int, threads: Int = 2) -> Int {
            GANTrainer.estimatedBytes(configuration: TrainingConfiguration(batchSize: batch, shards: shards),
                                      threadCount: threads)
        }
        let perSample = Double(estimate(2048, 16) - estimate(256, 16)) / 1792
        // The generator's 32 928 activation floats (ActivationPlanTests), the noise of both phases, reals and fakes.
        XCTAssertEqual(perSample / 1024, 135.5, accuracy: 1, "about 136 KiB a sample")
        XCTAssertGreaterThan(estimate(256, 64), estimate(256, 16), "every shard has gradient buffers")
        XCTAssertGreaterThan(estimate(32, 16, threads: 16), estimate(32, 16, threads: 2), "every worker has scratch")
        let large = TrainingConfiguration(batchSize: 4096, shards: 16)
        XCTAssertThrowsError(try GANTrainer.checkMemory(configuration: large, threadCount: 2, physicalBytes: 512 << 20)) {
            XCTAssertTrue("\($0)".contains("--batch-size 4096 with --shards 16 needs about"), "\($0)")
        }
        XCTAssertNoThrow(try GANTrainer.checkMemory(configuration: large, threadCount: 2, physicalBytes: 4 << 30))
    }
}
