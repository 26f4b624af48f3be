import DCGANParallel
import FuzzDriver
import Foundation

/// The run-directory logs `--resume` reads: history.csv and metrics.csv.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunLogs(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: start == nil ? 0 : count), as: UTF8.self)
    _ = try? RunLogs.parseHistory(text, path: "history.csv")
    _ = try? RunLogs.parseMetrics(text, path: "metrics.csv")
    return 0
}

runFuzzer { start, count in fuzzRunLogs(start, count) }
