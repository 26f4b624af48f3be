import CZlib
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// gzip and zlib through the system zlib.
public enum Gzip {
    public static func isCompressed(_ data: Data) -> Bool { data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b }

    /// The most bytes deflate can produce from `compressedBytes` bytes: its best ratio is 1032:1, and a gzip member
    /// adds at least 18 bytes of header and trailer. A header that promises more than this cannot be telling the truth.
    public static func maximumInflatedSize(compressedBytes: Int) -> Int {
        compressedBytes.multipliedReportingOverflow(by: 1032).partialValue &+ 1024
    }

    /// zlib-wrapped deflate (what PNG's IDAT holds), at the best compression.
    public static func zlibCompress(_ bytes: [UInt8]) -> [UInt8] {
        var length = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = compress2(&output, &length, bytes, uLong(bytes.count), Z_BEST_COMPRESSION)
        precondition(status == Z_OK, "zlib compress2 failed with \(status)")
        return Array(output[0..<Int(length)])
    }

    public static func crc32(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, initial: initial) }
    }

    /// CRC-32 of any number of bytes (zlib counts in 32-bit lengths, so longer buffers go in pieces).
    public static func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        var crc = uLong(initial)
        var offset = 0
        repeat {
            let piece = min(bytes.count - offset, 1 << 30)
            crc = CZlib.crc32(crc, bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset }, uInt(piece))
            offset += piece
        } while offset < bytes.count
        return UInt32(crc)
    }
}

/// The bytes of a file that may be gzip-compressed, handed out in pieces as a reader asks for them. Inflation stops
/// as soon as the reader has what it asked for, so a reader that knows from a header how many bytes to expect never
/// inflates more than that (a gzip bomb costs what its header promises, not what it would inflate to). Several gzip
/// members are read one after another, as gzip itself does.
public final class ByteReader {
    private let input: UnsafeMutableRawBufferPointer
    private var offset = 0
    private var stream = z_stream()
    private var inflating = false
    private var ended = false

    public init(_ data: Data) throws {
        input = .allocate(byteCount: max(data.count, 1), alignment: 16)
        _ = data.copyBytes(to: input.bindMemory(to: UInt8.self))
        guard Gzip.isCompressed(data) else {
            compressedSize = nil
            size = data.count
            return
        }
        compressedSize = data.count
        size = nil
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            input.deallocate()
            throw GzipError(message: "zlib could not be initialised")
        }
        inflating = true
        stream.next_in = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = uInt(data.count)
    }

    /// The size of the file as stored when it is gzip-compressed (nil for a raw file).
    public let compressedSize: Int?
    /// The number of bytes when the file is raw (nil when compressed: only inflating tells).
    public let size: Int?

    deinit {
        if inflating { inflateEnd(&stream) }
        input.deallocate()
    }

    /// Up to `count` bytes: fewer only when the data ends first.
    public func read(_ count: Int) throws -> [UInt8] {
        precondition(count >= 0)
        guard compressedSize != nil else {
            let n = min(count, (size ?? 0) - offset)
            defer { offset += n }
            return Array(UnsafeRawBufferPointer(rebasing: input[offset..<(offset + n)]))
        }
        var output = [UInt8](repeating: 0, count: count)
        var produced = 0
        try output.withUnsafeMutableBufferPointer { buffer in
            while produced < count && !ended {
                // zlib counts in 32-bit sizes.
                let piece = min(count - produced, 1 << 30)
                stream.next_out = buffer.baseAddress! + produced
                stream.avail_out = uInt(piece)
                let status = inflate(&stream, Z_NO_FLUSH)
                produced += piece - Int(stream.avail_out)
                switch status {
                case Z_STREAM_END:
                    if stream.avail_in == 0 {
                        ended = true
                    } else if inflateReset(&stream) != Z_OK {
                        throw GzipError(message: "corrupt gzip member")
                    }
                case Z_OK:
                    if stream.avail_in == 0 && stream.avail_out != 0 { throw GzipError(message: "truncated gzip stream") }
                case Z_BUF_ERROR:
                    throw GzipError(message: "truncated gzip stream")
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw GzipError(message: "corrupt gzip data (\(reason))")
                }
            }
        }
        if produced < count { output.removeLast(count - produced) }
        return output
    }
}

public struct GzipError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

typealias uLongForPNG = uLong

/// zlib's one-shot inflate into a buffer of known size.
func pngUncompress(_ output: inout [UInt8], _ length: inout uLong, _ input: [UInt8]) -> Bool {
    uncompress(&output, &length, input, uLong(input.count)) == Z_OK
}
