/// The geometry of a 2-D convolution over NHWC images: sizes, stride and the zero padding before the first row and
/// column. Padding after is implied by the output size.
///
/// Weights are Keras Conv2D kernels, (kernelHeight, kernelWidth, inputChannels, outputChannels) row-major, which is
/// exactly the K×N right-hand matrix of the im2col GEMM (K = kernelHeight·kernelWidth·inputChannels).
public struct ConvolutionGeometry: Hashable, Sendable {
    public var inputHeight: Int
    public var inputWidth: Int
    public var inputChannels: Int
    public var outputChannels: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideY: Int
    public var strideX: Int
    public var padTop: Int
    public var padLeft: Int
    public var outputHeight: Int
    public var outputWidth: Int

    public init(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                kernelHeight: Int, kernelWidth: Int, strideY: Int, strideX: Int,
                padTop: Int, padLeft: Int, outputHeight: Int, outputWidth: Int) {
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideY = strideY
        self.strideX = strideX
        self.padTop = padTop
        self.padLeft = padLeft
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
    }

    /// Keras/TensorFlow "same" padding: ceil(n/s) outputs; total padding max((out−1)·s + k − n, 0), half of it
    /// (rounded down) before and the rest after — asymmetric for 5×5 stride 2 on even sizes (1 before, 2 after).
    public static func same(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                            kernelSize: Int, stride: Int) -> ConvolutionGeometry {
        func along(_ n: Int) -> (output: Int, before: Int) {
            let output = (n + stride - 1) / stride
            let total = max((output - 1) * stride + kernelSize - n, 0)
            return (output, total / 2)
        }
        let vertical = along(inputHeight), horizontal = along(inputWidth)
        return ConvolutionGeometry(inputHeight: inputHeight, inputWidth: inputWidth, inputChannels: inputChannels,
                                   outputChannels: outputChannels, kernelHeight: kernelSize, kernelWidth: kernelSize,
                                   strideY: stride, strideX: stride, padTop: vertical.before, padLeft: horizontal.before,
                                   outputHeight: vertical.output, outputWidth: horizontal.output)
    }

    /// "valid" padding: no padding, floor((n − k)/s) + 1 outputs.
    public static func valid(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                             kernelSize: Int, stride: Int) -> ConvolutionGeometry {
        ConvolutionGeometry(inputHeight: inputHeight, inputWidth: inputWidth, inputChannels: inputChannels,
                            outputChannels: outputChannels, kernelHeight: kernelSize, kernelWidth: kernelSize,
                            strideY: stride, strideX: stride, padTop: 0, padLeft: 0,
                            outputHeight: (inputHeight - kernelSize) / stride + 1,
                            outputWidth: (inputWidth - kernelSize) / stride + 1)
    }

    /// PyTorch's `padding=p`: p zeros on every side, (n + 2p − k)/s + 1 outputs.
    public static func padded(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                              kernelSize: Int, stride: Int, padding: Int) -> ConvolutionGeometry {
        ConvolutionGeometry(inputHeight: inputHeight, inputWidth: inputWidth, inputChannels: inputChannels,
                            outputChannels: outputChannels, kernelHeight: kernelSize, kernelWidth: kernelSize,
                            strideY: stride, strideX: stride, padTop: padding, padLeft: padding,
                            outputHeight: (inputHeight + 2 * padding - kernelSize) / stride + 1,
                            outputWidth: (inputWidth + 2 * padding - kernelSize) / stride + 1)
    }

    /// Depth of one im2col row: kernelHeight · kernelWidth · inputChannels.
    public var patchSize: Int { kernelHeight * kernelWidth * inputChannels }
    /// Floats from one im2col row to the next: the patch, or for the short kernel rows of few-channel images (at most
    /// `Convolution.shortRun` floats) the patch with room for its last kernel row to be copied in whole eight-float
    /// vectors (the seed's 5-float rows: 28 floats instead of 25). The GEMMs read only the patch.
    public var columnsRowStride: Int {
        let rowLength = kernelWidth * inputChannels
        guard rowLength <= Convolution.shortRun else { return patchSize }
        return (kernelHeight - 1) * rowLength + (rowLength + 7) / 8 * 8
    }
    public var inputElementsPerImage: Int { inputHeight * inputWidth * inputChannels }
    public var outputPixelsPerImage: Int { outputHeight * outputWidth }
    public var outputElementsPerImage: Int { outputHeight * outputWidth * outputChannels }
    public var weightCount: Int { patchSize * outputChannels }
    /// Multiply-adds of one image's forward pass (padding taps included, as frameworks count them).
    public var multiplyAddsPerImage: Int { outputPixelsPerImage * patchSize * outputChannels }
}

/// Conv2D on NHWC batches by im2col + GEMM. Images are processed in chunks whose im2col matrix fits the workspace
/// scratch area, so memory stays bounded for any batch.
public enum Convolution {
    /// How many images' im2col rows fit into `budget` floats (at least one), counted in patches and not in the
    /// (possibly longer) `columnsRowStride`: the weight gradient adds its chunks in turn, so the chunks fix its bits.
    static func imagesPerChunk(_ geometry: ConvolutionGeometry, budget: Int) -> Int {
        max(1, budget / (geometry.outputPixelsPerImage * geometry.patchSize))
    }

    static let scratchBudget = 1 << 18

    /// Writes the im2col matrix of `images` images: one row per output pixel (n, oy, ox), `columnsRowStride` floats
    /// apart, each row the patch (ky, kx, c) with zeros where it reaches into the padding (what follows the patch
    /// in a row is left undefined).
    public static func im2col(_ geometry: ConvolutionGeometry, images: Int, input: UnsafePointer<Float>,
                              columns: UnsafeMutablePointer<Float>) {
        if geometry.kernelWidth * geometry.inputChannels <= shortRun {
            im2colShortRuns(geometry, images: images, input: input, columns: columns)
            return
        }
        // Taps kx of one kernel row read adjacent pixels, and NHWC keeps a pixel's channels together: the valid taps
        // of a kernel row are one contiguous run of the image (5·64 floats in the discriminator's second layer).
        let g = geometry
        let channels = g.inputChannels, rowLength = g.kernelWidth * channels
        var row = columns
        for n in 0..<images {
            let image = input + n * g.inputElementsPerImage
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    let taps = validTaps(g, outputColumn: ox)
                    let runStart = taps.lowerBound * channels, runEnd = taps.upperBound * channels
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideY + ky - g.padTop
                        let destination = row + ky * rowLength
                        if iy < 0 || iy >= g.inputHeight || taps.isEmpty {
                            destination.update(repeating: 0, count: rowLength)
                            continue
                        }
                        // Indexed so that destination[i] reads source[i] over the valid run.
                        let source = image + (iy * g.inputWidth + ox * g.strideX - g.padLeft) * channels
                        destination.update(repeating: 0, count: runStart)
                        (destination + runStart).update(from: source + runStart, count: runEnd - runStart)
                        (destination + runEnd).update(repeating: 0, count: rowLength - runEnd)
                    }
                    row += g.columnsRowStride
                }
            }
        }
    }

    /// Kernel rows of at most this many floats (kernelWidth × channels: the images, grey or RGB) take the padded-row
    /// paths below: their runs are too short for copy calls and per-tap bounds checks.
    static let shortRun = 32

    /// Few input channels (the images): each input row is copied once into a zero-padded row, and every patch row is
    /// then a kernelWidth·channels-float read of it, copied in whole eight-float vectors: what a vector writes past a
    /// kernel row lands on the next kernel row's place, which a later call (ky + 1) overwrites, or past the patch,
    /// inside `columnsRowStride`.
    static func im2colShortRuns(_ g: ConvolutionGeometry, images: Int, input: UnsafePointer<Float>,
                                columns: UnsafeMutablePointer<Float>) {
        let channels = g.inputChannels, rowLength = g.kernelWidth * channels, stride = g.columnsRowStride
        forEachKernelRow(g, images: images, image: UnsafeMutablePointer(mutating: input)) { imageRow, padded, ky, first in
            let patchRows = columns + first * stride + ky * rowLength
            guard let imageRow else {
                for ox in 0..<g.outputWidth { (patchRows + ox * stride).update(repeating: 0, count: rowLength) }
                return
            }
            (padded + g.padLeft * channels).update(from: imageRow, count: g.inputWidth * channels)
            for ox in 0..<g.outputWidth {
                let source = padded + ox * g.strideX * channels, destination = patchRows + ox * stride
                var i = 0
                while i < rowLength {
                    Elementwise.store(Elementwise.load(source + i), destination + i)
                    i += 8
                }
            }
        }
    }

    /// Calls `body(imageRow, padded, ky, firstPatchRow)` for every output row (n, oy) and kernel row ky, in that
    /// order: `imageRow` is the input row the kernel row reads (nil in the padding), `padded` a scratch row of
    /// `paddedRowWidth` pixels (× channels floats, and 8 more floats for the vectors of `im2colShortRuns` to run
    /// past its end) whose padding stays as the body leaves it (zero unless written), and `firstPatchRow` the im2col
    /// row of (n, oy, ox = 0).
    @inline(__always)
    static func forEachKernelRow(
        _ g: ConvolutionGeometry, images: Int, image input: UnsafeMutablePointer<Float>,
        _ body: (_ imageRow: UnsafeMutablePointer<Float>?, _ padded: UnsafeMutablePointer<Float>, _ ky: Int,
                 _ firstPatchRow: Int) -> Void
    ) {
        let paddedWidth = paddedRowWidth(g) * g.inputChannels + 8
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedWidth) { buffer in
            let padded = buffer.baseAddress!
            padded.initialize(repeating: 0, count: paddedWidth)
            for n in 0..<images {
                let image = input + n * g.inputElementsPerImage
                for oy in 0..<g.outputHeight {
                    let firstPatchRow = (n * g.outputHeight + oy) * g.outputWidth
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideY + ky - g.padTop
                        let inside = iy >= 0 && iy < g.inputHeight
                        body(inside ? image + iy * g.inputWidth * g.inputChannels : nil, padded, ky, firstPatchRow)
                    }
                }
            }
        }
    }

    /// Width of an input row with its zero padding on both sides, as far as any patch reaches.
    @inline(__always)
    static func paddedRowWidth(_ g: ConvolutionGeometry) -> Int {
        max((g.outputWidth - 1) * g.strideX + g.kernelWidth, g.padLeft + g.inputWidth)
    }

    /// The kernel columns kx whose input column ox·stride + kx − padLeft lies inside the image.
    @inline(__always)
    static func validTaps(_ g: ConvolutionGeometry, outputColumn ox: Int) -> Range<Int> {
        let first = ox * g.strideX - g.padLeft
        let lower = max(0, -first), upper = min(g.kernelWidth, g.inputWidth - first)
        return lower < upper ? lower..<upper : 0..<0
    }

    /// Adds each im2col row back onto the image pixels it was read from (the adjoint of `im2col`), in the order of
    /// the rows (n, oy, ox, ky): every pixel receives its contributions in the same order whatever the batch split.
    public static func col2imAdd(_ geometry: ConvolutionGeometry, images: Int, columns: UnsafePointer<Float>,
                                 input: UnsafeMutablePointer<Float>) {
        if geometry.kernelWidth * geometry.inputChannels <= shortRun {
            col2imAddShortRuns(geometry, images: images, columns: columns, input: input)
            return
        }
        let g = geometry
        let channels = g.inputChannels, rowLength = g.kernelWidth * channels
        var row = columns
        for n in 0..<images {
            let image = input + n * g.inputElementsPerImage
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    let taps = validTaps(g, outputColumn: ox)
                    let runStart = taps.lowerBound * channels, runEnd = taps.upperBound * channels
                    for ky in 0..<g.kernelHeight where !taps.isEmpty {
                        let iy = oy * g.strideY + ky - g.padTop
                        if iy < 0 || iy >= g.inputHeight { continue }
                        // As in im2col, the valid taps of a kernel row are one contiguous run of the image.
                        let destination = image + (iy * g.inputWidth + ox * g.strideX - g.padLeft) * channels
                        Elementwise.add(row + ky * rowLength + runStart, into: destination + runStart,
                                        count: runEnd - runStart)
                    }
                    row += g.columnsRowStride
                }
            }
        }
    }

    /// Few channels: for each (oy, ky) the image row is copied into a padded row, every patch row of that output row
    /// is added to it, and the interior is copied back. Each pixel gets its additions in the same order as the general
    /// path (oy, then ox), onto its running value, so the bits are the same: a pixel p = ox·stride + kx − pad meets
    /// the smaller ox at the larger kx, so going through kx from the last and ox from the first keeps that order.
    /// In that order one pass over ox adds once to each pixel: no addition waits for the one before (in ox order a
    /// stride-2 row re-reads what it stored two pixels back, and vectors there could not forward their stores: 4×
    /// slower).
    static func col2imAddShortRuns(_ g: ConvolutionGeometry, images: Int, columns: UnsafePointer<Float>,
                                   input: UnsafeMutablePointer<Float>) {
        let channels = g.inputChannels, rowLength = g.kernelWidth * channels, stride = g.columnsRowStride
        forEachKernelRow(g, images: images, image: input) { imageRow, padded, ky, first in
            guard let imageRow else { return }
            let patchRows = columns + first * stride + ky * rowLength
            (padded + g.padLeft * channels).update(from: imageRow, count: g.inputWidth * channels)
            let pixelStep = g.strideX * channels
            for kx in (0..<g.kernelWidth).reversed() {
                var destination = padded + kx * channels, source = patchRows + kx * channels
                for _ in 0..<g.outputWidth {
                    switch channels {  // grey and RGB images spelled out: a loop of one or three costs more than its adds
                    case 1:
                        destination[0] += source[0]
                    case 3:
                        destination[0] += source[0]
                        destination[1] += source[1]
                        destination[2] += source[2]
                    default:
                        for c in 0..<channels { destination[c] += source[c] }
                    }
                    destination += pixelStep
                    source += stride
                }
            }
            imageRow.update(from: padded + g.padLeft * channels, count: g.inputWidth * channels)
        }
    }

    /// output (n, OH, OW, Cout) = conv(input (n, H, W, Cin), weights (kh, kw, Cin, Cout)); no bias.
    /// `packedWeights`, when given, must hold `weights` packed as a (patchSize × Cout) matrix.
    public static func forward(_ geometry: ConvolutionGeometry, batch: Int, input: UnsafePointer<Float>,
                               weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                               workspace: KernelWorkspace, packedWeights: PackedMatrix? = nil) {
        let g = geometry
        let chunk = imagesPerChunk(g, budget: scratchBudget)
        let columns = workspace.scratch(atLeast: min(chunk, batch) * g.outputPixelsPerImage * g.columnsRowStride)
        let patches = MatrixOperand(base: columns, rowStride: g.columnsRowStride, columnStride: 1)
        var first = 0
        while first < batch {
            let images = min(chunk, batch - first)
            im2col(g, images: images, input: input + first * g.inputElementsPerImage, columns: columns)
            let rows = images * g.outputPixelsPerImage, destination = output + first * g.outputElementsPerImage
            if let packedWeights {
                GEMM.multiply(rows: rows, a: patches, packedB: packedWeights,
                              c: destination, ldc: g.outputChannels, accumulate: false, workspace: workspace)
            } else {
                GEMM.multiply(rows: rows, columns: g.outputChannels, depth: g.patchSize,
                              a: patches, b: .rowMajor(weights, columns: g.outputChannels),
                              c: destination, ldc: g.outputChannels, accumulate: false, workspace: workspace)
            }
            first += images
        }
    }

    /// inputGradient (n, H, W, Cin) = ∂loss/∂input given outputGradient (n, OH, OW, Cout). Overwrites.
    /// `packedWeights`, when given, must hold the weights' transpose packed as a (Cout × patchSize) matrix.
    public static func backwardData(_ geometry: ConvolutionGeometry, batch: Int, outputGradient: UnsafePointer<Float>,
                                    weights: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                    workspace: KernelWorkspace, packedWeights: PackedMatrix? = nil) {
        let g = geometry
        inputGradient.update(repeating: 0, count: batch * g.inputElementsPerImage)
        let chunk = imagesPerChunk(g, budget: scratchBudget)
        let columns = workspace.scratch(atLeast: min(chunk, batch) * g.outputPixelsPerImage * g.columnsRowStride)
        var first = 0
        while first < batch {
            let images = min(chunk, batch - first)
            let rows = images * g.outputPixelsPerImage
            let gradient = MatrixOperand.rowMajor(outputGradient + first * g.outputElementsPerImage, columns: g.outputChannels)
            if let packedWeights {
                GEMM.multiply(rows: rows, a: gradient, packedB: packedWeights, c: columns, ldc: g.columnsRowStride,
                              accumulate: false, workspace: workspace)
            } else {
                GEMM.multiply(rows: rows, columns: g.patchSize, depth: g.outputChannels, a: gradient,
                              b: .transposed(weights, columns: g.outputChannels),
                              c: columns, ldc: g.columnsRowStride, accumulate: false, workspace: workspace)
            }
            col2imAdd(g, images: images, columns: columns, input: inputGradient + first * g.inputElementsPerImage)
            first += images
        }
    }

    /// weightGradient (kh, kw, Cin, Cout) = (or +=) ∂loss/∂weights.
    public static func backwardWeights(_ geometry: ConvolutionGeometry, batch: Int, input: UnsafePointer<Float>,
                                       outputGradient: UnsafePointer<Float>,
                                       weightGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                       workspace: KernelWorkspace) {
        let g = geometry
        if batch == 0 {
            if !accumulate { weightGradient.update(repeating: 0, count: g.weightCount) }
            return
        }
        let chunk = imagesPerChunk(g, budget: scratchBudget)
        let columns = workspace.scratch(atLeast: min(chunk, batch) * g.outputPixelsPerImage * g.columnsRowStride)
        var first = 0
        while first < batch {
            let images = min(chunk, batch - first)
            im2col(g, images: images, input: input + first * g.inputElementsPerImage, columns: columns)
            GEMM.multiply(rows: g.patchSize, columns: g.outputChannels, depth: images * g.outputPixelsPerImage,
                          a: .transposed(columns, columns: g.columnsRowStride),
                          b: .rowMajor(outputGradient + first * g.outputElementsPerImage, columns: g.outputChannels),
                          c: weightGradient, ldc: g.outputChannels, accumulate: accumulate || first > 0,
                          workspace: workspace)
            first += images
        }
    }
}

/// Conv2DTranspose with Keras "same" semantics: output = input × stride, computed as the exact adjoint (gradient
/// with respect to its input) of a "same" Conv2D that maps the output size back to the input size.
///
/// Weights are Keras Conv2DTranspose kernels, (kh, kw, outputChannels, inputChannels) row-major: the same memory as
/// the adjoint Conv2D's (kh, kw, Cin_conv, Cout_conv) kernel, so no transposition is needed.
public struct TransposedConvolutionGeometry: Hashable, Sendable {
    /// The Conv2D whose input gradient this layer computes: its input is our output and its output our input.
    public let adjoint: ConvolutionGeometry

    public init(adjoint: ConvolutionGeometry) { self.adjoint = adjoint }

    public static func same(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                            kernelSize: Int, stride: Int) -> TransposedConvolutionGeometry {
        TransposedConvolutionGeometry(adjoint: .same(
            inputHeight: inputHeight * stride, inputWidth: inputWidth * stride, inputChannels: outputChannels,
            outputChannels: inputChannels, kernelSize: kernelSize, stride: stride))
    }

    /// PyTorch's ConvTranspose2d with `padding=p`: (n − 1)·s − 2p + k outputs, the adjoint of a convolution of that
    /// output with the same padding.
    public static func padded(inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                              kernelSize: Int, stride: Int, padding: Int) -> TransposedConvolutionGeometry {
        TransposedConvolutionGeometry(adjoint: .padded(
            inputHeight: (inputHeight - 1) * stride - 2 * padding + kernelSize,
            inputWidth: (inputWidth - 1) * stride - 2 * padding + kernelSize, inputChannels: outputChannels,
            outputChannels: inputChannels, kernelSize: kernelSize, stride: stride, padding: padding))
    }

    public var inputHeight: Int { adjoint.outputHeight }
    public var inputWidth: Int { adjoint.outputWidth }
    public var inputChannels: Int { adjoint.outputChannels }
    public var outputHeight: Int { adjoint.inputHeight }
    public var outputWidth: Int { adjoint.inputWidth }
    public var outputChannels: Int { adjoint.inputChannels }
    public var inputElementsPerImage: Int { adjoint.outputElementsPerImage }
    public var outputElementsPerImage: Int { adjoint.inputElementsPerImage }
    public var weightCount: Int { adjoint.weightCount }
    public var multiplyAddsPerImage: Int { adjoint.multiplyAddsPerImage }
}

public enum TransposedConvolution {
    /// output (n, H·s, W·s, Cout) from input (n, H, W, Cin); no bias. Overwrites output.
    /// `packedWeights`: the adjoint convolution's transposed weights (see `Convolution.backwardData`).
    public static func forward(_ geometry: TransposedConvolutionGeometry, batch: Int, input: UnsafePointer<Float>,
                               weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                               workspace: KernelWorkspace, packedWeights: PackedMatrix? = nil) {
        Convolution.backwardData(geometry.adjoint, batch: batch, outputGradient: input, weights: weights,
                                 inputGradient: output, workspace: workspace, packedWeights: packedWeights)
    }

    /// `packedWeights`: the adjoint convolution's weights (see `Convolution.forward`).
    public static func backwardData(_ geometry: TransposedConvolutionGeometry, batch: Int,
                                    outputGradient: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                    inputGradient: UnsafeMutablePointer<Float>, workspace: KernelWorkspace,
                                    packedWeights: PackedMatrix? = nil) {
        Convolution.forward(geometry.adjoint, batch: batch, input: outputGradient, weights: weights,
                            output: inputGradient, workspace: workspace, packedWeights: packedWeights)
    }

    public static func backwardWeights(_ geometry: TransposedConvolutionGeometry, batch: Int,
                                       input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                       weightGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                       workspace: KernelWorkspace) {
        Convolution.backwardWeights(geometry.adjoint, batch: batch, input: outputGradient, outputGradient: input,
                                    weightGradient: weightGradient, accumulate: accumulate, workspace: workspace)
    }
}

/// Fully connected layer on row-major batches: output (n, out) = input (n, in) · weights (in, out) — the Keras Dense
/// kernel layout.
public enum Dense {
    /// `packedWeights`, when given, must hold `weights` packed (in × out); a single output ignores it.
    public static func forward(batch: Int, inputSize: Int, outputSize: Int, input: UnsafePointer<Float>,
                               weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                               workspace: KernelWorkspace, packedWeights: PackedMatrix? = nil) {
        if outputSize == 1 {
            forwardSingleOutput(batch: batch, inputSize: inputSize, input: input, weights: weights, output: output)
        } else if let packedWeights {
            GEMM.multiply(rows: batch, a: .rowMajor(input, columns: inputSize), packedB: packedWeights, c: output,
                          ldc: outputSize, accumulate: false, workspace: workspace)
        } else {
            GEMM.multiply(rows: batch, columns: outputSize, depth: inputSize, a: .rowMajor(input, columns: inputSize),
                          b: .rowMajor(weights, columns: outputSize), c: output, ldc: outputSize, accumulate: false,
                          workspace: workspace)
        }
    }

    /// output (n, 1) = input (n, in) · weights (in, 1): a layer with one output, such as the discriminator's last.
    ///
    /// As a GEMM this is one valid column of a 16- or 32-wide register tile, streaming a weight panel padded 16 or 32
    /// times (800 KB for 6 272 inputs) for a few thousand multiply-adds. Here each row is summed directly in exactly
    /// the GEMM's order — one fused multiply-add chain from zero per `GEMM.blockK`-long run of the input, the runs'
    /// sums then added in order — so the bits are the GEMM's (tested). The runs' chains are independent, so walking
    /// them side by side hides the multiply-add latency.
    public static func forwardSingleOutput(batch: Int, inputSize: Int, input: UnsafePointer<Float>,
                                           weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        guard inputSize > 0 else {
            output.update(repeating: 0, count: batch)
            return
        }
        let runLength = GEMM.blockK
        let runs = (inputSize + runLength - 1) / runLength
        let lastRunLength = inputSize - (runs - 1) * runLength
        withUnsafeTemporaryAllocation(of: Float.self, capacity: runs) { chains in
            for row in 0..<batch {
                let x = input + row * inputSize
                chains.initialize(repeating: 0)
                for k in 0..<runLength {
                    let activeRuns = k < lastRunLength ? runs : runs - 1
                    var index = k
                    for run in 0..<activeRuns {
                        chains[run] = chains[run].addingProduct(x[index], weights[index])
                        index += runLength
                    }
                }
                var total = chains[0]
                for run in 1..<runs { total += chains[run] }
                output[row] = total
            }
        }
    }

    /// weightGradient (in) = (or +=) inputᵀ · outputGradient (n): the weight gradient of a single-output layer.
    ///
    /// As a GEMM every 6-row tile of the result has one valid column of 16 or 32 and goes through the edge-tile
    /// store. Here SIMD lanes run over the inputs, each lane the GEMM's own chain for its element: a fused
    /// multiply-add chain from zero per `GEMM.blockK` samples, added to the result in order. Same bits (tested).
    public static func backwardWeightsSingleOutput(batch: Int, inputSize: Int, input: UnsafePointer<Float>,
                                                   outputGradient: UnsafePointer<Float>,
                                                   weightGradient: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if batch == 0 {
            if !accumulate { weightGradient.update(repeating: 0, count: inputSize) }
            return
        }
        let vectorEnd = inputSize / 8 * 8
        var runStart = 0
        while runStart < batch {
            let runEnd = min(runStart + GEMM.blockK, batch)
            let addToResult = accumulate || runStart > 0
            var i = 0
            while i < vectorEnd {
                var chain = SIMD8<Float>()
                for sample in runStart..<runEnd {
                    let x = UnsafeRawPointer(input + sample * inputSize + i).loadUnaligned(as: SIMD8<Float>.self)
                    chain = chain.addingProduct(x, SIMD8(repeating: outputGradient[sample]))
                }
                let destination = UnsafeMutableRawPointer(weightGradient + i)
                let result = addToResult ? destination.loadUnaligned(as: SIMD8<Float>.self) + chain : chain
                destination.storeBytes(of: result, as: SIMD8<Float>.self)
                i += 8
            }
            while i < inputSize {
                var chain: Float = 0
                for sample in runStart..<runEnd {
                    chain = chain.addingProduct(input[sample * inputSize + i], outputGradient[sample])
                }
                weightGradient[i] = addToResult ? weightGradient[i] + chain : chain
                i += 1
            }
            runStart = runEnd
        }
    }

    /// inputGradient (n, in) = outputGradient (n, out) · weightsᵀ. Overwrites. `packedWeights`, when given, must
    /// hold the weights' transpose packed (out × in).
    public static func backwardData(batch: Int, inputSize: Int, outputSize: Int, outputGradient: UnsafePointer<Float>,
                                    weights: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                    workspace: KernelWorkspace, packedWeights: PackedMatrix? = nil) {
        if let packedWeights {
            GEMM.multiply(rows: batch, a: .rowMajor(outputGradient, columns: outputSize), packedB: packedWeights,
                          c: inputGradient, ldc: inputSize, accumulate: false, workspace: workspace)
        } else {
            GEMM.multiply(rows: batch, columns: inputSize, depth: outputSize,
                          a: .rowMajor(outputGradient, columns: outputSize), b: .transposed(weights, columns: outputSize),
                          c: inputGradient, ldc: inputSize, accumulate: false, workspace: workspace)
        }
    }

    /// weightGradient (in, out) = (or +=) inputᵀ · outputGradient.
    public static func backwardWeights(batch: Int, inputSize: Int, outputSize: Int, input: UnsafePointer<Float>,
                                       outputGradient: UnsafePointer<Float>, weightGradient: UnsafeMutablePointer<Float>,
                                       accumulate: Bool, workspace: KernelWorkspace) {
        if outputSize == 1 {
            backwardWeightsSingleOutput(batch: batch, inputSize: inputSize, input: input, outputGradient: outputGradient,
                                        weightGradient: weightGradient, accumulate: accumulate)
            return
        }
        GEMM.multiply(rows: inputSize, columns: outputSize, depth: batch, a: .transposed(input, columns: inputSize),
                      b: .rowMajor(outputGradient, columns: outputSize), c: weightGradient, ldc: outputSize,
                      accumulate: accumulate, workspace: workspace)
    }
}
