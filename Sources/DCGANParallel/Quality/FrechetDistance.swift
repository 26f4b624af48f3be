#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017, the "FID" when the features
/// are Inception's; here they are `Classifier`'s):
/// d² = |μ₁ − μ₂|² + Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁^½ Σ₂ Σ₁^½)^½,
/// with unbiased covariances, in double precision. The matrix square roots come from symmetric eigendecompositions
/// (cyclic Jacobi), so a singular covariance (ReLU features that are never active) is no problem.
public enum FrechetDistance {
    /// The mean and covariance of `count` feature vectors of `dimension` values each (row after row).
    public struct Statistics: Sendable {
        public let dimension: Int
        public let mean: [Double]
        /// dimension × dimension, row-major.
        public let covariance: [Double]

        public init(features: [Float], count: Int, dimension: Int) {
            precondition(count >= 2 && features.count == count * dimension)
            self.dimension = dimension
            var mean = [Double](repeating: 0, count: dimension)
            for i in 0..<count { for j in 0..<dimension { mean[j] += Double(features[i * dimension + j]) } }
            for j in 0..<dimension { mean[j] /= Double(count) }
            var covariance = [Double](repeating: 0, count: dimension * dimension)
            var centred = [Double](repeating: 0, count: dimension)
            for i in 0..<count {
                for j in 0..<dimension { centred[j] = Double(features[i * dimension + j]) - mean[j] }
                for a in 0..<dimension where centred[a] != 0 {
                    for b in a..<dimension { covariance[a * dimension + b] += centred[a] * centred[b] }
                }
            }
            for a in 0..<dimension {
                for b in a..<dimension {
                    let value = covariance[a * dimension + b] / Double(count - 1)
                    covariance[a * dimension + b] = value
                    covariance[b * dimension + a] = value
                }
            }
            self.mean = mean
            self.covariance = covariance
        }
    }

    public static func distance(_ a: Statistics, _ b: Statistics) -> Double {
        precondition(a.dimension == b.dimension)
        let n = a.dimension
        var meanTerm = 0.0, traces = 0.0
        for j in 0..<n {
            meanTerm += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j])
            traces += a.covariance[j * n + j] + b.covariance[j * n + j]
        }
        // Σ₁^½ = V·diag(√λ)·Vᵀ, then the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (symmetric, ≥ 0 up to rounding).
        let (values, vectors) = symmetricEigen(a.covariance, n: n)
        var root = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                var sum = 0.0
                for k in 0..<n { sum += vectors[i * n + k] * max(values[k], 0).squareRoot() * vectors[j * n + k] }
                root[i * n + j] = sum
                root[j * n + i] = sum
            }
        }
        let product = multiply(multiply(root, b.covariance, n: n), root, n: n)
        var symmetric = product
        for i in 0..<n { for j in 0..<n { symmetric[i * n + j] = (product[i * n + j] + product[j * n + i]) / 2 } }
        let traceOfRoot = symmetricEigen(symmetric, n: n).values.reduce(0) { $0 + max($1, 0).squareRoot() }
        return max(meanTerm + traces - 2 * traceOfRoot, 0)
    }

    static func multiply(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<n where a[i * n + k] != 0 {
                let factor = a[i * n + k]
                for j in 0..<n { c[i * n + j] += factor * b[k * n + j] }
            }
        }
        return c
    }

    /// Eigenvalues and eigenvectors (the columns of `vectors`, row-major n × n) of the symmetric n × n `matrix`, by
    /// cyclic Jacobi rotations until the off-diagonal part is below 1e-14 of the matrix's norm.
    public static func symmetricEigen(_ matrix: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let norm = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
            if off.squareRoot() <= 1e-14 * max(norm, .leastNormalMagnitude) { break }
            for p in 0..<n {
                for q in (p + 1)..<n where a[p * n + q] != 0 {
                    let apq = a[p * n + q]
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
