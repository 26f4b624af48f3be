#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// Reads a whole file, refusing one larger than `maximumBytes` before reading it, with one-line reasons.
public func readFile(path: String, maximumBytes: Int) throws -> Data {
    var status = stat()
    guard stat(path, &status) == 0 else {
        throw DataError(path: path, problem: errno == ENOENT ? "no such file" : "cannot be read (\(String(cString: strerror(errno))))")
    }
    guard (status.st_mode & S_IFMT) == S_IFREG else {
        throw DataError(path: path, problem: (status.st_mode & S_IFMT) == S_IFDIR ? "is a directory, not a file" : "is not a regular file")
    }
    guard Int(status.st_size) <= maximumBytes else {
        throw DataError(path: path, problem: "is \(formatBytes(Int(status.st_size))), more than the \(formatBytes(maximumBytes)) pgan will read here (half the machine's memory)")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw DataError(path: path, problem: "cannot be read (\(String(cString: strerror(errno))))")
    }
    return data
}

/// Whether `path` (symbolic links followed) is a directory; nil when nothing is there.
public func isDirectory(_ path: String) -> Bool? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return (status.st_mode & S_IFMT) == S_IFDIR
}

/// How much memory inputs may take: half the machine's physical memory for a data set or a checkpoint file, so
/// that a wrong or hostile size fails with a message instead of exhausting memory.
public enum MemoryBudget {
    public static let physicalBytes = Int(clamping: ProcessInfo.processInfo.physicalMemory)
    public static let dataBytes = physicalBytes / 2
}

/// A problem with an input file: always names the file and what is wrong with it.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// The IDX format of MNIST: a big-endian header (two zero bytes, a type code, the number of dimensions, one UInt32
/// per dimension) followed by the data row-major. Only unsigned bytes (type 0x08) are supported, which is what image
/// and label files use. Files may be gzip-compressed.
public struct IDXFile: Sendable {
    public let dimensions: [Int]
    public let bytes: [UInt8]

    public static let unsignedByteType: UInt8 = 0x08

    public init(dimensions: [Int], bytes: [UInt8]) {
        self.dimensions = dimensions
        self.bytes = bytes
    }

    public static func read(path: String, maximumBytes: Int = MemoryBudget.dataBytes) throws -> IDXFile {
        try parse(readFile(path: path, maximumBytes: maximumBytes), path: path, maximumBytes: maximumBytes)
    }

    /// Parses IDX bytes, raw or gzip-compressed. The header's size is checked (overflow, `maximumBytes`, what the file
    /// can hold) before anything is allocated for the data, and inflating stops one byte past what it promises.
    public static func parse(_ data: Data, path: String, maximumBytes: Int = MemoryBudget.dataBytes) throws -> IDXFile {
        let reader: ByteReader
        do {
            reader = try ByteReader(data)
        } catch {
            throw DataError(path: path, problem: "not a valid gzip file (\(error))")
        }
        func read(_ count: Int) throws -> [UInt8] {
            do {
                return try reader.read(count)
            } catch {
                throw DataError(path: path, problem: "not a valid gzip file (\(error))")
            }
        }
        let head = try read(4)
        guard head.count == 4 else {
            throw DataError(path: path, problem: "not an IDX file (truncated header: \(head.count) bytes)")
        }
        guard head[0] == 0, head[1] == 0 else {
            let magic = head.map { String(printf: "%02x", $0) }.joined()
            throw DataError(path: path, problem: "not an IDX file (magic 0x\(magic))")
        }
        guard head[2] == unsignedByteType else {
            throw DataError(path: path, problem: String(printf: "unsupported IDX element type 0x%02x (only unsigned bytes, 0x08)", head[2]))
        }
        let rank = Int(head[3])
        guard rank >= 1 else { throw DataError(path: path, problem: "IDX file with no dimensions") }
        let headerSize = 4 + 4 * rank
        let sizes = try read(4 * rank)
        guard sizes.count == 4 * rank else {
            throw DataError(path: path, problem: "truncated IDX header (\(4 + sizes.count) of \(headerSize) bytes)")
        }
        var dimensions: [Int] = []
        for d in 0..<rank {
            var dimension = 0
            for byte in sizes[(4 * d)..<(4 * d + 4)] { dimension = dimension << 8 | Int(byte) }
            dimensions.append(dimension)
        }
        let shape = dimensions.map(String.init).joined(separator: "×")
        var expected = 1
        for dimension in dimensions {
            let (product, overflow) = expected.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw DataError(path: path, problem: "IDX header promises \(shape) bytes, more than any file can hold") }
            expected = product
        }
        guard expected <= maximumBytes else {
            throw DataError(path: path, problem: "IDX header promises \(shape) = \(expected) bytes, more than the \(formatBytes(maximumBytes)) a data set may take here (half the machine's memory)")
        }
        if let size = reader.size, size - headerSize != expected {
            let available = size - headerSize
            throw DataError(path: path, problem: available < expected
                ? "truncated data: header promises \(shape) = \(expected) bytes, file holds \(available)"
                : "\(available - expected) unexpected bytes after the data")
        }
        if let compressed = reader.compressedSize, expected > Gzip.maximumInflatedSize(compressedBytes: compressed) {
            throw DataError(path: path, problem: "truncated data: header promises \(shape) = \(expected) bytes, more than a \(compressed)-byte gzip file can hold")
        }
        let body = try read(expected)
        guard body.count == expected else {
            throw DataError(path: path, problem: "truncated data: header promises \(shape) = \(expected) bytes, file holds \(body.count)")
        }
        guard try read(1).isEmpty else {
            throw DataError(path: path, problem: "unexpected bytes after the \(expected) bytes the header promises")
        }
        return IDXFile(dimensions: dimensions, bytes: body)
    }

    /// Serialises as an uncompressed IDX file.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, Self.unsignedByteType, UInt8(dimensions.count)]
        for d in dimensions {
            out += [UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
                    UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d)]
        }
        return out + bytes
    }
}
