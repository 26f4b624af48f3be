import CPNG
import CTurboJPEG
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// A directory of PNG and JPEG images, as torchvision's `ImageFolder` lays them out: class sub-folders
/// (`DIR/cat/*.png`, `DIR/dog/*.jpg`; a class's label is its folder's index in sorted order), or the images directly
/// in `DIR` (one class). Decoded by the system libraries — libpng's simplified API and libjpeg-turbo's TurboJPEG, both
/// of which report errors by return value — on all cores, once, before training.
///
/// Every image is centre-cropped to a square and resized to side × side (32 unless asked) with an area filter: each output pixel is
/// the mean of the source pixels it covers, weighted by how much of each it covers (separable: rows, then columns, in
/// Double), rounded to the nearest byte. It depends on nothing but the pixels, so the data set — and the training —
/// are the same on every machine. The data set is RGB when any image is in colour (grey ones then repeat their value
/// in the three channels), grey otherwise. 16-bit PNGs give the high byte of each sample; transparency is dropped,
/// keeping the stored colour (as PIL's `convert("RGB")` does), except in 16-bit PNGs, which libpng composites onto
/// black.
public enum ImageFolder {
    static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The class sub-folders of `path` that hold images, sorted, or [] when the images are in `path` itself.
    public static func classes(at path: String) -> [String] {
        subfolders(of: path).filter { !images(in: "\(path)/\($0)").isEmpty }.sorted()
    }

    /// The visible sub-folders of `path`.
    static func subfolders(of path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { name in
            !name.hasPrefix(".") && isDirectory("\(path)/\(name)") == true
        }
    }

    /// The image files directly in `directory`, sorted by name.
    static func images(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { !$0.hasPrefix(".") && extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
            .sorted().map { "\(directory)/\($0)" }
    }

    /// True when `path` is a directory of images or of class folders of images, and not CIFAR's batches (which a
    /// CIFAR directory may sit beside images with). Lists at most until the first folder with an image.
    public static func isImageFolder(_ path: String) -> Bool {
        guard isDirectory(path) == true, CIFAR.kind(at: path) == nil else { return false }
        return !images(in: path).isEmpty || subfolders(of: path).contains { !images(in: "\(path)/\($0)").isEmpty }
    }

    /// A decoded image: width × height × channels bytes, channels interleaved.
    struct Decoded {
        let width: Int, height: Int, channels: Int
        let pixels: [UInt8]
    }

    /// Why an image was not used.
    struct Unreadable: Error { let reason: String }

    /// Loads the images (of class `label` only, when given), each cropped and resized to side × side. Undecodable
    /// files are skipped — `warn` is told how many and the first one's reason — or, with `strict`, fail the load.
    public static func load(path: String, label: Int?, side: Int?, strict: Bool,
                            warn: (String) -> Void) throws -> ImageDataset {
        let classNames = classes(at: path)
        let files: [String]
        var source = path
        if classNames.isEmpty {
            if let label, label != 0 {
                throw DataError(path: path, problem: "holds no class folders, so --class \(label) selects nothing (its images are class 0)")
            }
            files = images(in: path)
        } else if let label {
            guard classNames.indices.contains(label) else {
                throw DataError(path: path, problem: "--class \(label) is not one of its \(classNames.count) class folders (0–\(classNames.count - 1): \(classNames.prefix(8).joined(separator: ", "))\(classNames.count > 8 ? ", …" : ""))")
            }
            files = images(in: "\(path)/\(classNames[label])")
            source += " (class \(classNames[label]))"
        } else {
            files = classNames.flatMap { images(in: "\(path)/\($0)") }
        }
        guard !files.isEmpty else { throw DataError(path: path, problem: "holds no PNG or JPEG images") }
        let side = side ?? 32
        guard files.count <= MemoryBudget.dataBytes / (side * side * 3) else {
            throw DataError(path: path, problem: "\(files.count) images of \(side)×\(side) pixels need more than the \(formatBytes(MemoryBudget.dataBytes)) pgan will hold (half the machine's memory)")
        }
        // Each image is decoded and resized in one item, so only one full-size image per core is ever held.
        let resized = UnsafeMutableBufferPointer<Result<Decoded, Unreadable>?>.allocate(capacity: files.count)
        resized.initialize(repeating: nil)
        defer { resized.deallocate() }
        nonisolated(unsafe) let results = resized
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            do {
                let image = try decode(path: files[index])
                var pixels = [UInt8](repeating: 0, count: side * side * image.channels)
                pixels.withUnsafeMutableBufferPointer { resize(image, side: side, into: $0.baseAddress!) }
                results[index] = .success(Decoded(width: side, height: side, channels: image.channels, pixels: pixels))
            } catch let error as Unreadable {
                results[index] = .failure(error)
            } catch {
                results[index] = .failure(Unreadable(reason: "\(error)"))
            }
        }
        var kept: [Decoded] = [], skipped: [(String, String)] = []
        for (index, result) in resized.enumerated() {
            switch result! {
            case .success(let image): kept.append(image)
            case .failure(let error): skipped.append((files[index], error.reason))
            }
        }
        if let (file, reason) = skipped.first {
            if strict { throw DataError(path: file, problem: "\(reason) (--strict)") }
            warn("skipped \(skipped.count) of \(files.count) images that could not be read (first: \(file): \(reason)); --strict makes this an error")
        }
        guard !kept.isEmpty else { throw DataError(path: path, problem: "none of its \(files.count) images could be read") }
        // RGB when any image is in colour: grey ones repeat their value in the three channels.
        let channels = kept.contains { $0.channels == 3 } ? 3 : 1
        var bytes: [UInt8] = []
        bytes.reserveCapacity(kept.count * side * side * channels)
        for image in kept {
            if image.channels == channels {
                bytes += image.pixels
            } else {
                for value in image.pixels { bytes += [value, value, value] }
            }
        }
        return ImageDataset(rawImages: bytes, count: kept.count, height: side, width: side, channels: channels,
                            source: source)
    }

    /// Decodes one PNG or JPEG file (by its signature, not its name) to 8-bit grey or RGB.
    static func decode(path: String) throws -> Decoded {
        let data: Data
        do {
            data = try readFile(path: path, maximumBytes: MemoryBudget.dataBytes)
        } catch let error as DataError {
            throw Unreadable(reason: error.problem)
        }
        let bytes = [UInt8](data)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(bytes) }
        if bytes.starts(with: [0xFF, 0xD8]) { return try decodeJPEG(bytes) }
        throw Unreadable(reason: "neither a PNG nor a JPEG file")
    }

    /// Images beyond this many pixels are skipped before decoding: 32 megapixels are 128 MB while decoded (RGBA), and
    /// every core decodes one at a time.
    static let maximumPixels = 1 << 25

    static func decodePNG(_ bytes: [UInt8]) throws -> Decoded {
        // libpng keeps the pointer it is given from begin_read to finish_read: the bytes must stay put between.
        try bytes.withUnsafeBytes { try decodePNG(memory: $0) }
    }

    static func decodePNG(memory: UnsafeRawBufferPointer) throws -> Decoded {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_memory(&image, memory.baseAddress, memory.count) != 0 else {
            throw Unreadable(reason: "libpng: \(message(of: image))")
        }
        let (width, height) = (Int(image.width), Int(image.height))
        guard width > 0, height > 0, width * height <= maximumPixels else {
            throw Unreadable(reason: "\(width)×\(height) pixels is beyond the \(maximumPixels) pgan reads")
        }
        let colour = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let channels = colour ? 3 : 1
        if image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 {
            // 16-bit: linear samples, no alpha (composited onto black); keep the high byte.
            image.format = UInt32(PNG_FORMAT_FLAG_LINEAR) | (colour ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
            var wide = [UInt16](repeating: 0, count: width * height * channels)
            guard png_image_finish_read(&image, nil, &wide, 0, nil) != 0 else {
                throw Unreadable(reason: "libpng: \(message(of: image))")
            }
            return Decoded(width: width, height: height, channels: channels, pixels: wide.map { UInt8($0 >> 8) })
        }
        // 8-bit (palette, 1-, 2- and 4-bit included): read with alpha, then drop it, keeping the stored colour.
        image.format = UInt32(PNG_FORMAT_FLAG_ALPHA) | (colour ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
        let stored = channels + 1
        var withAlpha = [UInt8](repeating: 0, count: width * height * stored)
        guard png_image_finish_read(&image, nil, &withAlpha, 0, nil) != 0 else {
            throw Unreadable(reason: "libpng: \(message(of: image))")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for p in 0..<(width * height) {
            for c in 0..<channels { pixels[p * channels + c] = withAlpha[p * stored + c] }
        }
        return Decoded(width: width, height: height, channels: channels, pixels: pixels)
    }

    static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func decodeJPEG(_ bytes: [UInt8]) throws -> Decoded {
        guard let handle = tjInitDecompress() else { throw Unreadable(reason: "TurboJPEG could not start") }
        defer { tjDestroy(handle) }
        var source = bytes
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colourspace: Int32 = 0
        guard tjDecompressHeader3(handle, &source, UInt(bytes.count), &width, &height, &subsampling, &colourspace) == 0 else {
            throw Unreadable(reason: "libjpeg-turbo: \(String(cString: tjGetErrorStr2(handle)))")
        }
        guard width > 0, height > 0, Int(width) * Int(height) <= maximumPixels else {
            throw Unreadable(reason: "\(width)×\(height) pixels is beyond the \(maximumPixels) pgan reads")
        }
        let grey = subsampling == Int32(TJSAMP_GRAY.rawValue)
        let channels = grey ? 1 : 3
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        let format = grey ? TJPF_GRAY : TJPF_RGB
        guard tjDecompress2(handle, &source, UInt(bytes.count), &pixels, width, 0, height, Int32(format.rawValue), 0) == 0 else {
            throw Unreadable(reason: "libjpeg-turbo: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return Decoded(width: Int(width), height: Int(height), channels: channels, pixels: pixels)
    }

    /// The centre square of `image`, area-resized to side × side (its own channels) into `output`.
    static func resize(_ image: Decoded, side: Int, into output: UnsafeMutablePointer<UInt8>) {
        let channels = image.channels
        let square = min(image.width, image.height)
        let left = (image.width - square) / 2, top = (image.height - square) / 2
        let weights = areaWeights(from: square, to: side)
        // Rows first: side output columns for each of the square's rows, per channel of the image.
        var rows = [Double](repeating: 0, count: square * side * image.channels)
        for y in 0..<square {
            for (x, taps) in weights.enumerated() {
                for c in 0..<image.channels {
                    var sum = 0.0
                    for (index, weight) in taps {
                        sum += weight * Double(image.pixels[((top + y) * image.width + left + index) * image.channels + c])
                    }
                    rows[(y * side + x) * image.channels + c] = sum
                }
            }
        }
        for (y, taps) in weights.enumerated() {
            for x in 0..<side {
                for c in 0..<channels {
                    var sum = 0.0
                    for (index, weight) in taps { sum += weight * rows[(index * side + x) * channels + c] }
                    output[(y * side + x) * channels + c] = UInt8(max(0, min(255, sum.rounded())))
                }
            }
        }
    }

    /// For each of `to` output positions, the source positions of 0..<from it covers and the fraction of the output
    /// pixel each covers (they sum to 1): output i spans [i·from/to, (i+1)·from/to).
    static func areaWeights(from: Int, to: Int) -> [[(Int, Double)]] {
        (0..<to).map { i in
            let start = Double(i) * Double(from) / Double(to), end = Double(i + 1) * Double(from) / Double(to)
            let span = end - start
            return (Int(start.rounded(.down))..<min(Int(end.rounded(.up)), from)).compactMap { j in
                let overlap = min(end, Double(j + 1)) - max(start, Double(j))
                return overlap > 0 ? (j, overlap / span) : nil
            }
        }
    }
}
