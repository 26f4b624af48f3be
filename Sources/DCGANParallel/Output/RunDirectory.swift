#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A training run's directory, held by one process at a time.
///
/// Opening it creates it (and `samples/`) if needed and takes an exclusive `flock` on `DIR/.pgan.lock`, which holds
/// the owner's PID; a second `pgan train` on the same directory fails at once with a message naming that PID. The
/// lock goes when the process ends, however it ends, so a killed run never leaves the directory locked. Once locked,
/// temporaries that a killed run left behind (`AtomicFile`) are removed: no other process can be writing them.
public final class RunDirectory {
    public let path: String
    /// The lock's descriptor; -1 for a reader (`RunDirectory(readingFrom:)`).
    private let lockDescriptor: Int32

    public static let lockName = ".pgan.lock"
    /// The files a run writes, besides `samples/epoch-NNNN.png`.
    public static let runFiles = ["checkpoint.safetensors", "metrics.csv", "history.csv", "progress.png", "curves.svg"]

    public var checkpointPath: String { "\(path)/checkpoint.safetensors" }
    public var samplesPath: String { "\(path)/samples" }

    public init(path: String) throws {
        guard !path.isEmpty else { throw DataError(path: "--out", problem: "the output directory name is empty") }
        self.path = path
        do {
            try Self.makeDirectories("\(path)/samples")
        } catch let error as DataError {
            throw DataError(path: path, problem: "cannot create the output directory (\(error))")
        }
        guard access(path, W_OK) == 0 else { throw DataError(path: path, problem: "output directory is not writable") }
        let lockPath = "\(path)/\(Self.lockName)"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw DataError(path: lockPath, problem: "cannot open the run's lock file (\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var holder = [UInt8](repeating: 0, count: 32)
            let count = read(descriptor, &holder, holder.count)
            close(descriptor)
            if code == EWOULDBLOCK {
                let pid = String(decoding: holder.prefix(max(count, 0)), as: UTF8.self).trimmed()
                throw DataError(path: path, problem: "is in use by another pgan run (PID \(pid.isEmpty ? "unknown" : pid)); wait for it to finish or stop it")
            }
            throw DataError(path: lockPath, problem: "cannot be locked (\(String(cString: strerror(code))))")
        }
        lockDescriptor = descriptor
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(descriptor, 0) == 0 { _ = pwrite(descriptor, pid, pid.count, 0) }
        removeStaleTemporaries()
    }

    /// The directory of a run that another process of the same job holds (rank 0 of an MPI job): for reading its
    /// checkpoint only, so it takes no lock and creates or removes nothing.
    public init(readingFrom path: String) {
        self.path = path
        lockDescriptor = -1
    }

    deinit {
        if lockDescriptor >= 0 { close(lockDescriptor) }
    }

    /// `mkdir -p` with a one-line reason on failure.
    static func makeDirectories(_ path: String) throws {
        if let isDirectory = isDirectory(path) {
            guard isDirectory else { throw DataError(path: path, problem: "exists and is not a directory") }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if parent != path && !parent.isEmpty { try makeDirectories(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw DataError(path: path, problem: "cannot create the directory (\(String(cString: strerror(errno))))")
        }
    }

    /// Removes `AtomicFile` temporaries in the directory and in `samples/` (left by a killed run).
    public func removeStaleTemporaries() {
        for directory in [path, samplesPath] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where name.hasPrefix(".") && name.contains(AtomicFile.temporaryMarker) {
                unlink("\(directory)/\(name)")
            }
        }
    }

    /// The sample grids in `samples/`, by epoch.
    public func sampleEpochs() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: samplesPath)) ?? []).compactMap { name in
            guard name.hasPrefix("epoch-"), name.hasSuffix(".png") else { return nil }
            return Int(name.dropFirst(6).dropLast(4))
        }.sorted()
    }

    public func samplePath(epoch: Int) -> String { "\(samplesPath)/epoch-\(String(printf: "%04d", epoch)).png" }

    /// Removes every file a run writes (for a fresh start in a used directory); other files are left alone.
    public func removeRunFiles() {
        for name in Self.runFiles { unlink("\(path)/\(name)") }
        for epoch in sampleEpochs() { unlink(samplePath(epoch: epoch)) }
    }
}
