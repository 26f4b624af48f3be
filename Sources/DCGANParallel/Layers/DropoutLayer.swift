import ParallelTensor

/// Keras Dropout in training mode: keep each element with probability 1 − rate and scale kept ones by 1/(1 − rate).
/// The mask of sample i at step t is drawn from the counter-based generator at (t, dropout, substream, i), so a
/// sample's mask is the same whichever shard or thread computes it.
public struct DropoutLayer: Sendable {
    public let rate: Float
    public let elementsPerSample: Int
    public let substream: UInt32

    public init(rate: Float, elementsPerSample: Int, substream: UInt32) {
        self.rate = rate
        self.elementsPerSample = elementsPerSample
        self.substream = substream
    }

    /// Fills masks (batch × elementsPerSample) for samples firstSample..<firstSample+batch. `phase` separates the
    /// discriminator's and the generator's passes of one step.
    public func makeMask(random: CounterRandom, step: UInt64, phase: UInt32, firstSample: Int, batch: Int,
                         mask: UnsafeMutablePointer<Float>) {
        let keep = 1 / (1 - rate)
        for n in 0..<batch {
            let row = mask + n * elementsPerSample
            random.uniform(step: step, stream: .dropout, substream: substream + phase * 16, index: firstSample + n,
                           count: elementsPerSample, into: row)
            var i = 0
            while i + 8 <= elementsPerSample {
                let raw = UnsafeMutableRawPointer(row + i)
                let u = raw.loadUnaligned(as: SIMD8<Float>.self)
                raw.storeBytes(of: SIMD8<Float>(repeating: keep).replacing(with: 0, where: u .< rate),
                               as: SIMD8<Float>.self)
                i += 8
            }
            while i < elementsPerSample {
                row[i] = row[i] < rate ? 0 : keep
                i += 1
            }
        }
    }

    /// output = input · mask; also the backward pass (inputGradient = outputGradient · mask). May work in place.
    public func apply(batch: Int, input: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                      output: UnsafeMutablePointer<Float>) {
        Elementwise.multiply(input, by: mask, into: output, count: batch * elementsPerSample)
    }
}
