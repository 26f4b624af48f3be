import ParallelTensor

/// An exponential moving average of the generator (`--ema DECAY`): its weights and its BatchNorm running statistics,
/// after every generator update `average = decay·average + (1 − decay)·current`, element by element — in slices, in
/// any order, with the same bits. It starts as the initial generator, is stored in the checkpoint, and is what
/// `pgan sample`, `pgan eval` and the epoch grids draw with (`GANTrainer.withAverageGenerator`).
public final class AverageGenerator: @unchecked Sendable {
    public let decay: Float
    public let parameters: AlignedBuffer
    public let state: AlignedBuffer

    init(decay: Float, copying generator: Network) {
        self.decay = decay
        parameters = AlignedBuffer(count: generator.parameters.count)
        state = AlignedBuffer(count: generator.state.count)
        parameters.pointer.update(from: generator.parameters.pointer, count: parameters.count)
        state.pointer.update(from: generator.state.pointer, count: state.count)
    }

    /// Moves `range` of the average towards the generator's current weights.
    func update(_ range: Range<Int>, from current: UnsafePointer<Float>) {
        OptimizerUpdates.movingAverage(count: range.count, average: parameters.pointer + range.lowerBound,
                                       current: current + range.lowerBound, decay: decay)
    }

    /// Moves the running statistics' average (small: one serial step).
    func updateState(from current: UnsafePointer<Float>) {
        OptimizerUpdates.movingAverage(count: state.count, average: state.pointer, current: current, decay: decay)
    }
}
