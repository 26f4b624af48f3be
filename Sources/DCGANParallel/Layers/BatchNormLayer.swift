import ParallelTensor

/// BatchNormalization over the channel (last) axis, synchronised across shards: every statistic is a sum per shard,
/// reduced over shard index in a fixed order and divided by the whole minibatch's row count, so sharding changes
/// nothing but rounding. Keras defaults: momentum 0.99 (running = 0.99·running + 0.01·batch, with the biased batch
/// variance), epsilon 1e-3; PyTorch's: momentum 0.1 in its terms (running = 0.9·running + 0.1·batch, with the
/// unbiased batch variance), epsilon 1e-5. Gamma 1 and beta 0 unless the model's initialiser says otherwise.
public struct BatchNormLayer: Sendable {
    public let channels: Int
    public let gamma: ParameterSlot
    public let beta: ParameterSlot
    public let movingMean: ParameterSlot
    public let movingVariance: ParameterSlot
    /// The weight of the old running value (Keras' `momentum`; PyTorch's is 1 − this).
    public let momentum: Float
    public let epsilon: Double
    /// Whether the running variance takes the batch variance times n/(n − 1), as PyTorch's does.
    public let unbiasedRunningVariance: Bool

    public init(name: String, channels: Int, conventions: ModelConventions = .keras, layout: ParameterLayout,
                stateLayout: ParameterLayout) {
        self.channels = channels
        switch conventions {
        case .keras: (momentum, epsilon, unbiasedRunningVariance) = (0.99, 1e-3, false)
        case .pytorch: (momentum, epsilon, unbiasedRunningVariance) = (0.9, 1e-5, true)
        }
        gamma = layout.add("\(name).gamma", shape: [channels])
        beta = layout.add("\(name).beta", shape: [channels])
        movingMean = stateLayout.add("\(name).moving_mean", shape: [channels])
        movingVariance = stateLayout.add("\(name).moving_variance", shape: [channels])
    }

    public func initialize(parameters: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>) {
        (parameters + gamma.offset).update(repeating: 1, count: channels)
        (parameters + beta.offset).update(repeating: 0, count: channels)
        (state + movingMean.offset).update(repeating: 0, count: channels)
        (state + movingVariance.offset).update(repeating: 1, count: channels)
    }

    /// Inference mode: normalise with the running statistics.
    public func prepareInference(parameters: UnsafePointer<Float>, state: UnsafePointer<Float>,
                                 batch: BatchNormBatch) {
        for c in 0..<channels {
            let inverse = 1 / (Double(state[movingVariance.offset + c]) + epsilon).squareRoot()
            let scale = Double(parameters[gamma.offset + c]) * inverse
            batch.scale[c] = Float(scale)
            batch.shift[c] = Float(Double(parameters[beta.offset + c]) - Double(state[movingMean.offset + c]) * scale)
        }
    }

    /// Training mode, per shard: the channel sums of this shard's rows.
    public func accumulateStatistics(shard: Int, rows: Int, input: UnsafePointer<Float>, batch: BatchNormBatch) {
        BatchNormalization.channelSums(input, rows: rows, channels: channels, sums: batch.sums(shard: shard),
                                       squares: batch.productSums(shard: shard))
    }

    /// Training mode, once per minibatch: reduce the shard sums, fold mean/variance/gamma/beta into scale and shift,
    /// and move the running statistics.
    public func finishStatistics(totalRows: Int, parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>,
                                 batch: BatchNormBatch) {
        let (sums, squares) = batch.reduce()
        let rows = Double(totalRows)
        let runningVarianceFactor = unbiasedRunningVariance && totalRows > 1 ? rows / (rows - 1) : 1
        for c in 0..<channels {
            let mean = sums[c] / rows
            let variance = max(squares[c] / rows - mean * mean, 0)
            let inverse = 1 / (variance + epsilon).squareRoot()
            let scale = Double(parameters[gamma.offset + c]) * inverse
            batch.mean[c] = Float(mean)
            batch.inverseStandardDeviation[c] = Float(inverse)
            batch.scale[c] = Float(scale)
            batch.shift[c] = Float(Double(parameters[beta.offset + c]) - mean * scale)
            state[movingMean.offset + c] = state[movingMean.offset + c] * momentum + Float(mean) * (1 - momentum)
            state[movingVariance.offset + c] = state[movingVariance.offset + c] * momentum
                + Float(variance * runningVarianceFactor) * (1 - momentum)
        }
    }

    /// y = gamma·x̂ + beta with the prepared scale and shift (inference or training). y may alias x.
    public func forward(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        batch: BatchNormBatch) {
        BatchNormalization.applyAffine(input, output, rows: rows, channels: channels, scale: batch.scale.pointer,
                                       shift: batch.shift.pointer)
    }

    /// Backward, per shard: Σdy and Σdy·x̂ of this shard's rows.
    public func accumulateGradientSums(shard: Int, rows: Int, input: UnsafePointer<Float>,
                                       outputGradient: UnsafePointer<Float>, batch: BatchNormBatch) {
        BatchNormalization.backwardSums(input: input, outputGradient: outputGradient, rows: rows, channels: channels,
                                        mean: batch.mean.pointer,
                                        inverseStandardDeviation: batch.inverseStandardDeviation.pointer,
                                        sumGradient: batch.sums(shard: shard),
                                        sumGradientTimesNormalized: batch.productSums(shard: shard))
    }

    /// Backward, once per minibatch: reduce the sums into the means every shard needs, and keep the gamma and beta
    /// gradients (Σdy·x̂ and Σdy) for the model's gradient vector.
    public func finishGradientSums(totalRows: Int, batch: BatchNormBatch) {
        let (sums, products) = batch.reduce()
        for c in 0..<channels {
            batch.meanGradient[c] = Float(sums[c] / Double(totalRows))
            batch.meanGradientTimesNormalized[c] = Float(products[c] / Double(totalRows))
            batch.betaGradient[c] = Float(sums[c])
            batch.gammaGradient[c] = Float(products[c])
        }
    }

    /// Backward, per shard: dx from dy with the minibatch means. dx may alias dy.
    public func backward(rows: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                         inputGradient: UnsafeMutablePointer<Float>, parameters: UnsafePointer<Float>,
                         batch: BatchNormBatch) {
        BatchNormalization.backwardInput(input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                                         rows: rows, channels: channels, mean: batch.mean.pointer,
                                         inverseStandardDeviation: batch.inverseStandardDeviation.pointer,
                                         gamma: parameters + gamma.offset, meanGradient: batch.meanGradient.pointer,
                                         meanGradientTimesNormalized: batch.meanGradientTimesNormalized.pointer)
    }

    /// Writes the reduced gamma/beta gradients into a model gradient vector, or adds them to what is there (a second
    /// pass in one step, as the PyTorch step's discriminator on reals, then fakes).
    public func writeParameterGradients(into gradients: UnsafeMutablePointer<Float>, batch: BatchNormBatch,
                                        accumulate: Bool = false) {
        for c in 0..<channels {
            let g = batch.gammaGradient[c], b = batch.betaGradient[c]
            gradients[gamma.offset + c] = accumulate ? gradients[gamma.offset + c] + g : g
            gradients[beta.offset + c] = accumulate ? gradients[beta.offset + c] + b : b
        }
    }
}

/// The per-minibatch state one BatchNorm layer shares between its shards: shard partial sums and the reduced
/// per-channel values.
public final class BatchNormBatch: @unchecked Sendable {
    public let channels: Int
    /// Sums these shards (this rank's, all of them in one process) through the tree over every shard.
    public let reducer: ShardReducer
    /// Per owned shard: Σx then Σx² per channel in the forward pass, Σdy then Σdy·x̂ in the backward pass — one
    /// vector, so one reduction (one exchange between ranks) covers both.
    let shardSums: [DoubleBuffer]
    /// The shard buffers' pointers, made once: the reductions run every step.
    let shardSumPointers: [UnsafeMutablePointer<Double>]
    public let mean, inverseStandardDeviation, scale, shift: AlignedBuffer
    public let meanGradient, meanGradientTimesNormalized, gammaGradient, betaGradient: AlignedBuffer

    public init(channels: Int, reducer: ShardReducer) {
        self.channels = channels
        self.reducer = reducer
        shardSums = reducer.owned.map { _ in DoubleBuffer(count: 2 * channels) }
        shardSumPointers = shardSums.map(\.pointer)
        mean = AlignedBuffer(count: channels)
        inverseStandardDeviation = AlignedBuffer(count: channels)
        scale = AlignedBuffer(count: channels)
        shift = AlignedBuffer(count: channels)
        meanGradient = AlignedBuffer(count: channels)
        meanGradientTimesNormalized = AlignedBuffer(count: channels)
        gammaGradient = AlignedBuffer(count: channels)
        betaGradient = AlignedBuffer(count: channels)
    }

    /// Shard `shard`'s Σx (forward) or Σdy (backward) per channel; `shard` is a global shard index this rank owns.
    public func sums(shard: Int) -> UnsafeMutablePointer<Double> { shardSumPointers[shard - reducer.owned.lowerBound] }
    /// Shard `shard`'s Σx² (forward) or Σdy·x̂ (backward) per channel.
    public func productSums(shard: Int) -> UnsafeMutablePointer<Double> { sums(shard: shard) + channels }

    /// Both sums over every shard of the minibatch (every rank's), in the tree.
    func reduce() -> (sums: UnsafePointer<Double>, productSums: UnsafePointer<Double>) {
        reducer.sum(shardSumPointers, count: 2 * channels)
        return (UnsafePointer(shardSumPointers[0]), UnsafePointer(shardSumPointers[0] + channels))
    }
}
