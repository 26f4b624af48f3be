#if MPI
import CMPI
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// The ranks of an MPI job (Open MPI) as pgan's `ProcessGroup`: MPI_Allgatherv in place and non-blocking
/// point-to-point messages, on MPI_COMM_WORLD. Initialised with MPI_THREAD_SERIALIZED: the calls come from whichever
/// worker runs a step's serial work, one at a time (docs/ARCHITECTURE.md §7).
final class MPIProcessGroup: ProcessGroup, @unchecked Sendable {
    let rank: Int
    let size: Int
    private(set) var traffic = ProcessTraffic()
    private let world = pgan_mpi_comm_world()

    init() throws {
        var provided: Int32 = 0
        guard MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided) == MPI_SUCCESS else {
            throw ConfigurationError("MPI_Init_thread failed")
        }
        guard provided >= Int32(MPI_THREAD_SERIALIZED) else {
            MPI_Finalize()
            throw ConfigurationError("this MPI library does not support MPI_THREAD_SERIALIZED (it provides level \(provided)); pgan's worker threads take turns calling it")
        }
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        self.rank = Int(rank)
        self.size = Int(size)
    }

    /// MPI counts and displacements are 32-bit.
    private func int32(_ value: Int) -> Int32 {
        guard let narrow = Int32(exactly: value) else {
            fatalError("pgan: a message of \(value) bytes is beyond MPI's 32-bit counts")
        }
        return narrow
    }

    func allGather(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) {
        let start = monotonicSeconds()
        let counts32 = counts.map(int32), offsets32 = offsets.map(int32)
        let status = MPI_Allgatherv(pgan_mpi_in_place(), 0, pgan_mpi_byte(), buffer, counts32, offsets32,
                                    pgan_mpi_byte(), world)
        precondition(status == MPI_SUCCESS, "MPI_Allgatherv failed (\(status))")
        traffic.bytesSent += counts[rank] * (size - 1)
        traffic.calls += 1
        traffic.seconds += monotonicSeconds() - start
    }

    func exchange(sends: [ProcessTransfer], receives: [ProcessTransfer]) {
        let start = monotonicSeconds()
        var requests = [MPI_Request?](repeating: pgan_mpi_request_null(), count: sends.count + receives.count)
        requests.withUnsafeMutableBufferPointer { pending in
            for (k, receive) in receives.enumerated() {
                MPI_Irecv(receive.address, int32(receive.bytes), pgan_mpi_byte(), Int32(receive.peer), 0, world,
                          &pending[k])
            }
            for (k, send) in sends.enumerated() {
                MPI_Isend(send.address, int32(send.bytes), pgan_mpi_byte(), Int32(send.peer), 0, world,
                          &pending[receives.count + k])
            }
            let status = MPI_Waitall(Int32(pending.count), pending.baseAddress, pgan_mpi_statuses_ignore())
            precondition(status == MPI_SUCCESS, "MPI_Waitall failed (\(status))")
        }
        traffic.bytesSent += sends.reduce(0) { $0 + $1.bytes }
        traffic.calls += 1
        traffic.seconds += monotonicSeconds() - start
    }

    func finish() { MPI_Finalize() }

    func abort(status: Int32) -> Never {
        MPI_Abort(world, status)
        exit(status)
    }
}
#endif
