/// The GEMM micro-kernel and the FMA-peak loop for CPUs with AVX-512. This module alone is compiled for
/// skylake-avx512, so nothing in it may run before ParallelTensor has checked that the CPU supports AVX-512F: it is
/// only reached through `GEMM.kernel == .avx512`.
///
/// The 6×32 tile keeps 12 `SIMD16<Float>` accumulators (zmm registers). Every C element is accumulated over k in the
/// same order, one FMA per k, as the 6×16 AVX2 kernel does: the two kernels give bit-identical results.
public enum MicroKernel512 {
    public static let rows = 6
    public static let columns = 32

    /// A branch, not a select: as `accumulate ? load + value : value` the compiler loads C before every store, which
    /// stalls a write-only C on its cache misses (measured 5–15% slower whole tiles).
    @inline(__always)
    static func store(_ value: SIMD16<Float>, to c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let raw = UnsafeMutableRawPointer(c)
        if accumulate {
            raw.storeBytes(of: raw.loadUnaligned(as: SIMD16<Float>.self) + value, as: SIMD16<Float>.self)
        } else {
            raw.storeBytes(of: value, as: SIMD16<Float>.self)
        }
    }

    @inline(__always)
    static func store(_ low: SIMD16<Float>, _ high: SIMD16<Float>, to c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        store(low, to: c, accumulate: accumulate)
        store(high, to: c + 16, accumulate: accumulate)
    }

    /// Writes rows 0..<validRows, columns 0..<validColumns of a tile held in `tile`, row r from vector
    /// `vectorsPerRow`·r on: whole vectors where the valid columns fill them, floats otherwise.
    @inline(__always)
    static func storePart(of tile: UnsafeMutableBufferPointer<SIMD16<Float>>, vectorsPerRow: Int,
                          to c: UnsafeMutablePointer<Float>, ldc: Int, rows validRows: Int, columns validColumns: Int,
                          accumulate: Bool) {
        for r in 0..<validRows {
            let row = c + r * ldc, first = vectorsPerRow * r
            if validColumns == columns {
                store(tile[first], tile[first + 1], to: row, accumulate: accumulate)
            } else if validColumns == 16 {
                store(tile[first], to: row, accumulate: accumulate)
            } else {
                let source = UnsafeRawPointer(tile.baseAddress! + first).assumingMemoryBound(to: Float.self)
                for j in 0..<validColumns { row[j] = accumulate ? row[j] + source[j] : source[j] }
            }
        }
    }

    /// C[0..<rows, 0..<columns] (+)= A (6 rows × depth, element (r, p) at a[r·aRowStride + p·aDepthStride]: a packed
    /// panel or the matrix itself) · B-panel (depth × 32, packed).
    public static func multiply(depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
                                b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
                                rows validRows: Int, columns validColumns: Int, accumulate: Bool) {
        if validColumns <= 16 {
            multiplyLeftHalf(depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride, b: b, c: c,
                             ldc: ldc, rows: validRows, columns: validColumns, accumulate: accumulate)
        } else if validRows <= 2 {
            // A last row panel of 1 or 2 rows (the seed's shards of 2 images: 7·7·2 = 98 = 16·6 + 2): four
            // accumulators. Where one zmm FMA issues per cycle (Zen 4's two 256-bit pipes) they keep it busy, so the
            // panel takes 1/3 of a whole tile's time instead of the 4-row tail's 2/3; where two issue (Zen 5), four
            // chains are latency-bound at the 4-row tail's time (not measured there).
            multiplyTile(panelRows: 2, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                         b: b, c: c, ldc: ldc, rows: validRows, columns: validColumns, accumulate: accumulate)
        } else if validRows <= 4 {
            // A last row panel of 3 or 4 rows (every other power-of-two pixel count leaves 4: 64 = 10·6 + 4):
            // eight accumulators still cover the FMA latency on two pipes, so it takes 2/3 of a whole tile's time.
            multiplyTile(panelRows: 4, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                         b: b, c: c, ldc: ldc, rows: validRows, columns: validColumns, accumulate: accumulate)
        } else {
            multiplyTile(panelRows: 6, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                         b: b, c: c, ldc: ldc, rows: validRows, columns: validColumns, accumulate: accumulate)
        }
    }

    /// The top `panelRows`×32 of the 6×32 tile (6, 4 or 2; the rows below neither computed nor read; the call sites
    /// pass constants, so each compiles to its own loop). One FMA per k on each C element, in k order, whichever:
    /// the same bits.
    @inline(__always)
    static func multiplyTile(panelRows: Int, depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
                             b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
                             rows validRows: Int, columns validColumns: Int, accumulate: Bool) {
        var c00 = SIMD16<Float>(), c01 = SIMD16<Float>()
        var c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
        var c20 = SIMD16<Float>(), c21 = SIMD16<Float>()
        var c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
        var c40 = SIMD16<Float>(), c41 = SIMD16<Float>()
        var c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
        let r1 = aRowStride, r2 = 2 * aRowStride, r3 = 3 * aRowStride, r4 = 4 * aRowStride, r5 = 5 * aRowStride
        var ap = a
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = bp.loadUnaligned(as: SIMD16<Float>.self)
            let b1 = bp.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            var broadcast = SIMD16<Float>(repeating: ap[0])
            c00 = c00.addingProduct(broadcast, b0); c01 = c01.addingProduct(broadcast, b1)
            broadcast = SIMD16<Float>(repeating: ap[r1])
            c10 = c10.addingProduct(broadcast, b0); c11 = c11.addingProduct(broadcast, b1)
            if panelRows >= 4 {
                broadcast = SIMD16<Float>(repeating: ap[r2])
                c20 = c20.addingProduct(broadcast, b0); c21 = c21.addingProduct(broadcast, b1)
                broadcast = SIMD16<Float>(repeating: ap[r3])
                c30 = c30.addingProduct(broadcast, b0); c31 = c31.addingProduct(broadcast, b1)
            }
            if panelRows == 6 {
                broadcast = SIMD16<Float>(repeating: ap[r4])
                c40 = c40.addingProduct(broadcast, b0); c41 = c41.addingProduct(broadcast, b1)
                broadcast = SIMD16<Float>(repeating: ap[r5])
                c50 = c50.addingProduct(broadcast, b0); c51 = c51.addingProduct(broadcast, b1)
            }
            ap += aDepthStride
            bp += columns * 4
        }
        if panelRows == 6 && validRows == rows && validColumns == columns {
            store(c00, c01, to: c, accumulate: accumulate)
            store(c10, c11, to: c + ldc, accumulate: accumulate)
            store(c20, c21, to: c + 2 * ldc, accumulate: accumulate)
            store(c30, c31, to: c + 3 * ldc, accumulate: accumulate)
            store(c40, c41, to: c + 4 * ldc, accumulate: accumulate)
            store(c50, c51, to: c + 5 * ldc, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 2 * rows) { tile in
            tile[0] = c00; tile[1] = c01; tile[2] = c10; tile[3] = c11; tile[4] = c20; tile[5] = c21
            tile[6] = c30; tile[7] = c31; tile[8] = c40; tile[9] = c41; tile[10] = c50; tile[11] = c51
            storePart(of: tile, vectorsPerRow: 2, to: c, ldc: ldc, rows: validRows, columns: validColumns,
                      accumulate: accumulate)
        }
    }

    /// `multiply` for a panel whose valid columns all lie in its first 16 (a B of 48 columns, the DCGAN's RGB
    /// patches, ends in one): six accumulators instead of twelve, the same FMA per k on each C element, so the same
    /// bits. Six chains cannot cover the FMA latency on two pipes, but they take ~2/3 of the whole tile's time, not
    /// all of it.
    static func multiplyLeftHalf(depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
                                 b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
                                 rows validRows: Int, columns validColumns: Int, accumulate: Bool) {
        var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>()
        var c3 = SIMD16<Float>(), c4 = SIMD16<Float>(), c5 = SIMD16<Float>()
        let r1 = aRowStride, r2 = 2 * aRowStride, r3 = 3 * aRowStride, r4 = 4 * aRowStride, r5 = 5 * aRowStride
        var ap = a
        var bp = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = bp.loadUnaligned(as: SIMD16<Float>.self)
            c0 = c0.addingProduct(SIMD16(repeating: ap[0]), b0)
            c1 = c1.addingProduct(SIMD16(repeating: ap[r1]), b0)
            c2 = c2.addingProduct(SIMD16(repeating: ap[r2]), b0)
            c3 = c3.addingProduct(SIMD16(repeating: ap[r3]), b0)
            c4 = c4.addingProduct(SIMD16(repeating: ap[r4]), b0)
            c5 = c5.addingProduct(SIMD16(repeating: ap[r5]), b0)
            ap += aDepthStride
            bp += columns * 4
        }
        if validRows == rows && validColumns == 16 {
            store(c0, to: c, accumulate: accumulate)
            store(c1, to: c + ldc, accumulate: accumulate)
            store(c2, to: c + 2 * ldc, accumulate: accumulate)
            store(c3, to: c + 3 * ldc, accumulate: accumulate)
            store(c4, to: c + 4 * ldc, accumulate: accumulate)
            store(c5, to: c + 5 * ldc, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: rows) { tile in
            tile[0] = c0; tile[1] = c1; tile[2] = c2; tile[3] = c3; tile[4] = c4; tile[5] = c5
            storePart(of: tile, vectorsPerRow: 1, to: c, ldc: ldc, rows: validRows, columns: validColumns,
                      accumulate: accumulate)
        }
    }

    /// FLOPs done by `iterations` rounds of 12 independent SIMD16 FMA chains (the peak loop); returns a value that
    /// depends on the computation so it cannot be optimised away.
    public static func fmaLoop(iterations: Int) -> Float {
        let a = SIMD16<Float>(repeating: 0.999_999), b = SIMD16<Float>(repeating: 1e-7)
        var c0 = SIMD16<Float>(repeating: 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0
        var c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0
        for _ in 0..<iterations {
            c0 = b.addingProduct(c0, a); c1 = b.addingProduct(c1, a)
            c2 = b.addingProduct(c2, a); c3 = b.addingProduct(c3, a)
            c4 = b.addingProduct(c4, a); c5 = b.addingProduct(c5, a)
            c6 = b.addingProduct(c6, a); c7 = b.addingProduct(c7, a)
            c8 = b.addingProduct(c8, a); c9 = b.addingProduct(c9, a)
            c10 = b.addingProduct(c10, a); c11 = b.addingProduct(c11, a)
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).sum()
    }
}
