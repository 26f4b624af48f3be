@testable import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// One training step against JAX (float64), from scripts/make-golden-fixtures.py: same initial weights, noise and
/// dropout masks (both sides draw them from Philox with the same counters), independent model code.
final class GoldenTests: XCTestCase {
    struct Sampled: Decodable {
        let indices: [Int]
        let values: [Double]
        let rms: Double
    }

    struct Fixture: Decodable {
        let seed: UInt64
        let batch_size: Int
        let d_loss: Double
        let g_loss: Double
        let d_logits: [Double]
        let g_logits: [Double]
        let fakes_d_phase: Sampled
        let fakes_g_phase: Sampled
        let gradients: [String: Sampled]
        let moving: [String: Sampled]
        let updated_discriminator: [String: Sampled]
    }

    static func loadFixture() throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "golden-step", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    /// rtol 1e-4 against the float64 reference, plus 1e-4 of the tensor's RMS for elements near zero (where float32
    /// rounding of a sum of thousands of terms is larger than 1e-4 of the element itself).
    func assertMatches(_ actual: (Int) -> Float, _ expected: Sampled, _ name: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        for (index, value) in zip(expected.indices, expected.values) {
            let a = Double(actual(index))
            if abs(a - value) > 1e-4 * abs(value) + 1e-4 * expected.rms {
                XCTFail("\(name)[\(index)] = \(a), the reference says \(value) (rms \(expected.rms))", file: file, line: line)
                return
            }
        }
    }

    /// The step's losses, logits, both phases' fakes and every gradient against a reference's.
    func assertStepMatches(_ trainer: GANTrainer, _ metrics: StepMetrics, dLoss: Double, gLoss: Double, dLogits: [Double],
                           gLogits: [Double], fakes: (discriminatorPhase: Sampled, generatorPhase: Sampled),
                           gradients: [String: Sampled], _ label: String) throws {
        XCTAssertEqual(metrics.discriminatorLoss, dLoss, accuracy: 1e-4 * dLoss, label)
        XCTAssertEqual(metrics.generatorLoss, gLoss, accuracy: 1e-4 * gLoss, label)
        let step = trainer.lastStep
        for (i, logit) in dLogits.enumerated() {
            XCTAssertEqual(Double(step.discriminatorLogits[i]), logit, accuracy: 1e-4 * max(abs(logit), 0.1), "D logit \(i) \(label)")
        }
        for (i, logit) in gLogits.enumerated() {
            XCTAssertEqual(Double(step.generatorLogits[i]), logit, accuracy: 1e-4 * max(abs(logit), 0.1), "G logit \(i) \(label)")
        }
        assertMatches({ step.discriminatorPhaseFakes[$0] }, fakes.discriminatorPhase, "D-phase fakes \(label)")
        assertMatches({ step.generatorPhaseFakes[$0] }, fakes.generatorPhase, "G-phase fakes \(label)")
        XCTAssertEqual(gradients.count, trainer.generator.layout.slots.count + trainer.discriminator.layout.slots.count)
        for (name, expected) in gradients {
            let gradient = try XCTUnwrap(
                slotValue(trainer.generator.layout, step.generatorGradients, name)
                    ?? slotValue(trainer.discriminator.layout, step.discriminatorGradients, name), name)
            assertMatches(gradient, expected, "∂loss/∂\(name) \(label)")
        }
    }

    func slotValue(_ layout: ParameterLayout, _ buffer: UnsafePointer<Float>, _ name: String) -> ((Int) -> Float)? {
        guard let slot = layout.slot(named: name) else { return nil }
        return { buffer[slot.offset + $0] }
    }

    func testOneStepMatchesJAXForEveryShardCount() throws {
        let fixture = try Self.loadFixture()
        let zeros = try ImageDataset.defaultZeros().prefix(fixture.batch_size)
        for shards in [1, 2, 4] {
            let configuration = TrainingConfiguration(batchSize: fixture.batch_size, shards: shards, seed: fixture.seed)
            let trainer = GANTrainer(configuration: configuration, executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
            let metrics = zeros.pixels.withUnsafeBufferPointer { trainer.trainStep(realImages: $0.baseAddress!) }
            let label = "shards \(shards)"
            try assertStepMatches(trainer, metrics, dLoss: fixture.d_loss, gLoss: fixture.g_loss, dLogits: fixture.d_logits,
                                  gLogits: fixture.g_logits, fakes: (fixture.fakes_d_phase, fixture.fakes_g_phase),
                                  gradients: fixture.gradients, label)
            for (name, expected) in fixture.moving {
                assertMatches(try XCTUnwrap(slotValue(trainer.generator.stateLayout, trainer.generator.state.pointer, name)),
                              expected, "\(name) \(label)")
            }
            for (name, expected) in fixture.updated_discriminator {
                assertMatches(try XCTUnwrap(slotValue(trainer.discriminator.layout, trainer.discriminator.parameters.pointer, name)),
                              expected, "updated \(name) \(label)")
            }
        }
    }

    struct DCGANFixture: Decodable {
        let seed: UInt64
        let batch_size: Int
        let image_side: Int
        let channels: Int
        let generator_width: Int
        let discriminator_width: Int
        let d_loss: Double
        let g_loss: Double
        let d_logits: [Double]
        let g_logits: [Double]
        let fakes: Sampled
        let gradients: [String: Sampled]
        let running: [String: Sampled]
        let updated: [String: Sampled]
    }

    /// One step of `--model dcgan` against PyTorch's own modules, loss and Adam in float64, stepped as its DCGAN
    /// example steps (scripts/make-dcgan-golden-fixture.py): BatchNorm in both networks with the reals' and the fakes'
    /// statistics apart, both networks' running statistics, every gradient and the weights after Adam, for 1, 2 and 4
    /// shards.
    func testOneDCGANStepMatchesPyTorchForEveryShardCount() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "dcgan-golden-step", withExtension: "json",
                                                  subdirectory: "Fixtures"))
        let fixture = try JSONDecoder().decode(DCGANFixture.self, from: Data(contentsOf: url))
        let model = try XCTUnwrap(GANModel.dcgan(imageSide: fixture.image_side, channels: fixture.channels,
                                                 generatorWidth: fixture.generator_width,
                                                 discriminatorWidth: fixture.discriminator_width))
        let count = fixture.batch_size * model.imageShape.elementsPerImage
        let reals = (0..<count).map { Float(($0 * 7919) % 2001 - 1000) / 1000 }
        for shards in [1, 2, 4] {
            let configuration = TrainingConfiguration(batchSize: fixture.batch_size, shards: shards, seed: fixture.seed,
                                                      optimizer: .adam, model: model)
            let trainer = GANTrainer(configuration: configuration,
                                     executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
            let metrics = reals.withUnsafeBufferPointer { trainer.trainStep(realImages: $0.baseAddress!) }
            let label = "shards \(shards)"
            // One G forward serves both phases in PyTorch's step: the same fakes twice.
            try assertStepMatches(trainer, metrics, dLoss: fixture.d_loss, gLoss: fixture.g_loss, dLogits: fixture.d_logits,
                                  gLogits: fixture.g_logits, fakes: (fixture.fakes, fixture.fakes),
                                  gradients: fixture.gradients, label)
            XCTAssertEqual(fixture.running.count, trainer.generator.stateLayout.slots.count + trainer.discriminator.stateLayout.slots.count)
            // The fixture holds each running variance less 0.9^updates (what is left of its initial 1 after G's one
            // update and D's three), so the batch variances' share is compared, not the momentum's: rtol 1e-4 of it,
            // plus 3e-7 for the float32 the variance (about 0.73–0.9) is stored in (5 units in its last place).
            for (name, expected) in fixture.running {
                let isGenerator = trainer.generator.stateLayout.slot(named: name) != nil
                let network = isGenerator ? trainer.generator : trainer.discriminator
                let slot = try XCTUnwrap(network.stateLayout.slot(named: name), name)
                let initialShare: Double = name.hasSuffix("variance") ? (isGenerator ? 0.9 : 0.9 * 0.9 * 0.9) : 0
                for (index, value) in zip(expected.indices, expected.values) {
                    let actual = Double(network.state[slot.offset + index]) - initialShare
                    XCTAssertEqual(actual, value, accuracy: 1e-4 * abs(value) + 3e-7, "\(name)[\(index)] \(label)")
                }
            }
            for (name, expected) in fixture.updated {
                let value = try XCTUnwrap(slotValue(trainer.generator.layout, trainer.generator.parameters.pointer, name)
                    ?? slotValue(trainer.discriminator.layout, trainer.discriminator.parameters.pointer, name), name)
                assertMatches(value, expected, "updated \(name) \(label)")
            }
        }
    }
}
