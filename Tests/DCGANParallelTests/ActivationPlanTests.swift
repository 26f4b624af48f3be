@testable import DCGANParallel
import ParallelTensor
import XCTest

/// The memory plan's rules (docs/ARCHITECTURE.md §4) on the seed model: what is stored per sample, what lives in the
/// two scratch buffers, what is recomputed.
final class ActivationPlanTests: XCTestCase {
    let (generator, discriminator) = GANTrainer.networks(.seed)

    func testTheSeedGeneratorKeepsOnlyWhatBackwardCannotRecompute() {
        // Layers: 0 dense, 1 reshape, 2 BatchNorm, 3 conv-transpose, 4 selu, 5 BatchNorm, 6 conv-transpose, 7 tanh.
        let plan = ActivationPlan(network: generator, mode: .training, firstLayer: 1, inputNeedsGradient: true)
        // Kept: the dense output (BatchNorm 0's input), the SELU output (written over the convolution's, BatchNorm
        // 1's input) and the image (tanh over the convolution's output).
        XCTAssertEqual(plan.storedSizes, [6272, 12544, 784])
        XCTAssertEqual(plan.homes[1], .stored(0))
        XCTAssertEqual(plan.homes[2], .stored(0), "the reshape is a view")
        XCTAssertEqual(plan.homes[5], plan.homes[4], "SELU works in place")
        XCTAssertEqual(plan.homes[8], plan.homes[7], "tanh works in place")
        // Both BatchNorm outputs feed a convolution: recomputed, each where that convolution's backward pass then
        // writes its input gradient. The second convolution's input is rebuilt in scratch 1 (rule 4); the first's,
        // in backward, in the SELU output's buffer, which BatchNorm 1 and the SELU have read for the last time by then
        // (rule 5), and in forward in scratch 1, since the convolution is writing that buffer.
        XCTAssertEqual(plan.recomputedBy, [3: 2, 6: 5])
        XCTAssertEqual(plan.homes[6], .scratch(1))
        XCTAssertEqual(plan.backwardHomes[6], nil)
        XCTAssertEqual(plan.homes[3], .scratch(1))
        XCTAssertEqual(plan.backwardHomes[3], .stored(1))
        XCTAssertEqual(plan.gradientHomes[8], .scratch(0), "∂image arrives in scratch 0")
        XCTAssertEqual(plan.gradientHomes[6], .scratch(1))
        XCTAssertEqual(plan.gradientHomes[3], .stored(1))
        XCTAssertEqual(plan.gradientHomes[1], .stored(1), "∂(dense output) for the batch-wide dense gradient")
        XCTAssertEqual(plan.scratchSizes, [784, 12544])
        // 32 928 floats a sample (129 KiB): 38 416 before rule 5; the hand-written plan before both kept 39 300.
        XCTAssertEqual(ActivationArena.elementsPerSample(plans: [plan], minimumScratch0: 0), 32_928)
        // The D phase's first-layer outputs wait in the smallest stored buffer besides the dense output's that holds
        // 6 272 floats, the SELU output's, idle until the G phase's forward pass.
        let plans = GANStepPlan.Plans(generator: generator, discriminator: discriminator)
        XCTAssertEqual(plans.firstLayerParking, .stored(1))
        XCTAssertEqual(plans.minimumScratch0, 0)
    }

    func testTheSeedDiscriminatorStoresWhatLeakyReLUReadsAndDropsInPlace() {
        // Layers: 0 conv, 1 LeakyReLU, 2 dropout, 3 conv, 4 LeakyReLU, 5 dropout, 6 flatten, 7 dense.
        let plan = ActivationPlan(network: discriminator, mode: .training, firstLayer: 0, inputNeedsGradient: true)
        XCTAssertEqual(plan.homes[0], .external)
        XCTAssertEqual(plan.storedSizes, [12544, 6272, 1], "each conv output, which LeakyReLU and dropout then overwrite; the logit")
        XCTAssertEqual(plan.homes[2], plan.homes[1], "LeakyReLU (slope 0.2) works in place: its backward reads its output's sign")
        XCTAssertEqual(plan.homes[3], plan.homes[2], "dropout keeps that sign wherever a gradient flows back, so it works in place too")
        XCTAssertEqual(plan.homes[6], plan.homes[4])
        XCTAssertEqual(plan.homes[7], plan.homes[6], "flatten is a view")
        XCTAssertEqual(plan.maskSizes, [12544, 6272])
        XCTAssertEqual(plan.gradientHomes[0], .external, "∂image goes to the caller")
        XCTAssertEqual(plan.backwardHomes, [:], "no stored buffer is free before the first convolution's backward pass")
        XCTAssertEqual(plan.scratchSizes, [12544, 6272])
    }

    func testInferenceKeepsNothing() {
        let plan = ActivationPlan(network: generator, mode: .inference, firstLayer: 0, inputNeedsGradient: false)
        XCTAssertEqual(plan.storedSizes, [])
        XCTAssertEqual(plan.scratchSizes, [6272, 12544])
        XCTAssertEqual(plan.homes[8], .scratch(0))
    }

    /// Dropout may write over a LeakyReLU's output (whose backward reads only the sign) but not over a SELU's (whose
    /// backward reads the value), nor over a LeakyReLU with slope 0 (which reads its input).
    func testDropoutWorksInPlaceOnlyWhereTheProducerReadsNoMoreThanTheSign() throws {
        func dropoutHomes(after activation: Activation) throws -> (input: TensorHome, output: TensorHome) {
            let description = ModelDescription(name: "discriminator",
                                               input: TensorShape(batch: 1, height: 8, width: 8, channels: 1), layers: [
                .conv2D(filters: 8, kernelSize: 3, stride: 2, activation: activation),
                .dropout(rate: 0.3),
                .flatten,
                .dense(units: 1, activation: .sigmoid),
            ])
            let network = try Network(description, inputNeedsGradient: true, kernelSubstream: 10, dropoutSubstream: 0)
            let plan = ActivationPlan(network: network, mode: .training, firstLayer: 0, inputNeedsGradient: true)
            // Layers: 0 conv, 1 activation, 2 dropout.
            return (plan.homes[2], plan.homes[3])
        }
        let leaky = try dropoutHomes(after: .leakyReLU(slope: 0.2))
        XCTAssertEqual(leaky.output, leaky.input)
        let selu = try dropoutHomes(after: .selu)
        XCTAssertNotEqual(selu.output, selu.input)
        let flat = try dropoutHomes(after: .leakyReLU(slope: 0))
        XCTAssertEqual(flat.output, flat.input, "slope 0 reads its input, so its output is free to overwrite")
    }
}
