/// The processes one run is spread over (docs/ARCHITECTURE.md §7): one process (`SingleProcess`) or the ranks of
/// an MPI job (`MPIProcessGroup` in the pgan executable, built with `--traits MPI`). pgan uses two data-movement
/// collectives and no reducing one: MPI's own sums may add in any order, so every sum is done by `ShardReducer`
/// in the tree over shard index, and the group only moves bytes.
///
/// Calls are collective: every rank makes the same calls in the same order. They come from whichever thread runs a
/// serial step, never from two threads at once (MPI_THREAD_SERIALIZED).
public protocol ProcessGroup: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// MPI_Allgatherv in place: rank r's `counts[r]` bytes, already at `offsets[r]` of `buffer`, are copied to the
    /// same place on every other rank.
    func allGather(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int])
    /// Point-to-point transfers, all started, then all completed (MPI_Isend/MPI_Irecv and MPI_Waitall).
    func exchange(sends: [ProcessTransfer], receives: [ProcessTransfer])
    /// Bytes this rank has handed to the transport and seconds spent in its calls since the group was made.
    var traffic: ProcessTraffic { get }
}

/// One message of `ProcessGroup.exchange`: `bytes` bytes at `address`, to or from rank `peer`.
public struct ProcessTransfer: @unchecked Sendable {
    public let peer: Int
    public let address: UnsafeMutableRawPointer
    public let bytes: Int

    public init(peer: Int, address: UnsafeMutableRawPointer, bytes: Int) {
        self.peer = peer
        self.address = address
        self.bytes = bytes
    }
}

/// What a group has sent: the payload bytes this rank contributed (an all-gather's own part counts once per other
/// rank, as a ring or a pairwise exchange sends it) and the seconds spent inside the transport's calls.
public struct ProcessTraffic: Sendable, Equatable {
    public var bytesSent: Int = 0
    public var seconds: Double = 0
    public var calls: Int = 0

    public init(bytesSent: Int = 0, seconds: Double = 0, calls: Int = 0) {
        self.bytesSent = bytesSent
        self.seconds = seconds
        self.calls = calls
    }

    public static func - (a: ProcessTraffic, b: ProcessTraffic) -> ProcessTraffic {
        ProcessTraffic(bytesSent: a.bytesSent - b.bytesSent, seconds: a.seconds - b.seconds, calls: a.calls - b.calls)
    }

    public static func + (a: ProcessTraffic, b: ProcessTraffic) -> ProcessTraffic {
        ProcessTraffic(bytesSent: a.bytesSent + b.bytesSent, seconds: a.seconds + b.seconds, calls: a.calls + b.calls)
    }
}

/// A run in one process: rank 0 of 1, nothing to move.
public final class SingleProcess: ProcessGroup {
    public static let shared = SingleProcess()
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allGather(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) {}
    public func exchange(sends: [ProcessTransfer], receives: [ProcessTransfer]) {
        precondition(sends.isEmpty && receives.isEmpty, "a single process has no peer")
    }
    public var traffic: ProcessTraffic { ProcessTraffic() }
}

extension ProcessGroup {
    /// Every rank's byte string, in rank order (two all-gathers: the lengths, then the bytes).
    public func allGatherBytes(_ bytes: [UInt8]) -> [[UInt8]] {
        guard size > 1 else { return [bytes] }
        let lengths = allGather(UInt64(bytes.count)).map { Int($0) }
        let offsets = lengths.indices.map { lengths[..<$0].reduce(0, +) }
        var all = [UInt8](repeating: 0, count: max(lengths.reduce(0, +), 1))
        all.withUnsafeMutableBytes { buffer in
            buffer.baseAddress!.advanced(by: offsets[rank]).copyMemory(from: bytes, byteCount: bytes.count)
            allGather(buffer.baseAddress!, counts: lengths, offsets: offsets)
        }
        return lengths.indices.map { Array(all[offsets[$0]..<offsets[$0] + lengths[$0]]) }
    }

    /// Every rank's 64-bit value, in rank order.
    public func allGather(_ value: UInt64) -> [UInt64] {
        var values = [UInt64](repeating: 0, count: size)
        values[rank] = value
        if size > 1 {
            values.withUnsafeMutableBytes { allGather($0.baseAddress!, counts: Array(repeating: 8, count: size),
                                                      offsets: (0..<size).map { $0 * 8 }) }
        }
        return values
    }
}
