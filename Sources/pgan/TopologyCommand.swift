import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show what hwloc sees and the core each worker thread would be pinned to.",
        discussion: """
        Example: pgan topology --threads 16
        Preview another machine: pgan topology --synthetic "package:2 core:8 pu:2" --threads 20
        Under mpirun (a pgan built with --traits MPI), rank 0 prints every rank's cores and pinning map, in rank \
        order: mpirun -np 2 --map-by numa pgan topology
        """)

    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "Describe another machine in hwloc's synthetic syntax (e.g. \"package:2 core:8 pu:2\") instead of this one.")
    var synthetic: String?

    mutating func run() throws {
        let group = synthetic == nil ? try Cluster.join() : SingleProcess.shared
        let text = try describe()
        guard group.size > 1 else {
            print(text, terminator: "")
            return
        }
        // Every rank's description to rank 0, printed in rank order so the maps do not interleave.
        let host = ProcessInfo.processInfo.hostName, pid = ProcessInfo.processInfo.processIdentifier
        let mine = "rank \(group.rank) of \(group.size) (host \(host), PID \(pid)):\n" + text
        let all = group.allGatherBytes(Array(mine.utf8))
        guard group.rank == 0 else { return }
        for description in all { print(String(decoding: description, as: UTF8.self)) }
    }

    /// What this process sees and its pinning map, as lines.
    func describe() throws -> String {
        var lines: [String] = []
        func print(_ line: String) { lines.append(line) }
        let topology: Topology
        if let synthetic {
            do {
                topology = try Topology.synthetic(synthetic)
            } catch {
                throw ConfigurationError("--synthetic: \(error)")
            }
        } else {
            topology = Topology.shared
        }
        let threadCount = threadOptions.threads ?? (synthetic == nil ? defaultThreadCount() : topology.coreCount)
        if let synthetic {
            print("synthetic machine '\(synthetic)': \(topology.summary)")
        } else {
            print(MachineDescription.current(topology: topology).lines.joined(separator: "\n"))
        }
        print("cores (OS indices of their hardware threads):")
        for (core, units) in topology.coresProcessingUnits.enumerated() {
            print("  core \(core): PU \(units.map(String.init).joined(separator: ", "))")
        }
        print("pinning map for --threads \(threadCount) (distinct cores first, then their other hardware threads):")
        for (slot, unit) in topology.pinningMap(threads: threadCount).enumerated() {
            let core = topology.coresProcessingUnits.firstIndex { $0.contains(unit) } ?? -1
            let shared = slot >= topology.processingUnitCount ? "  (oversubscribed: shares the PU with worker \(slot % topology.processingUnitCount))" : ""
            print("  worker \(slot) → PU \(unit) (core \(core))\(shared)")
        }
        return lines.map { $0 + "\n" }.joined()
    }
}
