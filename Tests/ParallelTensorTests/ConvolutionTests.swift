import ParallelTensor
import TestSupport
import XCTest

final class ConvolutionTests: XCTestCase {
    let ramp: [Float] = (1...16).map(Float.init)  // a 4×4 image, 1 channel

    func forward(_ g: ConvolutionGeometry, _ input: [Float], _ weights: [Float], batch: Int = 1) -> [Float] {
        Run.withBuffers([input, weights, [Float](repeating: 0, count: batch * g.outputElementsPerImage)]) { p in
            Convolution.forward(g, batch: batch, input: p[0], weights: p[1], output: p[2], workspace: KernelWorkspace())
            return Run.array(p[2], batch * g.outputElementsPerImage)
        }
    }

    func transposedForward(_ g: TransposedConvolutionGeometry, _ input: [Float], _ weights: [Float],
                           batch: Int = 1) -> [Float] {
        Run.withBuffers([input, weights, [Float](repeating: 0, count: batch * g.outputElementsPerImage)]) { p in
            TransposedConvolution.forward(g, batch: batch, input: p[0], weights: p[1], output: p[2],
                                          workspace: KernelWorkspace())
            return Run.array(p[2], batch * g.outputElementsPerImage)
        }
    }

    // MARK: "same" padding, values worked out by hand (kernel of ones: each output is a sum of the window)

    func testSame3x3Stride1PadsOneEachSide() {
        let g = ConvolutionGeometry.same(inputHeight: 4, inputWidth: 4, inputChannels: 1, outputChannels: 1,
                                         kernelSize: 3, stride: 1)
        XCTAssertEqual([g.outputHeight, g.outputWidth, g.padTop, g.padLeft], [4, 4, 1, 1])
        XCTAssertEqual(forward(g, ramp, [Float](repeating: 1, count: 9)),
                       [14, 24, 30, 22, 33, 54, 63, 45, 57, 90, 99, 69, 46, 72, 78, 54])
    }

    func testSame3x3Stride2PadsNothingBeforeOneAfter() {
        let g = ConvolutionGeometry.same(inputHeight: 4, inputWidth: 4, inputChannels: 1, outputChannels: 1,
                                         kernelSize: 3, stride: 2)
        XCTAssertEqual([g.outputHeight, g.outputWidth, g.padTop, g.padLeft], [2, 2, 0, 0])
        XCTAssertEqual(forward(g, ramp, [Float](repeating: 1, count: 9)), [54, 45, 72, 54])
    }

    func testSame5x5Stride2PadsOneBeforeTwoAfter() {
        let g = ConvolutionGeometry.same(inputHeight: 4, inputWidth: 4, inputChannels: 1, outputChannels: 1,
                                         kernelSize: 5, stride: 2)
        XCTAssertEqual([g.outputHeight, g.outputWidth, g.padTop, g.padLeft], [2, 2, 1, 1])
        XCTAssertEqual(forward(g, ramp, [Float](repeating: 1, count: 25)), [136, 108, 126, 99])
        // The DCGAN's shapes: 28 → 14 → 7, one pixel before.
        let d1 = ConvolutionGeometry.same(inputHeight: 28, inputWidth: 28, inputChannels: 1, outputChannels: 64,
                                          kernelSize: 5, stride: 2)
        let d2 = ConvolutionGeometry.same(inputHeight: 14, inputWidth: 14, inputChannels: 64, outputChannels: 128,
                                          kernelSize: 5, stride: 2)
        XCTAssertEqual([d1.outputHeight, d1.padTop, d2.outputHeight, d2.padTop], [14, 1, 7, 1])
    }

    func testSameWithAsymmetricKernelWeightsPicksTheRightTaps() {
        // 3×3 kernel with a single 1 at (ky, kx) = (0, 2): output(oy, ox) = input(oy − 1, ox + 1) with stride 1.
        var weights = [Float](repeating: 0, count: 9)
        weights[2] = 1
        let g = ConvolutionGeometry.same(inputHeight: 4, inputWidth: 4, inputChannels: 1, outputChannels: 1,
                                         kernelSize: 3, stride: 1)
        XCTAssertEqual(forward(g, ramp, weights), [0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0])
    }

    func testTransposedSame3x3Stride2() {
        let g = TransposedConvolutionGeometry.same(inputHeight: 2, inputWidth: 2, inputChannels: 1, outputChannels: 1,
                                                   kernelSize: 3, stride: 2)
        XCTAssertEqual([g.outputHeight, g.outputWidth], [4, 4])
        XCTAssertEqual(transposedForward(g, [1, 2, 3, 4], [Float](repeating: 1, count: 9)),
                       [1, 1, 3, 2, 1, 1, 3, 2, 4, 4, 10, 6, 3, 3, 7, 4])
    }

    func testTransposedSame5x5Stride2CropsOneBefore() {
        let g = TransposedConvolutionGeometry.same(inputHeight: 2, inputWidth: 2, inputChannels: 1, outputChannels: 1,
                                                   kernelSize: 5, stride: 2)
        XCTAssertEqual(transposedForward(g, [1, 2, 3, 4], [Float](repeating: 1, count: 25)),
                       [1, 3, 3, 3, 4, 10, 10, 10, 4, 10, 10, 10, 4, 10, 10, 10])
    }

    // MARK: fast kernels against the direct scalar references on random geometries

    /// "valid", Keras "same" or PyTorch's explicit padding (0 to kernel − 1), kernels 1–5, 1 to 9 channels (so both
    /// the short-run im2col/col2im paths for grey and RGB images and the general one).
    func randomGeometry(_ random: inout SeededRandom) -> (ConvolutionGeometry, Int) {
        let kernel = [1, 2, 3, 4, 5][random.int(in: 0...4)]
        let stride = random.int(in: 1...2)
        let height = random.int(in: max(kernel, 2)...9), width = random.int(in: max(kernel, 2)...9)
        let inputChannels = [1, 3, 8, 9][random.int(in: 0...3)]
        let outputChannels = [1, 5, 16, 17][random.int(in: 0...3)]
        let batch = random.int(in: 1...3)
        let geometry: ConvolutionGeometry = switch random.int(in: 0...3) {
        case 0: .valid(inputHeight: height, inputWidth: width, inputChannels: inputChannels,
                       outputChannels: outputChannels, kernelSize: kernel, stride: stride)
        case 1: .padded(inputHeight: height, inputWidth: width, inputChannels: inputChannels,
                        outputChannels: outputChannels, kernelSize: kernel, stride: stride,
                        padding: random.int(in: 0...(kernel - 1)))
        default: .same(inputHeight: height, inputWidth: width, inputChannels: inputChannels,
                       outputChannels: outputChannels, kernelSize: kernel, stride: stride)
        }
        return (geometry, batch)
    }

    func testConvolutionKernelsMatchReference() {
        var random = SeededRandom(seed: 3)
        let workspace = KernelWorkspace()
        for _ in 0..<60 {
            let (g, batch) = randomGeometry(&random)
            let input = random.floats(batch * g.inputElementsPerImage)
            let weights = random.floats(g.weightCount)
            let outputGradient = random.floats(batch * g.outputElementsPerImage)
            // Tolerance from the depth of each dot product: K·ε·(typical |term|) with |term| ≤ 1.
            let tolerance = 4e-7 * Float(g.patchSize + g.outputChannels * g.kernelHeight * g.kernelWidth + batch * g.outputPixelsPerImage)
            Run.withBuffers([input, weights, outputGradient,
                             [Float](repeating: 0, count: batch * g.outputElementsPerImage),
                             [Float](repeating: 0, count: batch * g.inputElementsPerImage),
                             [Float](repeating: 0, count: g.weightCount)]) { p in
                Convolution.forward(g, batch: batch, input: p[0], weights: p[1], output: p[3], workspace: workspace)
                assertAllClose(Run.array(p[3], batch * g.outputElementsPerImage),
                               Reference.convolutionForward(g, batch: batch, input: input, weights: weights),
                               relativeTolerance: 1e-5, absoluteTolerance: tolerance, "forward \(g)")
                Convolution.backwardData(g, batch: batch, outputGradient: p[2], weights: p[1], inputGradient: p[4],
                                         workspace: workspace)
                assertAllClose(Run.array(p[4], batch * g.inputElementsPerImage),
                               Reference.convolutionBackwardData(g, batch: batch, outputGradient: outputGradient,
                                                                 weights: weights),
                               relativeTolerance: 1e-5, absoluteTolerance: tolerance, "backwardData \(g)")
                Convolution.backwardWeights(g, batch: batch, input: p[0], outputGradient: p[2], weightGradient: p[5],
                                            accumulate: false, workspace: workspace)
                assertAllClose(Run.array(p[5], g.weightCount),
                               Reference.convolutionBackwardWeights(g, batch: batch, input: input,
                                                                    outputGradient: outputGradient),
                               relativeTolerance: 1e-5, absoluteTolerance: tolerance, "backwardWeights \(g)")
            }
        }
    }

    func testTransposedConvolutionMatchesTextbookDefinition() {
        var random = SeededRandom(seed: 4)
        for _ in 0..<20 {
            let kernel = [2, 3, 4, 5][random.int(in: 0...3)], stride = random.int(in: 1...2)
            guard kernel >= stride else { continue }
            let height = random.int(in: 1...6), width = random.int(in: 1...6)
            let inputChannels = [1, 4, 9][random.int(in: 0...2)], outputChannels = [1, 8, 3][random.int(in: 0...2)]
            let batch = random.int(in: 1...2)
            let g = TransposedConvolutionGeometry.same(inputHeight: height, inputWidth: width,
                                                       inputChannels: inputChannels, outputChannels: outputChannels,
                                                       kernelSize: kernel, stride: stride)
            let input = random.floats(batch * g.inputElementsPerImage), weights = random.floats(g.weightCount)
            let expected = Reference.transposedConvolutionForward(
                inputHeight: height, inputWidth: width, inputChannels: inputChannels, outputChannels: outputChannels,
                kernelSize: kernel, stride: stride, batch: batch, input: input, weights: weights)
            assertAllClose(transposedForward(g, input, weights, batch: batch), expected, relativeTolerance: 1e-5,
                           absoluteTolerance: 1e-5, "k=\(kernel) s=\(stride) \(height)×\(width) \(inputChannels)→\(outputChannels)")
        }
    }

    /// PyTorch's ConvTranspose2d(padding=p), as the DCGAN paper's generator uses it (4×4, stride 1 from 1×1 and
    /// stride 2 with padding 1), against the textbook scatter cropped by p.
    func testPaddedTransposedConvolutionMatchesTextbookDefinition() {
        var random = SeededRandom(seed: 14)
        var checked = 0
        for _ in 0..<30 {
            let kernel = [2, 3, 4, 5][random.int(in: 0...3)], stride = random.int(in: 1...2)
            let padding = random.int(in: 0...(kernel - 1))
            let height = random.int(in: 1...6), width = random.int(in: 1...6)
            guard (height - 1) * stride + kernel - 2 * padding > 0, (width - 1) * stride + kernel - 2 * padding > 0 else { continue }
            let inputChannels = [1, 3, 9][random.int(in: 0...2)], outputChannels = [1, 8, 3][random.int(in: 0...2)]
            let batch = random.int(in: 1...2)
            let g = TransposedConvolutionGeometry.padded(inputHeight: height, inputWidth: width,
                                                         inputChannels: inputChannels, outputChannels: outputChannels,
                                                         kernelSize: kernel, stride: stride, padding: padding)
            XCTAssertEqual(g.inputHeight, height, "the adjoint maps the output back to \(height) rows")
            let input = random.floats(batch * g.inputElementsPerImage), weights = random.floats(g.weightCount)
            let expected = Reference.transposedConvolutionForward(
                inputHeight: height, inputWidth: width, inputChannels: inputChannels, outputChannels: outputChannels,
                kernelSize: kernel, stride: stride, batch: batch, input: input, weights: weights, padding: padding)
            assertAllClose(transposedForward(g, input, weights, batch: batch), expected, relativeTolerance: 1e-5,
                           absoluteTolerance: 1e-5, "k=\(kernel) s=\(stride) p=\(padding) \(height)×\(width) \(inputChannels)→\(outputChannels)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 15)
    }

    func testChunkedLargeBatchEqualsPerImage() {
        // A batch bigger than one im2col chunk must give the same bits as the images one at a time.
        let g = ConvolutionGeometry.same(inputHeight: 14, inputWidth: 14, inputChannels: 64, outputChannels: 16,
                                         kernelSize: 5, stride: 2)
        var random = SeededRandom(seed: 5)
        let batch = 6
        let input = random.floats(batch * g.inputElementsPerImage), weights = random.floats(g.weightCount)
        let all = forward(g, input, weights, batch: batch)
        for n in 0..<batch {
            let one = forward(g, Array(input[n * g.inputElementsPerImage..<(n + 1) * g.inputElementsPerImage]), weights)
            assertBitIdentical(Array(all[n * g.outputElementsPerImage..<(n + 1) * g.outputElementsPerImage]), one)
        }
    }

    // MARK: finite differences

    func testGradientsByFiniteDifferences() {
        var random = SeededRandom(seed: 6)
        let workspace = KernelWorkspace()
        for (kernel, stride, channels) in [(5, 2, (2, 3)), (3, 1, (1, 4)), (5, 2, (3, 1))] {
            let g = ConvolutionGeometry.same(inputHeight: 6, inputWidth: 5, inputChannels: channels.0,
                                             outputChannels: channels.1, kernelSize: kernel, stride: stride)
            let batch = 2
            let input = random.floats(batch * g.inputElementsPerImage), weights = random.floats(g.weightCount)
            let projection = random.floats(batch * g.outputElementsPerImage)
            let (dInput, dWeights) = Run.withBuffers([input, weights, projection,
                                                      [Float](repeating: 0, count: input.count),
                                                      [Float](repeating: 0, count: weights.count)]) { p in
                Convolution.backwardData(g, batch: batch, outputGradient: p[2], weights: p[1], inputGradient: p[3],
                                         workspace: workspace)
                Convolution.backwardWeights(g, batch: batch, input: p[0], outputGradient: p[2], weightGradient: p[4],
                                            accumulate: false, workspace: workspace)
                return (Run.array(p[3], input.count), Run.array(p[4], weights.count))
            }
            let lossOfInput = { (x: [Float]) in
                weightedSum(Reference.convolutionForward(g, batch: batch, input: x, weights: weights), projection)
            }
            let lossOfWeights = { (w: [Float]) in
                weightedSum(Reference.convolutionForward(g, batch: batch, input: input, weights: w), projection)
            }
            assertGradientMatches(dInput, numericalGradient(of: lossOfInput, at: input), "conv dX k\(kernel)s\(stride)")
            assertGradientMatches(dWeights, numericalGradient(of: lossOfWeights, at: weights), "conv dW k\(kernel)s\(stride)")

            // The transposed convolution with the same geometry, through its own textbook forward.
            let t = TransposedConvolutionGeometry.same(inputHeight: 3, inputWidth: 2, inputChannels: channels.1,
                                                       outputChannels: channels.0, kernelSize: kernel, stride: 2)
            let tInput = random.floats(batch * t.inputElementsPerImage), tWeights = random.floats(t.weightCount)
            let tProjection = random.floats(batch * t.outputElementsPerImage)
            let (tdInput, tdWeights) = Run.withBuffers([tInput, tWeights, tProjection,
                                                        [Float](repeating: 0, count: tInput.count),
                                                        [Float](repeating: 0, count: tWeights.count)]) { p in
                TransposedConvolution.backwardData(t, batch: batch, outputGradient: p[2], weights: p[1],
                                                   inputGradient: p[3], workspace: workspace)
                TransposedConvolution.backwardWeights(t, batch: batch, input: p[0], outputGradient: p[2],
                                                      weightGradient: p[4], accumulate: false, workspace: workspace)
                return (Run.array(p[3], tInput.count), Run.array(p[4], tWeights.count))
            }
            func transposedLoss(_ x: [Float], _ w: [Float]) -> Double {
                weightedSum(Reference.transposedConvolutionForward(
                    inputHeight: 3, inputWidth: 2, inputChannels: channels.1, outputChannels: channels.0,
                    kernelSize: kernel, stride: 2, batch: batch, input: x, weights: w), tProjection)
            }
            assertGradientMatches(tdInput, numericalGradient(of: { transposedLoss($0, tWeights) }, at: tInput), "convT dX")
            assertGradientMatches(tdWeights, numericalGradient(of: { transposedLoss(tInput, $0) }, at: tWeights), "convT dW")
        }
    }

    func testDenseGradientsByFiniteDifferences() {
        var random = SeededRandom(seed: 7)
        let workspace = KernelWorkspace()
        let batch = 3, inputSize = 7, outputSize = 5
        let input = random.floats(batch * inputSize), weights = random.floats(inputSize * outputSize)
        let projection = random.floats(batch * outputSize)
        func forward(_ x: [Float], _ w: [Float]) -> [Float] {
            Run.withBuffers([x, w, [Float](repeating: 0, count: batch * outputSize)]) { p in
                Dense.forward(batch: batch, inputSize: inputSize, outputSize: outputSize, input: p[0], weights: p[1],
                              output: p[2], workspace: workspace)
                return Run.array(p[2], batch * outputSize)
            }
        }
        let expected = Run.withBuffers([input, weights, [Float](repeating: 0, count: batch * outputSize)]) { p in
            Reference.gemm(rows: batch, columns: outputSize, depth: inputSize, a: .rowMajor(p[0], columns: inputSize),
                           b: .rowMajor(p[1], columns: outputSize), c: p[2], ldc: outputSize, accumulate: false)
            return Run.array(p[2], batch * outputSize)
        }
        assertAllClose(forward(input, weights), expected)
        let (dInput, dWeights) = Run.withBuffers([input, weights, projection,
                                                  [Float](repeating: 0, count: input.count),
                                                  [Float](repeating: 0, count: weights.count)]) { p in
            Dense.backwardData(batch: batch, inputSize: inputSize, outputSize: outputSize, outputGradient: p[2],
                               weights: p[1], inputGradient: p[3], workspace: workspace)
            Dense.backwardWeights(batch: batch, inputSize: inputSize, outputSize: outputSize, input: p[0],
                                  outputGradient: p[2], weightGradient: p[4], accumulate: false, workspace: workspace)
            return (Run.array(p[3], input.count), Run.array(p[4], weights.count))
        }
        assertGradientMatches(dInput, numericalGradient(of: { weightedSum(forward($0, weights), projection) }, at: input))
        assertGradientMatches(dWeights, numericalGradient(of: { weightedSum(forward(input, $0), projection) }, at: weights))
    }

    /// The single-output dense path sums in the GEMM's order, so it must give the GEMM's bits (both micro-kernels),
    /// for depths around the 256-long runs and the discriminator's 6 272; and it is still a dot product (reference).
    func testSingleOutputDenseMatchesGEMMBitForBit() {
        var random = SeededRandom(seed: 12)
        let workspace = KernelWorkspace()
        let kernels = GEMM.Kernel.allCases.filter(\.isSupported)
        for (trial, inputSize) in [1, 5, 255, 256, 257, 511, 513, 700, 6272].enumerated() {
            let batch = trial % 4 + 1
            let input = random.floats(batch * inputSize), weights = random.floats(inputSize)
            let blank = [Float](repeating: 0, count: batch)
            Run.withBuffers([input, weights, blank, blank, blank]) { p in
                Dense.forward(batch: batch, inputSize: inputSize, outputSize: 1, input: p[0], weights: p[1],
                              output: p[2], workspace: workspace)
                for kernel in kernels {
                    GEMM.multiply(rows: batch, columns: 1, depth: inputSize, a: .rowMajor(p[0], columns: inputSize),
                                  b: .rowMajor(p[1], columns: 1), c: p[3], ldc: 1, accumulate: false,
                                  workspace: workspace, kernel: kernel)
                    assertBitIdentical(Run.array(p[2], batch), Run.array(p[3], batch), "in=\(inputSize) \(kernel)")
                }
                Reference.gemm(rows: batch, columns: 1, depth: inputSize, a: .rowMajor(p[0], columns: inputSize),
                               b: .rowMajor(p[1], columns: 1), c: p[4], ldc: 1, accumulate: false)
                assertAllClose(Run.array(p[2], batch), Run.array(p[4], batch), relativeTolerance: 1e-5,
                               absoluteTolerance: 2e-6 * Float(inputSize).squareRoot(), "in=\(inputSize)")
            }
        }
    }

    /// Likewise the single-output weight gradient: against the GEMM it replaces, with and without accumulation, for
    /// batches around the 256-long runs and input sizes off the 8-lane grid.
    func testSingleOutputDenseWeightGradientMatchesGEMMBitForBit() {
        var random = SeededRandom(seed: 13)
        let workspace = KernelWorkspace()
        let kernels = GEMM.Kernel.allCases.filter(\.isSupported)
        for (trial, (batch, inputSize)) in [(1, 1), (2, 6272), (3, 13), (255, 9), (256, 17), (300, 40), (600, 8)]
            .enumerated() {
            let accumulate = trial % 2 == 1
            let input = random.floats(batch * inputSize), gradient = random.floats(batch)
            let start = random.floats(inputSize)
            Run.withBuffers([input, gradient, start, start, start]) { p in
                Dense.backwardWeights(batch: batch, inputSize: inputSize, outputSize: 1, input: p[0],
                                      outputGradient: p[1], weightGradient: p[2], accumulate: accumulate,
                                      workspace: workspace)
                for kernel in kernels {
                    p[3].update(from: start, count: inputSize)
                    GEMM.multiply(rows: inputSize, columns: 1, depth: batch, a: .transposed(p[0], columns: inputSize),
                                  b: .rowMajor(p[1], columns: 1), c: p[3], ldc: 1, accumulate: accumulate,
                                  workspace: workspace, kernel: kernel)
                    assertBitIdentical(Run.array(p[2], inputSize), Run.array(p[3], inputSize),
                                       "n=\(batch) in=\(inputSize) accumulate=\(accumulate) \(kernel)")
                }
                Reference.gemm(rows: inputSize, columns: 1, depth: batch, a: .transposed(p[0], columns: inputSize),
                               b: .rowMajor(p[1], columns: 1), c: p[4], ldc: 1, accumulate: accumulate)
                assertAllClose(Run.array(p[2], inputSize), Run.array(p[4], inputSize), relativeTolerance: 1e-5,
                               absoluteTolerance: 2e-6 * Float(batch).squareRoot(), "n=\(batch) in=\(inputSize)")
            }
        }
    }

    func testBiasAddAndGradient() {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        Run.withBuffers([values, [10, 20, 30], [0, 0, 0]]) { p in
            Elementwise.addBias(p[1], to: p[0], rows: 2, channels: 3)
            XCTAssertEqual(Run.array(p[0], 6), [11, 22, 33, 14, 25, 36])
            Elementwise.biasGradient(p[0], rows: 2, channels: 3, into: p[2], accumulate: false)
            XCTAssertEqual(Run.array(p[2], 3), [25, 47, 69])
        }
    }
}
