#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The step and epoch logs of a run directory: `history.csv` (one row per step) and `metrics.csv` (one row per
/// epoch). Both are rewritten whole at every epoch end, and read back on `--resume`. Reading is strict: a row that
/// is not exactly what pgan writes is an error naming the file and line, never a guess (or a trap on a step of
/// `nan` or `1e300`).
public enum RunLogs {
    public static let historyHeader = "step,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate"

    /// `history.csv`'s text. Values are written in Swift's shortest round-trip form, so reading them back gives the
    /// same `Double`s bit for bit (a resumed run's means and file bytes equal an uninterrupted run's).
    public static func historyText(_ history: [(step: Int, metrics: StepMetrics)]) -> String {
        var text = historyHeader + "\n"
        for (step, m) in history {
            text += "\(step),\(m.discriminatorLoss),\(m.generatorLoss),\(m.discriminatorAccuracyReal),"
                + "\(m.discriminatorAccuracyFake),\(m.generatorFoolingRate)\n"
        }
        return text
    }

    public static func metricsText(_ epochs: [EpochSummary]) -> String {
        ([EpochSummary.csvHeader] + epochs.map(\.csvRow)).joined(separator: "\n") + "\n"
    }

    /// Rows of `history.csv`: steps 1…`maximumStep`, strictly increasing, finite metrics.
    public static func parseHistory(_ text: String, path: String) throws -> [(step: Int, metrics: StepMetrics)] {
        var rows: [(step: Int, metrics: StepMetrics)] = []
        for (number, line) in try lines(text, header: historyHeader, path: path) {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 6, let step = Int(fields[0]), (1...Checkpoint.maximumStep).contains(step),
                  step > (rows.last?.step ?? 0) else {
                throw DataError(path: path, problem: "line \(number): expected a step number above the previous row's and 5 values, found '\(line.prefix(80))'")
            }
            let values = fields[1...].compactMap { Double($0) }
            guard values.count == 5, values.allSatisfy(\.isFinite) else {
                throw DataError(path: path, problem: "line \(number): expected 5 finite numbers after the step, found '\(line.prefix(80))'")
            }
            rows.append((step, StepMetrics(discriminatorLoss: values[0], generatorLoss: values[1],
                                           discriminatorAccuracyReal: values[2], discriminatorAccuracyFake: values[3],
                                           generatorFoolingRate: values[4])))
        }
        return rows
    }

    /// Rows of `metrics.csv`: epochs 1, 2, … in order (with or without the sample-quality columns).
    public static func parseMetrics(_ text: String, path: String) throws -> [EpochSummary] {
        var rows: [EpochSummary] = []
        let measured = !text.hasPrefix(EpochSummary.unmeasuredCSVHeader + "\n")
        let header = measured ? EpochSummary.csvHeader : EpochSummary.unmeasuredCSVHeader
        for (number, line) in try lines(text, header: header, path: path) {
            guard let row = EpochSummary(csvRow: line, measured: measured), row.epoch == rows.count + 1 else {
                throw DataError(path: path, problem: "line \(number): expected the row of epoch \(rows.count + 1), found '\(line.prefix(80))'")
            }
            rows.append(row)
        }
        return rows
    }

    /// The numbered lines after the header, which must be `header`.
    static func lines(_ text: String, header: String, path: String) throws -> [(Int, Substring)] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map(String.init) == header else {
            throw DataError(path: path, problem: "line 1: expected the header '\(header)'")
        }
        var numbered: [(Int, Substring)] = []
        for (index, line) in lines.enumerated().dropFirst() {
            if line.isEmpty && index == lines.count - 1 { break }
            numbered.append((index + 1, line))
        }
        return numbered
    }
}
