import ParallelTensor
import TestSupport
import XCTest

/// `ShardReducer` across ranks (threads standing in for processes, `ThreadRanks`) gives `ShardReduction`'s
/// one-process tree bit for bit on every rank, for every shard count and rank count.
final class ShardReducerTests: XCTestCase {
    /// Magnitudes that cancel and vanish beside each other, so any change of order changes some element's bits.
    static func orderSensitive(shards: Int, count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        let magnitudes: [Float] = [33_554_432, 1, 3, 0.375, 1_000_003]
        return (0..<shards).map { _ in
            (0..<count).map { _ in magnitudes[random.int(in: 0...4)] * (random.int(in: 0...1) == 0 ? -1 : 1) }
        }
    }

    func testFloatGradientsMatchTheOneProcessTreeOnEveryRank() {
        for shards in [1, 2, 3, 5, 8, 13] {
            // 1000 elements: parameter slices of unequal length, one not a multiple of 16.
            let values = Self.orderSensitive(shards: shards, count: 1000, seed: UInt64(shards))
            let expected = ShardReduction.referenceSum(values)
            for ranks in 1...min(shards, 5) {
                let totals = ThreadRanks.run(ranks: ranks) { group -> [Float] in
                    let reducer = ShardReducer(shards: shards, group: group)
                    let local = reducer.owned.map { AlignedBuffer(values[$0]) }
                    let pointers = local.map(\.pointer)
                    reducer.sumOwnBlocks(pointers, range: 0..<600)
                    reducer.sumOwnBlocks(pointers, range: 600..<1000)
                    reducer.exchangeRoots(pointers, count: 1000)
                    return local[0].array
                }
                for (rank, total) in totals.enumerated() {
                    assertBitIdentical(total, expected, "\(shards) shards, rank \(rank) of \(ranks)")
                }
            }
        }
    }

    func testDoubleVectorsMatchTheOneProcessTreeOnEveryRank() {
        for shards in [2, 5, 7, 16] {
            let values = Self.orderSensitive(shards: shards, count: 33, seed: 99).map { $0.map { Double($0) * 1e9 + 0.1 } }
            let expected = ShardReduction.referenceSum(values)
            for ranks in 2...min(shards, 4) {
                let totals = ThreadRanks.run(ranks: ranks) { group -> [Double] in
                    let reducer = ShardReducer(shards: shards, group: group)
                    let local = reducer.owned.map { shard -> UnsafeMutablePointer<Double> in
                        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 33)
                        buffer.initialize(from: values[shard], count: 33)
                        return buffer
                    }
                    reducer.sum(local, count: 33)
                    defer { local.forEach { $0.deallocate() } }
                    return Array(UnsafeBufferPointer(start: local[0], count: 33))
                }
                for (rank, total) in totals.enumerated() {
                    XCTAssertEqual(total, expected, "\(shards) shards, rank \(rank) of \(ranks)")
                }
            }
        }
    }

    /// Reduce-scatter then all-gather: with one block per rank, each rank sends (R − 1)/R of the vector twice.
    func testBytesSentPerRank() {
        let count = 16_000
        let sent = ThreadRanks.run(ranks: 4) { group -> Int in
            let reducer = ShardReducer(shards: 16, group: group)
            let local = reducer.owned.map { _ in AlignedBuffer(count: count) }
            withExtendedLifetime(local) {
                reducer.sumOwnBlocks(local.map(\.pointer), range: 0..<count)
                reducer.exchangeRoots(local.map(\.pointer), count: count)
            }
            return group.traffic.bytesSent
        }
        XCTAssertEqual(sent, Array(repeating: 2 * 3 * (count / 4) * 4, count: 4))
    }

    func testOwnershipIsContiguousAndCoversEveryShard() {
        XCTAssertEqual(ShardReducer.ownedShards(shards: 5, ranks: 2), [0..<2, 2..<5])
        XCTAssertEqual(ShardReducer.ownedShards(shards: 16, ranks: 3), [0..<5, 5..<10, 10..<16])
        let reducer = ShardReducer(shards: 5)
        XCTAssertEqual(reducer.blocks, [[0..<5]])
        XCTAssertTrue(reducer.isBlockRoot(0) && !reducer.isBlockRoot(4))
    }
}
