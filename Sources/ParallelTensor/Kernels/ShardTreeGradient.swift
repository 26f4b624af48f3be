/// The weight and bias gradients of a dense layer summed over shards in `ShardReduction`'s tree, without storing any
/// shard's partial gradient: for a register block of the result, each shard's term is computed in registers and the
/// tree is walked on a small stack in L1, so the only memory written is the result.
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

    /// Sums columns `columns` of ∂output over the shards, in shard order. Writes
    /// `kernel[i · kernelStride + (j − columns.lowerBound)]` and `bias[j − columns.lowerBound]` for i in 0..<inputs,
    /// j in `columns`.
    ///
    /// Register blocks of 4 input rows × 16 columns (8 `SIMD8` accumulators): a shard's term for the block is
    /// computed, pushed on the tree's stack and merged with its completed siblings, so the counter's bookkeeping is
    /// paid once per 32 elements.
    public static func denseGradients(shards: [Shard], inputs: Int, outputStride: Int, columns: Range<Int>,
                                      kernel: UnsafeMutablePointer<Float>, kernelStride: Int,
                                      bias: UnsafeMutablePointer<Float>) {
        precondition(!shards.isEmpty && inputs > 0)
        let depth = ShardReduction.stackDepth(shards: shards.count)
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: depth * blockVectors) { storage in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: depth) { counts in
                let stack = storage.baseAddress!, sizes = counts.baseAddress!
                var j = columns.lowerBound
                while j < columns.upperBound {
                    let width = min(16, columns.upperBound - j)
                    let low = min(8, width), high = width - low
                    var row = 0
                    while row < inputs {
                        let rows = min(4, inputs - row)
                        treeSum(shards: shards, stack: stack, sizes: sizes) { shard, term in
                            blockProduct(shard, firstRow: row, rows: rows, inputs: inputs, column: j, low: low,
                                         high: high, outputStride: outputStride, into: term)
                        }
                        for r in 0..<rows {
                            let destination = kernel + (row + r) * kernelStride + (j - columns.lowerBound)
                            store(stack[2 * r], destination, width: low)
                            if high > 0 { store(stack[2 * r + 1], destination + 8, width: high) }
                        }
                        row += rows
                    }
                    treeSum(shards: shards, stack: stack, sizes: sizes) { shard, term in
                        var sumLow = SIMD8<Float>(), sumHigh = SIMD8<Float>()
                        for k in 0..<shard.samples {
                            let source = shard.outputGradient + k * outputStride + j
                            sumLow += load(source, width: low)
                            if high > 0 { sumHigh += load(source + 8, width: high) }
                        }
                        term[0] = sumLow
                        term[1] = sumHigh
                    }
                    store(stack[0], bias + (j - columns.lowerBound), width: low)
                    if high > 0 { store(stack[1], bias + (j - columns.lowerBound) + 8, width: high) }
                    j += width
                }
            }
        }
    }

    /// Vectors of one register block: 4 rows × 2 `SIMD8`.
    static let blockVectors = 8

    /// One shard's term for rows firstRow..<firstRow+rows and 16 columns from `column` (`low` + `high` valid lanes):
    /// Σ over its samples of input[k, row] · ∂output[k, column…], an FMA chain from zero per `GEMM.blockK` samples,
    /// the blocks added in order — GEMM's order. Rows past `rows` repeat the last one and are not stored.
    @inline(__always)
    static func blockProduct(_ shard: Shard, firstRow: Int, rows: Int, inputs: Int, column: Int, low: Int, high: Int,
                             outputStride: Int, into term: UnsafeMutablePointer<SIMD8<Float>>) {
        let r0 = firstRow, r1 = firstRow + min(1, rows - 1), r2 = firstRow + min(2, rows - 1)
        let r3 = firstRow + min(3, rows - 1)
        for v in 0..<blockVectors { term[v] = SIMD8() }
        var block = 0
        while block < shard.samples {
            let end = min(block + GEMM.blockK, shard.samples)
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0 = SIMD8<Float>(), b1 = SIMD8<Float>()
            var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), d0 = SIMD8<Float>(), d1 = SIMD8<Float>()
            for k in block..<end {
                let source = shard.outputGradient + k * outputStride + column
                let x = shard.input + k * inputs
                let g0 = load(source, width: low), g1 = high > 0 ? load(source + 8, width: high) : SIMD8<Float>()
                let x0 = SIMD8(repeating: x[r0]), x1 = SIMD8(repeating: x[r1])
                let x2 = SIMD8(repeating: x[r2]), x3 = SIMD8(repeating: x[r3])
                a0 = a0.addingProduct(x0, g0); a1 = a1.addingProduct(x0, g1)
                b0 = b0.addingProduct(x1, g0); b1 = b1.addingProduct(x1, g1)
                c0 = c0.addingProduct(x2, g0); c1 = c1.addingProduct(x2, g1)
                d0 = d0.addingProduct(x3, g0); d1 = d1.addingProduct(x3, g1)
            }
            if block == 0 {
                term[0] = a0; term[1] = a1; term[2] = b0; term[3] = b1
                term[4] = c0; term[5] = c1; term[6] = d0; term[7] = d1
            } else {
                term[0] += a0; term[1] += a1; term[2] += b0; term[3] += b1
                term[4] += c0; term[5] += c1; term[6] += d0; term[7] += d1
            }
            block = end
        }
    }

    /// `ShardReduction`'s tree over terms produced one at a time, on one register block: a binary counter keeps the
    /// sums of completed subtrees (two neighbours of equal size are siblings; a clipped tree's right subtrees join from
    /// the smallest up), so it gives the bits of `ShardReduction.sumSlice` on stored buffers. The total is left in
    /// the stack's first block.
    @inline(__always)
    static func treeSum(shards: [Shard], stack: UnsafeMutablePointer<SIMD8<Float>>, sizes: UnsafeMutablePointer<Int>,
                        _ term: (Shard, UnsafeMutablePointer<SIMD8<Float>>) -> Void) {
        var count = 0
        for shard in shards {
            term(shard, stack + count * blockVectors)
            sizes[count] = 1
            count += 1
            while count >= 2 && sizes[count - 1] == sizes[count - 2] {
                merge(stack + (count - 1) * blockVectors, into: stack + (count - 2) * blockVectors)
                sizes[count - 2] *= 2
                count -= 1
            }
        }
        while count >= 2 {
            merge(stack + (count - 1) * blockVectors, into: stack + (count - 2) * blockVectors)
            count -= 1
        }
    }

    @inline(__always)
    static func merge(_ source: UnsafeMutablePointer<SIMD8<Float>>, into target: UnsafeMutablePointer<SIMD8<Float>>) {
        for v in 0..<blockVectors { target[v] += source[v] }
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
