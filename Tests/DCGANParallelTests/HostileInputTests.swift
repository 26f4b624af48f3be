import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// Files a hostile or unlucky user can hand pgan: each must give a `DataError` naming the file, never a trap or an
/// allocation the size of a lie.
final class HostileInputTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-hostile")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func gzip(_ bytes: [UInt8]) throws -> Data {
        let path = "\(directory!)/to-compress-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-f", path]
        try process.run()
        process.waitUntilExit()
        return try Data(contentsOf: URL(fileURLWithPath: path + ".gz"))
    }

    // MARK: IDX

    /// Every single-bit flip of the rank byte of a real label file (10 000 labels): the dimensions then come from the
    /// labels themselves, and their product overflowed (`reduce(1, *)` trapped).
    func testEveryBitFlipOfTheRankByteIsAnError() throws {
        var labels: [UInt8]
        let real = "\(sharedMNISTDirectory)/t10k-labels-idx1-ubyte.gz"
        if FileManager.default.fileExists(atPath: real) {
            labels = IDXFile(dimensions: [10_000], bytes: try IDXFile.read(path: real).bytes).encoded()
        } else {
            var random = SeededRandom(seed: 4)
            labels = IDXFile(dimensions: [10_000], bytes: (0..<10_000).map { _ in UInt8(random.int(in: 0...9)) }).encoded()
        }
        for bit in 0..<8 {
            var flipped = labels
            flipped[3] ^= 1 << bit
            XCTAssertThrowsError(try IDXFile.parse(Data(flipped), path: "flipped")) { error in
                XCTAssertTrue(error is DataError, "bit \(bit): \(error)")
            }
        }
    }

    func testDimensionsThatOverflowOrExceedTheBudgetAreRefusedBeforeAllocating() {
        let maximal = IDXFile(dimensions: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], bytes: []).encoded()
        assertDataError(try IDXFile.parse(Data(maximal), path: "x"), contains: "more than any file can hold")
        let large = IDXFile(dimensions: [60_000, 0xFFFF, 0xFFFF], bytes: []).encoded()
        assertDataError(try IDXFile.parse(Data(large), path: "x"), contains: "a data set may take here")
        let budget = IDXFile(dimensions: [1000, 28, 28], bytes: []).encoded()
        assertDataError(try IDXFile.parse(Data(budget), path: "x", maximumBytes: 1000), contains: "a data set may take here")
    }

    /// A small gzip file whose header promises a little and whose stream inflates to a lot: reading stops one byte
    /// past the promise (it used to inflate everything first: 2.1 GB for a 1 MB bomb).
    func testGzipBombsStopAtThePromisedSize() throws {
        let bomb = try gzip(IDXFile(dimensions: [1, 2, 2], bytes: [UInt8](repeating: 0, count: 64 << 20)).encoded())
        XCTAssertLessThan(bomb.count, 1 << 20)
        assertDataError(try IDXFile.parse(bomb, path: "bomb.gz"), contains: "unexpected bytes after the 4 bytes")
        // A header that promises more than deflate can produce from the file is a truncated file, found before
        // inflating anything.
        let liar = try gzip(IDXFile(dimensions: [1_000_000, 28, 28], bytes: [UInt8](repeating: 1, count: 100)).encoded())
        assertDataError(try IDXFile.parse(liar, path: "liar.gz"), contains: "gzip file can hold")
    }

    func testTruncatedAndTrailingGzipMembers() throws {
        let whole = IDXFile(dimensions: [3, 4, 4], bytes: (0..<48).map(UInt8.init)).encoded()
        let compressed = try gzip(whole)
        XCTAssertEqual(try IDXFile.parse(compressed, path: "x").bytes, Array(whole[16...]))
        // Two members (gzip's `cat a.gz b.gz`) are one stream.
        let two = try gzip(Array(whole[..<20])) + gzip(Array(whole[20...]))
        XCTAssertEqual(try IDXFile.parse(two, path: "x").bytes, Array(whole[16...]))
        for cut in [11, compressed.count / 2, compressed.count - 4] {
            XCTAssertThrowsError(try IDXFile.parse(compressed.prefix(cut), path: "cut")) { XCTAssertTrue($0 is DataError) }
        }
    }

    // MARK: safetensors

    /// A safetensors file from a hand-written JSON header and tensor bytes.
    func safetensors(_ header: String, data: [UInt8] = []) -> Data {
        var text = Array(header.utf8)
        while (text.count + 8) % 8 != 0 { text.append(0x20) }
        var length = UInt64(text.count).littleEndian
        return withUnsafeBytes(of: &length) { Data($0) } + Data(text) + Data(data)
    }

    func testHostileShapesAndOffsets() {
        let cases: [(String, String)] = [
            (#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, "negative dimension"),
            (#"{"t":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#, "larger than the file"),
            (#"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, "larger than the file"),
            (#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775807]}}"#, "outside the file"),
            (#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, "outside the file"),
            (#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, "outside the file"),
            (#"{"__metadata__":{"step":5},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, "map of strings"),
            (#"[1,2,3]"#, "not a JSON object"),
        ]
        for (header, problem) in cases {
            assertDataError(try SafeTensors.decode(safetensors(header, data: [UInt8](repeating: 0, count: 16)), path: "h"),
                            contains: problem)
        }
        var huge = Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        huge.append(Data(repeating: 0x20, count: 32))
        assertDataError(try SafeTensors.decode(huge, path: "h"), contains: "does not fit the file")
    }

    func checkpoint(metadata changes: [String: String]) throws -> SafeTensors {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 1),
                                 executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        var file = try SafeTensors.decode(Checkpoint.encoded(trainer: trainer, dataset: DatasetFingerprint(count: 8, checksum: 1)),
                                          path: "c")
        for (key, value) in changes {
            file.metadata.removeAll { $0.key == key }
            file.metadata.append((key, value))
        }
        return try SafeTensors.decode(file.encoded(), path: "c")
    }

    func testHostileCheckpointMetadata() throws {
        for batch in ["1000000000", "9223372036854775807", "-3", "1e9"] {
            let file = try checkpoint(metadata: ["batch_size": batch])
            assertDataError(try Checkpoint.configuration(of: file, path: "c"), contains: "corrupt checkpoint metadata")
        }
        for shards in ["0", "100000"] {
            assertDataError(try Checkpoint.configuration(of: checkpoint(metadata: ["shards": shards]), path: "c"),
                            contains: "corrupt checkpoint metadata")
        }
        for step in ["-5", "nan", "1e300", "281474976710657"] {
            let file = try checkpoint(metadata: ["step": step])
            let trainer = GANTrainer(configuration: try Checkpoint.configuration(of: file, path: "c"),
                                     executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
            assertDataError(try Checkpoint.restore(from: CheckpointReader(bytes: [UInt8](file.encoded()), path: "c"), into: trainer),
                            contains: "step")
        }
        for target in ["0", "-1", "x"] {
            assertDataError(try Checkpoint.runRecord(of: checkpoint(metadata: ["run_target_steps": target]), path: "c") as Any,
                            contains: "run record")
        }
        for rate in ["nan", "inf", "-0.001"] {
            assertDataError(try Checkpoint.configuration(of: checkpoint(metadata: ["learning_rate": rate]), path: "c"),
                            contains: "corrupt checkpoint metadata")
        }
    }

    /// One flipped exponent bit in a weight (−0.038 became −1.3e37) was loaded and sampled from with exit 0.
    func testBitRotInTensorDataFailsTheChecksum() throws {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 1),
                                 executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        let good = Checkpoint.encoded(trainer: trainer, dataset: DatasetFingerprint(count: 8, checksum: 1))
        XCTAssertNoThrow(try SafeTensors.decode(good, path: "good"))
        var rotten = good
        rotten[rotten.count - 1000] ^= 0x40
        assertDataError(try SafeTensors.decode(rotten, path: "rotten"), contains: "fails the CRC-32 check")
        // Still a plain safetensors file: the checksum is one more metadata string.
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: good[8..<(8 + Int(good[0]) + Int(good[1]) << 8 + Int(good[2]) << 16)])
                                   as? [String: Any])
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        XCTAssertNotNil(metadata[SafeTensors.checksumKey].flatMap(UInt32.init))
    }

    // MARK: run logs

    func testRunLogsAreReadStrictly() throws {
        let rows: [(step: Int, metrics: StepMetrics)] = [
            (1, StepMetrics(discriminatorLoss: 0.1 + 0.2, generatorLoss: 1 / 3, discriminatorAccuracyReal: 0.5,
                            discriminatorAccuracyFake: 0.25, generatorFoolingRate: 1)),
            (2, StepMetrics(discriminatorLoss: 2e-300, generatorLoss: 7, discriminatorAccuracyReal: 0,
                            discriminatorAccuracyFake: 1, generatorFoolingRate: 0.125)),
        ]
        let text = RunLogs.historyText(rows)
        let back = try RunLogs.parseHistory(text, path: "h")
        XCTAssertEqual(back.map(\.step), [1, 2])
        XCTAssertEqual(back.map(\.metrics), rows.map(\.metrics), "values come back bit for bit")
        for bad in ["nan", "1e300", "-1", "0", "1", "2.5", ""] {
            let edited = text.replacingOccurrences(of: "\n2,", with: "\n\(bad),")
            assertDataError(try RunLogs.parseHistory(edited, path: "history.csv"), contains: "line 3")
        }
        assertDataError(try RunLogs.parseHistory(text.replacingOccurrences(of: ",7.0,", with: ",inf,"), path: "h"),
                        contains: "finite")
        assertDataError(try RunLogs.parseHistory("step,x\n", path: "h"), contains: "header")
        let metrics = "epoch,step,steps,d_loss,g_loss,d_acc_real,d_acc_fake,g_fooling_rate,images_per_second,seconds\n"
            + "1,4,4,0.5,0.5,0.5,0.5,0.5,100.0,0.1\n"
        XCTAssertEqual(try RunLogs.parseMetrics(metrics, path: "m").count, 1)
        for bad in ["1,4,4,nan,0.5,0.5,0.5,0.5,100.0,0.1", "2,4,4,0.5,0.5,0.5,0.5,0.5,100.0,0.1",
                    "1,1e300,4,0.5,0.5,0.5,0.5,0.5,100.0,0.1", "1,4,9,0.5,0.5,0.5,0.5,0.5,100.0,0.1"] {
            let edited = metrics.replacingOccurrences(of: "1,4,4,0.5,0.5,0.5,0.5,0.5,100.0,0.1", with: bad)
            assertDataError(try RunLogs.parseMetrics(edited, path: "m"), contains: "line 2")
        }
    }

    // MARK: files

    func testAtomicWritesNeverFollowPlantedFilesAndLeaveNoTemporary() throws {
        let victim = "\(directory!)/victim"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
        // The old fixed temporary name, planted as a symlink to the victim.
        let target = "\(directory!)/x.png"
        try FileManager.default.createSymbolicLink(atPath: "\(directory!)/.x.png.tmp-\(getpid())", withDestinationPath: victim)
        try writeAtomically(Data("new".utf8), to: target)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious")
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "new")
        // The target itself a symlink: the rename replaces the link, the file it pointed to is untouched.
        let linked = "\(directory!)/linked.csv"
        try FileManager.default.createSymbolicLink(atPath: linked, withDestinationPath: victim)
        try writeAtomically(Data("row".utf8), to: linked)
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious")
        XCTAssertNil(try? FileManager.default.destinationOfSymbolicLink(atPath: linked))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o600, 0o600)
        XCTAssertEqual(mode & 0o022, 0, "no group or world write")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertFalse(names.contains { $0.contains(".pgan-tmp-") }, "\(names)")
        // A writer dropped without committing removes its temporary.
        do {
            let file = try AtomicFile(path: "\(directory!)/abandoned.bin")
            try file.append(Data([1, 2, 3]))
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: directory).contains { $0.contains("abandoned") })
    }

    func testRunDirectoryIsLockedAndCleansUpAfterKilledRuns() throws {
        let path = "\(directory!)/run"
        do {
            let first = try RunDirectory(path: path)
            XCTAssertThrowsError(try RunDirectory(path: path)) { error in
                XCTAssertTrue("\(error)".contains("is in use by another pgan run (PID \(getpid()))"), "\(error)")
            }
            withExtendedLifetime(first) {}
        }
        let stale = ["\(path)/.checkpoint.safetensors.pgan-tmp-Ab3dE6gH", "\(path)/samples/.epoch-0001.png.pgan-tmp-zzzzzzzz"]
        for file in stale { XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data([1]))) }
        let keep = "\(path)/notes.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: keep, contents: Data([1])))
        let second = try RunDirectory(path: path)
        for file in stale { XCTAssertFalse(FileManager.default.fileExists(atPath: file), file) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: keep))
        withExtendedLifetime(second) {}
        assertDataError(try RunDirectory(path: "\(keep)/run"), contains: "cannot create the output directory")
    }

    /// progress.png is rebuilt from the sample grids in the run directory, which anyone may have replaced.
    func testPNGHeadersThatPromiseHugeImagesAreRefused() throws {
        var png = [UInt8](GridImage(width: 4, height: 3, fill: 9).pngData())
        XCTAssertEqual(try GridImage(pngData: Data(png)).pixels, [UInt8](repeating: 9, count: 12))
        png.replaceSubrange(16..<20, with: [0x7F, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try GridImage(pngData: Data(png))) { XCTAssertTrue("\($0)".contains("not a pgan grid"), "\($0)") }
        png.replaceSubrange(8..<12, with: [0xFF, 0xFF, 0xFF, 0xF0])
        XCTAssertThrowsError(try GridImage(pngData: Data(png)))
    }

    func testNonFiniteStateIsFound() {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 1),
                                 executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        XCTAssertNil(trainer.firstNonFiniteState())
        trainer.discriminator.parameters[1234] = .nan
        XCTAssertEqual(trainer.firstNonFiniteState(), "the discriminator's weights")
        trainer.discriminator.parameters[1234] = 0
        trainer.generatorOptimizer.first[5] = -.infinity
        XCTAssertEqual(trainer.firstNonFiniteState(), "the generator optimizer's \(trainer.generatorOptimizer.slotNames[0])")
    }
}
