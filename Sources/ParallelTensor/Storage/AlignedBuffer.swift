/// A fixed-size block of `Float`s on a 64-byte boundary (one cache line, two AVX2 registers).
///
/// Buffers are the unit of ownership in ParallelTensor: kernels take raw pointers and shapes; a buffer only owns
/// memory. It is a class so that several shards can read the same weights without copies; writers must make sure
/// no two threads write the same element (the sharded executor gives every shard its own buffers).
public final class AlignedBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public static let alignment = 64

    /// Allocates `count` floats, all zero.
    public init(count: Int) {
        precondition(count >= 0, "AlignedBuffer count must be non-negative")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride,
                                                   alignment: AlignedBuffer.alignment)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit {
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func fill(with value: Float) {
        pointer.update(repeating: value, count: count)
    }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}

/// The same as `AlignedBuffer` for `Double`s: used for reductions (BatchNorm statistics) that must not lose precision
/// when thousands of floats are summed.
public final class DoubleBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Double>

    public init(count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<Double>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    public subscript(index: Int) -> Double {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}
