/// The one place every sum over shards goes through, in one process or across the ranks of a `ProcessGroup`
/// (docs/ARCHITECTURE.md §7). It follows `ShardReduction`'s tree, so the totals have the same bits for any number of
/// ranks, threads or workers.
///
/// Rank r owns the contiguous shards `ownedShards[r]`; a rank's buffers are indexed by its own shards (`local[i]`
/// is shard `owned.lowerBound + i`), and a total lands in `local[0]` on every rank. The owned range is cut into
/// aligned blocks (`ShardReduction.alignedBlocks`), each a subtree the rank sums alone into the block's first shard
/// (its root); the ranks then exchange the roots and finish the top of the tree in the same order everywhere:
/// - Double vectors (BatchNorm statistics, metrics; a few hundred values): every rank all-gathers every root and
///   finishes the whole top.
/// - Float gradients: a reduce-scatter by parameter slice — rank q receives every other rank's roots for its slice
///   q only, finishes the tree there, then an all-gather of the finished slices. Each rank sends about
///   (blocks + 1) × (R − 1)/R × the vector per sum, against (R − 1) × blocks × the vector for all-gathering the roots.
///
/// With one process there is one block, `0..<shards`, and nothing is exchanged: the sums are `ShardReduction`'s.
public final class ShardReducer: @unchecked Sendable {
    public let shards: Int
    public let group: ProcessGroup
    /// Rank r owns shards `ownedShards[r]`: as equal as possible, the larger ranges last.
    public let ownedShards: [Range<Int>]
    /// Per rank, its owned range as aligned blocks, in shard order.
    public let blocks: [[Range<Int>]]
    /// Every rank's blocks in shard order; rank r's are `allBlocks[firstBlock[r]..<firstBlock[r + 1]]`.
    let allBlocks: [Range<Int>]
    let firstBlock: [Int]
    /// Received roots of the other ranks' blocks, for this rank's parameter slice; grows to the largest vector.
    private var staging: AlignedBuffer?

    public init(shards: Int, group: ProcessGroup = SingleProcess.shared) {
        precondition(shards >= group.size, "every rank needs at least one shard")
        self.shards = shards
        self.group = group
        ownedShards = Self.ownedShards(shards: shards, ranks: group.size)
        blocks = ownedShards.map { ShardReduction.alignedBlocks(of: $0, shards: shards) }
        allBlocks = blocks.flatMap { $0 }
        var first = [0]
        for rankBlocks in blocks { first.append(first.last! + rankBlocks.count) }
        firstBlock = first
    }

    /// Shards r·S/R ..< (r+1)·S/R for rank r.
    public static func ownedShards(shards: Int, ranks: Int) -> [Range<Int>] {
        (0..<ranks).map { ($0 * shards / ranks)..<(($0 + 1) * shards / ranks) }
    }

    public var rank: Int { group.rank }
    public var isDistributed: Bool { group.size > 1 }
    /// This rank's shards.
    public var owned: Range<Int> { ownedShards[group.rank] }
    /// This rank's aligned blocks.
    public var ownBlocks: [Range<Int>] { blocks[group.rank] }

    /// Whether `shard` (owned by this rank) is the first of one of this rank's blocks: its buffer receives the block's
    /// sum, so it cannot be shared with another use.
    public func isBlockRoot(_ shard: Int) -> Bool { ownBlocks.contains { $0.lowerBound == shard } }

    // MARK: Double vectors

    /// Sums `local[i][0..<count]` over every rank's shards into `local[0]` on every rank. The other buffers are
    /// clobbered.
    public func sum(_ local: [UnsafeMutablePointer<Double>], count: Int) {
        precondition(local.count == owned.count)
        guard isDistributed else {
            ShardReduction.sum(local, count: count)
            return
        }
        for block in ownBlocks where block.count > 1 { ShardReduction.sum(localBuffers(local, block), count: count) }
        let roots = UnsafeMutablePointer<Double>.allocate(capacity: allBlocks.count * count)
        defer { roots.deallocate() }
        for (k, block) in ownBlocks.enumerated() {
            (roots + (firstBlock[rank] + k) * count).update(from: local[block.lowerBound - owned.lowerBound], count: count)
        }
        let bytes = 8 * count
        group.allGather(roots, counts: blocks.map { $0.count * bytes }, offsets: firstBlock.dropLast().map { $0 * bytes })
        var pointers = Array(repeating: roots, count: shards)
        for (k, block) in allBlocks.enumerated() { pointers[block.lowerBound] = roots + k * count }
        ShardReduction.walkTree(shards: shards, reducedBlocks: allBlocks) { target, source in
            for i in 0..<count { pointers[target][i] += pointers[source][i] }
        }
        local[0].update(from: pointers[0], count: count)
    }

    // MARK: Float gradients

    /// The first step of a gradient sum, for elements `range` (callers run it in parallel over slices, fused with
    /// other work): each of this rank's blocks summed into its root. With one process this is the whole sum.
    public func sumOwnBlocks(_ local: [UnsafeMutablePointer<Float>], range: Range<Int>) {
        for block in ownBlocks where block.count > 1 {
            ShardReduction.sumSlice(localBuffers(local, block), range: range)
        }
    }

    /// Elements of the vector that rank `rank` finishes: consecutive slices, cut at multiples of 16 floats.
    public func parameterSlice(rank: Int, count: Int) -> Range<Int> {
        func boundary(_ r: Int) -> Int { r == group.size ? count : (r * count / group.size) / 16 * 16 }
        return boundary(rank)..<boundary(rank + 1)
    }

    /// The second step, once `sumOwnBlocks` has run on every slice: the roots exchanged and the top of the tree
    /// finished, so that `local[0][0..<count]` holds the total on every rank. Serial (it calls the group).
    public func exchangeRoots(_ local: [UnsafeMutablePointer<Float>], count: Int) {
        guard isDistributed else { return }
        let ranks = group.size, mine = parameterSlice(rank: rank, count: count)
        let othersBlocks = allBlocks.count - ownBlocks.count
        if staging == nil || staging!.count < othersBlocks * mine.count {
            staging = AlignedBuffer(count: max(othersBlocks * max(mine.count, 1), 1))
        }
        let received = staging!.pointer
        let roots = ownBlocks.map { local[$0.lowerBound - owned.lowerBound] }
        // Reduce-scatter: every root's slice q to rank q; messages between two ranks keep their order, so each side
        // posts them in block order.
        var sends: [ProcessTransfer] = [], receives: [ProcessTransfer] = []
        var slot = 0, pointers = Array(repeating: received, count: shards)
        for peer in 0..<ranks {
            let slice = parameterSlice(rank: peer, count: count)
            if peer == rank {
                for (root, block) in zip(roots, ownBlocks) { pointers[block.lowerBound] = root + mine.lowerBound }
                continue
            }
            for root in roots where !slice.isEmpty {
                sends.append(ProcessTransfer(peer: peer, address: UnsafeMutableRawPointer(root + slice.lowerBound),
                                             bytes: 4 * slice.count))
            }
            for block in blocks[peer] {
                let destination = received + slot * mine.count
                pointers[block.lowerBound] = destination
                slot += 1
                if !mine.isEmpty {
                    receives.append(ProcessTransfer(peer: peer, address: UnsafeMutableRawPointer(destination),
                                                    bytes: 4 * mine.count))
                }
            }
        }
        group.exchange(sends: sends, receives: receives)
        ShardReduction.sumSlice(pointers, range: 0..<mine.count, reducedBlocks: allBlocks)
        let total = local[0] + mine.lowerBound
        if pointers[0] != total { total.update(from: pointers[0], count: mine.count) }
        let slices = (0..<ranks).map { parameterSlice(rank: $0, count: count) }
        group.allGather(local[0], counts: slices.map { 4 * $0.count }, offsets: slices.map { 4 * $0.lowerBound })
    }

    /// The buffers of `block`'s shards, from this rank's local array.
    private func localBuffers<Element>(_ local: [UnsafeMutablePointer<Element>], _ block: Range<Int>)
        -> [UnsafeMutablePointer<Element>] {
        Array(local[(block.lowerBound - owned.lowerBound)..<(block.upperBound - owned.lowerBound)])
    }
}
