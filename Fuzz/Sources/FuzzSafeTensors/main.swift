import DCGANParallel
import FuzzDriver
import Foundation

/// The safetensors reader and the checks `sample` and `--resume` run on a checkpoint's metadata.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    if let file = try? SafeTensors.decode(data, path: "fuzz.safetensors") {
        _ = try? Checkpoint.configuration(of: file, path: "fuzz.safetensors")
        _ = try? Checkpoint.runRecord(of: file, path: "fuzz.safetensors")
    }
    return 0
}

runFuzzer { start, count in fuzzSafeTensors(start, count) }
