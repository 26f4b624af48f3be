/// Scalar twins of the SIMD kernels: the plainest loops that compute the same thing, accumulating in Double.
/// Tests compare every fast kernel with these; they are never used for training.
public enum Reference {
    /// `C = A·B` (or `C += A·B`), A M×K and B K×N as strided views, C row-major with leading dimension `ldc`.
    public static func gemm(rows m: Int, columns n: Int, depth k: Int, a: MatrixOperand, b: MatrixOperand,
                            c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = accumulate ? Double(c[i * ldc + j]) : 0
                for p in 0..<k { sum += Double(a[i, p]) * Double(b[p, j]) }
                c[i * ldc + j] = Float(sum)
            }
        }
    }
}
