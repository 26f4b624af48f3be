import CPUFeatures
import ParallelTensorAVX512
#if canImport(Glibc)
import Glibc
#endif

/// A read-only matrix seen through strides: element (row, column) is `base[row * rowStride + column * columnStride]`.
/// A row-major M×K matrix has strides (K, 1); its transpose, read as K×M, has strides (1, K). Transposes therefore
/// cost nothing: GEMM's packing step reads any stride pattern into its contiguous panels.
public struct MatrixOperand {
    public let base: UnsafePointer<Float>
    public let rowStride: Int
    public let columnStride: Int

    @inlinable
    public init(base: UnsafePointer<Float>, rowStride: Int, columnStride: Int) {
        self.base = base
        self.rowStride = rowStride
        self.columnStride = columnStride
    }

    /// A row-major matrix with `columns` columns.
    @inlinable
    public static func rowMajor(_ base: UnsafePointer<Float>, columns: Int) -> MatrixOperand {
        MatrixOperand(base: base, rowStride: columns, columnStride: 1)
    }

    /// The transpose of a row-major matrix that has `columns` columns (so the view has `columns` rows).
    @inlinable
    public static func transposed(_ base: UnsafePointer<Float>, columns: Int) -> MatrixOperand {
        MatrixOperand(base: base, rowStride: 1, columnStride: columns)
    }

    @inlinable
    public subscript(row: Int, column: Int) -> Float { base[row * rowStride + column * columnStride] }
}

/// Packing buffers for one worker's GEMMs, plus a scratch area for im2col. Reused across steps so that no step
/// allocates: each buffer grows (once) to what the largest call asks for, which keeps the per-worker memory at what
/// the model needs (the DCGAN's strided B blocks are at most 256 × 128) rather than the blocking maxima.
public final class KernelWorkspace: @unchecked Sendable {
    private var packedABuffer = AlignedBuffer(count: 0)
    private var packedBBuffer = AlignedBuffer(count: 0)
    /// Empty until a kernel asks: a worker that never runs a convolution (16 threads on fewer cores, say) costs no
    /// scratch memory. 256 KiB up front per worker was 4 MiB of the 16-thread peak RSS (README "Memory").
    public private(set) var scratch = AlignedBuffer(count: 0)

    public init() {}

    /// Returns a scratch area of at least `count` floats (its contents are undefined).
    public func scratch(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < count { scratch = AlignedBuffer(count: count) }
        return scratch.pointer
    }

    func packedA(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if packedABuffer.count < count { packedABuffer = AlignedBuffer(count: count) }
        return packedABuffer.pointer
    }

    func packedB(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if packedBBuffer.count < count { packedBBuffer = AlignedBuffer(count: count) }
        return packedBBuffer.pointer
    }
}

/// Single-threaded SGEMM: `C = A·B` or `C += A·B`, with A M×K and B K×N given as strided views and C row-major with
/// leading dimension `ldc`.
///
/// The Goto/BLIS scheme for B: K-blocks of 16- or 32-column panels (weights come packed once per step); A is read in
/// place, six rows at a time through its strides, and the micro-kernel keeps a 6×16 (or 6×32) tile in 12 vector
/// registers, issuing two FMAs per broadcast A value. Edges are handled by packing
/// zeros and writing the valid part of the tile. The summation order of each C element depends only on (M, N, K),
/// never on which thread runs it: the parity contract relies on that.
public enum GEMM {
    /// The micro-kernel: 6×16 with AVX2 `SIMD8` or 6×32 with AVX-512 `SIMD16` registers. Both accumulate every C
    /// element over k in the same order, so they give the same bits.
    public enum Kernel: String, Sendable, CaseIterable {
        case avx2
        case avx512

        public var microColumns: Int { self == .avx2 ? 16 : MicroKernel512.columns }

        /// Whether this CPU can run it.
        public var isSupported: Bool {
            switch self {
            case .avx2: return true  // the package is built for haswell: a CPU without AVX2 cannot run any of it
            case .avx512: return pgan_cpu_supports_avx512f() == 1
            }
        }
    }

    /// The widest kernel the CPU supports; `PGAN_SIMD=avx2` in the environment forces the AVX2 kernel.
    public static let kernel: Kernel = {
        if let forced = getenv("PGAN_SIMD").map({ String(cString: $0) }), let kernel = Kernel(rawValue: forced) {
            return kernel.isSupported ? kernel : .avx2
        }
        return Kernel.avx512.isSupported ? .avx512 : .avx2
    }()

    public static let microRows = 6
    static let blockK = 256
    static let blockM = 96
    static let blockN = 1024

    public static func multiply(
        rows m: Int, columns n: Int, depth k: Int,
        a: MatrixOperand, b: MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool, workspace: KernelWorkspace, kernel: Kernel = GEMM.kernel
    ) {
        multiply(rows: m, columns: n, depth: k, a: a, right: .strided(b), c: c, ldc: ldc, accumulate: accumulate,
                 workspace: workspace, kernel: kernel)
    }

    /// `C (+)= A·B` with B packed beforehand (weights shared by every shard: packed once per step, not per call).
    public static func multiply(
        rows m: Int, a: MatrixOperand, packedB: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, workspace: KernelWorkspace
    ) {
        multiply(rows: m, columns: packedB.columns, depth: packedB.depth, a: a, right: .packed(packedB, firstColumn: 0),
                 c: c, ldc: ldc, accumulate: accumulate, workspace: workspace, kernel: packedB.kernel)
    }

    /// `C (+)= A·B[:, columns]`: only the given columns of a packed B, written to C's columns 0..<columns.count (so
    /// `c` points at the first of them). The range must start on a panel boundary (a multiple of the kernel's
    /// `microColumns`). Each element is summed in the same order as by the whole multiply, so slicing B's columns
    /// across parallel work items changes no bits.
    public static func multiply(
        rows m: Int, a: MatrixOperand, packedB: PackedMatrix, columns: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, workspace: KernelWorkspace
    ) {
        precondition(columns.lowerBound % packedB.kernel.microColumns == 0 && columns.lowerBound >= 0
                     && columns.upperBound <= packedB.columns, "column range must start on a panel and lie inside B")
        multiply(rows: m, columns: columns.count, depth: packedB.depth, a: a,
                 right: .packed(packedB, firstColumn: columns.lowerBound), c: c, ldc: ldc, accumulate: accumulate,
                 workspace: workspace, kernel: packedB.kernel)
    }

    enum RightOperand {
        case strided(MatrixOperand)
        /// Columns firstColumn..< of the packed matrix.
        case packed(PackedMatrix, firstColumn: Int)

        var firstColumn: Int {
            if case .packed(_, let first) = self { return first }
            return 0
        }
    }

    static func multiply(
        rows m: Int, columns n: Int, depth k: Int, a: MatrixOperand, right: RightOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, workspace: KernelWorkspace, kernel: Kernel
    ) {
        let microColumns = kernel.microColumns
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) } }
            return
        }
        var jc = 0
        while jc < n {
            // A packed B's column range may start inside one of its blocks; stop each pass at a block's end.
            let nb = min(blockN - (right.firstColumn + jc) % blockN, n - jc)
            var pc = 0
            while pc < k {
                let kb = min(blockK, k - pc)
                let bPanels: UnsafePointer<Float>
                switch right {
                case .strided(let b):
                    let packed = workspace.packedB(atLeast: kb * ((nb + microColumns - 1) / microColumns * microColumns))
                    packB(b, rowOffset: pc, columnOffset: jc, depth: kb, columns: nb, panelWidth: microColumns,
                          into: packed)
                    bPanels = UnsafePointer(packed)
                case .packed(let packed, let firstColumn):
                    let column = firstColumn + jc
                    bPanels = packed.block(columnOffset: column, depthOffset: pc) + (column % blockN) * kb
                }
                let addToC = accumulate || pc > 0
                // A whose depth is not contiguous (a transpose: the weight gradient's im2col columns) is read one k
                // at a time, each a row's stride away, once per B panel. When that stride is a multiple of 2 KB (the
                // DCGAN paper's 4×4 kernels on 64–512 channels: 4–16 KB) every k falls in the same few L1 sets and
                // the reads evict each other: measured 63% of peak for the 64×64 discriminator's weight gradients,
                // 82–94% with the block packed once, k row by k row (Benchmarks/Sources/KernelBenchmarks). Other
                // strides (the seed's 1600 floats) read faster in place (94% against 82% packed). Packing moves
                // values, never changes the arithmetic, so no bit moves.
                let packsBlock = a.columnStride != 1 && a.columnStride % 512 == 0 && nb > microColumns
                var ic = 0
                while ic < m {
                    let mb = min(blockM, m - ic)
                    // Whole 6-row panels are read from A where it lies (the kernel takes strides); only a last partial
                    // panel is packed, zero-padded, so the kernel never reads past A's rows.
                    let fullRows = packsBlock ? 0 : mb / microRows * microRows
                    let partialPanel = workspace.packedA(atLeast: (packsBlock ? blockM : microRows) * kb)
                    if packsBlock {
                        packATransposedBlock(a, rowOffset: ic, columnOffset: pc, rows: mb, depth: kb, into: partialPanel)
                    } else if fullRows < mb {
                        packA(a, rowOffset: ic + fullRows, columnOffset: pc, rows: mb - fullRows, depth: kb,
                              into: partialPanel)
                    }
                    var jr = 0
                    while jr < nb {
                        let panelColumns = min(microColumns, nb - jr)
                        let bPanel = bPanels + jr * kb
                        var ir = 0
                        while ir < mb {
                            let panelRows = min(microRows, mb - ir)
                            let cTile = c + (ic + ir) * ldc + jc + jr
                            let direct = panelRows == microRows && !packsBlock
                            let aPanel = direct ? a.base + (ic + ir) * a.rowStride + pc * a.columnStride
                                : UnsafePointer(partialPanel + (packsBlock ? ir * kb : 0))
                            let rowStride = direct ? a.rowStride : 1, depthStride = direct ? a.columnStride : microRows
                            if kernel == .avx512 {
                                MicroKernel512.multiply(depth: kb, a: aPanel, aRowStride: rowStride,
                                                        aDepthStride: depthStride, b: bPanel, c: cTile, ldc: ldc,
                                                        rows: panelRows, columns: panelColumns, accumulate: addToC)
                            } else {
                                microKernel(depth: kb, a: aPanel, aRowStride: rowStride, aDepthStride: depthStride,
                                            b: bPanel, c: cTile, ldc: ldc, rows: panelRows, columns: panelColumns,
                                            accumulate: addToC)
                            }
                            ir += microRows
                        }
                        jr += microColumns
                    }
                    ic += blockM
                }
                pc += blockK
            }
            jc += nb
        }
    }

    /// Packs rows [rowOffset, rowOffset+rows) × depth [columnOffset, +depth) of A into 6-row panels, each stored
    /// depth-major (6 consecutive floats per k), rows past the end padded with zeros.
    @inline(__always)
    static func packA(_ a: MatrixOperand, rowOffset: Int, columnOffset: Int, rows: Int, depth: Int,
                      into packed: UnsafeMutablePointer<Float>) {
        var destination = packed
        var panelStart = 0
        while panelStart < rows {
            let valid = min(microRows, rows - panelStart)
            let origin = a.base + (rowOffset + panelStart) * a.rowStride + columnOffset * a.columnStride
            if valid == microRows && a.rowStride == 1 {
                for p in 0..<depth {
                    let source = origin + p * a.columnStride
                    for r in 0..<microRows { destination[r] = source[r] }
                    destination += microRows
                }
            } else {
                // Zero the padding rows once for the whole panel, not with a short fill per k.
                destination.update(repeating: 0, count: microRows * depth)
                for p in 0..<depth {
                    let source = origin + p * a.columnStride
                    for r in 0..<valid { destination[r] = source[r * a.rowStride] }
                    destination += microRows
                }
            }
            panelStart += microRows
        }
    }

    /// `packA` for a whole block of `rows` rows, in the same panels (6 rows each, depth-major, the last zero-padded),
    /// reading A one k at a time across every row of the block: for a transposed A each k's rows are contiguous.
    @inline(__always)
    static func packATransposedBlock(_ a: MatrixOperand, rowOffset: Int, columnOffset: Int, rows: Int, depth: Int,
                                     into packed: UnsafeMutablePointer<Float>) {
        let panels = (rows + microRows - 1) / microRows
        if rows < panels * microRows {
            (packed + (panels - 1) * microRows * depth).update(repeating: 0, count: microRows * depth)
        }
        let contiguous = a.rowStride == 1
        for p in 0..<depth {
            let source = a.base + rowOffset * a.rowStride + (columnOffset + p) * a.columnStride
            var row = 0
            // Eight floats at a time where the rows are contiguous: the two past a panel's six land in its next k's
            // slot, written later in this loop (so not for the last k, nor past the block's rows).
            if contiguous && p + 1 < depth {
                while row + 8 <= rows {
                    let panel = packed + (row / microRows) * microRows * depth + p * microRows
                    UnsafeMutableRawPointer(panel).storeBytes(
                        of: UnsafeRawPointer(source + row).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    row += microRows
                }
            }
            while row < rows {
                let panel = packed + (row / microRows) * microRows * depth + p * microRows
                let valid = min(microRows, rows - row)
                for r in 0..<valid { panel[r] = source[(row + r) * a.rowStride] }
                row += microRows
            }
        }
    }

    /// Packs depth [rowOffset, +depth) × columns [columnOffset, +columns) of B into panels `panelWidth` columns
    /// wide (16 or 32), each stored depth-major, columns past the end padded with zeros.
    @inline(__always)
    static func packB(_ b: MatrixOperand, rowOffset: Int, columnOffset: Int, depth: Int, columns: Int,
                      panelWidth: Int, into packed: UnsafeMutablePointer<Float>) {
        var destination = packed
        var panelStart = 0
        while panelStart < columns {
            let valid = min(panelWidth, columns - panelStart)
            let origin = b.base + rowOffset * b.rowStride + (columnOffset + panelStart) * b.columnStride
            if valid == panelWidth && b.columnStride == 1 {
                for p in 0..<depth {
                    let source = UnsafeRawPointer(origin + p * b.rowStride)
                    let raw = UnsafeMutableRawPointer(destination)
                    var offset = 0
                    while offset < panelWidth * 4 {
                        raw.storeBytes(of: source.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self),
                                       toByteOffset: offset, as: SIMD8<Float>.self)
                        offset += 32
                    }
                    destination += panelWidth
                }
            } else {
                destination.update(repeating: 0, count: panelWidth * depth)
                for p in 0..<depth {
                    let source = origin + p * b.rowStride
                    for j in 0..<valid { destination[j] = source[j * b.columnStride] }
                    destination += panelWidth
                }
            }
            panelStart += panelWidth
        }
    }

    /// The 6×16 register tile: for each k, two SIMD8 loads of B, six broadcasts of A and twelve FMAs.
    ///
    /// `MicroKernel512.multiply` is the same tile on SIMD16, written out again on purpose: a version generic over
    /// `SIMD` (specialised per width) was measured at 90 instead of 145 GFLOP/s on AVX-512 and 52 instead of 75 on
    /// AVX2, because the protocol's `addingProduct` is lane by lane where the concrete types' is one instruction.
    static let avx2TileColumns = 16

    @inline(__always)
    static func microKernel(depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
                            b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                            accumulate: Bool) {
        // A last row panel of at most 4 rows (the seed's shards leave 2: 98 = 16·6 + 2; powers of two leave 4) runs
        // 4×16: eight chains still cover the FMA latency on two 256-bit pipes, so it takes 2/3 of a whole tile's
        // time instead of all of it. Same FMA per k per element, so the same bits.
        if rows <= 4 {
            microTile(sixRows: false, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride, b: b,
                      c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        } else {
            microTile(sixRows: true, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride, b: b,
                      c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate)
        }
    }

    /// The 6×16 tile, or with `sixRows` false its top 4×16 (rows 4 and 5 neither computed nor read; both call sites
    /// pass constants).
    @inline(__always)
    static func microTile(sixRows: Bool, depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
                          b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                          accumulate: Bool) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>()
        var c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        let r1 = aRowStride, r2 = 2 * aRowStride, r3 = 3 * aRowStride, r4 = 4 * aRowStride, r5 = 5 * aRowStride
        var ap = a
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = bp.loadUnaligned(as: SIMD8<Float>.self)
            let b1 = bp.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            var broadcast = SIMD8<Float>(repeating: ap[0])
            c00 = c00.addingProduct(broadcast, b0); c01 = c01.addingProduct(broadcast, b1)
            broadcast = SIMD8<Float>(repeating: ap[r1])
            c10 = c10.addingProduct(broadcast, b0); c11 = c11.addingProduct(broadcast, b1)
            broadcast = SIMD8<Float>(repeating: ap[r2])
            c20 = c20.addingProduct(broadcast, b0); c21 = c21.addingProduct(broadcast, b1)
            broadcast = SIMD8<Float>(repeating: ap[r3])
            c30 = c30.addingProduct(broadcast, b0); c31 = c31.addingProduct(broadcast, b1)
            if sixRows {
                broadcast = SIMD8<Float>(repeating: ap[r4])
                c40 = c40.addingProduct(broadcast, b0); c41 = c41.addingProduct(broadcast, b1)
                broadcast = SIMD8<Float>(repeating: ap[r5])
                c50 = c50.addingProduct(broadcast, b0); c51 = c51.addingProduct(broadcast, b1)
            }
            ap += aDepthStride
            bp += avx2TileColumns * 4
        }
        if sixRows && rows == microRows && columns == avx2TileColumns {
            store(c00, c01, to: c, accumulate: accumulate)
            store(c10, c11, to: c + ldc, accumulate: accumulate)
            store(c20, c21, to: c + 2 * ldc, accumulate: accumulate)
            store(c30, c31, to: c + 3 * ldc, accumulate: accumulate)
            store(c40, c41, to: c + 4 * ldc, accumulate: accumulate)
            store(c50, c51, to: c + 5 * ldc, accumulate: accumulate)
            return
        }
        // Edge tile: spill the registers to the stack and write only the valid part.
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * microRows) { tile in
            tile[0] = c00; tile[1] = c01; tile[2] = c10; tile[3] = c11; tile[4] = c20; tile[5] = c21
            tile[6] = c30; tile[7] = c31; tile[8] = c40; tile[9] = c41; tile[10] = c50; tile[11] = c51
            let values = UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self)
            for r in 0..<rows {
                let row = c + r * ldc
                let source = values + r * avx2TileColumns
                for j in 0..<columns { row[j] = accumulate ? row[j] + source[j] : source[j] }
            }
        }
    }

    @inline(__always)
    static func store(_ low: SIMD8<Float>, _ high: SIMD8<Float>, to c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let raw = UnsafeMutableRawPointer(c)
        if accumulate {
            raw.storeBytes(of: raw.loadUnaligned(as: SIMD8<Float>.self) + low, as: SIMD8<Float>.self)
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) + high,
                           toByteOffset: 32, as: SIMD8<Float>.self)
        } else {
            raw.storeBytes(of: low, as: SIMD8<Float>.self)
            raw.storeBytes(of: high, toByteOffset: 32, as: SIMD8<Float>.self)
        }
    }
}

/// A K×N right-hand operand packed once into the panel layout of `GEMM.multiply` — the blocks of `blockN` columns ×
/// `blockK` depth, each a run of panels as wide as the kernel's tile. Weights that every shard multiplies by are packed
/// once per step instead of once per shard and call.
public final class PackedMatrix: @unchecked Sendable {
    public let depth: Int
    public let columns: Int
    public let kernel: GEMM.Kernel
    let storage: AlignedBuffer
    let depthBlocks: Int
    /// Offset of block (column block j, depth block p) at index j·depthBlocks + p.
    let blockOffsets: [Int]
    /// Every panel of every block, as (block index, first column, depth offset): the units packed in parallel.
    let panels: [(block: Int, column: Int, depthOffset: Int)]

    public init(depth: Int, columns: Int, kernel: GEMM.Kernel = GEMM.kernel) {
        self.depth = depth
        self.columns = columns
        self.kernel = kernel
        depthBlocks = (depth + GEMM.blockK - 1) / GEMM.blockK
        var offsets: [Int] = []
        var panels: [(block: Int, column: Int, depthOffset: Int)] = []
        var total = 0
        var jc = 0
        while jc < columns {
            let paddedColumns = (min(GEMM.blockN, columns - jc) + kernel.microColumns - 1) / kernel.microColumns
                * kernel.microColumns
            var pc = 0
            while pc < depth {
                for column in stride(from: jc, to: min(jc + GEMM.blockN, columns), by: kernel.microColumns) {
                    panels.append((offsets.count, column, pc))
                }
                offsets.append(total)
                total += paddedColumns * min(GEMM.blockK, depth - pc)
                pc += GEMM.blockK
            }
            jc += GEMM.blockN
        }
        blockOffsets = offsets
        self.panels = panels
        storage = AlignedBuffer(count: total)
    }

    public var panelCount: Int { panels.count }

    /// Packs panel `index` (of `panelCount`) of `b` (depth × columns).
    public func packPanel(_ index: Int, from b: MatrixOperand) {
        let width = kernel.microColumns
        let panel = panels[index]
        let kb = min(GEMM.blockK, depth - panel.depthOffset)
        let blockStart = panel.column / GEMM.blockN * GEMM.blockN
        GEMM.packB(b, rowOffset: panel.depthOffset, columnOffset: panel.column, depth: kb,
                   columns: min(width, columns - panel.column), panelWidth: width,
                   into: storage.pointer + blockOffsets[panel.block] + (panel.column - blockStart) * kb)
    }

    /// Packs `b` (depth × columns) into the blocks.
    public func pack(_ b: MatrixOperand) {
        for index in panels.indices { packPanel(index, from: b) }
    }

    @inline(__always)
    func block(columnOffset: Int, depthOffset: Int) -> UnsafePointer<Float> {
        UnsafePointer(storage.pointer + blockOffsets[(columnOffset / GEMM.blockN) * depthBlocks + depthOffset / GEMM.blockK])
    }
}

/// The panels of several matrices to pack, numbered 0..<panelCount: each panel is a unit of parallel work, so all of a
/// model's matrices pack in one phase, which can also carry other work.
public struct PackingPlan: @unchecked Sendable {
    let jobs: [(matrix: PackedMatrix, source: MatrixOperand)]
    let starts: [Int]
    public let panelCount: Int

    public init(_ jobs: [(matrix: PackedMatrix, source: MatrixOperand)]) {
        self.jobs = jobs
        var starts: [Int] = []
        var total = 0
        for job in jobs {
            starts.append(total)
            total += job.matrix.panelCount
        }
        self.starts = starts
        panelCount = total
    }

    /// Every panel, on the calling thread.
    public func packAll() {
        for job in jobs { job.matrix.pack(job.source) }
    }

    public func packPanel(_ index: Int) {
        var job = starts.count - 1
        while starts[job] > index { job -= 1 }
        jobs[job].matrix.packPanel(index - starts[job], from: jobs[job].source)
    }
}
