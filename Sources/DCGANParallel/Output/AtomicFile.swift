#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A file written so that readers see either the old contents or the new, never a half-written file: the bytes go to
/// a new temporary file in the same directory, which is flushed to disk and renamed over the target, and the
/// directory is flushed so the rename survives a power cut.
///
/// The temporary is created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0644 less the umask) under a random name
/// `.NAME.pgan-tmp-XXXXXXXX`: a file or symlink someone planted there is never opened or followed, the name is
/// tried again instead. A temporary left by a killed process is removed by the next run in the same directory
/// (`RunDirectory.removeStaleTemporaries`). Bytes can be appended in pieces, so large outputs need not be in memory.
public final class AtomicFile {
    public let path: String
    let temporary: String
    private var descriptor: Int32
    private var committed = false

    /// The marker in temporary names; `RunDirectory` removes files that carry it.
    static let temporaryMarker = ".pgan-tmp-"

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        for _ in 0..<100 {
            let suffix = String((0..<8).map { _ in letters.randomElement()! })
            let name = "\(directory)/.\(url.lastPathComponent)\(Self.temporaryMarker)\(suffix)"
            let opened = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if opened >= 0 {
                temporary = name
                descriptor = opened
                return
            }
            if errno != EEXIST { throw Self.failure(path, errno) }
        }
        throw DataError(path: path, problem: "cannot be written (no free temporary name after 100 tries)")
    }

    deinit {
        if !committed {
            close(descriptor)
            unlink(temporary)
        }
    }

    static func failure(_ path: String, _ code: Int32) -> DataError {
        DataError(path: path, problem: "cannot be written (\(String(cString: strerror(code))))")
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw Self.failure(path, errno)
            }
            offset += written
        }
    }

    public func append(_ data: Data) throws {
        try data.withUnsafeBytes { try append($0) }
    }

    /// Flushes the bytes, renames the temporary over `path` and flushes the directory.
    public func commit() throws {
        precondition(!committed, "AtomicFile committed twice")
        committed = true
        var code: Int32 = 0
        if fsync(descriptor) != 0 { code = errno }
        close(descriptor)
        if code == 0 && rename(temporary, path) != 0 { code = errno }
        guard code == 0 else {
            unlink(temporary)
            throw Self.failure(path, code)
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if handle >= 0 {
            fsync(handle)
            close(handle)
        }
    }
}

/// Writes `data` to `path` through an `AtomicFile`.
public func writeAtomically(_ data: Data, to path: String) throws {
    let file = try AtomicFile(path: path)
    try file.append(data)
    try file.commit()
}
