// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for pgan's readers, outside the normal build: `scripts/fuzz.sh` builds them with
// `-sanitize=fuzzer,address` and runs them. Each target's entry point is `LLVMFuzzerTestOneInput`; libFuzzer supplies
// `main`, so the sources are compiled as a library (`-parse-as-library`).
let fuzzer: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "pgan-fuzz",
    dependencies: [.package(name: "pgan", path: "..")],
    targets: [
        .executableTarget(name: "FuzzIDX", dependencies: [.product(name: "DCGANParallel", package: "pgan")],
                          swiftSettings: fuzzer),
        .executableTarget(name: "FuzzSafeTensors", dependencies: [.product(name: "DCGANParallel", package: "pgan")],
                          swiftSettings: fuzzer),
        .executableTarget(name: "FuzzRunLogs", dependencies: [.product(name: "DCGANParallel", package: "pgan")],
                          swiftSettings: fuzzer),
    ]
)
