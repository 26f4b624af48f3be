import ParallelTensor
import TestSupport
import XCTest

final class AllReduceTests: XCTestCase {
    /// Values of very different magnitudes, so that any change of summation order changes the bits.
    func shardBuffers(shards: Int, count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        return (0..<shards).map { s in random.floats(count).map { $0 * Float(1 << (s % 7 * 3)) } }
    }

    func reduce(_ values: [[Float]], threads: Int) -> [Float] {
        let buffers = values.map { AlignedBuffer($0) }
        let executor = ShardedExecutor(threadCount: threads, pinsThreads: false)
        AllReduce.sum(buffers.map(\.pointer), count: values[0].count, executor: executor)
        return buffers[0].array
    }

    func testBitIdenticalForEveryThreadCountAndEqualToSequentialTree() {
        for (shards, count) in [(16, 100_003), (5, 40_000), (3, 17), (1, 10)] {
            let values = shardBuffers(shards: shards, count: count, seed: UInt64(shards))
            let expected = AllReduce.referenceSum(values)
            for threads in [1, 2, 3, 5, 16, 64] {
                assertBitIdentical(reduce(values, threads: threads), expected, "shards \(shards) threads \(threads)")
            }
        }
    }

    func testTreeOrderIsPairwise() {
        // Pairwise (a+b)+(c+d) = 0 here (1e8 + 1 rounds to 1e8), while left to right ((a+b)+c)+d = 1.
        let values: [[Float]] = [[1e8], [1], [-1e8], [1]]
        XCTAssertEqual(AllReduce.referenceSum(values), [0])
        XCTAssertEqual(reduce(values, threads: 2), [0])
        let leftToRight: Float = ((Float(1e8) + 1) + -1e8) + 1
        XCTAssertEqual(leftToRight, 1)
    }

    func testDoubleReductionMatchesFloatOrder() {
        let values: [[Double]] = [[1, 2], [3, 4], [5, 6]]
        let buffers = values.map { v -> DoubleBuffer in
            let b = DoubleBuffer(count: 2)
            b[0] = v[0]
            b[1] = v[1]
            return b
        }
        AllReduce.sum(buffers.map(\.pointer), count: 2)
        XCTAssertEqual([buffers[0][0], buffers[0][1]], [9, 12])
    }
}
