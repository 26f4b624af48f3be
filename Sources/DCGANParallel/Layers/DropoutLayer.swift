import ParallelTensor

/// The two passes of a GAN step through the discriminator. Their dropout masks must differ (the G phase draws fresh
/// masks, as the seed's second call of the model does), so the phase is part of every mask's random address.
public enum GANPhase: UInt32, Sendable {
    /// D is trained on fakes and reals.
    case discriminatorStep = 0
    /// G is trained through the frozen D.
    case generatorStep = 1
}

/// Keras Dropout in training mode: keep each element with probability 1 − rate and scale kept ones by 1/(1 − rate).
/// The mask of sample i at step t is drawn from the counter-based generator at (t, dropout, substream, i), so a
/// sample's mask is the same whichever shard or thread computes it.
public struct DropoutLayer: Sendable {
    public let rate: Float
    public let elementsPerSample: Int
    public let substream: UInt32

    public init(rate: Float, elementsPerSample: Int, substream: UInt32) {
        precondition(substream < Self.substreamsPerPhase, "a dropout substream must be below substreamsPerPhase")
        self.rate = rate
        self.elementsPerSample = elementsPerSample
        self.substream = substream
    }

    /// Dropout layers use substreams below this; the substream of a mask is the layer's plus this times the phase.
    public static let substreamsPerPhase: UInt32 = 16

    /// Fills masks (batch × elementsPerSample) for samples firstSample..<firstSample+batch, drawn at substream
    /// `substream + substreamsPerPhase × phase` so the D and G passes of one step get different masks.
    public func makeMask(random: CounterRandom, step: UInt64, phase: GANPhase, firstSample: Int, batch: Int,
                         mask: UnsafeMutablePointer<Float>) {
        let keep = 1 / (1 - rate)
        for n in 0..<batch {
            let row = mask + n * elementsPerSample
            random.uniform(step: step, stream: .dropout, substream: substream + Self.substreamsPerPhase * phase.rawValue,
                           index: firstSample + n, count: elementsPerSample, into: row)
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
