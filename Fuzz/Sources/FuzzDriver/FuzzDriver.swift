#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's driver entry (libclang_rt.fuzzer): parses libFuzzer's flags and calls `callback` on every input.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Runs libFuzzer with this process's arguments. SwiftPM gives an executable target its own `main`, so the targets
/// call the driver from there instead of using libFuzzer's `main`; each also exports its test function as
/// `LLVMFuzzerTestOneInput`, which the libFuzzer library refers to.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}
