/// Every sum over shards — gradients, BatchNorm statistics and gradient sums — follows one fixed pairwise tree over
/// shard index (docs/ARCHITECTURE.md §2), so no result depends on which thread finished first.
///
/// Level 1 adds shard 1 into 0, 3 into 2, …; level 2 adds 2 into 0, 6 into 4, …; until **shard 0's buffer holds the
/// total** (the other buffers are clobbered). With S not a power of two the tree is clipped: a node whose partner is
/// past the end is carried up unchanged.
///
/// An aligned block of shards — `b ..< b + 2^k` with b a multiple of 2^k, clipped at S — is a subtree: it reduces
/// to the same bits on its own (`sumBlock`), and the rest of the tree can be finished from the blocks' roots
/// (`sumSlice(_:range:reducedBlocks:)`). A contiguous range of shards splits into such blocks (`alignedBlocks`), which
/// is what a process that owns a range of shards needs to reproduce a one-process sum.
///
/// The Float sums are parallel over slices of the buffers (each slice reduced in L1-sized chunks, so every shard
/// buffer is read once); the Double sums (BatchNorm statistics, one value per channel) run on one thread.
public enum ShardReduction {
    public static let sliceLength = 1 << 14
    static let chunkLength = 1 << 10

    /// Calls `add(target, source)` for every node of the tree over `shards` shards, level by level, skipping the
    /// nodes inside `reducedBlocks` (subtrees already summed into their first shard).
    @inline(__always)
    static func walkTree(shards: Int, reducedBlocks: [Range<Int>], _ add: (_ target: Int, _ source: Int) -> Void) {
        var stride = 1
        while stride < shards {
            var target = 0
            while target + stride < shards {
                let source = target + stride
                if !reducedBlocks.contains(where: { $0.contains(target) && $0.contains(source) }) { add(target, source) }
                target += 2 * stride
            }
            stride *= 2
        }
    }

    /// True when `block` is an aligned block of a tree over `shards` shards: it starts at a multiple of a power of two
    /// at least its length, and has that length or ends at the last shard.
    public static func isAlignedBlock(_ block: Range<Int>, shards: Int) -> Bool {
        guard !block.isEmpty, block.lowerBound >= 0, block.upperBound <= shards else { return false }
        var size = 1
        while size < block.count { size *= 2 }
        return block.lowerBound % size == 0 && (block.count == size || block.upperBound == shards)
    }

    /// A contiguous range of shards as aligned blocks, in shard order, each as large as the range allows.
    public static func alignedBlocks(of range: Range<Int>, shards: Int) -> [Range<Int>] {
        var blocks: [Range<Int>] = []
        var start = range.lowerBound
        while start < range.upperBound {
            // Double the block while it stays aligned, inside the range, and still grows (not yet clipped at the end).
            var size = 1
            while start % (2 * size) == 0 && min(start + 2 * size, shards) <= range.upperBound && start + size < shards {
                size *= 2
            }
            let end = min(start + size, shards)
            blocks.append(start..<end)
            start = end
        }
        return blocks
    }

    /// Sums `buffers[s][0..<count]` over s into `buffers[0]`, in parallel over slices; the other buffers are clobbered.
    public static func sum(_ buffers: [UnsafeMutablePointer<Float>], count: Int, executor: ShardedExecutor) {
        guard buffers.count > 1 else { return }
        nonisolated(unsafe) let pointers = buffers
        executor.runSlices(count: count, sliceLength: sliceLength) { sumSlice(pointers, range: $0) }
    }

    /// One slice of the tree (elements `range`) into `buffers[0]`, for callers that fuse it with other per-slice work
    /// in one parallel call. Nodes inside `reducedBlocks` are taken as done: their first shard already holds the
    /// block's sum (`sumBlock`).
    public static func sumSlice(_ buffers: [UnsafeMutablePointer<Float>], range: Range<Int>,
                                reducedBlocks: [Range<Int>] = []) {
        var start = range.lowerBound
        while start < range.upperBound {
            let length = min(chunkLength, range.upperBound - start)
            walkTree(shards: buffers.count, reducedBlocks: reducedBlocks) { target, source in
                Elementwise.add(buffers[source] + start, into: buffers[target] + start, count: length)
            }
            start += length
        }
    }

    /// The subtree of an aligned block (elements `range`) into `buffers[block.lowerBound]`: the same bits that node
    /// holds in the whole tree.
    public static func sumBlock(_ buffers: [UnsafeMutablePointer<Float>], block: Range<Int>, range: Range<Int>) {
        precondition(isAlignedBlock(block, shards: buffers.count), "\(block) is not an aligned block")
        sumSlice(Array(buffers[block]), range: range)
    }

    /// The same tree over terms that are produced one group at a time instead of stored side by side (a kernel that
    /// computes shards' terms in registers, `ShardTreeGradient`). The shards are cut into aligned groups of
    /// `groupSize` (a power of two; the last group may be shorter); `produce(group, slot)` writes the group's subtree
    /// sum — its shards' terms added in the tree's pairs, e.g. (t0 + t1) + (t2 + t3), or (t0 + t1) + t2 for a last
    /// group of three — into the caller's slot `slot`, and `add(source, target)` adds slot `source` into slot
    /// `target`; the total ends in slot 0. A binary counter keeps the sums of completed subtrees (two neighbours of
    /// equal size are siblings, and a clipped tree's right-hand subtrees join from the smallest up), so the pairs are
    /// exactly those of `sumSlice`, and over an aligned block of shards the result is the block's subtree. Uses at
    /// most `stackDepth(shards:)` slots.
    @inline(__always)
    public static func sumProduced(shards: Int, groupSize: Int = 1, produce: (_ group: Range<Int>, _ slot: Int) -> Void,
                                   add: (_ source: Int, _ target: Int) -> Void) {
        precondition(groupSize > 0 && groupSize & (groupSize - 1) == 0, "the group size must be a power of two")
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 64) { sizes in
            var count = 0, first = 0
            while first < shards {
                let group = first..<min(first + groupSize, shards)
                produce(group, count)
                sizes[count] = group.count
                count += 1
                while count >= 2 && sizes[count - 1] == sizes[count - 2] {
                    add(count - 1, count - 2)
                    sizes[count - 2] *= 2
                    count -= 1
                }
                first = group.upperBound
            }
            while count >= 2 {
                add(count - 1, count - 2)
                count -= 1
            }
        }
    }

    /// The slots `sumProduced` uses at most: one per tree level, plus the term being produced.
    public static func stackDepth(shards: Int) -> Int {
        var depth = 1, span = 1
        while span < shards { span *= 2; depth += 1 }
        return depth
    }

    /// The same tree in Double, single-threaded: for small vectors such as BatchNorm statistics.
    public static func sum(_ buffers: [UnsafeMutablePointer<Double>], count: Int) {
        walkTree(shards: buffers.count, reducedBlocks: []) { target, source in
            for i in 0..<count { buffers[target][i] += buffers[source][i] }
        }
    }

    /// Scalar reference: for each element, the same pairwise tree written recursively; used by tests.
    public static func referenceSum<Value: FloatingPoint>(_ values: [[Value]]) -> [Value] {
        func tree(_ element: Int, _ lower: Int, _ count: Int) -> Value {
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
