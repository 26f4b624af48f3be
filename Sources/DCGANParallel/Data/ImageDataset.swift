import CBuiltInData
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Training images, grey or RGB, one after another, each row-major with its channels interleaved (height × width ×
/// channels, the models' layout); kept as bytes (4× smaller than floats) and scaled to [−1, 1] (x / 127.5 − 1) as
/// batches are gathered.
public struct ImageDataset: Sendable {
    public let count: Int
    public let height: Int
    public let width: Int
    /// 1 (grey) or 3 (RGB).
    public let channels: Int
    public let bytes: [UInt8]
    /// Where the images came from, for messages and the checkpoint's metadata.
    public let source: String
    /// CRC-32 of the raw image bytes, so a checkpoint can tell whether it is resumed on the same data.
    public let checksum: UInt32

    public var elementsPerImage: Int { height * width * channels }
    /// One image's shape, as the models describe it.
    public var imageShape: TensorShape { TensorShape(batch: 1, height: height, width: width, channels: channels) }

    public init(rawImages: [UInt8], count: Int, height: Int, width: Int, channels: Int = 1, source: String) {
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        self.source = source
        bytes = rawImages
        checksum = Gzip.crc32(rawImages)
    }

    /// Every image scaled to [−1, 1].
    public var pixels: [Float] { bytes.map(Self.scaled) }

    @inline(__always)
    static func scaled(_ byte: UInt8) -> Float { Float(byte) / 127.5 - 1 }

    /// Writes image `index`, scaled to [−1, 1], to `destination` (height·width·channels floats).
    public func copyImage(_ index: Int, to destination: UnsafeMutablePointer<Float>) {
        let size = elementsPerImage
        bytes.withUnsafeBufferPointer { source in
            for i in 0..<size { destination[i] = Self.scaled(source[index * size + i]) }
        }
    }

    /// Loads the images at `imagesPath` — an IDX file (count × rows × columns, or count × rows × columns × channels
    /// with 1 or 3 channels), or CIFAR-10/100 in its binary form (`CIFAR`: a `.bin` file or the directory of them) —
    /// and, when `label` is given, keeps only the images with that label: from `labelsPath` for IDX, from the file
    /// itself for CIFAR.
    /// A folder of PNG and JPEG images (`ImageFolder`) is read too; its unreadable images are skipped with `warn`, or
    /// fail the load when `strict`. Images of another size than `imageSide` (when given) are centre-cropped and
    /// area-resized to it (`ImageFolder.resize`).
    public static func load(imagesPath: String, labelsPath: String?, label: Int?, imageSide: Int? = nil,
                            strict: Bool = false, warn: (String) -> Void = { _ in }) throws -> ImageDataset {
        if ImageFolder.isImageFolder(imagesPath) {
            if labelsPath != nil {
                throw DataError(path: imagesPath, problem: "an image folder's classes are its sub-folders; leave out --labels")
            }
            return try ImageFolder.load(path: imagesPath, label: label, side: imageSide, strict: strict, warn: warn)
        }
        let dataset = try loadFile(imagesPath: imagesPath, labelsPath: labelsPath, label: label)
        guard let imageSide, imageSide != dataset.height || imageSide != dataset.width else { return dataset }
        return try dataset.resized(to: imageSide)
    }

    /// Every image centre-cropped to a square and area-resized to side × side, as image folders are read; in parallel
    /// over images, each with the same arithmetic, so the bytes do not depend on the thread count. Refuses a result
    /// larger than the data budget (half the machine's memory) before allocating it.
    public func resized(to side: Int) throws -> ImageDataset {
        let inputSize = elementsPerImage, outputSize = side * side * channels
        guard count <= MemoryBudget.dataBytes / max(outputSize, 1) else {
            throw DataError(path: source, problem: "\(count) images resized to \(side)×\(side)×\(channels) need more than the \(formatBytes(MemoryBudget.dataBytes)) pgan will hold (half the machine's memory)")
        }
        var output = [UInt8](repeating: 0, count: count * outputSize)
        let (height, width, channels) = (self.height, self.width, self.channels)
        bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { resized in
                nonisolated(unsafe) let (source, destination) = (input.baseAddress!, resized.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: count) { index in
                    let image = ImageFolder.Decoded(width: width, height: height, channels: channels,
                                                    pixels: Array(UnsafeBufferPointer(start: source + index * inputSize,
                                                                                      count: inputSize)))
                    ImageFolder.resize(image, side: side, into: destination + index * outputSize)
                }
            }
        }
        return ImageDataset(rawImages: output, count: count, height: side, width: side, channels: channels,
                            source: source + " (resized to \(side)×\(side))")
    }

    /// The label a class name stands for: a class folder of an image folder (its index in sorted order) or a
    /// CIFAR-10 class.
    public static func classIndex(named name: String, dataPath: String) throws -> Int {
        if ImageFolder.isImageFolder(dataPath) {
            let classes = ImageFolder.classes(at: dataPath)
            guard let index = classes.firstIndex(of: name) else {
                throw DataError(path: dataPath, problem: "has no class folder \(name) (\(classes.isEmpty ? "it has no class folders" : classes.prefix(8).joined(separator: ", ") + (classes.count > 8 ? ", …" : "")))")
            }
            return index
        }
        guard CIFAR.kind(at: dataPath) == .cifar10 else {
            throw DataError(path: dataPath, problem: "--class \(name) is a class name, but only image folders and CIFAR-10 have named classes: give the label number")
        }
        guard let index = CIFAR.tenClasses.firstIndex(of: name.lowercased()) else {
            throw DataError(path: dataPath, problem: "--class \(name) is not a CIFAR-10 class (\(CIFAR.tenClasses.joined(separator: ", ")))")
        }
        return index
    }

    static func loadFile(imagesPath: String, labelsPath: String?, label: Int?) throws -> ImageDataset {
        if let cifar = try CIFAR.load(path: imagesPath, label: label) {
            if labelsPath != nil {
                throw DataError(path: imagesPath, problem: "CIFAR files carry their labels; leave out --labels")
            }
            return cifar
        }
        let images = try IDXFile.read(path: imagesPath)
        guard images.dimensions.count == 3 || images.dimensions.count == 4 else {
            throw DataError(path: imagesPath, problem: "expected an image file (count × rows × columns, or × channels as a 4th dimension), found \(images.dimensions.count) dimension(s)")
        }
        let (count, height, width) = (images.dimensions[0], images.dimensions[1], images.dimensions[2])
        let channels = images.dimensions.count == 4 ? images.dimensions[3] : 1
        guard channels == 1 || channels == 3 else {
            throw DataError(path: imagesPath, problem: "images have \(channels) channels; pgan reads 1 (grey) or 3 (RGB)")
        }
        guard count > 0 else { throw DataError(path: imagesPath, problem: "holds no images") }
        guard let digit = label else {
            return ImageDataset(rawImages: images.bytes, count: count, height: height, width: width, channels: channels,
                                source: imagesPath)
        }
        guard let labelsPath else {
            throw DataError(path: imagesPath, problem: "--class \(digit) needs a labels file (--labels)")
        }
        let labels = try IDXFile.read(path: labelsPath)
        guard labels.dimensions.count == 1 else {
            throw DataError(path: labelsPath, problem: "expected a label file (1 dimension), found \(labels.dimensions.count) dimensions")
        }
        guard labels.dimensions[0] == count else {
            throw DataError(path: labelsPath, problem: "holds \(labels.dimensions[0]) labels but \(imagesPath) holds \(count) images")
        }
        let size = height * width * channels
        var kept: [UInt8] = []
        var keptCount = 0
        for i in 0..<count where Int(labels.bytes[i]) == digit {
            kept.append(contentsOf: images.bytes[i * size..<(i + 1) * size])
            keptCount += 1
        }
        guard keptCount > 0 else {
            let present = Set(labels.bytes).sorted().map(String.init).joined(separator: ", ")
            throw DataError(path: labelsPath, problem: "no image has label \(digit) (labels present: \(present))")
        }
        return ImageDataset(rawImages: kept, count: keptCount, height: height, width: width, channels: channels,
                            source: "\(imagesPath) (digit \(digit))")
    }

    /// The data set shipped with pgan inside its binary (Sources/CBuiltInData): the 5 923 MNIST training images of
    /// digit 0.
    public static func defaultZeros() throws -> ImageDataset {
        let file = pgan_built_in_zeros()
        // The bytes are the binary's own read-only data: parsed where they lie, never copied or freed.
        let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: file.bytes), count: file.count, deallocator: .none)
        let images = try IDXFile.parse(data, path: "built-in mnist-train-zeros.idx3-ubyte.gz")
        pgan_built_in_release(file)
        return ImageDataset(rawImages: images.bytes, count: images.dimensions[0], height: images.dimensions[1],
                            width: images.dimensions[2], source: "built-in MNIST training zeros")
    }

    /// A subset (first `limit` images), for quick runs and tests.
    public func prefix(_ limit: Int) -> ImageDataset {
        let n = min(limit, count)
        return ImageDataset(rawImages: Array(bytes[0..<(n * elementsPerImage)]), count: n, height: height, width: width,
                            channels: channels, source: source)
    }
}
