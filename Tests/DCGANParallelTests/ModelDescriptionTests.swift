@testable import DCGANParallel
import ParallelTensor
import TestSupport
import XCTest

/// Models as data: the seed built from its description, descriptions that cannot be built, and other GANs built and
/// trained from descriptions alone — the planner, the memory plan and the reducer unchanged.
final class ModelDescriptionTests: XCTestCase {
    /// A generator unlike the seed's: BatchNorm then LeakyReLU and dropout (stored, in place), a second BatchNorm
    /// then SELU, a stride-1 convolution at the end; 16×16 images.
    static let deeperGenerator = ModelDescription(name: "generator", input: .vector(8), layers: [
        .dense(units: 4 * 4 * 8),
        .reshape(height: 4, width: 4, channels: 8),
        .batchNormalization,
        .activation(.leakyReLU(slope: 0.2)),
        .dropout(rate: 0.2),
        .conv2DTranspose(filters: 4, kernelSize: 3, stride: 2),
        .batchNormalization,
        .activation(.selu),
        .conv2DTranspose(filters: 4, kernelSize: 3, stride: 2, activation: .selu),
        .conv2D(filters: 1, kernelSize: 3, stride: 1, activation: .tanh),
    ])

    /// A generator without a Dense first layer and with one BatchNorm: the noise reshaped and upsampled.
    static let convolutionalGenerator = ModelDescription(name: "generator", input: .vector(16), layers: [
        .reshape(height: 4, width: 4, channels: 1),
        .conv2DTranspose(filters: 8, kernelSize: 3, stride: 2),
        .batchNormalization,
        .activation(.leakyReLU(slope: 0.1)),
        .conv2DTranspose(filters: 1, kernelSize: 3, stride: 2, activation: .tanh),
    ])

    /// Three convolutions, a hidden Dense layer and standalone activations.
    static let smallDiscriminator = ModelDescription(
        name: "discriminator", input: TensorShape(batch: 1, height: 16, width: 16, channels: 1), layers: [
            .conv2D(filters: 8, kernelSize: 3, stride: 2, activation: .leakyReLU(slope: 0.2)),
            .conv2D(filters: 16, kernelSize: 3, stride: 2),
            .activation(.leakyReLU(slope: 0.2)),
            .dropout(rate: 0.25),
            .conv2D(filters: 8, kernelSize: 3, stride: 1, activation: .selu),
            .flatten,
            .dense(units: 8, activation: .tanh),
            .dense(units: 1, activation: .sigmoid),
        ])

    static let models: [(String, GANModel)] = [
        ("deeper generator", try! GANModel(generator: deeperGenerator, discriminator: smallDiscriminator, identifier: "test-deeper")),
        ("convolutional generator", try! GANModel(generator: convolutionalGenerator, discriminator: smallDiscriminator,
                                                  identifier: "test-convolutional")),
    ]

    func testTheSeedDescriptionBuildsTheKerasModel() {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 4, shards: 2),
                                 executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        // Keras' names and shapes, in the layout order the checkpoints and optimizer state have always had.
        XCTAssertEqual(trainer.generator.layout.slots.map(\.name), [
            "generator.batch_norm.gamma", "generator.batch_norm.beta", "generator.conv_transpose.kernel",
            "generator.conv_transpose.bias", "generator.batch_norm_1.gamma", "generator.batch_norm_1.beta",
            "generator.conv_transpose_1.kernel", "generator.conv_transpose_1.bias", "generator.dense.kernel",
            "generator.dense.bias"])
        XCTAssertEqual(trainer.generator.layout.slots.map(\.shape), [[128], [128], [5, 5, 64, 128], [64], [64], [64],
                                                                     [5, 5, 1, 64], [1], [100, 6272], [6272]])
        XCTAssertEqual(trainer.discriminator.layout.slots.map(\.name), [
            "discriminator.conv2d.kernel", "discriminator.conv2d.bias", "discriminator.conv2d_1.kernel",
            "discriminator.conv2d_1.bias", "discriminator.dense.kernel", "discriminator.dense.bias"])
        // docs/ARCHITECTURE.md §1: G 840 705 parameters (840 321 trainable), D 212 865.
        XCTAssertEqual(trainer.generator.trainableParameterCount, 840_321)
        XCTAssertEqual(trainer.generator.trainableParameterCount + trainer.generator.stateCount, 840_705)
        XCTAssertEqual(trainer.discriminator.trainableParameterCount, 212_865)
        XCTAssertEqual(trainer.generator.outputShape, TensorShape(batch: 1, height: 28, width: 28, channels: 1))
        XCTAssertTrue(trainer.generator.batchWideFirstLayer)
        XCTAssertEqual(trainer.generator.shardedGradientCount, trainer.generator.layout.slot(named: "generator.dense.kernel")!.offset)
    }

    func testDescriptionsThatCannotBeBuiltAreRefusedNamingTheLayer() {
        func refusal(_ generator: ModelDescription, _ discriminator: ModelDescription = .seedDiscriminator()) -> String {
            do {
                _ = try GANModel(generator: generator, discriminator: discriminator, identifier: "x")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        var denseOnImage = ModelDescription.seedGenerator()
        denseOnImage.layers.append(.dense(units: 3))
        XCTAssertEqual(refusal(denseOnImage),
                       "generator layer 7 (Dense(3)): Dense takes a vector; add .flatten before it (input 28×28×1)")
        var badReshape = ModelDescription.seedGenerator()
        badReshape.layers[1] = .reshape(height: 7, width: 7, channels: 64)
        XCTAssertEqual(refusal(badReshape), "generator layer 2 (Reshape(7, 7, 64)): 6272 elements cannot be viewed as 7×7×64")
        var smaller = ModelDescription.seedGenerator()
        smaller.layers.removeLast()
        XCTAssertEqual(refusal(smaller), "generator makes 14×14×64 images but discriminator reads 28×28×1")
        var huge = ModelDescription.seedGenerator()
        huge.layers[0] = .dense(units: 1 << 40)
        XCTAssertTrue(refusal(huge).hasPrefix("generator layer 1 (Dense(1099511627776)): its output"), refusal(huge))
        var hugeKernel = ModelDescription.seedGenerator()
        hugeKernel.layers[3] = .conv2DTranspose(filters: 64, kernelSize: 1000, stride: 2, activation: .selu)
        XCTAssertTrue(refusal(hugeKernel).contains("kernel size and stride must be 1–64"), refusal(hugeKernel))
        var noSigmoid = ModelDescription.seedDiscriminator()
        noSigmoid.layers[5] = .dense(units: 1)
        XCTAssertEqual(refusal(.seedGenerator(), noSigmoid),
                       "discriminator must end in one unit with a sigmoid, e.g. .dense(units: 1, activation: .sigmoid)")
        var earlySigmoid = ModelDescription.seedDiscriminator()
        earlySigmoid.layers[1] = .activation(.sigmoid)
        XCTAssertEqual(refusal(.seedGenerator(), earlySigmoid),
                       "discriminator layer 2 (Activation(sigmoid)): a sigmoid is only supported as the last activation (the loss takes its logit)")
        var normalized = ModelDescription.seedDiscriminator()
        normalized.layers.insert(.batchNormalization, at: 1)
        XCTAssertEqual(refusal(.seedGenerator(), normalized),
                       "discriminator: BatchNormalization in the discriminator needs the PyTorch step (conventions: .pytorch)")
        var mixed = ModelDescription.dcganDiscriminator(imageSide: 16, channels: 1, width: 4)
        mixed.conventions = .keras
        XCTAssertEqual(refusal(.dcganGenerator(imageSide: 16, channels: 1, width: 4), mixed),
                       "generator and discriminator follow different conventions (pytorch, keras)")
        var tooMuchPadding = ModelDescription.dcganDiscriminator(imageSide: 16, channels: 1, width: 4)
        tooMuchPadding.layers[0] = .conv2D(filters: 4, kernelSize: 4, stride: 2, padding: .explicit(4), useBias: false)
        XCTAssertEqual(refusal(.dcganGenerator(imageSide: 16, channels: 1, width: 4), tooMuchPadding),
                       "discriminator layer 1 (Conv2D(4, 4×4, stride 2, padding 4)): the padding must be 0–3 for a 4×4 kernel")
        var badDropout = ModelDescription.seedDiscriminator()
        badDropout.layers[1] = .dropout(rate: 1)
        XCTAssertEqual(refusal(.seedGenerator(), badDropout), "discriminator layer 2 (Dropout(1.0)): the rate must be in [0, 1)")
    }

    /// Trains `steps` steps on fixed random images. With `offsetBiases` every bias starts at a random value instead of
    /// 0: at Keras' zero biases the first convolution's outputs on an untrained generator's near-zero fakes sit on
    /// LeakyReLU's kink, where a finite difference measures neither slope.
    func train(_ model: GANModel, threads: Int, shards: Int = 5, batchSize: Int = 12, steps: Int = 3,
               optimizer: OptimizerKind = .rmsprop, learningRate: Float? = nil, offsetBiases: Bool = false,
               perturb: ((GANTrainer) -> Void)? = nil) -> (metrics: [StepMetrics], trainer: GANTrainer) {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: batchSize, shards: shards, seed: 3,
                                                                      optimizer: optimizer, learningRate: learningRate,
                                                                      model: model),
                                 executor: ShardedExecutor(threadCount: threads, pinsThreads: false))
        if offsetBiases {
            var random = SeededRandom(seed: 17)
            for network in [trainer.generator, trainer.discriminator] {
                for slot in network.layout.slots where slot.name.hasSuffix(".bias") {
                    for (i, value) in random.floats(slot.count, in: -0.2...0.2).enumerated() {
                        network.parameters[slot.offset + i] = value
                    }
                }
                network.packWeights()
            }
        }
        perturb?(trainer)
        var random = SeededRandom(seed: 9)
        let reals = random.floats(steps * batchSize * model.imageShape.elementsPerImage)
        let metrics = reals.withUnsafeBufferPointer { pixels in
            nonisolated(unsafe) let base = pixels.baseAddress!
            let size = batchSize * model.imageShape.elementsPerImage
            return trainer.trainSteps(count: steps) { step, destination in
                destination.update(from: base + step * size, count: size)
            }
        }
        return (metrics, trainer)
    }

    /// Other GANs, from their descriptions only: they train, and 1 and 3 threads give the same bits.
    func testOtherGANsTrainWithBitIdenticalResultsAtAnyThreadCount() {
        for (name, model) in Self.models {
            let (metrics, one) = train(model, threads: 1)
            let (threeMetrics, three) = train(model, threads: 3)
            XCTAssertEqual(metrics, threeMetrics, name)
            for (a, b, tensor) in [(one.generator.parameters, three.generator.parameters, "generator weights"),
                                   (one.generator.state, three.generator.state, "BatchNorm statistics"),
                                   (one.discriminator.parameters, three.discriminator.parameters, "discriminator weights")] {
                assertBitIdentical(a.array, b.array, "\(name): \(tensor)")
            }
            XCTAssertTrue(metrics.allSatisfy { $0.discriminatorLoss.isFinite && $0.generatorLoss.isFinite }, name)
            // It trained: the weights moved from their initial values, and the images the generator makes changed.
            let fresh = GANTrainer(configuration: one.configuration, executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
            XCTAssertNotEqual(fresh.generator.parameters.array, one.generator.parameters.array, name)
            XCTAssertNotEqual(fresh.discriminator.parameters.array, one.discriminator.parameters.array, name)
            let images = one.generate(count: 5, noiseSeed: 1)
            XCTAssertEqual(images.count, 5 * 256)
            XCTAssertEqual(images, three.generate(count: 5, noiseSeed: 1), name)
            XCTAssertNotEqual(images, fresh.generate(count: 5, noiseSeed: 1), name)
        }
    }

    /// The seed DCGAN on CIFAR-sized colour images: the same layers from 8×8, ending in three channels; named in
    /// checkpoints and found again by name; bit-identical at 1 and 3 threads. Sizes it is not built for are refused
    /// naming the supported ones.
    func testTheSeedModelInColourAt32Pixels() throws {
        let colour = try XCTUnwrap(GANModel.seed(imageSide: 32, channels: 3))
        XCTAssertEqual(colour.identifier, "seed-dcgan-32x32x3")
        XCTAssertEqual(GANModel.named("seed-dcgan-32x32x3"), colour)
        XCTAssertEqual(GANModel.named("seed-dcgan-28x28"), GANModel.seed)
        XCTAssertNil(GANModel.named("seed-dcgan-64x64x3"))
        let image = colour.imageShape
        XCTAssertEqual([image.height, image.width, image.channels], [32, 32, 3])
        XCTAssertEqual(try colour.generator.shapes().last, image)
        let (metrics, one) = train(colour, threads: 1)
        let (threeMetrics, three) = train(colour, threads: 3)
        XCTAssertEqual(metrics, threeMetrics)
        assertBitIdentical(one.generator.parameters.array, three.generator.parameters.array, "generator weights")
        assertBitIdentical(one.discriminator.parameters.array, three.discriminator.parameters.array, "discriminator weights")
        XCTAssertEqual(one.generate(count: 3, noiseSeed: 2), three.generate(count: 3, noiseSeed: 2))
        XCTAssertEqual(one.generate(count: 3, noiseSeed: 2).count, 3 * 32 * 32 * 3)
        for shape in [TensorShape(batch: 1, height: 30, width: 30, channels: 1),
                      TensorShape(batch: 1, height: 32, width: 32, channels: 4),
                      TensorShape(batch: 1, height: 28, width: 32, channels: 1)] {
            assertDataError(try GANModel.seed(for: shape, source: "x.idx"), contains: "28×28 or 32×32 images with 1 or 3 channels",
                            path: "x.idx")
        }
    }

    /// Shards other than 0 keep D's and G's gradients in one buffer (never live at once); the positions a pass does
    /// not write are cleared, so the padding between tensors sums to zero and its weights stay exactly 0, as with
    /// buffers of their own.
    func testSharedGradientBuffersLeaveThePaddingAtZero() {
        for model in [GANModel.seed] + Self.models.map(\.1) {
            let (_, trainer) = train(model, threads: 2, shards: 5, batchSize: 12, steps: 3, optimizer: .adam)
            for network in [trainer.generator, trainer.discriminator] {
                var covered = [Bool](repeating: false, count: network.parameters.count)
                for slot in network.layout.slots { for i in slot.offset..<(slot.offset + slot.count) { covered[i] = true } }
                let padding = covered.indices.filter { !covered[$0] }
                XCTAssertFalse(padding.isEmpty, model.identifier)
                XCTAssertTrue(padding.allSatisfy { network.parameters[$0] == 0 }, "\(model.identifier) \(network.model.name)")
            }
        }
    }

    /// The multiply-adds the planner declares per phase (for `pgan bench --phases`' GFLOP/s) add up to the step's
    /// count from the layer shapes, for the seed and for models with another number of BatchNorms and first layer.
    func testPlannedPhasesDeclareTheStepsArithmetic() {
        for model in [GANModel.seed] + Self.models.map(\.1) {
            let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 12, shards: 5, model: model),
                                     executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
            var work = PhasedWork()
            trainer.plan.append(to: &work, step: 0)
            XCTAssertEqual(work.multiplyAdds, trainer.multiplyAddsPerStep, model.identifier)
        }
    }

    /// The gradients the planned step computes are the derivatives of the step's losses, checked by central
    /// differences on the parameters with the largest gradients of every tensor: D's against the D-phase loss, G's
    /// against the G-phase loss. The learning rate is tiny so that D's update between the phases (which a G
    /// perturbation would change) does not move the G-phase loss.
    func testPlannedGradientsMatchFiniteDifferences() {
        let seeds = [("seed", GANModel.seed), ("seed in colour, 32×32", GANModel.seed(imageSide: 32, channels: 3)!)]
        for (name, model) in Self.models + seeds {
            let isSeed = name.hasPrefix("seed")
            let batch = isSeed ? 4 : 12, shards = isSeed ? 3 : 5
            let (_, reference) = train(model, threads: 2, shards: shards, batchSize: batch, steps: 1,
                                       learningRate: 1e-12, offsetBiases: true)
            for network in ["discriminator", "generator"] {
                let layout = network == "generator" ? reference.generator.layout : reference.discriminator.layout
                let gradients = network == "generator" ? reference.lastStep.generatorGradients
                    : reference.lastStep.discriminatorGradients
                for slot in layout.slots {
                    // The three largest gradients of the tensor.
                    let indices = (0..<slot.count).sorted { abs(gradients[slot.offset + $0]) > abs(gradients[slot.offset + $1]) }.prefix(3)
                    for index in indices {
                        let parameter = slot.offset + index
                        func loss(_ delta: Float) -> Double {
                            let metrics = train(model, threads: 2, shards: shards, batchSize: batch, steps: 1,
                                                learningRate: 1e-12, offsetBiases: true) { trainer in
                                let net = network == "generator" ? trainer.generator : trainer.discriminator
                                net.parameters[parameter] += delta
                                net.packWeights()
                            }.metrics[0]
                            return network == "generator" ? metrics.generatorLoss : metrics.discriminatorLoss
                        }
                        // LeakyReLU's kink makes the difference quotient's error first-order in h (measured: 4.6%
                        // at h = 2e-3, 2.3% at 5e-4 on the worst parameter); Float losses limit how small h can go.
                        let h: Float = 5e-4
                        let numeric = (loss(h) - loss(-h)) / Double(2 * h)
                        let analytic = Double(gradients[parameter])
                        XCTAssertEqual(numeric, analytic, accuracy: 0.03 * abs(analytic) + 2e-4,
                                       "\(name): ∂loss/∂\(slot.name)[\(index)]")
                    }
                }
            }
        }
    }
}
