import ParallelTensor
import TestSupport
import XCTest

final class ShardTreeGradientTests: XCTestCase {
    func run(input: [Float], inputs: Int, gradient: [Float], stride: Int, columns: Range<Int>,
             shards: [Range<Int>]) -> (kernel: [Float], bias: [Float]) {
        let kernel = AlignedBuffer(count: inputs * columns.count), bias = AlignedBuffer(count: columns.count)
        input.withUnsafeBufferPointer { x in
            gradient.withUnsafeBufferPointer { dy in
                let pieces = shards.map {
                    ShardTreeGradient.Shard(input: x.baseAddress! + $0.lowerBound * inputs,
                                            outputGradient: dy.baseAddress! + $0.lowerBound * stride, samples: $0.count)
                }
                ShardTreeGradient.denseGradients(shards: pieces, inputs: inputs, outputStride: stride, columns: columns,
                                                 kernel: kernel.pointer, kernelStride: columns.count, bias: bias.pointer)
            }
        }
        return (kernel.array, bias.array)
    }

    /// Against the scalar twin bit for bit, against GEMM's per-shard products summed in the tree bit for bit (the
    /// multiply it replaces), and against the Double sum to rounding; shards of one sample, uneven shards and a
    /// shard longer than one GEMM depth block.
    func testMatchesTheScalarTwinAndGEMMPartialsInTheTree() {
        var random = SeededRandom(seed: 21)
        let cases: [(inputs: Int, stride: Int, columns: Range<Int>, shards: [Range<Int>])] = [
            (100, 64, 0..<64, (0..<16).map { ($0 * 2)..<($0 * 2 + 2) }),
            (3, 29, 5..<29, [0..<1, 1..<4, 4..<9, 9..<10, 10..<17]),
            (7, 13, 0..<13, [0..<300, 300..<301, 301..<560]),
            (1, 8, 0..<8, [0..<5]),
        ]
        for (inputs, stride, columns, shards) in cases {
            let samples = shards.last!.upperBound
            let input = random.floats(samples * inputs)
            let gradient = random.floats(samples * stride).map { $0 * 1000 }
            let fast = run(input: input, inputs: inputs, gradient: gradient, stride: stride, columns: columns, shards: shards)
            let twin = Reference.shardTreeDenseGradients(input: input, inputs: inputs, outputGradient: gradient,
                                                         outputStride: stride, columns: columns, shards: shards)
            let label = "inputs \(inputs), columns \(columns), shards \(shards.count)"
            assertBitIdentical(fast.kernel, twin.kernel, "kernel, \(label)")
            assertBitIdentical(fast.bias, twin.bias, "bias, \(label)")

            let workspace = KernelWorkspace()
            let partials: [[Float]] = shards.map { range in
                let product = AlignedBuffer(count: inputs * columns.count)
                input.withUnsafeBufferPointer { x in
                    gradient.withUnsafeBufferPointer { dy in
                        GEMM.multiply(rows: inputs, columns: columns.count, depth: range.count,
                                      a: .transposed(x.baseAddress! + range.lowerBound * inputs, columns: inputs),
                                      b: MatrixOperand(base: dy.baseAddress! + range.lowerBound * stride + columns.lowerBound,
                                                       rowStride: stride, columnStride: 1),
                                      c: product.pointer, ldc: columns.count, accumulate: false, workspace: workspace)
                    }
                }
                return product.array
            }
            assertBitIdentical(fast.kernel, ShardReduction.referenceSum(partials), "kernel against GEMM, \(label)")

            var exact = [Double](repeating: 0, count: inputs * columns.count)
            for k in 0..<samples {
                for i in 0..<inputs {
                    for (c, j) in columns.enumerated() { exact[i * columns.count + c] += Double(input[k * inputs + i]) * Double(gradient[k * stride + j]) }
                }
            }
            assertAllClose(fast.kernel, exact.map { Float($0) }, relativeTolerance: 1e-4, absoluteTolerance: 1e-2, "kernel ≈ Σ, \(label)")
        }
    }
}
