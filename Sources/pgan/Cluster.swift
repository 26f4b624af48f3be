import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// The processes this pgan belongs to: one, or — when `mpirun` started it and pgan was built with `--traits MPI` —
/// the ranks of the MPI job. MPI is initialised only by the commands that use it (`train`, `bench`, `topology`),
/// after their flags are checked, and only when a launcher set the job's size; a plain run never touches MPI.
enum Cluster {
    nonisolated(unsafe) private static var joined: ProcessGroup?

    /// The job's size as the launcher announced it (Open MPI, or a PMI-based launcher), 1 without one.
    static var launchedSize: Int {
        let environment = ProcessInfo.processInfo.environment
        for name in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
            if let value = environment[name].flatMap({ Int($0) }) { return value }
        }
        return 1
    }

    static var isBuiltWithMPI: Bool {
        #if MPI
        return true
        #else
        return false
        #endif
    }

    /// Joins the job (initialising MPI when launched by mpirun) and returns its group; a single process otherwise.
    static func join() throws -> ProcessGroup {
        if let joined { return joined }
        let group: ProcessGroup
        if launchedSize > 1 {
            #if MPI
            group = try MPIProcessGroup()
            #else
            throw ConfigurationError("mpirun started \(launchedSize) processes, but this pgan was built without MPI: build it with 'swift build -c release --traits MPI' (README, \"Clusters\"), or run one process")
            #endif
        } else {
            group = SingleProcess.shared
        }
        joined = group
        return group
    }

    /// The group when one was joined (for error handling), nil before.
    static var current: ProcessGroup? { joined }

    /// Ends MPI at a normal exit (all ranks reach it together).
    static func finish() {
        #if MPI
        (joined as? MPIProcessGroup)?.finish()
        #endif
    }

    /// Ends the process after a failure: one rank's error ends the whole job (MPI_Abort), so no rank waits forever
    /// for it in a collective.
    static func exit(status: Int32) -> Never {
        #if MPI
        if let group = joined as? MPIProcessGroup, group.size > 1 { group.abort(status: status) }
        #endif
        #if canImport(Glibc)
        Glibc.exit(status)
        #else
        Darwin.exit(status)
        #endif
    }

    /// "rank r: " in a job of several processes, "" otherwise: the prefix of every error line.
    static var errorPrefix: String {
        guard let joined, joined.size > 1 else { return "" }
        return "rank \(joined.rank): "
    }
}
