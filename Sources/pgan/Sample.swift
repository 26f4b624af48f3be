import ArgumentParser
import DCGANParallel
import Foundation
import ParallelTensor

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images from a checkpoint, as an IDX file (.idx, .idx3-ubyte) or a PNG grid (.png).",
        discussion: "Example: pgan sample --checkpoint pgan-run/checkpoint.safetensors --count 64 --out zeros.png")

    @Option(help: "A checkpoint written by pgan train.")
    var checkpoint: String
    @Option(help: "How many images.")
    var count: Int = 64
    @Option(name: .customLong("out"), help: "Output file: .png (grid) or .idx / .idx3-ubyte (uint8 28×28).")
    var output: String
    @Option(help: "Seed of the noise (the same seed gives the same images).")
    var seed: UInt64 = 0
    @Option(help: "Worker threads (default: physical cores).")
    var threads: Int?

    enum Format { case png, idx }

    mutating func run() throws {
        guard count >= 1 else { throw ConfigurationError("--count must be at least 1 (got \(count))") }
        let lower = output.lowercased()
        let format: Format
        if lower.hasSuffix(".png") {
            format = .png
        } else if lower.hasSuffix(".idx") || lower.hasSuffix(".idx3-ubyte") {
            format = .idx
        } else {
            throw ConfigurationError("--out \(output): unknown format (use .png, .idx or .idx3-ubyte)")
        }
        let threadCount = try checkThreads(threads)
        let file = try SafeTensors.read(path: checkpoint)
        let configuration = try Checkpoint.configuration(of: file, path: checkpoint)
        let executor = ShardedExecutor(threadCount: threadCount)
        defer { executor.restoreCallerBinding() }
        let trainer = GANTrainer(configuration: configuration, executor: executor)
        try Checkpoint.restoreGenerator(file, path: checkpoint, into: trainer.generator)
        let images = trainer.generate(count: count, noiseSeed: seed)
        let side = Generator.imageSide
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory) else {
            throw DataError(path: output, problem: "directory \(directory) does not exist")
        }
        switch format {
        case .png:
            let columns = Int(Double(count).squareRoot().rounded(.up))
            try writeAtomically(imageGrid(images, count: count, height: side, width: side, columns: columns).pngData(),
                                to: output)
        case .idx:
            let file = IDXFile(dimensions: [count, side, side], bytes: images.map(pixelByte))
            try writeAtomically(Data(file.encoded()), to: output)
        }
        print("wrote \(count) images to \(output)")
    }
}
