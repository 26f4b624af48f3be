import DCGANParallel
import FuzzDriver
import Foundation

/// The IDX reader, raw and gzip-compressed, as `pgan train --data` uses it. The budget is small so that a header
/// promising more fails fast instead of inflating (the real budget is half the machine's memory).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    _ = try? IDXFile.parse(data, path: "fuzz.idx", maximumBytes: 1 << 22)
    return 0
}

runFuzzer { start, count in fuzzIDX(start, count) }
