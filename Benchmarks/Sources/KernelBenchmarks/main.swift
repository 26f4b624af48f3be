import Foundation
import ParallelTensor

/// GFLOP/s of the GEMM micro-kernel and of each convolution at the DCGAN's real shapes (per shard of 2 and of the
/// whole batch of 32), next to the FMA peak measured in the same process. Single-threaded: the per-core numbers
/// that the data-parallel trainer multiplies by the core count. `PGAN_SIMD=avx2` measures the AVX2 kernel on an
/// AVX-512 machine. Convolutions here pass raw weights, so they include packing them (training packs them once
/// per step), unless their name says the weights are packed.
struct Measurement {
    let name: String
    let multiplyAdds: Int
    let body: () -> Void
}

/// GFLOP/s of `m` over about `seconds`.
func rate(_ m: Measurement, seconds: Double) -> Double {
    var runs = 0
    let start = monotonicSeconds()
    var elapsed = 0.0
    repeat {
        m.body()
        runs += 1
        elapsed = monotonicSeconds() - start
    } while elapsed < seconds
    return 2 * Double(m.multiplyAdds) * Double(runs) / elapsed / 1e9
}

/// The median over `bursts` short bursts of (GFLOP/s, fraction of the FMA peak measured in the burst just before it).
/// On the shared VMs this runs on, the FMA peak itself moves by ±15% from one second to the next, so a peak measured
/// once divides later kernels by the wrong figure. What the pairing cannot cancel: spells, minutes long, in which
/// memory-bound work slows by up to 40% while the FMA loop does not (README "Speed"); compare kernels within one
/// run, or across runs only by several interleaved ones.
func measure(_ m: Measurement, bursts: Int = 9, seconds: Double = 0.04) -> (rate: Double, ofPeak: Double) {
    m.body()
    var rates: [Double] = [], fractions: [Double] = []
    for _ in 0..<bursts {
        let peak = FMAPeak.measureOneThread(seconds: seconds)
        let r = rate(m, seconds: seconds)
        rates.append(r)
        fractions.append(r / peak)
    }
    return (rates.sorted()[bursts / 2], fractions.sorted()[bursts / 2])
}

func randomBuffer(_ count: Int, seed: UInt64) -> AlignedBuffer {
    let buffer = AlignedBuffer(count: count)
    CounterRandom(seed: seed).uniform(step: 0, stream: .sampleNoise, index: 0, count: count, into: buffer.pointer)
    return buffer
}

let workspace = KernelWorkspace()
var measurements: [Measurement] = []

@MainActor func gemm(_ name: String, m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
    let a = randomBuffer(m * k, seed: 1), b = randomBuffer(k * n, seed: 2), c = AlignedBuffer(count: m * n)
    let aView: MatrixOperand = transposeA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k)
    let bView: MatrixOperand = transposeB ? .transposed(b.pointer, columns: k) : .rowMajor(b.pointer, columns: n)
    measurements.append(Measurement(name: name, multiplyAdds: m * n * k) {
        withExtendedLifetime((a, b)) {}  // the views hold raw pointers into these
        GEMM.multiply(rows: m, columns: n, depth: k, a: aView, b: bView, c: c.pointer, ldc: n, accumulate: false,
                      workspace: workspace)
    })
}

/// As in training: the weights (B) packed once, so the time is the micro-kernel's and A's reads.
@MainActor func gemmPrepacked(_ name: String, m: Int, n: Int, k: Int) {
    let a = randomBuffer(m * k, seed: 1), b = randomBuffer(k * n, seed: 2), c = AlignedBuffer(count: m * n)
    let packed = PackedMatrix(depth: k, columns: n)
    packed.pack(.rowMajor(b.pointer, columns: n))
    measurements.append(Measurement(name: name, multiplyAdds: m * n * k) {
        withExtendedLifetime(a) {}
        GEMM.multiply(rows: m, a: .rowMajor(a.pointer, columns: k), packedB: packed, c: c.pointer, ldc: n,
                      accumulate: false, workspace: workspace)
    })
}

/// A convolution's weights packed as training packs them once per step: for the forward pass (patch × Cout) and,
/// transposed, for the input gradient (Cout × patch).
func packedWeights(_ g: ConvolutionGeometry, _ weights: AlignedBuffer) -> (forward: PackedMatrix, transposed: PackedMatrix) {
    let forward = PackedMatrix(depth: g.patchSize, columns: g.outputChannels)
    forward.pack(.rowMajor(weights.pointer, columns: g.outputChannels))
    let transposed = PackedMatrix(depth: g.outputChannels, columns: g.patchSize)
    transposed.pack(.transposed(weights.pointer, columns: g.outputChannels))
    return (forward, transposed)
}

/// `prepacked`: the weights packed once beforehand, as training packs them once per step for every shard.
@MainActor func convolution(_ name: String, _ g: ConvolutionGeometry, batch: Int, prepacked: Bool = false) {
    let input = randomBuffer(batch * g.inputElementsPerImage, seed: 3), weights = randomBuffer(g.weightCount, seed: 4)
    let output = randomBuffer(batch * g.outputElementsPerImage, seed: 5)
    let dInput = AlignedBuffer(count: input.count), dWeights = AlignedBuffer(count: weights.count)
    let macs = batch * g.multiplyAddsPerImage
    let packed = prepacked ? packedWeights(g, weights) : nil
    measurements.append(Measurement(name: "\(name) forward, batch \(batch)", multiplyAdds: macs) {
        Convolution.forward(g, batch: batch, input: input.pointer, weights: weights.pointer, output: output.pointer,
                            workspace: workspace, packedWeights: packed?.forward)
    })
    measurements.append(Measurement(name: "\(name) backward data, batch \(batch)", multiplyAdds: macs) {
        Convolution.backwardData(g, batch: batch, outputGradient: output.pointer, weights: weights.pointer,
                                 inputGradient: dInput.pointer, workspace: workspace, packedWeights: packed?.transposed)
    })
    measurements.append(Measurement(name: "\(name) backward weights, batch \(batch)", multiplyAdds: macs) {
        Convolution.backwardWeights(g, batch: batch, input: input.pointer, outputGradient: output.pointer,
                                    weightGradient: dWeights.pointer, accumulate: false, workspace: workspace)
    })
}

gemmPrepacked("GEMM packed B: 96×1024×1600 (whole tiles)", m: 96, n: 1024, k: 1600)
gemmPrepacked("GEMM packed B: 98×128×1600 (D conv2 fwd, 2 images)", m: 98, n: 128, k: 1600)
gemmPrepacked("GEMM packed B: 196×128×1600 (D conv2 fwd, 4 images)", m: 196, n: 128, k: 1600)
gemmPrepacked("GEMM packed B: 98×1600×128 (G convT1 fwd, 2 images)", m: 98, n: 1600, k: 128)
gemmPrepacked("GEMM packed B: 392×64×25 (D conv1 fwd, 2 images)", m: 392, n: 64, k: 25)
gemmPrepacked("GEMM packed B: 392×25×64 (G convT2 fwd, 2 images)", m: 392, n: 25, k: 64)
gemmPrepacked("GEMM packed B: 4096×64×48 (dcgan D conv0 fwd, 4 images)", m: 4096, n: 64, k: 48)
gemm("GEMM 25ᵀ×64×392 (D conv1 dW, 2 images)", m: 25, n: 64, k: 392, transposeA: true)
gemm("GEMM 96×1024×1600, B packed per call", m: 96, n: 1024, k: 1600)
gemm("GEMM M=128 N=3136 K=1600 (conv2 dW shape)", m: 128, n: 3136, k: 1600)
gemm("GEMM 98×128×1600 (D conv2 fwd, 2 images)", m: 98, n: 128, k: 1600)
gemm("GEMM 98×1600×128ᵀ (G convT1 fwd, 2 images)", m: 98, n: 1600, k: 128, transposeB: true)
gemm("GEMM 1600ᵀ×128×98 (D conv2 dW, 2 images)", m: 1600, n: 128, k: 98, transposeA: true)
let conv1 = ConvolutionGeometry.same(inputHeight: 28, inputWidth: 28, inputChannels: 1, outputChannels: 64, kernelSize: 5, stride: 2)
let conv2 = ConvolutionGeometry.same(inputHeight: 14, inputWidth: 14, inputChannels: 64, outputChannels: 128, kernelSize: 5, stride: 2)
for batch in [2, 32] {
    convolution("D conv1 28×28×1→14×14×64", conv1, batch: batch)
    convolution("D conv2 14×14×64→7×7×128", conv2, batch: batch)
}
// As the step runs it: weights packed once beforehand.
convolution("D conv2 packed weights", conv2, batch: 2, prepacked: true)

// The DCGAN paper's discriminator at 64×64 RGB (ndf 64; its generator's transposed convolutions are these layers'
// backward data), per shard of 4 images as `--model dcgan` trains batch 64 on 16 shards, weights packed beforehand.
for (name, inputSide, inputChannels) in [("dcgan D conv0 64×64×3→32×32×64", 64, 3), ("dcgan D conv1 32×32×64→16×16×128", 32, 64),
                                         ("dcgan D conv2 16×16×128→8×8×256", 16, 128), ("dcgan D conv3 8×8×256→4×4×512", 8, 256)] {
    let geometry = ConvolutionGeometry.padded(inputHeight: inputSide, inputWidth: inputSide, inputChannels: inputChannels,
                                              outputChannels: inputChannels == 3 ? 64 : 2 * inputChannels, kernelSize: 4,
                                              stride: 2, padding: 1)
    convolution(name, geometry, batch: 4, prepacked: true)
}

/// One shard's conv2 work as the D phase does it (forward, weight gradient, input gradient on 2 images), for
/// `shards` shards in turn, each with its own input, gradients and weight gradient, the weights shared: whether the
/// step's 16 shards of 2 images cost more than one shard repeated (their 16 weight gradients, 13 MB, do not fit in
/// L2). Measured on the Xeon, 2026-12-03: within 2% (65.1 and 63.7, 90.2 and 89.3 GFLOP/s in two runs).
@MainActor func shardSequence(_ name: String, shards: Int) {
    let g = conv2, batch = 2
    let weights = randomBuffer(g.weightCount, seed: 4)
    let packed = packedWeights(g, weights)
    let inputs = (0..<shards).map { randomBuffer(batch * g.inputElementsPerImage, seed: UInt64(10 + $0)) }
    let outputs = (0..<shards).map { _ in AlignedBuffer(count: batch * g.outputElementsPerImage) }
    let dInputs = (0..<shards).map { _ in AlignedBuffer(count: batch * g.inputElementsPerImage) }
    let dWeights = (0..<shards).map { _ in AlignedBuffer(count: g.weightCount) }
    measurements.append(Measurement(name: name, multiplyAdds: 3 * shards * batch * g.multiplyAddsPerImage) {
        for s in 0..<shards {
            Convolution.forward(g, batch: batch, input: inputs[s].pointer, weights: weights.pointer,
                                output: outputs[s].pointer, workspace: workspace, packedWeights: packed.forward)
            Convolution.backwardWeights(g, batch: batch, input: inputs[s].pointer, outputGradient: outputs[s].pointer,
                                        weightGradient: dWeights[s].pointer, accumulate: false, workspace: workspace)
            Convolution.backwardData(g, batch: batch, outputGradient: outputs[s].pointer, weights: weights.pointer,
                                     inputGradient: dInputs[s].pointer, workspace: workspace,
                                     packedWeights: packed.transposed)
        }
    })
}
shardSequence("conv2 fwd+dW+dX, 1 shard of 2", shards: 1)
shardSequence("conv2 fwd+dW+dX, 16 shards of 2", shards: 16)

/// The generator's first-layer weight gradient as the step computes it (16 shards of 2 samples at batch 32, of 16 at
/// batch 256): each shard's noiseᵀ · ∂output summed over the shards in the tree, by slices of 256 of the 6 272 output
/// columns, with the bias. The phase of the step furthest from the peak (README "Where a step's time goes").
@MainActor func firstLayerGradient(_ name: String, shards: Int, samplesPerShard: Int) {
    let inputs = 100, outputs = 6272, sliceWidth = 256
    let noise = (0..<shards).map { randomBuffer(samplesPerShard * inputs, seed: UInt64(30 + $0)) }
    let outputGradients = (0..<shards).map { randomBuffer(samplesPerShard * outputs, seed: UInt64(60 + $0)) }
    let kernel = AlignedBuffer(count: inputs * outputs), bias = AlignedBuffer(count: outputs)
    let pieces = (0..<shards).map {
        ShardTreeGradient.Shard(input: noise[$0].pointer, outputGradient: outputGradients[$0].pointer,
                                samples: samplesPerShard)
    }
    measurements.append(Measurement(name: name, multiplyAdds: shards * samplesPerShard * inputs * outputs) {
        withExtendedLifetime((noise, outputGradients)) {}
        for first in stride(from: 0, to: outputs, by: sliceWidth) {
            ShardTreeGradient.denseGradients(shards: pieces, inputs: inputs, outputStride: outputs,
                                             columns: first..<min(first + sliceWidth, outputs),
                                             kernel: kernel.pointer + first, kernelStride: outputs,
                                             bias: bias.pointer + first)
        }
    })
}
firstLayerGradient("G first layer dW, 16 shards of 2", shards: 16, samplesPerShard: 2)
firstLayerGradient("G first layer dW, 16 shards of 16", shards: 16, samplesPerShard: 16)

let peak = FMAPeak.measureOneThread(seconds: 0.5)
print("FMA peak, one core: \(String(format: "%.1f", peak)) GFLOP/s")
print("kernel".padding(toLength: 56, withPad: " ", startingAt: 0) + "   GFLOP/s   % of peak")
// `kernel-benchmarks SUBSTRING` measures only the kernels whose name contains it.
let only = CommandLine.arguments.dropFirst().first
for m in measurements where only == nil || m.name.contains(only!) {
    let result = measure(m)
    let label = m.name.padding(toLength: 56, withPad: " ", startingAt: 0)
    print(label + String(format: "%10.1f  %9.1f%%", result.rate, 100 * result.ofPeak))
}

// Random numbers: the dropout masks take ~19 000 uniforms per sample and discriminator pass.
let uniforms = AlignedBuffer(count: 18_816)
let generator = CounterRandom(seed: 1)
var draws = 0
let drawStart = monotonicSeconds()
while monotonicSeconds() - drawStart < 0.3 {
    generator.uniform(step: UInt64(draws), stream: .dropout, index: draws, count: uniforms.count, into: uniforms.pointer)
    draws += 1
}
let drawSeconds = monotonicSeconds() - drawStart
print(String(format: "Philox-4x32-10 uniforms: %.2f ns per float", drawSeconds / Double(draws * uniforms.count) * 1e9))
