import CZlib
import Foundation

/// gzip and zlib through the system zlib.
public enum Gzip {
    public static func isCompressed(_ data: Data) -> Bool { data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b }

    /// Inflates a gzip stream (several members are concatenated, as gzip itself does). Throws on corrupt input.
    public static func decompress(_ data: Data) throws -> Data {
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw GzipError(message: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        return try data.withUnsafeBytes { (input: UnsafeRawBufferPointer) -> Data in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: UInt8.self).baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let status: Int32 = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output.append(contentsOf: buffer[0..<(chunk - Int(stream.avail_out))])
                switch status {
                case Z_STREAM_END:
                    if stream.avail_in == 0 { return output }
                    // Another gzip member follows.
                    guard inflateReset(&stream) == Z_OK else { throw GzipError(message: "corrupt gzip member") }
                case Z_OK:
                    if stream.avail_in == 0 && stream.avail_out != 0 {
                        throw GzipError(message: "truncated gzip stream")
                    }
                case Z_BUF_ERROR:
                    throw GzipError(message: "truncated gzip stream")
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw GzipError(message: "corrupt gzip data (\(reason))")
                }
            }
        }
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
        UInt32(CZlib.crc32(uLong(initial), bytes, uInt(bytes.count)))
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
