import Foundation
import ParallelTensor

/// R "ranks" as threads of one process, for testing the cross-rank reductions and the distributed trainer without
/// MPI: `ThreadRanks.run(ranks:) { group in … }` runs the body once per rank, each on its own thread (not a pool's:
/// every rank blocks in the collectives until all arrive). The collectives copy through shared memory with the
/// semantics `ProcessGroup` documents (the k-th message from q to r matches r's k-th receive from q).
public final class ThreadRanks: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0, generation = 0
    private var published: [Any?]

    init(size: Int) {
        self.size = size
        published = Array(repeating: nil, count: size)
    }

    /// Runs `body(group)` for ranks 0..<ranks at once and returns each rank's result, in rank order.
    public static func run<Result>(ranks: Int, _ body: @escaping @Sendable (ProcessGroup) -> Result) -> [Result] {
        let hub = ThreadRanks(size: ranks)
        let results = ResultBox<Result>(count: ranks)
        for rank in 0..<ranks {
            let thread = Thread { results.set(rank, body(Member(hub: hub, rank: rank))) }
            thread.stackSize = 8 << 20
            thread.start()
        }
        return results.waitForAll()
    }

    /// Every rank publishes `value`, waits for all, and gets every rank's; a second barrier keeps the publishers'
    /// memory alive until all have read it.
    func gather(rank: Int, _ value: Any, read: ([Any]) -> Void) {
        condition.lock()
        published[rank] = value
        barrierLocked()
        let all = published.map { $0! }
        condition.unlock()
        read(all)
        condition.lock()
        barrierLocked()
        condition.unlock()
    }

    private func barrierLocked() {
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
    }

    final class Member: ProcessGroup, @unchecked Sendable {
        let hub: ThreadRanks
        let rank: Int
        var size: Int { hub.size }
        private(set) var traffic = ProcessTraffic()

        init(hub: ThreadRanks, rank: Int) {
            self.hub = hub
            self.rank = rank
        }

        func allGather(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) {
            traffic.bytesSent += counts[rank] * (size - 1)
            traffic.calls += 1
            hub.gather(rank: rank, buffer) { all in
                for peer in 0..<size where peer != rank && counts[peer] > 0 {
                    let source = (all[peer] as! UnsafeMutableRawPointer) + offsets[peer]
                    (buffer + offsets[peer]).copyMemory(from: source, byteCount: counts[peer])
                }
            }
        }

        func exchange(sends: [ProcessTransfer], receives: [ProcessTransfer]) {
            traffic.bytesSent += sends.reduce(0) { $0 + $1.bytes }
            traffic.calls += 1
            hub.gather(rank: rank, sends) { all in
                var taken = [Int](repeating: 0, count: size)
                for receive in receives {
                    let fromPeer = (all[receive.peer] as! [ProcessTransfer]).filter { $0.peer == rank }
                    let send = fromPeer[taken[receive.peer]]
                    taken[receive.peer] += 1
                    precondition(send.bytes == receive.bytes, "message sizes differ: \(send.bytes) vs \(receive.bytes)")
                    receive.address.copyMemory(from: send.address, byteCount: send.bytes)
                }
            }
        }
    }
}

/// Results written by several threads, one slot each.
final class ResultBox<Value>: @unchecked Sendable {
    private var slots: [Value?]
    private var filled = 0
    private let condition = NSCondition()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Value) {
        condition.lock()
        slots[index] = value
        filled += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForAll() -> [Value] {
        condition.lock()
        defer { condition.unlock() }
        while filled < slots.count { condition.wait() }
        return slots.map { $0! }
    }
}
