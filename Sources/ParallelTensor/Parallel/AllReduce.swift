/// The shared-memory all-reduce: S per-shard buffers summed element-wise in a fixed pairwise tree over shard index.
///
/// Level 1 adds shard 1 into 0, 3 into 2, …; level 2 adds 2 into 0, 6 into 4, …; until shard 0 holds the total.
/// Every element sees exactly this order whatever the thread count, and the work is parallel over slices of the
/// buffer (each slice reduced in L1-sized chunks so every shard buffer is read once). A contiguous range of shards
/// that is a subtree (aligned power of two) reduces to the same bits on its own, which is what a multi-process
/// all-reduce needs to reproduce one process.
public enum AllReduce {
    public static let sliceLength = 1 << 14
    static let chunkLength = 1 << 10

    /// Sums `buffers[s][0..<count]` over s into `buffers[0]`; the other buffers are clobbered.
    public static func sum(_ buffers: [UnsafeMutablePointer<Float>], count: Int, executor: ShardedExecutor) {
        guard buffers.count > 1 else { return }
        nonisolated(unsafe) let pointers = buffers
        executor.runSlices(count: count, sliceLength: sliceLength) { sumSlice(pointers, range: $0) }
    }

    /// The reduction of one slice of the buffers (elements `range`), for callers that fuse it with other per-slice
    /// work in one parallel call.
    public static func sumSlice(_ buffers: [UnsafeMutablePointer<Float>], range: Range<Int>) {
        let shards = buffers.count
        var start = range.lowerBound
        while start < range.upperBound {
            let length = min(chunkLength, range.upperBound - start)
            var stride = 1
            while stride < shards {
                var target = 0
                while target + stride < shards {
                    Elementwise.add(buffers[target + stride] + start, into: buffers[target] + start, count: length)
                    target += 2 * stride
                }
                stride *= 2
            }
            start += length
        }
    }

    /// The same tree in Double, single-threaded: for small vectors such as BatchNorm statistics.
    public static func sum(_ buffers: [UnsafeMutablePointer<Double>], count: Int) {
        let shards = buffers.count
        var stride = 1
        while stride < shards {
            var target = 0
            while target + stride < shards {
                for i in 0..<count { buffers[target][i] += buffers[target + stride][i] }
                target += 2 * stride
            }
            stride *= 2
        }
    }

    /// Scalar reference: for each element, the same pairwise tree written recursively; used by tests.
    public static func referenceSum(_ values: [[Float]]) -> [Float] {
        func tree(_ element: Int, _ lower: Int, _ count: Int) -> Float {
            // The subtree rooted at `lower` covering `count` shards (count a power of two, clipped at the end).
            if count == 1 { return lower < values.count ? values[lower][element] : 0 }
            let half = count / 2
            let left = tree(element, lower, half)
            guard lower + half < values.count else { return left }
            return left + tree(element, lower + half, half)
        }
        var span = 1
        while span < values.count { span *= 2 }
        return (0..<(values.first?.count ?? 0)).map { tree($0, 0, span) }
    }
}
