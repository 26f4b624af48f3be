#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// CIFAR-10 and CIFAR-100 in their binary form (https://www.cs.toronto.edu/~kriz/cifar.html): records of a label byte
/// (CIFAR-10) or a coarse and a fine label byte (CIFAR-100), then 3 072 bytes of a 32×32 colour image, channel-planar
/// (1 024 red, 1 024 green, 1 024 blue, each row-major). pgan reads a `.bin` file, or a directory of them: the
/// training batches `data_batch_*.bin` (CIFAR-10) or `train.bin` (CIFAR-100). Labels select with `--class`; for
/// CIFAR-100 the fine label.
public enum CIFAR {
    public enum Kind: Sendable, Equatable {
        case cifar10, cifar100

        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var recordBytes: Int { labelBytes + 3072 }
        var classCount: Int { self == .cifar10 ? 10 : 100 }
    }

    /// CIFAR-10's classes, by label: `--class` accepts these names.
    public static let tenClasses = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// The files and kind at `path`, nil when it is not CIFAR (another format may read it).
    static func files(at path: String) throws -> (kind: Kind, files: [String])? {
        guard let isDirectory = isDirectory(path) else { return nil }
        if isDirectory {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            // By batch number (data_batch_2 before data_batch_10), then by name.
            func number(_ name: String) -> Int { Int(name.dropFirst("data_batch_".count).dropLast(".bin".count)) ?? .max }
            let batches = names.filter { $0.hasPrefix("data_batch_") && $0.hasSuffix(".bin") }
                .sorted { (number($0), $0) < (number($1), $1) }
            if !batches.isEmpty { return (.cifar10, batches.map { "\(path)/\($0)" }) }
            if names.contains("train.bin") { return (.cifar100, ["\(path)/train.bin"]) }
            throw DataError(path: path, problem: "is a directory without CIFAR training batches (data_batch_*.bin or train.bin) or PNG/JPEG images")
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard name.hasSuffix(".bin") else { return nil }
        if name.hasPrefix("data_batch") || name.hasPrefix("test_batch") { return (.cifar10, [path]) }
        if name == "train.bin" || name == "test.bin" { return (.cifar100, [path]) }
        let size = fileSize(path)
        for kind in [Kind.cifar10, .cifar100] where size > 0 && size % kind.recordBytes == 0 { return (kind, [path]) }
        throw DataError(path: path, problem: "is not a CIFAR-10 or CIFAR-100 binary file (\(size) bytes is not a whole number of 3 073- or 3 074-byte records)")
    }

    /// The size of the file at `path` (through symbolic links; 0 for what is not a regular file).
    static func fileSize(_ path: String) -> Int {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return 0 }
        return Int(status.st_size)
    }

    /// The kind of CIFAR data at `path`, nil when it is not CIFAR.
    public static func kind(at path: String) -> Kind? { (try? files(at: path))??.kind }

    /// The images at `path` as 32×32×3 (channels interleaved), only those labelled `label` when given; nil when
    /// `path` is not CIFAR.
    public static func load(path: String, label: Int?) throws -> ImageDataset? {
        try read(path: path, label: label)?.images
    }

    /// Every image at `path` with its label (CIFAR-100's fine label); nil when `path` is not CIFAR.
    public static func loadLabelled(path: String) throws -> LabelledImages? {
        try read(path: path, label: nil).map { LabelledImages(images: $0.images, labels: $0.labels) }
    }

    static func read(path: String, label: Int?) throws -> (images: ImageDataset, labels: [Int32])? {
        guard let (kind, files) = try files(at: path) else { return nil }
        if let label, !(0..<kind.classCount).contains(label) {
            throw DataError(path: path, problem: "--class \(label) is not a \(kind == .cifar10 ? "CIFAR-10" : "CIFAR-100") class (0–\(kind.classCount - 1))")
        }
        // The files' total, before reading any: a data set is held whole in memory.
        let total = files.reduce(0) { $0 + fileSize($1) }
        guard total <= MemoryBudget.dataBytes else {
            throw DataError(path: path, problem: "holds \(formatBytes(total)) of images, more than the \(formatBytes(MemoryBudget.dataBytes)) pgan will hold (half the machine's memory)")
        }
        var bytes: [UInt8] = [], count = 0, labels: [Int32] = []
        bytes.reserveCapacity(total / kind.recordBytes * 3072)
        for file in files {
            let data = try readFile(path: file, maximumBytes: MemoryBudget.dataBytes)
            guard !data.isEmpty, data.count % kind.recordBytes == 0 else {
                throw DataError(path: file, problem: "is \(data.count) bytes, not a whole number of \(kind.recordBytes)-byte \(kind == .cifar10 ? "CIFAR-10" : "CIFAR-100") records: truncated?")
            }
            data.withUnsafeBytes { raw in
                let records = raw.count / kind.recordBytes
                for r in 0..<records {
                    let record = raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + r * kind.recordBytes
                    if let label, Int(record[kind.labelBytes - 1]) != label { continue }
                    labels.append(Int32(record[kind.labelBytes - 1]))
                    let planes = record + kind.labelBytes
                    for pixel in 0..<1024 {
                        bytes.append(planes[pixel])
                        bytes.append(planes[1024 + pixel])
                        bytes.append(planes[2048 + pixel])
                    }
                    count += 1
                }
            }
        }
        guard count > 0 else {
            throw DataError(path: path, problem: label.map { "holds no image of class \($0)" } ?? "holds no images")
        }
        let name = label.map { kind == .cifar10 ? " (class \(tenClasses[$0]))" : " (class \($0))" } ?? ""
        return (ImageDataset(rawImages: bytes, count: count, height: 32, width: 32, channels: 3, source: path + name), labels)
    }
}
