import ParallelTensor

/// One named tensor inside a flat parameter vector: `count` floats from `offset`, row-major in `shape` (the Keras
/// layout of that weight).
public struct ParameterSlot: Sendable, Hashable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The names, shapes and offsets of a model's tensors, laid out one after another in one flat vector so that
/// gradients, optimizer state and the all-reduce can treat a whole model as a single buffer.
public final class ParameterLayout: @unchecked Sendable {
    public private(set) var slots: [ParameterSlot] = []
    public private(set) var totalCount = 0

    public init() {}

    public func add(_ name: String, shape: [Int]) -> ParameterSlot {
        let slot = ParameterSlot(name: name, shape: shape, offset: totalCount)
        slots.append(slot)
        // Start every tensor on a 16-float (64-byte) boundary so SIMD loads of any tensor stay aligned.
        totalCount += (slot.count + 15) / 16 * 16
        return slot
    }

    public func slot(named name: String) -> ParameterSlot? { slots.first { $0.name == name } }
}

/// Glorot-uniform initialisation (Keras' default kernel initialiser): U(−l, l) with l = √(6 / (fanIn + fanOut)),
/// where for a kernel of shape (…, in, out) fanIn = in·receptive field and fanOut = out·receptive field.
/// Values come from the counter-based generator, element by element, so they are the same on every machine.
public func glorotUniform(_ slot: ParameterSlot, into values: UnsafeMutablePointer<Float>, random: CounterRandom,
                          substream: UInt32) {
    let shape = slot.shape
    let receptiveField = shape.dropLast(2).reduce(1, *)
    let fanIn = shape[shape.count - 2] * receptiveField, fanOut = shape[shape.count - 1] * receptiveField
    let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
    random.uniform(step: 0, stream: .initialization, substream: substream, index: 0, count: slot.count,
                   into: values + slot.offset)
    for i in 0..<slot.count { values[slot.offset + i] = (values[slot.offset + i] * 2 - 1) * limit }
}

/// A layer's weight matrix packed for GEMM (and its transpose, for layers whose input gradient is needed), refreshed
/// by `pack` whenever the weights change — once per optimizer step — and then read by every shard.
public final class PackedWeights: @unchecked Sendable {
    public let matrix: PackedMatrix?
    public let transposed: PackedMatrix?
    let columns: Int

    /// `depth` × `columns` is the weight's row-major matrix shape. Without `withMatrix` only the transpose is packed
    /// (a layer whose forward pass does not multiply through GEMM).
    public init(depth: Int, columns: Int, withTranspose: Bool, withMatrix: Bool = true) {
        self.columns = columns
        matrix = withMatrix ? PackedMatrix(depth: depth, columns: columns) : nil
        transposed = withTranspose ? PackedMatrix(depth: columns, columns: depth) : nil
    }

    /// The matrices to pack from `weights` and where each reads them.
    public func jobs(_ weights: UnsafePointer<Float>) -> [(matrix: PackedMatrix, source: MatrixOperand)] {
        var jobs: [(matrix: PackedMatrix, source: MatrixOperand)] = []
        if let matrix { jobs.append((matrix, .rowMajor(weights, columns: columns))) }
        if let transposed { jobs.append((transposed, .transposed(weights, columns: columns))) }
        return jobs
    }
}
