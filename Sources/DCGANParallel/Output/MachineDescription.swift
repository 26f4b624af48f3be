#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// The machine as benchmarks and `pgan topology` print it: CPU model, SIMD features and hwloc's view.
public struct MachineDescription: Sendable {
    public let cpuModel: String
    public let features: [String]
    public let topology: String

    public static func current(topology: Topology = .shared) -> MachineDescription {
        var model = "unknown CPU"
        var flags: Set<Substring> = []
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if line.hasPrefix("model name"), let value = line.split(separator: ":", maxSplits: 1).last {
                    model = value.trimmed()
                }
                if line.hasPrefix("flags"), flags.isEmpty, let value = line.split(separator: ":", maxSplits: 1).last {
                    flags = Set(value.split(separator: " "))
                }
            }
        }
        let features = ["avx2", "fma", "avx512f"].filter { flags.contains(Substring($0)) }
        return MachineDescription(cpuModel: model, features: features, topology: topology.summary)
    }

    public var lines: [String] {
        ["cpu: \(cpuModel)" + (features.isEmpty ? "" : " (\(features.joined(separator: ", ")))"),
         "topology: \(topology)"]
    }
}
