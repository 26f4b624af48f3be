#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// An 8-bit grey-scale or RGB image (channels interleaved) and its PNG encoding (signature, IHDR, one
/// zlib-compressed IDAT, IEND; CRC-32 and deflate from the system zlib).
public struct GridImage: Sendable {
    public let width: Int
    public let height: Int
    /// 1 (grey, PNG colour type 0) or 3 (RGB, colour type 2).
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int = 1, fill: UInt8 = 0) {
        precondition(channels == 1 || channels == 3)
        self.width = width
        self.height = height
        self.channels = channels
        pixels = [UInt8](repeating: fill, count: width * height * channels)
    }

    public func pngData() -> Data {
        let row = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity((row + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter type None
            raw.append(contentsOf: pixels[(y * row)..<((y + 1) * row)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ body: [UInt8]) {
            png += bigEndian(UInt32(body.count))
            let typed = Array(type.utf8) + body
            png += typed
            png += bigEndian(Gzip.crc32(typed))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, channels == 3 ? 2 : 0, 0, 0, 0])
        chunk("IDAT", Gzip.zlibCompress(raw))
        chunk("IEND", [])
        return Data(png)
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
}

/// Image pixels in [−1, 1] to bytes: round((x + 1)·127.5), clamped.
public func pixelByte(_ value: Float) -> UInt8 {
    UInt8(max(0, min(255, ((value + 1) * 127.5).rounded())))
}

/// Lays images (count × height·width·channels, values in [−1, 1], channels interleaved) out on a grid with a grey
/// border, each pixel drawn `scale` × `scale`.
public func imageGrid(_ images: [Float], count: Int, height: Int, width: Int, channels: Int = 1, columns: Int,
                      padding: Int = 2, scale: Int = 2) -> GridImage {
    let rows = (count + columns - 1) / columns
    let gridWidth = (columns * (width + padding) + padding) * scale
    let gridHeight = (rows * (height + padding) + padding) * scale
    var grid = GridImage(width: gridWidth, height: gridHeight, channels: channels, fill: 128)
    for index in 0..<count {
        let top = (padding + (index / columns) * (height + padding)) * scale
        let left = (padding + (index % columns) * (width + padding)) * scale
        for y in 0..<(height * scale) {
            for x in 0..<(width * scale) {
                let source = ((index * height + y / scale) * width + x / scale) * channels
                let target = ((top + y) * gridWidth + left + x) * channels
                for c in 0..<channels { grid.pixels[target + c] = pixelByte(images[source + c]) }
            }
        }
    }
    return grid
}

public struct PNGError: Error, CustomStringConvertible {
    public let description: String
}

extension GridImage {
    /// Decodes the PNGs this project writes: 8-bit grey-scale or RGB, no interlace, filter type 0 on every row.
    public init(pngData data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count > 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw PNGError(description: "not a PNG file")
        }
        var offset = 8, width = 0, height = 0, channels = 1
        var compressed: [UInt8] = []
        func u32(_ o: Int) -> Int { Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]) }
        while offset + 8 <= bytes.count {
            let length = u32(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard length <= bytes.count - offset - 12 else { throw PNGError(description: "truncated PNG chunk \(type)") }
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            switch type {
            case "IHDR":
                guard body.count == 13, body[8] == 8, body[9] == 0 || body[9] == 2, body[12] == 0 else {
                    throw PNGError(description: "only 8-bit grey-scale and RGB PNGs are supported")
                }
                channels = body[9] == 2 ? 3 : 1
                width = u32(offset + 8)
                height = u32(offset + 12)
                // pgan's grids are a few thousand pixels a side; a larger header is not one of its files.
                guard (1...(1 << 15)).contains(width), (1...(1 << 15)).contains(height) else {
                    throw PNGError(description: "PNG of \(width)×\(height) pixels is not a pgan grid")
                }
            case "IDAT": compressed += body
            default: break
            }
            offset += 12 + length
        }
        let row = width * channels
        var rawLength = uLongForPNG((row + 1) * height)
        var raw = [UInt8](repeating: 0, count: Int(rawLength))
        guard width > 0, height > 0, pngUncompress(&raw, &rawLength, compressed), Int(rawLength) == raw.count else {
            throw PNGError(description: "corrupt PNG image data")
        }
        self.init(width: width, height: height, channels: channels)
        for y in 0..<height {
            guard raw[y * (row + 1)] == 0 else { throw PNGError(description: "unsupported PNG row filter") }
            pixels.replaceSubrange((y * row)..<((y + 1) * row), with: raw[(y * (row + 1) + 1)...(y * (row + 1) + row)])
        }
    }
}
