// swift-tools-version: 6.1
import PackageDescription

// SIMD8<Float> only becomes AVX2/FMA code when the compiler may target such a CPU; the baseline x86-64 target
// turns every fused multiply-add into a libm call (0.7 GFLOP/s instead of ~100). See docs/ARCHITECTURE.md §3,
// "Build flags".
#if arch(x86_64)
let targetCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let avx512: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "skylake-avx512", "-O"])]
#else
let targetCPU: [SwiftSetting] = []
let avx512: [SwiftSetting] = []
#endif
// The kernels and the trainer are optimised in debug builds too: unoptimised SIMD code is ~100× slower, which would
// make `swift test` (parity runs of several training steps) take far longer than the checks are worth.
let fastSIMD = targetCPU + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "pgan",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ParallelTensor", targets: ["ParallelTensor"]),
        .library(name: "DCGANParallel", targets: ["DCGANParallel"]),
        .executable(name: "pgan", targets: ["pgan"]),
    ],
    // `--traits MPI` builds pgan for `mpirun` (Open MPI; README "Clusters"). Without it nothing needs MPI installed.
    traits: [
        .trait(name: "MPI", description: "Run one training over the processes of an MPI job (needs libopenmpi-dev)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHwloc",
            pkgConfig: "hwloc",
            providers: [.apt(["libhwloc-dev"]), .brew(["hwloc"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]
        ),
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]
        ),
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"]), .brew(["open-mpi"])]
        ),
        .target(name: "CPUFeatures"),
        .target(name: "CSignals"),
        // The built-in data set and classifier, assembled into the binary (Sources/CBuiltInData/built_in_data.S).
        .target(name: "CBuiltInData", exclude: ["data"], cSettings: [.headerSearchPath("data")]),
        // Only the AVX-512 micro-kernel is built for AVX-512 CPUs; ParallelTensor calls it after checking the CPU.
        .target(
            name: "ParallelTensorAVX512",
            swiftSettings: avx512
        ),
        .target(
            name: "ParallelTensor",
            dependencies: ["CHwloc", "CPUFeatures", "ParallelTensorAVX512",
                           .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: fastSIMD
        ),
        .target(
            name: "DCGANParallel",
            dependencies: ["ParallelTensor", "CBuiltInData", "CZlib", "CPNG", "CTurboJPEG"],
            swiftSettings: fastSIMD
        ),
        .executableTarget(
            name: "pgan",
            dependencies: ["DCGANParallel", "ParallelTensor", "CSignals",
                           .target(name: "CMPI", condition: .when(traits: ["MPI"])),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSIMD
        ),
        .target(
            name: "TestSupport",
            dependencies: ["ParallelTensor", "DCGANParallel", "CPNG", "CTurboJPEG"],
            path: "Tests/TestSupport",
            swiftSettings: fastSIMD
        ),
        .testTarget(
            name: "ParallelTensorTests",
            dependencies: ["ParallelTensor", "TestSupport"],
            swiftSettings: fastSIMD
        ),
        .testTarget(
            name: "DCGANParallelTests",
            dependencies: ["DCGANParallel", "ParallelTensor", "TestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: fastSIMD
        ),
        .testTarget(
            name: "pganTests",
            dependencies: ["pgan", "DCGANParallel", "TestSupport"],
            swiftSettings: fastSIMD
        ),
    ],
    swiftLanguageModes: [.v6]
)
