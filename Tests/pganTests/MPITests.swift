#if MPI
import DCGANParallel
import Foundation
import TestSupport
import XCTest

/// `mpirun -np R pgan train` against one process (docs/ARCHITECTURE.md §7), on this machine's loopback: the same
/// checkpoint bytes for every R and thread count, uneven shards and Adam included; a killed rank ends the job with a
/// line naming it, and the run resumes with another R to the bytes of a run never stopped. Built only with
/// `--traits MPI`; needs `mpirun` (the README's MPI set-up step installs it).
final class MPITests: XCTestCase {
    var directory: String!
    var tinyData: String!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-mpi")
        tinyData = try CommandLineTests.writeTinyData(in: directory)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// mpirun, found on PATH.
    static let mpirun: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    struct Finished {
        let status: Int32
        let output: String
    }

    /// `ranks` processes (0: pgan alone, without mpirun) running `arguments`; stdout and stderr together.
    /// `perRank`: instead, one process per entry, each with its own arguments (mpirun's `A : B` form).
    func launch(ranks: Int, _ arguments: [String], perRank: [[String]] = []) throws -> (Process, Pipe) {
        let process = Process()
        let pipe = Pipe()
        if ranks == 0 {
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = arguments
        } else {
            let mpirun = try XCTUnwrap(Self.mpirun, "mpirun is not on PATH: install openmpi-bin (scripts/install-dependencies.sh --mpi)")
            process.executableURL = URL(fileURLWithPath: mpirun)
            // Root in CI containers; more ranks × threads than this machine's two cores.
            let programs = perRank.isEmpty ? [["-np", "\(ranks)", CommandLineTests.binary] + arguments]
                : perRank.map { ["-np", "1", CommandLineTests.binary] + $0 }
            process.arguments = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
                + Array(programs.joined(separator: [":"]))
        }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["CI"] = "true"
        // Shared memory and loopback only; no warnings about missing network interfaces.
        environment["OMPI_MCA_btl"] = "self,vader,tcp"
        environment["OMPI_MCA_btl_tcp_if_include"] = "lo"
        environment["OMPI_MCA_oob_tcp_if_include"] = "lo"
        process.environment = environment
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return (process, pipe)
    }

    @discardableResult
    func run(ranks: Int, _ arguments: [String], perRank: [[String]] = []) throws -> Finished {
        let (process, pipe) = try launch(ranks: ranks, arguments, perRank: perRank)
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Finished(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }

    func checkpoint(_ run: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: "\(directory!)/\(run)/checkpoint.safetensors"))
    }

    func train(ranks: Int, threads: Int, out: String, extra: [String], data: String? = nil) throws -> Data {
        let result = try run(ranks: ranks, ["train", "--data", data ?? tinyData!, "--batch-size", "16", "--steps", "6",
                                            "--seed", "7", "--threads", "\(threads)", "--out", out, "--quiet"] + extra)
        XCTAssertEqual(result.status, 0, "\(ranks) ranks × \(threads) threads: \(result.output)")
        return try checkpoint(out)
    }

    func testEveryRankAndThreadCountWritesTheOneProcessCheckpoint() throws {
        let reference = try train(ranks: 0, threads: 1, out: "one", extra: ["--shards", "8"])
        for ranks in 1...4 {
            for threads in [1, 2] {
                let bytes = try train(ranks: ranks, threads: threads, out: "r\(ranks)t\(threads)", extra: ["--shards", "8"])
                XCTAssertTrue(bytes == reference, "mpirun -np \(ranks), --threads \(threads): the checkpoint differs")
            }
        }
    }

    func testUnevenShardsAndAdam() throws {
        let flags = ["--shards", "5", "--optimizer", "adam"]
        let reference = try train(ranks: 0, threads: 1, out: "one", extra: flags)
        for ranks in [2, 3, 4] {
            XCTAssertTrue(try train(ranks: ranks, threads: 1, out: "r\(ranks)", extra: flags) == reference,
                          "adam, 5 shards, \(ranks) ranks: the checkpoint differs")
        }
    }

    /// The colour model (32×32×3, from CIFAR data) across ranks too.
    func testColourAcrossRanks() throws {
        let cifar = "\(directory!)/data_batch_1.bin"
        try Data(cifarRecords(count: 48, hundred: false)).write(to: URL(fileURLWithPath: cifar))
        let reference = try train(ranks: 0, threads: 2, out: "one", extra: ["--shards", "4"], data: cifar)
        XCTAssertEqual(try SafeTensors.read(path: "\(directory!)/one/checkpoint.safetensors").metadataValue("model"),
                       "seed-dcgan-32x32x3")
        XCTAssertTrue(try train(ranks: 3, threads: 1, out: "three", extra: ["--shards", "4"], data: cifar) == reference,
                      "colour, 3 ranks: the checkpoint differs")
    }

    func testMoreRanksThanShardsIsOneClearError() throws {
        let result = try run(ranks: 3, ["train", "--data", tinyData!, "--batch-size", "16", "--shards", "2",
                                        "--steps", "1", "--out", "few"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--shards 2 is fewer than the 3 MPI processes"), result.output)
    }

    /// Ranks that read different images (another copy of the data on another node) are stopped before training.
    func testRanksWithDifferentDataAreRefused() throws {
        let zeros = try ImageDataset.defaultZeros().prefix(64)
        var bytes = zeros.pixels.map(pixelByte)
        bytes[100] ^= 1
        let other = "\(directory!)/other-images.idx"
        try Data(IDXFile(dimensions: [64, 28, 28], bytes: bytes).encoded()).write(to: URL(fileURLWithPath: other))
        let flags = ["--batch-size", "16", "--steps", "1", "--out", "mixed"]
        let result = try run(ranks: 2, [], perRank: [["train", "--data", tinyData!] + flags, ["train", "--data", other] + flags])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("rank 1 read other images here than rank 0"), result.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory!)/mixed/checkpoint.safetensors"))
    }

    /// The PID of rank `rank` among `launcher`'s children (their environment names the rank), once it has started.
    func pid(ofRank rank: Int, under launcher: Int32) -> Int32? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == launcher,
                  let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }

    /// Starts `ranks` processes on `arguments`, waits until rank `rank` runs and the run's checkpoint is newer than
    /// step `after`, then kills that rank with SIGKILL; returns the job's output once it has ended.
    @discardableResult
    func killRank(_ rank: Int, of ranks: Int, _ arguments: [String], perRank: [[String]] = [], run: String,
                  after: Int) throws -> String {
        let (job, pipe) = try launch(ranks: ranks, arguments, perRank: perRank)
        let checkpoint = "\(directory!)/\(run)/checkpoint.safetensors"
        func checkpointStep() -> Int {
            (try? SafeTensors.read(path: checkpoint)).flatMap { $0.metadataValue("step") }.flatMap { Int($0) } ?? 0
        }
        var victim: Int32?
        while job.isRunning && (victim == nil || checkpointStep() <= after) {
            victim = victim ?? pid(ofRank: rank, under: job.processIdentifier)
            usleep(2000)
        }
        let killed = try XCTUnwrap(victim, "rank \(rank) was never seen")
        XCTAssertTrue(job.isRunning, "the job ended before rank \(rank) could be killed")
        XCTAssertEqual(kill(killed, SIGKILL), 0)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("rank \(rank)"), "mpirun names the killed rank: \(output)")
        return output
    }

    func testAKilledRankEndsTheJobAndTheRunResumesWithAnyRankCount() throws {
        // 64 images at batch 16: 4 steps an epoch, a checkpoint each; 40 epochs leave time to kill mid-run.
        let flags = ["--data", tinyData!, "--batch-size", "16", "--shards", "4", "--epochs", "40", "--threads", "1",
                     "--quiet"]
        let whole = try run(ranks: 0, ["train", "--out", "whole"] + flags)
        XCTAssertEqual(whole.status, 0, whole.output)

        // Two ranks, rank 1 killed; resumed on three, rank 2 killed; finished by one process. On the three, only rank 0
        // is given the run directory: the others get a path that does not exist, since rank 0 sends them the
        // checkpoint.
        try killRank(1, of: 2, ["train", "--out", "killed"] + flags, run: "killed", after: 0)
        let first = try XCTUnwrap(SafeTensors.read(path: "\(directory!)/killed/checkpoint.safetensors")
            .metadataValue("step")).flatMap { Int($0) } ?? 0
        let resume = ["--threads", "1", "--quiet"]
        try killRank(2, of: 3, [], perRank: [["train", "--resume", "killed"] + resume,
                                             ["train", "--resume", "not-on-this-node"] + resume,
                                             ["train", "--resume", "not-on-this-node"] + resume],
                     run: "killed", after: first)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory!)/not-on-this-node"))
        let finished = try run(ranks: 0, ["train", "--resume", "killed", "--threads", "2", "--quiet"])
        XCTAssertEqual(finished.status, 0, finished.output)
        XCTAssertTrue(try self.checkpoint("killed") == self.checkpoint("whole"), "the resumed run's checkpoint differs")
        for file in ["history.csv", "progress.png", "samples/epoch-0040.png"] {
            XCTAssertEqual(FileManager.default.contents(atPath: "\(directory!)/killed/\(file)"),
                           FileManager.default.contents(atPath: "\(directory!)/whole/\(file)"), file)
        }
    }
}
#endif
