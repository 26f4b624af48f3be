import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images from a checkpoint, as an IDX file (.idx, .idx3-ubyte) or a PNG grid (.png).",
        discussion: "Example: pgan sample --checkpoint pgan-run/checkpoint.safetensors --count 64 --out zeros.png")

    @Option(help: "A checkpoint written by pgan train.")
    var checkpoint: String
    @Option(help: "How many images (a PNG grid at most \(Sample.maximumGridImages), an IDX file at most \(Sample.maximumIDXImages)).")
    var count: Int = 64
    @Option(name: .customLong("out"), help: "Output file: .png (grid) or .idx / .idx3-ubyte (uint8 28×28).")
    var output: String
    @Option(help: "Seed of the noise (the same seed gives the same images).")
    var seed: UInt64 = 0
    @OptionGroup var threadOptions: ThreadOptions

    /// A grid of 10 000 images is a 6 004-pixel square PNG; more is no longer a picture anyone looks at.
    static let maximumGridImages = 10_000
    /// IDX stores each dimension in 32 bits; 100 million images are 78 GB, beyond any sensible request.
    static let maximumIDXImages = 100_000_000
    /// Images generated per round: bounded memory for any count.
    static let imagesPerRound = 4096

    enum Format { case png, idx }

    var format: Format? {
        let lower = output.lowercased()
        if lower.hasSuffix(".png") { return .png }
        if lower.hasSuffix(".idx") || lower.hasSuffix(".idx3-ubyte") { return .idx }
        return nil
    }

    func validate() throws {
        guard let format else { throw ValidationError("--out \(output): unknown format (use .png, .idx or .idx3-ubyte)") }
        let limit = format == .png ? Self.maximumGridImages : Self.maximumIDXImages
        guard (1...limit).contains(count) else {
            throw ValidationError("--count must be 1–\(limit) for \(format == .png ? "a PNG grid" : "an IDX file") (got \(count))")
        }
    }

    mutating func run() throws {
        // Under mpirun every rank would write the same file: sampling is one process's work.
        guard Cluster.launchedSize == 1 else {
            throw ConfigurationError("pgan sample runs in one process; start it without mpirun (mpirun started \(Cluster.launchedSize))")
        }
        let threadCount = threadOptions.count
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard isDirectory(directory.isEmpty ? "." : directory) == true else {
            throw DataError(path: output, problem: "directory \(directory) does not exist")
        }
        let reader = try CheckpointReader(path: checkpoint)
        let executor = ShardedExecutor(threadCount: threadCount)
        defer { executor.restoreCallerBinding() }
        let trainer = try Checkpoint.sampler(reader, executor: executor).trainer
        let image = trainer.generator.outputShape
        switch format! {
        case .png:
            let images = trainer.generate(count: count, noiseSeed: seed)
            let columns = Int(Double(count).squareRoot().rounded(.up))
            try writeAtomically(imageGrid(images, count: count, height: image.height, width: image.width,
                                          channels: image.channels, columns: columns).pngData(), to: output)
        case .idx:
            // Grey images as MNIST's 3-d form; colour ones with their channels as a 4th dimension (N × H × W × C).
            let idx = try AtomicFile(path: output)
            let dimensions = [count, image.height, image.width] + (image.channels == 1 ? [] : [image.channels])
            try idx.append(Data(IDXFile(dimensions: dimensions, bytes: []).encoded()))
            for first in stride(from: 0, to: count, by: Self.imagesPerRound) {
                let images = trainer.generate(count: min(Self.imagesPerRound, count - first), noiseSeed: seed,
                                              firstIndex: first)
                try idx.append(Data(images.map(pixelByte)))
            }
            try idx.commit()
        }
        print("wrote \(count) images to \(output)")
    }
}
