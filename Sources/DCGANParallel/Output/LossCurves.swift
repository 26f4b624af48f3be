#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// curves.svg: the discriminator and generator losses (left axis) and the three accuracies (right axis, 0–1) against
/// training steps, with epoch boundaries, axes, labels and a legend. Per-step values are smoothed over a window of
/// a fifth of an epoch so the trend is readable.
public enum LossCurves {
    struct Series {
        let name: String
        let color: String
        let values: [Double]
        let rightAxis: Bool
    }

    public static func svg(history: [(step: Int, metrics: StepMetrics)], epochs: [EpochSummary],
                           stepsPerEpoch: Int) -> String {
        // With measured epochs, a second panel below plots the Fréchet distance at each measured epoch's end.
        let measured = epochs.compactMap { summary in summary.quality.map { (summary.lastStep, $0.frechetDistance) } }
        let width = 900.0, height = measured.isEmpty ? 480.0 : 680.0
        let left = 70.0, right = 70.0, top = 40.0, bottom = 60.0
        let plotWidth = width - left - right, plotHeight = 480.0 - top - bottom
        let steps = history.map { Double($0.step) }
        let window = max(1, stepsPerEpoch / 5)
        func smoothed(_ values: [Double]) -> [Double] {
            var out: [Double] = []
            var sum = 0.0
            for i in values.indices {
                sum += values[i]
                if i >= window { sum -= values[i - window] }
                out.append(sum / Double(min(i + 1, window)))
            }
            return out
        }
        let series = [
            Series(name: "D loss", color: "#d62728", values: smoothed(history.map(\.metrics.discriminatorLoss)), rightAxis: false),
            Series(name: "G loss", color: "#1f77b4", values: smoothed(history.map(\.metrics.generatorLoss)), rightAxis: false),
            Series(name: "D accuracy (real)", color: "#2ca02c", values: smoothed(history.map(\.metrics.discriminatorAccuracyReal)), rightAxis: true),
            Series(name: "D accuracy (fake)", color: "#9467bd", values: smoothed(history.map(\.metrics.discriminatorAccuracyFake)), rightAxis: true),
            Series(name: "G fooling rate", color: "#ff7f0e", values: smoothed(history.map(\.metrics.generatorFoolingRate)), rightAxis: true),
        ]
        let maxStep = max(steps.last ?? 1, 1)
        let maxLoss = max(series.filter { !$0.rightAxis }.flatMap(\.values).max() ?? 1, 0.1) * 1.05
        func x(_ step: Double) -> Double { left + plotWidth * step / maxStep }
        func y(_ value: Double, _ rightAxis: Bool) -> Double {
            top + plotHeight * (1 - value / (rightAxis ? 1 : maxLoss))
        }
        func f(_ v: Double) -> String { String(printf: "%.1f", v) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15">pgan training: losses and accuracies</text>

        """
        // Grid and axes.
        for tick in 0...5 {
            let fraction = Double(tick) / 5
            let gy = top + plotHeight * (1 - fraction)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(gy))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(gy))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(gy + 4))\" text-anchor=\"end\">\(String(printf: "%.2f", maxLoss * fraction))</text>\n"
            svg += "<text x=\"\(f(left + plotWidth + 8))\" y=\"\(f(gy + 4))\">\(String(printf: "%.1f", fraction))</text>\n"
        }
        for summary in epochs {
            let ex = x(Double(summary.lastStep))
            svg += "<line x1=\"\(f(ex))\" y1=\"\(f(top))\" x2=\"\(f(ex))\" y2=\"\(f(top + plotHeight))\" stroke=\"#cccccc\" stroke-dasharray=\"3,3\"/>\n"
            svg += "<text x=\"\(f(ex))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\" font-size=\"10\">\(summary.lastStep)</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 18))\" text-anchor=\"middle\">training step (dashed lines: epoch ends)</text>\n"
        svg += "<text transform=\"translate(18,\(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">binary cross-entropy loss</text>\n"
        svg += "<text transform=\"translate(\(f(width - 16)),\(f(top + plotHeight / 2))) rotate(90)\" text-anchor=\"middle\">accuracy / fooling rate</text>\n"
        for s in series where !s.values.isEmpty {
            let points = zip(steps, s.values).map { "\(f(x($0)))," + f(y($1, s.rightAxis)) }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
        }
        // Legend.
        for (i, s) in series.enumerated() {
            let lx = left + 12 + Double(i) * 150, ly = top + 14
            svg += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 20))\" y2=\"\(f(ly))\" stroke=\"\(s.color)\" stroke-width=\"3\"/>\n"
            svg += "<text x=\"\(f(lx + 25))\" y=\"\(f(ly + 4))\">\(s.name)\(s.rightAxis ? " (right)" : "")</text>\n"
        }
        if !measured.isEmpty {
            let panelTop = 500.0, panelHeight = 130.0
            let largest = max(measured.map(\.1).max() ?? 1, 1e-9) * 1.1
            func py(_ value: Double) -> Double { panelTop + panelHeight * (1 - value / largest) }
            svg += "<rect x=\"\(f(left))\" y=\"\(f(panelTop))\" width=\"\(f(plotWidth))\" height=\"\(f(panelHeight))\" fill=\"none\" stroke=\"black\"/>\n"
            for tick in 0...2 {
                let value = largest * Double(tick) / 2
                svg += "<text x=\"\(f(left - 8))\" y=\"\(f(py(value) + 4))\" text-anchor=\"end\">\(String(printf: "%.2f", value))</text>\n"
            }
            let points = measured.map { "\(f(x(Double($0.0)))),\(f(py($0.1)))" }
            svg += "<polyline fill=\"none\" stroke=\"#8c564b\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
            for point in points {
                let xy = point.split(separator: ",")
                svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"#8c564b\"/>\n"
            }
            svg += "<text x=\"\(f(left + 12))\" y=\"\(f(panelTop + 16))\">Fréchet distance of the samples at epoch ends (lower is better; pgan eval)</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}
