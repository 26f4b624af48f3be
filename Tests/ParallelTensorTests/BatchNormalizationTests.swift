import ParallelTensor
import TestSupport
import XCTest

final class BatchNormalizationTests: XCTestCase {
    let epsilon = 1e-3

    /// Synchronised BatchNorm from the kernels: per-shard sums, the fixed-order Double reduction, one normalisation.
    /// Returns the output and, for an upstream gradient, the input, gamma and beta gradients.
    func kernelBatchNorm(_ x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float], upstream: [Float],
                         shards: Int) -> (output: [Float], dInput: [Float], dGamma: [Float], dBeta: [Float]) {
        let bounds = (0...shards).map { $0 * rows / shards }
        let sums = (0..<shards).map { _ in DoubleBuffer(count: channels) }
        let squares = (0..<shards).map { _ in DoubleBuffer(count: channels) }
        return Run.withBuffers([x, upstream, x, x, gamma, beta]) { p in
            for s in 0..<shards {
                BatchNormalization.channelSums(p[0] + bounds[s] * channels, rows: bounds[s + 1] - bounds[s],
                                               channels: channels, sums: sums[s].pointer, squares: squares[s].pointer)
            }
            ShardReduction.sum(sums.map(\.pointer), count: channels)
            ShardReduction.sum(squares.map(\.pointer), count: channels)
            var mean = [Float](), inverse = [Float](), scale = [Float](), shift = [Float]()
            for c in 0..<channels {
                let m = sums[0][c] / Double(rows)
                let variance = max(squares[0][c] / Double(rows) - m * m, 0)
                let inv = 1 / (variance + epsilon).squareRoot()
                mean.append(Float(m))
                inverse.append(Float(inv))
                scale.append(Float(Double(gamma[c]) * inv))
                shift.append(Float(Double(beta[c]) - m * Double(gamma[c]) * inv))
            }
            BatchNormalization.applyAffine(p[0], p[2], rows: rows, channels: channels, scale: scale, shift: shift)
            let sumGradient = (0..<shards).map { _ in DoubleBuffer(count: channels) }
            let sumProduct = (0..<shards).map { _ in DoubleBuffer(count: channels) }
            for s in 0..<shards {
                BatchNormalization.backwardSums(input: p[0] + bounds[s] * channels, outputGradient: p[1] + bounds[s] * channels,
                                                rows: bounds[s + 1] - bounds[s], channels: channels, mean: mean,
                                                inverseStandardDeviation: inverse, sumGradient: sumGradient[s].pointer,
                                                sumGradientTimesNormalized: sumProduct[s].pointer)
            }
            ShardReduction.sum(sumGradient.map(\.pointer), count: channels)
            ShardReduction.sum(sumProduct.map(\.pointer), count: channels)
            let meanGradient = (0..<channels).map { Float(sumGradient[0][$0] / Double(rows)) }
            let meanProduct = (0..<channels).map { Float(sumProduct[0][$0] / Double(rows)) }
            BatchNormalization.backwardInput(input: p[0], outputGradient: p[1], inputGradient: p[3], rows: rows,
                                             channels: channels, mean: mean, inverseStandardDeviation: inverse,
                                             gamma: gamma, meanGradient: meanGradient,
                                             meanGradientTimesNormalized: meanProduct)
            return (Run.array(p[2], x.count), Run.array(p[3], x.count),
                    (0..<channels).map { Float(sumProduct[0][$0]) }, (0..<channels).map { Float(sumGradient[0][$0]) })
        }
    }

    func testForwardMatchesReferenceForAnyShardCount() {
        var random = SeededRandom(seed: 21)
        for (rows, channels) in [(10, 3), (37, 8), (64, 17)] {
            let x = random.floats(rows * channels, in: -2...3), gamma = random.floats(channels, in: 0.5...1.5)
            let beta = random.floats(channels), upstream = random.floats(rows * channels)
            let expected = Reference.batchNormForward(x, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                                      epsilon: epsilon).output
            for shards in [1, 2, 5] where shards <= rows {
                let result = kernelBatchNorm(x, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                             upstream: upstream, shards: shards)
                assertAllClose(result.output, expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5,
                               "rows \(rows) channels \(channels) shards \(shards)")
            }
        }
    }

    func testBackwardByFiniteDifferences() {
        var random = SeededRandom(seed: 22)
        let rows = 12, channels = 3
        let x = random.floats(rows * channels, in: -2...2), gamma = random.floats(channels, in: 0.5...1.5)
        let beta = random.floats(channels), upstream = random.floats(rows * channels)
        let result = kernelBatchNorm(x, rows: rows, channels: channels, gamma: gamma, beta: beta, upstream: upstream,
                                     shards: 3)
        func loss(_ x: [Float], _ gamma: [Float], _ beta: [Float]) -> Double {
            weightedSum(Reference.batchNormForward(x, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                                   epsilon: epsilon).output, upstream)
        }
        assertGradientMatches(result.dInput, numericalGradient(of: { loss($0, gamma, beta) }, at: x, step: 1e-2),
                              tolerance: 2e-2, "dX")
        assertGradientMatches(result.dGamma, numericalGradient(of: { loss(x, $0, beta) }, at: gamma), "dGamma")
        assertGradientMatches(result.dBeta, numericalGradient(of: { loss(x, gamma, $0) }, at: beta), "dBeta")
    }

    /// Every kernel's result for one channel, as a flat list of bit patterns: sums, squares, the affine output, the
    /// two backward sums and dx.
    func channelResults(_ x: [Float], _ dy: [Float], rows: Int, channels: Int, perChannel p: [[Float]]) -> [[UInt64]] {
        var sums = [Double](repeating: 0, count: channels), squares = sums, gradientSums = sums, products = sums
        var affine = [Float](repeating: 0, count: x.count), dx = affine
        BatchNormalization.channelSums(x, rows: rows, channels: channels, sums: &sums, squares: &squares)
        BatchNormalization.applyAffine(x, &affine, rows: rows, channels: channels, scale: p[0], shift: p[1])
        BatchNormalization.backwardSums(input: x, outputGradient: dy, rows: rows, channels: channels, mean: p[2],
                                        inverseStandardDeviation: p[3], sumGradient: &gradientSums,
                                        sumGradientTimesNormalized: &products)
        BatchNormalization.backwardInput(input: x, outputGradient: dy, inputGradient: &dx, rows: rows,
                                         channels: channels, mean: p[2], inverseStandardDeviation: p[3], gamma: p[4],
                                         meanGradient: p[5], meanGradientTimesNormalized: p[6])
        return (0..<channels).map { c in
            let column = (0..<rows).map { $0 * channels + c }
            return [sums[c].bitPattern, squares[c].bitPattern, gradientSums[c].bitPattern, products[c].bitPattern]
                + column.map { UInt64(affine[$0].bitPattern) } + column.map { UInt64(dx[$0].bitPattern) }
        }
    }

    /// Channels in blocks of eight take SIMD lanes, the rest a scalar loop: a channel computed inside a 19-channel
    /// block (two vector blocks and three scalar channels) has the same bits as the same channel computed alone.
    func testEachChannelHasTheSameBitsInAVectorBlockAsAlone() {
        var random = SeededRandom(seed: 23)
        let rows = 29, channels = 19
        let x = random.floats(rows * channels, in: -2...3), dy = random.floats(rows * channels)
        let perChannel = (0..<7).map { _ in random.floats(channels, in: 0.25...1.5) }
        let whole = channelResults(x, dy, rows: rows, channels: channels, perChannel: perChannel)
        for c in 0..<channels {
            let column = { (values: [Float]) in (0..<rows).map { values[$0 * channels + c] } }
            let alone = channelResults(column(x), column(dy), rows: rows, channels: 1,
                                       perChannel: perChannel.map { [$0[c]] })
            XCTAssertEqual(whole[c], alone[0], "channel \(c)")
        }
    }
}
