import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Shows training progress: on a terminal a live bar per epoch (step, images/s, ETA, running losses and
/// accuracies); when piped, one plain line per epoch; with --quiet nothing.
final class ProgressPrinter: TrainingObserver {
    let quiet: Bool
    let interactive: Bool
    var lastDraw = Date.distantPast

    init(quiet: Bool) {
        self.quiet = quiet
        interactive = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["CI"] == nil
    }

    func header(_ lines: [String?]) {
        guard !quiet else { return }
        for line in lines.compactMap({ $0 }) { print(line) }
        fflush(nil)
    }

    func stepFinished(step: Int, epoch: Int, stepInEpoch: Int, stepsInEpoch: Int, running: StepMetrics,
                      imagesPerSecond: Double, secondsLeft: Double) {
        guard !quiet, interactive else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || stepInEpoch == stepsInEpoch else { return }
        lastDraw = now
        let width = 24
        let filled = Int(Double(width) * Double(stepInEpoch) / Double(max(stepsInEpoch, 1)))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(printf: "epoch %3d ", epoch) + bar
            + String(printf: " %4d/%d  %6.0f img/s  ETA ", stepInEpoch, stepsInEpoch, imagesPerSecond)
            + formatDuration(secondsLeft)
            + String(printf: "  D %.3f G %.3f  acc real %.2f fake %.2f fool %.2f", running.discriminatorLoss,
                     running.generatorLoss, running.discriminatorAccuracyReal, running.discriminatorAccuracyFake,
                     running.generatorFoolingRate)
        print("\r\u{1B}[2K" + line, terminator: "")
        fflush(nil)
    }

    func epochFinished(_ s: EpochSummary) {
        guard !quiet else { return }
        if interactive { print("\r\u{1B}[2K", terminator: "") }
        let m = s.metrics
        let quality = s.quality.map { q in
            String(printf: "  FD %.2f", q.frechetDistance) + (q.classRate.map { String(printf: " class %.2f", $0) } ?? "")
        } ?? ""
        print(String(printf: "epoch %3d  step %6d  D loss %.4f  G loss %.4f  D acc real %.3f  D acc fake %.3f  G fooling %.3f  %.0f img/s  %.1fs",
                     s.epoch, s.lastStep, m.discriminatorLoss, m.generatorLoss, m.discriminatorAccuracyReal,
                     m.discriminatorAccuracyFake, m.generatorFoolingRate, s.imagesPerSecond, s.seconds) + quality)
        fflush(nil)
    }

    /// Clears the live bar, so that a message printed next starts on a clean line.
    func clearBar() {
        guard !quiet, interactive else { return }
        print("\r\u{1B}[2K", terminator: "")
        fflush(nil)
    }

    func finish(directory: String) {
        guard !quiet else { return }
        print("done: \(directory)/checkpoint.safetensors, metrics.csv, samples/, progress.png, curves.svg")
    }
}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "--:--" }
    let total = Int(seconds.rounded())
    return total >= 3600 ? String(printf: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
        : String(printf: "%02d:%02d", total / 60, total % 60)
}
