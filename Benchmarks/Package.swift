// swift-tools-version: 6.1
import PackageDescription

// Kernel benchmarks, kept out of the main package so `swift test` never builds them.
// Run: swift run -c release --package-path Benchmarks kernel-benchmarks
#if arch(x86_64)
let fastSIMD: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let fastSIMD: [SwiftSetting] = []
#endif

let package = Package(
    name: "pgan-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "pgan", path: "..")],
    targets: [
        .executableTarget(
            name: "kernel-benchmarks",
            dependencies: [.product(name: "ParallelTensor", package: "pgan")],
            path: "Sources/KernelBenchmarks",
            swiftSettings: fastSIMD
        ),
    ],
    swiftLanguageModes: [.v6]
)
