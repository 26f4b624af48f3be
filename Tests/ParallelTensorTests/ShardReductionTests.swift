import ParallelTensor
import TestSupport
import XCTest

final class ShardReductionTests: XCTestCase {
    /// Values of very different magnitudes, so that any change of summation order changes the bits.
    func shardBuffers(shards: Int, count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        return (0..<shards).map { s in random.floats(count).map { $0 * Float(1 << (s % 7 * 3)) } }
    }

    func reduce(_ values: [[Float]], threads: Int) -> [Float] {
        let buffers = values.map { AlignedBuffer($0) }
        let executor = ShardedExecutor(threadCount: threads, pinsThreads: false)
        ShardReduction.sum(buffers.map(\.pointer), count: values[0].count, executor: executor)
        return buffers[0].array
    }

    func testBitIdenticalForEveryThreadCountAndEqualToSequentialTree() {
        for (shards, count) in [(16, 100_003), (5, 40_000), (3, 17), (1, 10)] {
            let values = shardBuffers(shards: shards, count: count, seed: UInt64(shards))
            let expected = ShardReduction.referenceSum(values)
            for threads in [1, 2, 3, 5, 16, 64] {
                assertBitIdentical(reduce(values, threads: threads), expected, "shards \(shards) threads \(threads)")
            }
        }
    }

    func testTreeOrderIsPairwise() {
        // Pairwise (a+b)+(c+d) = 0 here (1e8 + 1 rounds to 1e8), while left to right ((a+b)+c)+d = 1.
        let values: [[Float]] = [[1e8], [1], [-1e8], [1]]
        XCTAssertEqual(ShardReduction.referenceSum(values), [0])
        XCTAssertEqual(reduce(values, threads: 2), [0])
        let leftToRight: Float = ((Float(1e8) + 1) + -1e8) + 1
        XCTAssertEqual(leftToRight, 1)
    }

    /// Large values that cancel and small ones that vanish beside them (2^25 + 1 rounds to 2^25): almost any change
    /// of summation order changes the float sum of some element.
    func orderSensitive(shards: Int, count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        let magnitudes: [Float] = [33_554_432, 1, 3, 0.375, 1_000_003]
        return (0..<shards).map { _ in
            (0..<count).map { _ in magnitudes[random.int(in: 0...4)] * (random.int(in: 0...1) == 0 ? -1 : 1) }
        }
    }

    func leftToRight<Value: FloatingPoint>(_ values: [[Value]]) -> [Value] {
        (0..<values[0].count).map { e in values.dropFirst().reduce(values[0][e]) { $0 + $1[e] } }
    }

    /// A process owning a contiguous range of shards reduces its aligned blocks alone; finishing the tree from the
    /// blocks' roots gives the one-process bits, for every shard count and every cut into ranges.
    func testAlignedBlocksReduceToTheSameBitsOnTheirOwn() {
        var random = SeededRandom(seed: 11)
        for shards in 1...40 {
            let values = orderSensitive(shards: shards, count: 67, seed: UInt64(shards))
            let expected = ShardReduction.referenceSum(values)
            // From 4 shards on the tree is not left to right; the test's values must tell the two apart.
            if shards >= 4 {
                XCTAssertNotEqual(expected, leftToRight(values), "\(shards) shards: the values must be order-sensitive")
            }
            for _ in 0..<6 {
                // Cut 0..<shards into 1–5 contiguous ranges, as ranks would own them.
                var cuts = Set((0..<random.int(in: 0...4)).map { _ in random.int(in: 1...max(1, shards - 1)) })
                cuts.remove(shards)
                let bounds = [0] + cuts.filter { $0 < shards }.sorted() + [shards]
                var blocks: [Range<Int>] = []
                for (lower, upper) in zip(bounds, bounds.dropFirst()) where lower < upper {
                    let own = ShardReduction.alignedBlocks(of: lower..<upper, shards: shards)
                    XCTAssertEqual(own.first?.lowerBound, lower)
                    XCTAssertEqual(own.last?.upperBound, upper)
                    for (a, b) in zip(own, own.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                    for block in own { XCTAssertTrue(ShardReduction.isAlignedBlock(block, shards: shards), "\(block) of \(shards)") }
                    blocks += own
                }
                let buffers = values.map { AlignedBuffer($0) }
                let pointers = buffers.map(\.pointer)
                for block in blocks { ShardReduction.sumBlock(pointers, block: block, range: 0..<67) }
                ShardReduction.sumSlice(pointers, range: 0..<67, reducedBlocks: blocks)
                assertBitIdentical(buffers[0].array, expected, "\(shards) shards cut at \(bounds)")
            }
        }
        XCTAssertFalse(ShardReduction.isAlignedBlock(1..<3, shards: 8))
        XCTAssertFalse(ShardReduction.isAlignedBlock(4..<7, shards: 8))
        XCTAssertTrue(ShardReduction.isAlignedBlock(4..<7, shards: 7))
        XCTAssertEqual(ShardReduction.alignedBlocks(of: 3..<13, shards: 16), [3..<4, 4..<8, 8..<12, 12..<13])
        XCTAssertEqual(ShardReduction.alignedBlocks(of: 4..<7, shards: 7), [4..<7])
    }

    /// Terms produced one at a time and added by the binary counter give the stored tree's bits, for every shard
    /// count (clipped trees included), within `stackDepth` slots; over an aligned block, its subtree.
    func testProducedTermsFollowTheTree() {
        func produced(_ values: [[Float]], groupSize: Int = 1) -> [Float] {
            var slots = [[Float]](repeating: [], count: ShardReduction.stackDepth(shards: values.count))
            var order: [Int] = []
            ShardReduction.sumProduced(shards: values.count, groupSize: groupSize, produce: { group, slot in
                order += Array(group)
                // A group's subtree, as a producer computes it in registers.
                slots[slot] = ShardReduction.referenceSum(Array(values[group]))
            }, add: { source, target in
                slots[target] = zip(slots[target], slots[source]).map { $0 + $1 }
            })
            XCTAssertEqual(order, Array(values.indices))
            return slots[0]
        }
        for shards in 1...37 {
            let values = orderSensitive(shards: shards, count: 29, seed: UInt64(100 + shards))
            for groupSize in [1, 2, 4, 8] {
                assertBitIdentical(produced(values, groupSize: groupSize), ShardReduction.referenceSum(values),
                                   "\(shards) shards in groups of \(groupSize)")
            }
        }
        let values = orderSensitive(shards: 16, count: 29, seed: 3)
        let buffers = values.map { AlignedBuffer($0) }
        ShardReduction.sumBlock(buffers.map(\.pointer), block: 8..<16, range: 0..<29)
        assertBitIdentical(produced(Array(values[8..<16])), buffers[8].array, "block 8..<16")
        XCTAssertEqual([1, 2, 3, 4, 5, 16, 17].map { ShardReduction.stackDepth(shards: $0) }, [1, 2, 3, 3, 4, 5, 6])
    }

    /// The Double tree (BatchNorm statistics) follows the same order, on values whose sum depends on it.
    func testDoubleReductionFollowsTheTree() {
        var random = SeededRandom(seed: 5)
        for shards in [2, 3, 4, 5, 8, 13, 16] {
            let magnitudes: [Double] = [18_014_398_509_481_984, 1, 3, 0.375, 1_000_000_007]  // 2^54 + 1 rounds to 2^54
            let values: [[Double]] = (0..<shards).map { _ in
                (0..<32).map { _ in magnitudes[random.int(in: 0...4)] * (random.int(in: 0...1) == 0 ? -1 : 1) }
            }
            let buffers = values.map { row -> DoubleBuffer in
                let buffer = DoubleBuffer(count: row.count)
                for (i, value) in row.enumerated() { buffer[i] = value }
                return buffer
            }
            ShardReduction.sum(buffers.map(\.pointer), count: 32)
            let result = (0..<32).map { buffers[0][$0] }
            XCTAssertEqual(result.map(\.bitPattern), ShardReduction.referenceSum(values).map(\.bitPattern), "\(shards) shards")
            if shards >= 4 { XCTAssertNotEqual(result, leftToRight(values), "\(shards) shards: order-sensitive values") }
        }
    }
}
