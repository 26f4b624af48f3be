import ParallelTensor
import TestSupport
import XCTest

final class GEMMTests: XCTestCase {
    /// Random shapes around the 6×16 register tile and the 256-deep K block, every transpose combination, with and
    /// without accumulation. Tolerance: float rounding grows like √K·ε relative to Σ|a·b|; 1e-5·|c| + 2e-6·√K covers it.
    func testMatchesReferenceOnRandomShapes() {
        var random = SeededRandom(seed: 1)
        let workspace = KernelWorkspace()
        for trial in 0..<60 {
            let m = random.int(in: 1...40), n = random.int(in: 1...50)
            let k = trial % 10 == 0 ? random.int(in: 250...300) : random.int(in: 1...40)
            let transposeA = random.int(in: 0...1) == 1, transposeB = random.int(in: 0...1) == 1
            let accumulate = random.int(in: 0...1) == 1
            let kernel = GEMM.Kernel.allCases.filter(\.isSupported)[trial % (GEMM.Kernel.avx512.isSupported ? 2 : 1)]
            let a = random.floats(m * k), b = random.floats(k * n), c = random.floats(m * n)
            Run.withBuffers([a, b, c, c]) { p in
                let aView: MatrixOperand = transposeA ? .transposed(p[0], columns: m) : .rowMajor(p[0], columns: k)
                let bView: MatrixOperand = transposeB ? .transposed(p[1], columns: k) : .rowMajor(p[1], columns: n)
                GEMM.multiply(rows: m, columns: n, depth: k, a: aView, b: bView, c: p[2], ldc: n,
                              accumulate: accumulate, workspace: workspace, kernel: kernel)
                Reference.gemm(rows: m, columns: n, depth: k, a: aView, b: bView, c: p[3], ldc: n,
                               accumulate: accumulate)
                assertAllClose(Run.array(p[2], m * n), Run.array(p[3], m * n), relativeTolerance: 1e-5,
                               absoluteTolerance: 2e-6 * Float(k).squareRoot(),
                               "m=\(m) n=\(n) k=\(k) tA=\(transposeA) tB=\(transposeB) acc=\(accumulate) \(kernel)")
            }
        }
    }

    /// A transposed A whose row stride is a multiple of 512 floats is packed a block at a time (GEMM.multiply): the
    /// same values through the same micro-kernel, so the same bits as reading it in place (here through a stride of
    /// 515), and the reference's values, on edge-heavy shapes, both kernels, with and without accumulation.
    func testPackedTransposedBlocksGiveTheBitsOfReadingInPlace() {
        var random = SeededRandom(seed: 21)
        let workspace = KernelWorkspace()
        for (trial, (m, n, k)) in [(512, 70, 300), (1024, 40, 37), (512, 33, 513), (1536, 64, 8)].enumerated() {
            let kernel = GEMM.Kernel.allCases.filter(\.isSupported)[trial % (GEMM.Kernel.avx512.isSupported ? 2 : 1)]
            let accumulate = trial % 2 == 1
            let a = random.floats(m * k), b = random.floats(k * n), c = random.floats(m * n)
            // The same A (k × m, read transposed) again with rows of 515 floats: read in place.
            var padded = [Float](repeating: 0, count: k * 515)
            for p in 0..<k { for i in 0..<m where i < 515 { padded[p * 515 + i] = a[p * m + i] } }
            guard m <= 515 else {
                Run.withBuffers([a, b, c, c]) { p in
                    GEMM.multiply(rows: m, columns: n, depth: k, a: .transposed(p[0], columns: m),
                                  b: .rowMajor(p[1], columns: n), c: p[2], ldc: n, accumulate: accumulate,
                                  workspace: workspace, kernel: kernel)
                    Reference.gemm(rows: m, columns: n, depth: k, a: .transposed(p[0], columns: m),
                                   b: .rowMajor(p[1], columns: n), c: p[3], ldc: n, accumulate: accumulate)
                    assertAllClose(Run.array(p[2], m * n), Run.array(p[3], m * n), relativeTolerance: 1e-5,
                                   absoluteTolerance: 2e-6 * Float(k).squareRoot(), "m=\(m) n=\(n) k=\(k) \(kernel)")
                }
                continue
            }
            Run.withBuffers([a, b, c, c, padded]) { p in
                GEMM.multiply(rows: m, columns: n, depth: k, a: .transposed(p[0], columns: m),
                              b: .rowMajor(p[1], columns: n), c: p[2], ldc: n, accumulate: accumulate,
                              workspace: workspace, kernel: kernel)
                GEMM.multiply(rows: m, columns: n, depth: k, a: .transposed(p[4], columns: 515),
                              b: .rowMajor(p[1], columns: n), c: p[3], ldc: n, accumulate: accumulate,
                              workspace: workspace, kernel: kernel)
                assertBitIdentical(Run.array(p[2], m * n), Run.array(p[3], m * n), "m=\(m) n=\(n) k=\(k) \(kernel)")
            }
        }
    }

    /// The AVX2 and AVX-512 micro-kernels accumulate in the same order, so they must agree bit for bit (this is what
    /// lets a checkpoint from an AVX-512 machine match one from an AVX2 machine).
    func testKernelsAreBitIdentical() throws {
        try XCTSkipUnless(GEMM.Kernel.avx512.isSupported, "this CPU has no AVX-512")
        var random = SeededRandom(seed: 9)
        let workspace = KernelWorkspace()
        // Random shapes, then panels whose valid columns all lie in their first 16 (the AVX-512 kernel's half-width
        // path), whole 16 and fewer, with full and partial row panels, and last row panels of 1 to 4 rows (its
        // two- and four-row paths) over whole and partial column panels, one of them the seed's 98-row shard GEMMs
        // over two depth blocks.
        var shapes = (0..<30).map { trial in
            (random.int(in: 1...40), random.int(in: 1...90), trial % 5 == 0 ? 300 : random.int(in: 1...60))
        }
        shapes += [(12, 48, 64), (13, 48, 7), (6, 16, 300), (18, 80, 33), (5, 100, 20), (12, 1, 40),
                   (10, 64, 300), (8, 96, 7), (4, 40, 9), (1, 33, 12), (63, 70, 21),
                   (98, 64, 300), (20, 70, 9), (3, 32, 5)]
        for (trial, (m, n, k)) in shapes.enumerated() {
            let accumulate = trial % 2 == 0
            let a = random.floats(m * k), b = random.floats(k * n), c = random.floats(m * n)
            Run.withBuffers([a, b, c, c]) { p in
                GEMM.multiply(rows: m, columns: n, depth: k, a: .rowMajor(p[0], columns: k), b: .transposed(p[1], columns: k),
                              c: p[2], ldc: n, accumulate: accumulate, workspace: workspace, kernel: .avx2)
                GEMM.multiply(rows: m, columns: n, depth: k, a: .rowMajor(p[0], columns: k), b: .transposed(p[1], columns: k),
                              c: p[3], ldc: n, accumulate: accumulate, workspace: workspace, kernel: .avx512)
                assertBitIdentical(Run.array(p[2], m * n), Run.array(p[3], m * n), "m=\(m) n=\(n) k=\(k)")
            }
        }
    }

    /// B packed once (as the trainer packs weights), whole or a column range starting on any panel: the same bits as
    /// packing on every call, including ranges that start inside one 1024-column block and end in another.
    func testPackedRightOperandAndColumnRangesMatchUnpacked() {
        var random = SeededRandom(seed: 5)
        let workspace = KernelWorkspace()
        for trial in 0..<24 {
            let kernel = GEMM.Kernel.allCases.filter(\.isSupported)[trial % (GEMM.Kernel.avx512.isSupported ? 2 : 1)]
            let m = random.int(in: 1...20), k = trial % 3 == 0 ? random.int(in: 257...300) : random.int(in: 1...120)
            let n = trial % 4 == 0 ? random.int(in: 1025...2300) : random.int(in: 1...200)
            let accumulate = trial % 2 == 1
            let a = random.floats(m * k), b = random.floats(k * n), c = random.floats(m * n)
            let packed = PackedMatrix(depth: k, columns: n, kernel: kernel)
            Run.withBuffers([a, b, c, c, c]) { p in
                packed.pack(.rowMajor(p[1], columns: n))
                GEMM.multiply(rows: m, columns: n, depth: k, a: .rowMajor(p[0], columns: k), b: .rowMajor(p[1], columns: n),
                              c: p[2], ldc: n, accumulate: accumulate, workspace: workspace, kernel: kernel)
                GEMM.multiply(rows: m, a: .rowMajor(p[0], columns: k), packedB: packed, c: p[3], ldc: n,
                              accumulate: accumulate, workspace: workspace)
                // Random panel-aligned cuts of the columns, each range multiplied on its own.
                var cuts = [0]
                while cuts.last! < n {
                    let width = random.int(in: 1...(n / kernel.microColumns + 2)) * kernel.microColumns
                    cuts.append(min(n, cuts.last! + width))
                }
                for (start, end) in zip(cuts, cuts.dropFirst()) {
                    GEMM.multiply(rows: m, a: .rowMajor(p[0], columns: k), packedB: packed, columns: start..<end,
                                  c: p[4] + start, ldc: n, accumulate: accumulate, workspace: workspace)
                }
                let unpacked = Run.array(p[2], m * n)
                assertBitIdentical(Run.array(p[3], m * n), unpacked, "whole, m=\(m) n=\(n) k=\(k) \(kernel)")
                assertBitIdentical(Run.array(p[4], m * n), unpacked, "cuts \(cuts), m=\(m) n=\(n) k=\(k) \(kernel)")
            }
        }
    }

    func testLeadingDimensionLargerThanColumnsLeavesOtherColumnsAlone() {
        var random = SeededRandom(seed: 2)
        let workspace = KernelWorkspace()
        let m = 7, n = 5, k = 9, ldc = 11
        let a = random.floats(m * k), b = random.floats(k * n)
        Run.withBuffers([a, b, [Float](repeating: 42, count: m * ldc)]) { p in
            GEMM.multiply(rows: m, columns: n, depth: k, a: .rowMajor(p[0], columns: k), b: .rowMajor(p[1], columns: n),
                          c: p[2], ldc: ldc, accumulate: false, workspace: workspace)
            for row in 0..<m {
                for column in 0..<ldc {
                    if column >= n {
                        XCTAssertEqual(p[2][row * ldc + column], 42)
                    } else {
                        var expected = 0.0
                        for p2 in 0..<k { expected += Double(a[row * k + p2]) * Double(b[p2 * n + column]) }
                        XCTAssertEqual(Double(p[2][row * ldc + column]), expected, accuracy: 1e-5)
                    }
                }
            }
        }
    }

    func testZeroDepthClearsOrKeeps() {
        let workspace = KernelWorkspace()
        Run.withBuffers([[1], [1], [5, 5, 5, 5]]) { p in
            GEMM.multiply(rows: 2, columns: 2, depth: 0, a: .rowMajor(p[0], columns: 0), b: .rowMajor(p[1], columns: 2),
                          c: p[2], ldc: 2, accumulate: true, workspace: workspace)
            XCTAssertEqual(Run.array(p[2], 4), [5, 5, 5, 5])
            GEMM.multiply(rows: 2, columns: 2, depth: 0, a: .rowMajor(p[0], columns: 0), b: .rowMajor(p[1], columns: 2),
                          c: p[2], ldc: 2, accumulate: false, workspace: workspace)
            XCTAssertEqual(Run.array(p[2], 4), [0, 0, 0, 0])
        }
    }
}
