/// The weight and bias gradients of a dense layer summed over shards in `ShardReduction`'s tree
/// (`ShardReduction.sumProduced`), without storing any shard's partial gradient: for a register block of the result,
/// the terms of four shards are computed and added in registers, and only those groups' sums go through a small
/// stack in L1, so the only memory written is the result.
///
/// Each shard's term has the bits `GEMM.multiply` gives it (an FMA chain over the shard's samples from zero, per block
/// of `GEMM.blockK` samples, the blocks added in order), and the bias term those of adding its rows to zero in order.
/// The generator's first layer uses it: with 16 shards of 2 samples, storing 16 partials of a 100 × 256 slice and
/// adding them in the tree moved 3× the bytes of the multiplies themselves.
public enum ShardTreeGradient {
    /// One shard's rows: `samples` rows of the layer's input (`inputs` floats each) and of ∂loss/∂output
    /// (`outputStride` floats each), each from its own buffer.
    public struct Shard {
        public let input: UnsafePointer<Float>
        public let outputGradient: UnsafePointer<Float>
        public let samples: Int

        public init(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, samples: Int) {
            self.input = input
            self.outputGradient = outputGradient
            self.samples = samples
        }
    }

    /// Four vectors: a register block of 2 rows × 16 columns.
    typealias Block = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

    /// Sums columns `columns` of ∂output over the shards, in shard order. Writes
    /// `kernel[i · kernelStride + (j − columns.lowerBound)]` and `bias[j − columns.lowerBound]` for i in 0..<inputs,
    /// j in `columns`.
    public static func denseGradients(shards: [Shard], inputs: Int, outputStride: Int, columns: Range<Int>,
                                      kernel: UnsafeMutablePointer<Float>, kernelStride: Int,
                                      bias: UnsafeMutablePointer<Float>) {
        precondition(!shards.isEmpty && inputs > 0)
        let depth = ShardReduction.stackDepth(shards: shards.count)
        let oneDepthBlock = shards.allSatisfy { $0.samples <= GEMM.blockK }
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: depth * 4) { storage in
            let stack = storage.baseAddress!
            var j = columns.lowerBound
            while j < columns.upperBound {
                let width = min(16, columns.upperBound - j)
                let low = min(8, width), high = width - low
                // Rows 0..<inputs of the kernel, two at a time, then the bias as row `inputs`.
                var row = 0
                while row <= inputs {
                    let isBias = row == inputs, rows = isBias ? 1 : min(2, inputs - row)
                    if !isBias && rows == 2 && width == 16 && oneDepthBlock {
                        treeSum(shards: shards, stack: stack) { shard in
                            fullBlockProduct(input: shard.input + row, outputGradient: shard.outputGradient + j,
                                             samples: shard.samples, inputs: inputs, outputStride: outputStride)
                        }
                    } else {
                        treeSum(shards: shards, stack: stack) { shard in
                            isBias ? columnSum(shard, column: j, low: low, high: high, outputStride: outputStride)
                                : blockProduct(shard, firstRow: row, rows: rows, inputs: inputs, column: j, low: low,
                                               high: high, outputStride: outputStride)
                        }
                    }
                    for r in 0..<rows {
                        let destination = isBias ? bias + (j - columns.lowerBound)
                            : kernel + (row + r) * kernelStride + (j - columns.lowerBound)
                        store(stack[2 * r], destination, width: low)
                        if high > 0 { store(stack[2 * r + 1], destination + 8, width: high) }
                    }
                    row += rows
                }
                j += width
            }
        }
    }

    /// `ShardReduction.sumProduced`, the tree every sum over shards follows, in groups of four shards whose subtree is
    /// added in registers; one block per stack slot, the total left in slot 0.
    @inline(__always)
    static func treeSum(shards: [Shard], stack: UnsafeMutablePointer<SIMD8<Float>>, _ term: (Shard) -> Block) {
        ShardReduction.sumProduced(shards: shards.count, groupSize: 4, produce: { group, slot in
            let first = group.lowerBound
            var sum = term(shards[first])
            if group.count >= 2 { sum = add(sum, term(shards[first + 1])) }
            if group.count == 3 { sum = add(sum, term(shards[first + 2])) }
            if group.count == 4 { sum = add(sum, add(term(shards[first + 2]), term(shards[first + 3]))) }
            let target = stack + slot * 4
            (target[0], target[1], target[2], target[3]) = sum
        }, add: { source, target in
            let from = stack + source * 4, to = stack + target * 4
            to[0] += from[0]; to[1] += from[1]; to[2] += from[2]; to[3] += from[3]
        })
    }

    @inline(__always)
    static func add(_ a: Block, _ b: Block) -> Block { (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3) }

    /// `blockProduct` for the common case — 16 whole columns, two rows, at most `GEMM.blockK` samples — with pointers
    /// stepped instead of indices multiplied.
    @inline(__always)
    static func fullBlockProduct(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, samples: Int,
                                 inputs: Int, outputStride: Int) -> Block {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var x = input, g = outputGradient
        for _ in 0..<samples {
            let g0 = UnsafeRawPointer(g).loadUnaligned(as: SIMD8<Float>.self)
            let g1 = UnsafeRawPointer(g + 8).loadUnaligned(as: SIMD8<Float>.self)
            let x0 = SIMD8(repeating: x[0]), x1 = SIMD8(repeating: x[1])
            a0 = a0.addingProduct(x0, g0); a1 = a1.addingProduct(x0, g1)
            b0 = b0.addingProduct(x1, g0); b1 = b1.addingProduct(x1, g1)
            x += inputs
            g += outputStride
        }
        return (a0, a1, b0, b1)
    }

    /// One shard's term for rows firstRow..<firstRow+rows (1 or 2) and 16 columns from `column` (`low` + `high` valid
    /// lanes): Σ over its samples of input[k, row] · ∂output[k, column…], an FMA chain from zero per `GEMM.blockK`
    /// samples, the blocks added in order — GEMM's order. A missing second row repeats the first and is not stored.
    @inline(__always)
    static func blockProduct(_ shard: Shard, firstRow: Int, rows: Int, inputs: Int, column: Int, low: Int, high: Int,
                             outputStride: Int) -> Block {
        let r0 = firstRow, r1 = firstRow + rows - 1
        var total: Block = (SIMD8(), SIMD8(), SIMD8(), SIMD8())
        var block = 0
        while block < shard.samples {
            let end = min(block + GEMM.blockK, shard.samples)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
            for k in block..<end {
                let source = shard.outputGradient + k * outputStride + column
                let x = shard.input + k * inputs
                let g0 = load(source, width: low), g1 = high > 0 ? load(source + 8, width: high) : SIMD8<Float>()
                let x0 = SIMD8(repeating: x[r0]), x1 = SIMD8(repeating: x[r1])
                a0 = a0.addingProduct(x0, g0); a1 = a1.addingProduct(x0, g1)
                b0 = b0.addingProduct(x1, g0); b1 = b1.addingProduct(x1, g1)
            }
            total = block == 0 ? (a0, a1, b0, b1) : add(total, (a0, a1, b0, b1))
            block = end
        }
        return total
    }

    /// 0 + ∂output[0, column…] + ∂output[1, column…] + … over the shard's samples, in order (the last two vectors
    /// unused).
    @inline(__always)
    static func columnSum(_ shard: Shard, column: Int, low: Int, high: Int, outputStride: Int) -> Block {
        var sumLow = SIMD8<Float>(), sumHigh = SIMD8<Float>()
        for k in 0..<shard.samples {
            let source = shard.outputGradient + k * outputStride + column
            sumLow += load(source, width: low)
            if high > 0 { sumHigh += load(source + 8, width: high) }
        }
        return (sumLow, sumHigh, SIMD8(), SIMD8())
    }

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>, width: Int) -> SIMD8<Float> {
        if width == 8 { return UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self) }
        var value = SIMD8<Float>()
        for lane in 0..<width { value[lane] = pointer[lane] }
        return value
    }

    @inline(__always)
    static func store(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>, width: Int) {
        if width == 8 {
            UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
        } else {
            for lane in 0..<width { pointer[lane] = value[lane] }
        }
    }
}
