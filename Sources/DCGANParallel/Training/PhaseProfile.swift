#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Where a training step's time goes, phase by phase, from a `PhaseTrace` of `steps` steps; and the speedup that the
/// phase structure would allow on more threads if every item took as long as it did here.
public struct PhaseProfile: Sendable {
    public let steps: Int
    public let threads: Int
    public let phases: [PhaseTrace.PhaseSummary]
    public let wallSeconds: Double
    /// Thread count → projected speedup over one thread (`PhaseTrace.projectedSeconds`).
    public let projectedSpeedups: [(threads: Int, speedup: Double)]
    /// The FMA peak of these threads (`FMAPeak`), against which each phase's GFLOP/s is given.
    public let peakGflops: Double

    public static let projectedThreadCounts = [2, 4, 8, 16, 32]

    public init(trace: PhaseTrace, steps: Int, threads: Int, peakGflops: Double) {
        self.steps = steps
        self.threads = threads
        self.peakGflops = peakGflops
        phases = trace.summaries()
        wallSeconds = trace.wallSeconds
        let one = trace.projectedSeconds(workers: 1)
        projectedSpeedups = Self.projectedThreadCounts.map { ($0, one / trace.projectedSeconds(workers: $0)) }
    }

    /// Time between phases that no item or serial step accounts for: waking the workers, barriers, stragglers' gaps.
    public var unaccountedSeconds: Double {
        max(0, wallSeconds - phases.reduce(0) { $0 + $1.wallSeconds })
    }

    /// GFLOP/s of a phase over its wall time (2 FLOP per multiply-add), nil for work that declares none.
    public func gflops(_ phase: PhaseTrace.PhaseSummary) -> Double? {
        guard phase.multiplyAdds > 0, phase.wallSeconds > 0 else { return nil }
        return 2 * Double(phase.multiplyAdds) / phase.wallSeconds / 1e9
    }

    public var table: String {
        let perStep = 1e3 / Double(steps)
        let labelWidth = max(40, phases.map { $0.label.count + ($0.isSerial ? 9 : 0) }.max() ?? 0)
        var lines = ["phase (per step)".leftAligned(labelWidth)
                        + "  items   busy ms   wall ms  longest ms  % of wall   GFLOP/s  % of peak",
                     String(repeating: "-", count: labelWidth)
                        + "  -----  --------  --------  ----------  ---------  --------  ---------"]
        for phase in phases {
            let label = phase.isSerial ? "(serial) " + phase.label : phase.label
            let items = phase.isSerial ? "–" : String(phase.items / max(phase.occurrences, 1))
            let rate = gflops(phase).map { String(printf: "  %8.1f  %8.1f%%", $0, 100 * $0 / peakGflops) }
                ?? "         –          –"
            lines.append(label.leftAligned(labelWidth) + "  " + items.rightAligned(5)
                         + String(printf: "  %8.3f  %8.3f  %10.3f  %8.1f%%", phase.busySeconds * perStep,
                                  phase.wallSeconds * perStep, phase.longestItemSeconds * 1e3,
                                  100 * phase.wallSeconds / wallSeconds) + rate)
        }
        lines.append("(between phases: waking, barriers)".leftAligned(labelWidth) + "      –         –"
                     + String(printf: "  %8.3f           –  %8.1f%%", unaccountedSeconds * perStep,
                              100 * unaccountedSeconds / wallSeconds))
        let busy = phases.reduce(0) { $0 + $1.busySeconds }
        lines.append("step".leftAligned(labelWidth) + "      –"
                     + String(printf: "  %8.3f  %8.3f           –     100.0%%", busy * perStep, wallSeconds * perStep))
        lines.append("projected speedup over 1 thread with these item times (a ceiling: shared caches, memory bandwidth, "
                     + "clock drop and barrier latency not modelled): "
                     + projectedSpeedups.map { String(printf: "%d → %.2f×", $0.threads, $0.speedup) }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    public var json: String {
        let perStep = 1e3 / Double(steps)
        func escaped(_ text: String) -> String {
            text.map { $0 == "\\" || $0 == "\"" ? "\\\($0)" : String($0) }.joined()
        }
        let entries = phases.map { phase in
            "{\"label\":\"\(escaped(phase.label))\",\"serial\":\(phase.isSerial),"
                + "\"items\":\(phase.items / max(phase.occurrences, 1)),"
                + String(printf: "\"busy_ms\":%.4f,\"wall_ms\":%.4f,\"longest_item_ms\":%.4f,",
                         phase.busySeconds * perStep, phase.wallSeconds * perStep, phase.longestItemSeconds * 1e3)
                + "\"gflops\":" + (gflops(phase).map { String(printf: "%.3f", $0) } ?? "null") + "}"
        }
        let projections = projectedSpeedups.map { String(printf: "\"%d\":%.4f", $0.threads, $0.speedup) }
        return "{\"steps\":\(steps),\"threads\":\(threads),"
            + String(printf: "\"wall_ms_per_step\":%.4f,\"unaccounted_ms_per_step\":%.4f,", wallSeconds * perStep,
                     unaccountedSeconds * perStep)
            + "\"per_step\":[\(entries.joined(separator: ","))],"
            + "\"projected_speedup\":{\(projections.joined(separator: ","))}}"
    }
}
