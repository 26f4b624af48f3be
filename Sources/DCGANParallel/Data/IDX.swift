import Foundation

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

    public static func read(path: String) throws -> IDXFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let exists = FileManager.default.fileExists(atPath: path)
            throw DataError(path: path, problem: exists ? "cannot be read" : "no such file")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String) throws -> IDXFile {
        var raw = data
        if Gzip.isCompressed(data) {
            do {
                raw = try Gzip.decompress(data)
            } catch {
                throw DataError(path: path, problem: "not a valid gzip file (\(error))")
            }
        }
        let bytes = [UInt8](raw)
        guard bytes.count >= 4 else {
            throw DataError(path: path, problem: "not an IDX file (truncated header: \(bytes.count) bytes)")
        }
        guard bytes[0] == 0, bytes[1] == 0 else {
            let magic = bytes.prefix(4).map { String(format: "%02x", $0) }.joined()
            throw DataError(path: path, problem: "not an IDX file (magic 0x\(magic))")
        }
        guard bytes[2] == unsignedByteType else {
            throw DataError(path: path, problem: String(format: "unsupported IDX element type 0x%02x (only unsigned bytes, 0x08)", bytes[2]))
        }
        let rank = Int(bytes[3])
        guard rank >= 1 else { throw DataError(path: path, problem: "IDX file with no dimensions") }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw DataError(path: path, problem: "truncated IDX header (\(bytes.count) of \(headerSize) bytes)")
        }
        var dimensions: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dimensions.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let expected = dimensions.reduce(1, *)
        let available = bytes.count - headerSize
        guard available >= expected else {
            throw DataError(path: path, problem: "truncated data: header promises \(dimensions.map(String.init).joined(separator: "×")) = \(expected) bytes, file holds \(available)")
        }
        guard available == expected else {
            throw DataError(path: path, problem: "\(available - expected) unexpected bytes after the data")
        }
        return IDXFile(dimensions: dimensions, bytes: Array(bytes[headerSize...]))
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
