@testable import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// The contract across processes (docs/ARCHITECTURE.md §7): R ranks, each computing its own range of shards and
/// exchanging only sums, end every step with the bits of one process — weights, BatchNorm statistics, optimizer
/// state, metrics and checkpoint, on every rank. The ranks here are threads (`ThreadRanks`); `MPITests` in
/// pganTests runs the same contract through `mpirun` when pgan is built with the MPI trait.
final class DistributedTrainingTests: XCTestCase {
    func assertRanks(_ ranks: Int, threads: Int, shards: Int, batchSize: Int = 16, optimizer: OptimizerKind = .rmsprop,
                     model: GANModel = .seed, images: [Float]? = nil,
                     reference: ParityTests.RunResult, file: StaticString = #filePath, line: UInt = #line) {
        let results = ThreadRanks.run(ranks: ranks) { group in
            ParityTests.train(threads: threads, shards: shards, batchSize: batchSize, optimizer: optimizer,
                              grouped: true, group: group, model: model, images: images)
        }
        for (rank, result) in results.enumerated() {
            let label = "rank \(rank) of \(ranks), \(threads) thread(s), \(shards) shards, \(optimizer)"
            XCTAssertEqual(result.metrics, reference.metrics, "metrics, \(label)", file: file, line: line)
            assertBitIdentical(result.generator, reference.generator, "generator, \(label)", file: file, line: line)
            assertBitIdentical(result.state, reference.state, "BatchNorm statistics, \(label)", file: file, line: line)
            assertBitIdentical(result.discriminator, reference.discriminator, "discriminator, \(label)", file: file, line: line)
            assertBitIdentical(result.optimizerState, reference.optimizerState, "optimizer, \(label)", file: file, line: line)
            XCTAssertEqual(result.checkpoint, reference.checkpoint, "checkpoint bytes, \(label)", file: file, line: line)
        }
    }

    func testRanksGiveTheOneProcessBits() {
        let reference = ParityTests.train(threads: 1, shards: 8)
        for ranks in [2, 3, 4] { assertRanks(ranks, threads: 1, shards: 8, reference: reference) }
        assertRanks(2, threads: 2, shards: 8, reference: reference)
        // One shard per rank: every block is a single shard.
        assertRanks(8, threads: 1, shards: 8, reference: reference)
    }

    /// A rank whose state drifted (one weight changed) is named before rank 0 writes a checkpoint; ranks that agree
    /// pass.
    func testARankThatDriftedIsNamed() {
        let outcomes = ThreadRanks.run(ranks: 3) { group -> String in
            let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 6, shards: 3, seed: 7),
                                     executor: ShardedExecutor(threadCount: 1, pinsThreads: false), group: group)
            var outcomes: [String] = []
            do { try trainer.checkRanksAgree(); outcomes.append("agree") } catch { outcomes.append("\(error)") }
            if group.rank == 2 { trainer.discriminator.parameters[5] += 1e-6 }
            do { try trainer.checkRanksAgree(); outcomes.append("agree") } catch { outcomes.append("\(error)") }
            return outcomes.joined(separator: " / ")
        }
        for outcome in outcomes {
            XCTAssertTrue(outcome.hasPrefix("agree / rank 2's model state differs from rank 0's after step 0"), outcome)
        }
    }

    func testUnevenShardsAndAdamAcrossRanks() {
        // 12 samples over 5 shards; 2 ranks own 2 and 3 shards (blocks [0,2) | [2,4) [4,5)), 3 ranks 1, 2 and 2.
        let reference = ParityTests.train(threads: 1, shards: 5, batchSize: 12, optimizer: .adam)
        for ranks in [2, 3] {
            assertRanks(ranks, threads: 1, shards: 5, batchSize: 12, optimizer: .adam, reference: reference)
        }
    }

    /// PyTorch's step (BatchNorm in the discriminator, reals and fakes as two groups of one pass) across ranks: its
    /// D sum goes through the exchange between ranks too, and every BatchNorm's group statistics through the tree.
    func testTheDCGANModelAcrossRanks() throws {
        let model = try XCTUnwrap(GANModel.dcgan(imageSide: 16, channels: 3, generatorWidth: 4, discriminatorWidth: 4))
        var random = SeededRandom(seed: 16)
        let images = random.floats(3 * 12 * model.imageShape.elementsPerImage)
        let reference = ParityTests.train(threads: 1, shards: 5, batchSize: 12, optimizer: .adam, model: model, images: images)
        for ranks in [2, 3] {
            assertRanks(ranks, threads: 1, shards: 5, batchSize: 12, optimizer: .adam, model: model, images: images,
                        reference: reference)
        }
    }
}
