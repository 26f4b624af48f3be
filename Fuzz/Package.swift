// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for pgan's readers, outside the normal build: `scripts/fuzz.sh` builds them with
// `-sanitize=fuzzer,address` and runs them. Each target's main hands its test function to libFuzzer's driver
// (FuzzDriver).
let reader: [Target.Dependency] = ["FuzzDriver", .product(name: "DCGANParallel", package: "pgan")]

let package = Package(
    name: "pgan-fuzz",
    dependencies: [.package(name: "pgan", path: "..")],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(name: "FuzzIDX", dependencies: reader),
        .executableTarget(name: "FuzzSafeTensors", dependencies: reader),
        .executableTarget(name: "FuzzRunLogs", dependencies: reader),
    ]
)
