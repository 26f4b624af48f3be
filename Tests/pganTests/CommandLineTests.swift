import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

/// Runs the built `pgan` binary as a user would and checks the files it writes and the errors it gives.
final class CommandLineTests: XCTestCase {
    var directory: String!
    var tinyData: String!

    static let binary: String = {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [here, here.deletingLastPathComponent(), here.deletingLastPathComponent().deletingLastPathComponent()]
            .map { $0.appendingPathComponent("pgan").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    struct Result {
        let status: Int32
        let output: String
        let error: String
    }

    @discardableResult
    func pgan(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        // In the test's own directory: a default --out (pgan-run) must not meet a user's run in the working tree.
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["CI"] = "true"
        environment.merge(extra) { $1 }
        process.environment = environment
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile(), err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                      error: String(decoding: err, as: UTF8.self))
    }

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-cli")
        tinyData = try Self.writeTinyData(in: directory)
    }

    /// 64 real zeros as a small IDX file in `directory`: 4 steps per epoch at batch 16.
    static func writeTinyData(in directory: String) throws -> String {
        let zeros = try ImageDataset.defaultZeros().prefix(64)
        let file = IDXFile(dimensions: [64, 28, 28], bytes: zeros.pixels.map(pixelByte))
        let path = "\(directory)/tiny-images.idx"
        try Data(file.encoded()).write(to: URL(fileURLWithPath: path))
        return path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func assertPNG(_ path: String, width: Int, height: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let png = try bytes(path)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], file: file, line: line)
        func u32(_ o: Int) -> Int { Int(png[o]) << 24 | Int(png[o + 1]) << 16 | Int(png[o + 2]) << 8 | Int(png[o + 3]) }
        XCTAssertEqual(String(decoding: png[12..<16], as: UTF8.self), "IHDR", file: file, line: line)
        XCTAssertEqual([u32(16), u32(20)], [width, height], file: file, line: line)
        let decoded = try GridImage(pngData: Data(png))
        XCTAssertEqual(decoded.pixels.count, width * height, file: file, line: line)
    }

    /// The binary carries its default data and classifier (Sources/CBuiltInData): a copy of it alone in another
    /// directory trains on the built-in zeros and measures with the built-in classifier. It names no full Foundation
    /// library to load (FoundationEssentials only: ~6.5 MB less resident memory).
    func testBinaryRunsAloneWithItsBuiltInDataAndWithoutFoundation() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.binary))
        XCTAssertNil(bytes.range(of: Data("libFoundation.so\0".utf8)), "pgan links the full Foundation")
        XCTAssertNotNil(bytes.range(of: Data("libFoundationEssentials.so\0".utf8)), "the check above looks at the wrong bytes")
        let alone = "\(directory!)/alone/pgan"
        try FileManager.default.createDirectory(atPath: "\(directory!)/alone", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.binary, toPath: alone)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: alone)
        process.arguments = ["train", "--steps", "2", "--batch-size", "16", "--threads", "2", "--out", "\(directory!)/run"]
        process.environment = ["CI": "true"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("built-in MNIST training zeros") && text.contains("  FD "), text)
    }

    func testTrainThenSample() throws {
        let run = "\(directory!)/run"
        let train = try pgan(["train", "--data", tinyData, "--steps", "3", "--batch-size", "16", "--shards", "4",
                              "--threads", "2", "--out", run])
        XCTAssertEqual(train.status, 0, train.error)
        XCTAssertTrue(train.output.contains("pinning (worker → PU)"), train.output)
        XCTAssertTrue(train.output.contains("epoch   1  step      3"), train.output)
        let csv = try String(contentsOfFile: "\(run)/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.first.map(String.init), EpochSummary.csvHeader)
        XCTAssertEqual(csv.count, 2)
        let row = csv[1].split(separator: ",", omittingEmptySubsequences: false)
        XCTAssertEqual(row.count, 13)
        XCTAssertEqual(row[0...2].map(String.init), ["1", "3", "3"])
        for value in row[3...7] { XCTAssertTrue(Double(value).map { $0.isFinite && $0 >= 0 } ?? false, String(value)) }
        // 28×28 grey images: measured by the built-in classifier at the run's end; no class (all of --data's images).
        XCTAssertTrue(Double(row[10]).map { $0 > 0 } ?? false, "Fréchet distance \(row[10])")
        XCTAssertEqual(row[11], "", "no class rate for a run on every class")
        XCTAssertTrue(Double(row[12]).map { $0 > 0 } ?? false, "diversity \(row[12])")
        XCTAssertTrue(train.output.contains("  FD "), train.output)
        // 8×8 grid of 28×28 images, 2-pixel border, drawn at twice the size.
        let side = (8 * 30 + 2) * 2
        try assertPNG("\(run)/samples/epoch-0001.png", width: side, height: side)
        try assertPNG("\(run)/progress.png", width: (10 * 30 + 2) * 2, height: (30 + 2) * 2)
        let svg = try String(contentsOfFile: "\(run)/curves.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("G fooling rate") && svg.contains("<polyline"))

        let idx = "\(directory!)/samples.idx"
        let sample = try pgan(["sample", "--checkpoint", "\(run)/checkpoint.safetensors", "--count", "10", "--out", idx])
        XCTAssertEqual(sample.status, 0, sample.error)
        let idxBytes = try bytes(idx)
        XCTAssertEqual(Array(idxBytes.prefix(16)), [0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28])
        XCTAssertEqual(idxBytes.count, 16 + 10 * 784)
        let decoded = try IDXFile.read(path: idx)
        XCTAssertEqual(decoded.dimensions, [10, 28, 28])
        XCTAssertGreaterThan(Set(decoded.bytes).count, 10, "images are not blank")
        let png = "\(directory!)/samples.png"
        XCTAssertEqual(try pgan(["sample", "--checkpoint", "\(run)/checkpoint.safetensors", "--count", "10", "--out", png]).status, 0)
        try assertPNG(png, width: (4 * 30 + 2) * 2, height: (3 * 30 + 2) * 2)
        // Same seed, same images.
        let again = "\(directory!)/again.idx"
        XCTAssertEqual(try pgan(["sample", "--checkpoint", "\(run)/checkpoint.safetensors", "--count", "10", "--out", again]).status, 0)
        XCTAssertEqual(try bytes(again), idxBytes)
    }

    func testThreadCountDoesNotChangeTheCheckpointBytes() throws {
        for threads in ["1", "3"] {
            let result = try pgan(["train", "--data", tinyData, "--steps", "3", "--batch-size", "16", "--shards", "4",
                                   "--threads", threads, "--out", "\(directory!)/threads-\(threads)", "--quiet"])
            XCTAssertEqual(result.status, 0, result.error)
            XCTAssertEqual(result.output, "")
        }
        XCTAssertEqual(try bytes("\(directory!)/threads-1/checkpoint.safetensors"),
                       try bytes("\(directory!)/threads-3/checkpoint.safetensors"))
    }

    func testResumeIsByteIdenticalToAnUninterruptedRun() throws {
        let common: [String] = ["--data", tinyData!, "--batch-size", "16", "--shards", "4", "--quiet"]
        let whole = "\(directory!)/whole", split = "\(directory!)/split"
        XCTAssertEqual(try pgan(["train", "--epochs", "4", "--threads", "2", "--out", whole] + common).status, 0)
        XCTAssertEqual(try pgan(["train", "--epochs", "2", "--threads", "1", "--out", split] + common).status, 0)
        let resumed = try pgan(["train", "--epochs", "4", "--threads", "2", "--resume", split, "--data", tinyData!, "--quiet"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertEqual(try bytes("\(whole)/checkpoint.safetensors"), try bytes("\(split)/checkpoint.safetensors"))
        let wholeRows = try String(contentsOfFile: "\(whole)/metrics.csv", encoding: .utf8).split(separator: "\n")
        let splitRows = try String(contentsOfFile: "\(split)/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(splitRows.count, 5)
        // Same losses and accuracies per epoch (the speed columns differ).
        XCTAssertEqual(wholeRows.map { $0.split(separator: ",").prefix(8) }, splitRows.map { $0.split(separator: ",").prefix(8) })
        try assertPNG("\(split)/progress.png", width: (10 * 30 + 2) * 2, height: (4 * 30 + 2) * 2)
    }

    func assertFails(_ arguments: [String], status: Int32, mentions texts: [String],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try pgan(arguments)
        XCTAssertEqual(result.status, status, "\(arguments): \(result.error)", file: file, line: line)
        let lines = result.error.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("pgan: error: ") ?? false, result.error, file: file, line: line)
        for text in texts {
            XCTAssertTrue(lines.first?.contains(text) ?? false, "'\(lines.first ?? "")' lacks '\(text)'", file: file, line: line)
        }
        XCTAssertFalse(result.error.contains("Fatal error") || result.error.contains("Stack dump"), file: file, line: line)
    }

    func testUsageErrorsExitWithTwo() throws {
        try assertFails(["train", "--threads", "0"], status: 2, mentions: ["--threads", "0"])
        try assertFails(["train", "--threads", "5000"], status: 2, mentions: ["--threads", "5000"])
        try assertFails(["train", "--batch-size", "8", "--shards", "16"], status: 2, mentions: ["--batch-size 8", "--shards 16"])
        try assertFails(["train", "--optimizer", "sgd"], status: 2, mentions: ["sgd"])
        try assertFails(["train", "--epochs", "0"], status: 2, mentions: ["--epochs"])
        try assertFails(["train", "--learning-rate", "-1"], status: 2, mentions: ["--learning-rate"])
        try assertFails(["train", "--no-such-flag"], status: 2, mentions: ["--no-such-flag"])
        try assertFails(["train", "--digit", "3"], status: 2, mentions: ["digit 3"])
        try assertFails(["sample", "--checkpoint", "x", "--out", "y.jpg"], status: 2, mentions: ["y.jpg"])
        try assertFails(["bench", "--threads", "1,zero"], status: 2, mentions: ["1,zero"])
        try assertFails(["bench", "--phases", "--format", "csv"], status: 2, mentions: ["--phases", "csv"])
    }

    func testFailedRunsExitWithOneAndWriteNothing() throws {
        let missing = "\(directory!)/missing.idx"
        try assertFails(["train", "--data", missing, "--out", "\(directory!)/a"], status: 1, mentions: [missing, "no such file"])
        let notIDX = "\(directory!)/notes.txt"
        try Data("hello, world".utf8).write(to: URL(fileURLWithPath: notIDX))
        try assertFails(["train", "--data", notIDX, "--out", "\(directory!)/b"], status: 1, mentions: [notIDX, "not an IDX file"])
        let labels = "\(directory!)/labels.idx"
        try Data(IDXFile(dimensions: [3], bytes: [0, 1, 2]).encoded()).write(to: URL(fileURLWithPath: labels))
        try assertFails(["train", "--data", tinyData, "--labels", labels, "--digit", "0", "--out", "\(directory!)/c"],
                        status: 1, mentions: [labels, "3 labels", "64 images"])
        let small = "\(directory!)/small.idx"
        try Data(IDXFile(dimensions: [40, 14, 14], bytes: [UInt8](repeating: 3, count: 40 * 196)).encoded())
            .write(to: URL(fileURLWithPath: small))
        try assertFails(["train", "--data", small, "--batch-size", "16", "--shards", "4", "--out", "\(directory!)/d"],
                        status: 1, mentions: [small, "14×14", "28×28"])
        let blocker = "\(directory!)/file"
        try Data().write(to: URL(fileURLWithPath: blocker))
        try assertFails(["train", "--data", tinyData, "--batch-size", "16", "--shards", "4", "--steps", "1", "--out", "\(blocker)/run"],
                        status: 1, mentions: ["\(blocker)/run", "output directory"])
        let corrupt = "\(directory!)/corrupt.safetensors"
        try Data([7, 0, 0, 0, 0, 0, 0, 0, 123, 34]).write(to: URL(fileURLWithPath: corrupt))
        try assertFails(["sample", "--checkpoint", corrupt, "--out", "\(directory!)/s.png"], status: 1, mentions: [corrupt, "not a valid safetensors"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory!)/s.png"))
        try assertFails(["train", "--resume", "\(directory!)/nowhere"], status: 1, mentions: ["nowhere", "no run directory to resume", "no such directory"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory!)/nowhere"), "a mistyped --resume creates nothing")
        try FileManager.default.createDirectory(atPath: "\(directory!)/empty-run", withIntermediateDirectories: true)
        try assertFails(["train", "--resume", "\(directory!)/empty-run"], status: 1, mentions: ["empty-run/checkpoint.safetensors", "no such file"])
    }

    /// Colour: a CIFAR-10 file trains the seed DCGAN at 32×32×3 (chosen from the data), writes RGB grids, resumes with
    /// no flags and samples in colour, as a PNG or a 4-dimensional IDX file.
    func testCIFARTrainsInColour() throws {
        let cifar = "\(directory!)/data_batch_1.bin"
        try Data(cifarRecords(count: 64, hundred: false)).write(to: URL(fileURLWithPath: cifar))
        let first = try pgan(["train", "--data", cifar, "--batch-size", "16", "--shards", "4", "--steps", "3",
                              "--threads", "2", "--out", "colour"])
        XCTAssertEqual(first.status, 0, first.error)
        let run = "\(directory!)/colour"
        let checkpoint = try SafeTensors.read(path: "\(run)/checkpoint.safetensors")
        XCTAssertEqual(checkpoint.metadataValue("model"), "seed-dcgan-32x32x3")
        for (picture, columns) in [("samples/epoch-0001.png", 8), ("progress.png", 10)] {
            let grid = try GridImage(pngData: try Data(contentsOf: URL(fileURLWithPath: "\(run)/\(picture)")))
            XCTAssertEqual(grid.channels, 3, picture)
            XCTAssertEqual(grid.width, (columns * (32 + 2) + 2) * 2, picture)
        }
        let resumed = try pgan(["train", "--resume", run, "--epochs", "2", "--threads", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        let png = try pgan(["sample", "--checkpoint", "\(run)/checkpoint.safetensors", "--count", "4", "--out", "four.png"])
        XCTAssertEqual(png.status, 0, png.error)
        let four = try GridImage(pngData: try Data(contentsOf: URL(fileURLWithPath: "\(directory!)/four.png")))
        XCTAssertEqual(four.channels, 3)
        let idx = try pgan(["sample", "--checkpoint", "\(run)/checkpoint.safetensors", "--count", "5", "--out", "five.idx"])
        XCTAssertEqual(idx.status, 0, idx.error)
        let file = try IDXFile.read(path: "\(directory!)/five.idx")
        XCTAssertEqual(file.dimensions, [5, 32, 32, 3])
        // Trained on cats only, by name.
        let cats = try pgan(["train", "--data", cifar, "--class", "cat", "--batch-size", "4", "--shards", "2", "--steps", "1",
                             "--out", "cats"])
        XCTAssertEqual(cats.status, 0, cats.error)
        XCTAssertTrue(cats.output.contains("(class cat)"), cats.output)
    }

    /// `--model dcgan`: a folder of colour images at 16×16 (narrow widths, so it stays quick), the model named in the
    /// checkpoint, a colour sample and a resume without flags; MNIST-sized data taken to 32×32; flags it cannot honour
    /// refused with what it supports.
    func testDCGANModelTrainsSamplesAndResumes() throws {
        for index in 0..<8 {
            let pixels = (0..<(20 * 20 * 3)).map { UInt8(($0 * 5 + index * 29) % 256) }
            try FileManager.default.createDirectory(atPath: "\(directory!)/colours", withIntermediateDirectories: true)
            try Data(ImageFiles.png(width: 20, height: 20, colour: true, samples8: pixels))
                .write(to: URL(fileURLWithPath: "\(directory!)/colours/\(index).png"))
        }
        let run = try pgan(["train", "--model", "dcgan", "--data", "colours", "--image-size", "16", "--generator-width", "4",
                            "--discriminator-width", "6", "--batch-size", "4", "--shards", "2", "--steps", "3",
                            "--out", "dcgan-run"])
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("model: dcgan-16x16x3-g4-d6") && run.output.contains("optimizer adam lr 0.0002"),
                      run.output)
        let checkpoint = "\(directory!)/dcgan-run/checkpoint.safetensors"
        XCTAssertEqual(try SafeTensors.read(path: checkpoint).metadataValue("model"), "dcgan-16x16x3-g4-d6")
        let sample = try pgan(["sample", "--checkpoint", checkpoint, "--count", "4", "--out", "dcgan.png"])
        XCTAssertEqual(sample.status, 0, sample.error)
        let grid = try GridImage(pngData: try Data(contentsOf: URL(fileURLWithPath: "\(directory!)/dcgan.png")))
        XCTAssertEqual(grid.channels, 3)
        let resumed = try pgan(["train", "--resume", "dcgan-run", "--steps", "5"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertEqual(try SafeTensors.read(path: checkpoint).metadataValue("step"), "5")
        try assertFails(["train", "--resume", "dcgan-run", "--model", "seed", "--steps", "6"], status: 2,
                        mentions: ["--model seed (the run has dcgan)"])
        try assertFails(["train", "--resume", "dcgan-run", "--discriminator-width", "8", "--steps", "6"], status: 2,
                        mentions: ["--discriminator-width 8", "dcgan-16x16x3-g4-d6"])
        // MNIST-sized IDX data goes to the next side dcgan is built for.
        let idx = try pgan(["train", "--model", "dcgan", "--data", tinyData, "--generator-width", "2", "--discriminator-width", "2",
                            "--batch-size", "4", "--shards", "2", "--steps", "1", "--out", "dcgan-idx"])
        XCTAssertEqual(idx.status, 0, idx.error)
        XCTAssertTrue(idx.output.contains("resized to 32×32") && idx.output.contains("dcgan-32x32x1-g2-d2"), idx.output)
        try assertFails(["train", "--model", "dcgan", "--image-size", "28"], status: 2,
                        mentions: ["--image-size must be 16, 32, 64 or 128", "--model dcgan"])
        try assertFails(["train", "--generator-width", "8"], status: 2, mentions: ["--generator-width sets a width of --model dcgan"])
        try assertFails(["train", "--model", "dcgan", "--discriminator-width", "5000"], status: 2,
                        mentions: ["--discriminator-width must be 1–1024 (got 5000)"])
        try assertFails(["train", "--model", "gan"], status: 2, mentions: ["--model"])
        try assertFails(["bench", "--model", "dcgan", "--image-size", "48"], status: 2,
                        mentions: ["48×48×1", "16×16, 32×32, 64×64, 128×128"])
    }

    /// `pgan classifier train` on a tiny labelled IDX set, `pgan eval` of a run with it and with the built-in one, a
    /// run keeping a moving average (`--ema`) that resumes and samples with it, and the flags' errors.
    func testClassifierEvalAndMovingAverage() throws {
        let labels = IDXFile(dimensions: [64], bytes: (0..<64).map { UInt8($0 % 2) })
        try Data(labels.encoded()).write(to: URL(fileURLWithPath: "\(directory!)/tiny-labels.idx"))
        let trained = try pgan(["classifier", "train", "--data", tinyData, "--labels", "tiny-labels.idx", "--epochs", "1",
                                "--batch-size", "16", "--shards", "4", "--test-data", tinyData, "--test-labels",
                                "tiny-labels.idx", "--out", "tiny.safetensors"])
        XCTAssertEqual(trained.status, 0, trained.error)
        XCTAssertTrue(trained.output.contains("test accuracy") && trained.output.contains("classifier-28x28x1-2"), trained.output)
        let run = try pgan(["train", "--steps", "4", "--batch-size", "16", "--shards", "4", "--ema", "0.99",
                            "--classifier", "tiny.safetensors", "--out", "ema-run"])
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("moving average of the generator: decay 0.99") && run.output.contains("  FD "), run.output)
        let checkpoint = "\(directory!)/ema-run/checkpoint.safetensors"
        let file = try SafeTensors.read(path: checkpoint)
        XCTAssertEqual(file.metadataValue("ema_decay"), "0.99")
        XCTAssertNotNil(file.tensor("ema.generator.dense.kernel"))
        let resumed = try pgan(["train", "--resume", "ema-run", "--steps", "6"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        try assertFails(["train", "--resume", "ema-run", "--ema", "0.5", "--steps", "8"], status: 2, mentions: ["--ema 0.5 (the run has 0.99)"])
        let eval = try pgan(["eval", "--checkpoint", checkpoint, "--count", "50"])
        XCTAssertEqual(eval.status, 0, eval.error)
        for text in ["EMA generator", "Fréchet distance", "real against real", "class rate", "diversity"] {
            XCTAssertTrue(eval.output.contains(text), "\(text): \(eval.output)")
        }
        let withTiny = try pgan(["eval", "--checkpoint", checkpoint, "--count", "20", "--classifier", "tiny.safetensors"])
        XCTAssertEqual(withTiny.status, 0, withTiny.error)
        XCTAssertTrue(withTiny.output.contains("classifier-28x28x1-2"), withTiny.output)
        try assertFails(["train", "--ema", "1.5", "--steps", "1"], status: 2, mentions: ["--ema must be a decay between 0 and 1"])
        try assertFails(["train", "--eval-every", "-1"], status: 2, mentions: ["--eval-every"])
        try assertFails(["eval", "--checkpoint", checkpoint, "--count", "1"], status: 2, mentions: ["--count must be 2–100000"])
        try assertFails(["eval", "--checkpoint", checkpoint, "--classifier", tinyData], status: 1, mentions: [tinyData])
        try assertFails(["classifier", "train", "--data", tinyData, "--out", "x.safetensors"], status: 1,
                        mentions: ["--labels"])
        try assertFails(["classifier", "train", "--data", tinyData, "--labels", "tiny-labels.idx", "--out", "x.bin"],
                        status: 2, mentions: ["--out x.bin", ".safetensors"])
    }

    /// A folder of PNG and JPEG images in class folders trains, by class name, at the side asked for; the run resumes
    /// reading them the same way; a flag it cannot honour is one clear error.
    func testImageFolderTrains() throws {
        for index in 0..<12 {
            let pixels = (0..<(40 * 30 * 3)).map { UInt8(($0 * 3 + index * 17) % 256) }
            let bytes = index % 2 == 0 ? ImageFiles.png(width: 40, height: 30, colour: true, samples8: pixels)
                : ImageFiles.jpeg(width: 40, height: 30, colour: true, pixels: pixels)
            let folder = "\(directory!)/pictures/\(index < 8 ? "sunsets" : "boats")"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/\(index).\(index % 2 == 0 ? "png" : "jpg")"))
        }
        let run = try pgan(["train", "--data", "pictures", "--class", "sunsets", "--image-size", "28", "--batch-size", "4",
                            "--shards", "2", "--steps", "2", "--out", "folder-run"])
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("8 images from") && run.output.contains("(class sunsets)"), run.output)
        let checkpoint = try SafeTensors.read(path: "\(directory!)/folder-run/checkpoint.safetensors")
        XCTAssertEqual(checkpoint.metadataValue("model"), "seed-dcgan-28x28x3")
        let resumed = try pgan(["train", "--resume", "folder-run", "--steps", "4"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        // An unreadable image: a warning counting it, or with --strict an error naming it.
        try Data("not a picture".utf8).write(to: URL(fileURLWithPath: "\(directory!)/pictures/boats/broken.png"))
        let warned = try pgan(["train", "--data", "pictures", "--batch-size", "4", "--shards", "2", "--steps", "1",
                               "--out", "warned"])
        XCTAssertEqual(warned.status, 0, warned.error)
        XCTAssertTrue(warned.error.contains("pgan: warning: skipped 1 of 13 images") && warned.error.contains("broken.png"), warned.error)
        try assertFails(["train", "--data", "pictures", "--strict", "--steps", "1", "--out", "strict"], status: 1,
                        mentions: ["broken.png", "(--strict)"])
        try assertFails(["train", "--data", "pictures", "--image-size", "30"], status: 2, mentions: ["--image-size", "28 or 32"])
        try assertFails(["train", "--data", "pictures", "--class", "planes"], status: 2, mentions: ["no class folder planes", "boats, sunsets"])
        // IDX is resized too (the same area filter).
        let resized = try pgan(["train", "--data", tinyData, "--image-size", "32", "--batch-size", "4", "--shards", "2",
                                "--steps", "1", "--out", "resized"])
        XCTAssertEqual(resized.status, 0, resized.error)
        XCTAssertEqual(try SafeTensors.read(path: "\(directory!)/resized/checkpoint.safetensors").metadataValue("model"),
                       "seed-dcgan-32x32x1")
    }

    /// A process bound to some cores (by taskset, numactl or mpirun) sees, pins to and counts only those; unbound
    /// ranks of an MPI job on one machine (Open MPI's local rank and size) split the cores between them.
    func testTopologyKeepsToTheProcessesCores() throws {
        let topology = Topology.shared
        guard topology.coreCount >= 2, topology.processBinding == nil, topology.unavailableReason == nil else {
            throw XCTSkip("needs an unbound process on a machine of 2 or more cores")
        }
        let lastCore = try XCTUnwrap(topology.coresProcessingUnits.last)
        let saved = try XCTUnwrap(topology.currentThreadBinding())
        XCTAssertTrue(topology.bindCurrentThread(toProcessingUnits: lastCore))
        defer { topology.bindCurrentThread(toProcessingUnits: saved) }
        // The child inherits the spawning thread's binding.
        let bound = try pgan(["topology"])
        XCTAssertEqual(bound.status, 0, bound.error)
        XCTAssertTrue(bound.output.contains("1 core,") && bound.output.contains("(bound by its launcher)"), bound.output)
        XCTAssertTrue(bound.output.contains("worker 0 → PU \(lastCore[0]) "), bound.output)
        XCTAssertTrue(topology.bindCurrentThread(toProcessingUnits: saved))

        let second = try pgan(["topology"], environment: ["OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"])
        XCTAssertEqual(second.status, 0, second.error)
        XCTAssertTrue(second.output.contains("\(topology.coreCount - topology.coreCount / 2) core"), second.output)
        XCTAssertTrue(second.output.contains("share 2 of 2 of this machine's cores"), second.output)
        XCTAssertTrue(second.output.contains("worker 0 → PU \(topology.coresProcessingUnits[topology.coreCount / 2][0]) "), second.output)
    }

    /// A pgan built without MPI, started by mpirun as one of several processes, would train alone N times over in
    /// one directory: it refuses, naming the build command.
    func testWithoutTheMPITraitSeveralRanksAreRefused() throws {
        #if MPI
        throw XCTSkip("this pgan is built with MPI")
        #else
        let result = try pgan(["train", "--steps", "1", "--out", "refused"], environment: ["OMPI_COMM_WORLD_SIZE": "2"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("built without MPI") && result.error.contains("--traits MPI"), result.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory!)/refused"))
        #endif
    }

    /// Sampling is one process's work: under mpirun every rank would write the same file.
    func testSampleRefusesToRunAsSeveralRanks() throws {
        let result = try pgan(["sample", "--checkpoint", "none.safetensors", "--out", "x.png"],
                              environment: ["OMPI_COMM_WORLD_SIZE": "3"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("pgan sample runs in one process"), result.error)
    }

    func testTopologyAndBench() throws {
        let topology = try pgan(["topology", "--threads", "3"])
        XCTAssertEqual(topology.status, 0, topology.error)
        XCTAssertTrue(topology.output.contains("worker 2 → PU"), topology.output)
        XCTAssertTrue(topology.output.contains("topology: "), topology.output)
        let bench = try pgan(["bench", "--threads", "1,2", "--batch-size", "16", "--shards", "4", "--steps", "1",
                              "--warmup", "0", "--repeats", "1", "--format", "json"])
        XCTAssertEqual(bench.status, 0, bench.error)
        let points = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bench.output.utf8)) as? [[String: Any]])
        XCTAssertEqual(points.count, 2)
        for key in ["threads", "batch_size", "shards", "images_per_second", "speedup", "efficiency", "gflops", "peak_gflops", "peak_fraction", "oversubscribed"] {
            XCTAssertNotNil(points[0][key], key)
        }
        XCTAssertEqual(points[0]["speedup"] as? Double, 1)
        XCTAssertGreaterThan(points[1]["images_per_second"] as? Double ?? 0, 0)
        XCTAssertNil(points[0]["phases"], "phases only when asked for")

        let traced = try pgan(["bench", "--threads", "2", "--batch-size", "16", "--shards", "4", "--steps", "2",
                               "--warmup", "0", "--repeats", "1", "--format", "json", "--phases"])
        XCTAssertEqual(traced.status, 0, traced.error)
        let tracedPoints = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(traced.output.utf8)) as? [[String: Any]])
        let phases = try XCTUnwrap(tracedPoints.first?["phases"] as? [String: Any])
        XCTAssertEqual(phases["steps"] as? Int, 2)
        let perStep = try XCTUnwrap(phases["per_step"] as? [[String: Any]])
        // Every phase of the step, each with its item count: 4 shards in the D phase, the serial BatchNorm steps.
        let labels = perStep.compactMap { $0["label"] as? String }
        XCTAssertEqual(labels.first, "real images, optimizer and inference-norm set-up")
        XCTAssertEqual(labels.last, "metrics")
        XCTAssertEqual(perStep.first { ($0["label"] as? String)?.hasPrefix("D phase") == true }?["items"] as? Int, 4)
        XCTAssertEqual(perStep.filter { $0["serial"] as? Bool == true }.count, 7)
        let busy = perStep.reduce(0.0) { $0 + ($1["busy_ms"] as? Double ?? 0) }
        let wall = try XCTUnwrap(phases["wall_ms_per_step"] as? Double)
        XCTAssertGreaterThan(busy, 0)
        XCTAssertLessThanOrEqual(busy, 2 * wall * 1.001, "two workers cannot do more than twice the wall time of work")
        let projected = try XCTUnwrap(phases["projected_speedup"] as? [String: Double])
        XCTAssertEqual(Set(projected.keys), ["2", "4", "8", "16", "32"])
        // 4 shards: no phase made of shard items can use more than 4 workers.
        XCTAssertLessThanOrEqual(projected["16"] ?? 99, 4.5)
        XCTAssertGreaterThan(projected["2"] ?? 0, 1.2)
    }

    /// Absurd flags fail at once with one line: no trap, no allocation sized by the flag.
    func testAbsurdFlagsFailFast() throws {
        // A run already in the default directory (as after the quick start) must not hide what is wrong with a flag.
        XCTAssertEqual(try pgan(["train", "--data", tinyData, "--batch-size", "16", "--shards", "4", "--steps", "1",
                                 "--quiet"]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory!)/pgan-run/checkpoint.safetensors"))
        try assertFails(["train", "--digit", "3"], status: 2, mentions: ["digit 3"])
        try assertFails(["train", "--epochs", "922337203685477580"], status: 2, mentions: ["--epochs 922337203685477580"])
        try assertFails(["train", "--steps", "922337203685477580"], status: 2, mentions: ["--steps"])
        try assertFails(["train", "--batch-size", "100000"], status: 2, mentions: ["--batch-size", "100000"])
        try assertFails(["train", "--shards", "5000", "--batch-size", "8000"], status: 2, mentions: ["--shards", "5000"])
        // Larger than the data set: said before any trainer memory is allocated (it took 3.3 GB).
        let started = Date()
        try assertFails(["train", "--batch-size", "20000", "--shards", "16", "--out", "\(directory!)/big"], status: 1,
                        mentions: ["5923 images, fewer than one batch of 20000"])
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        try assertFails(["sample", "--checkpoint", "x", "--count", "1000000000", "--out", "\(directory!)/x.idx"],
                        status: 2, mentions: ["--count", "1000000000"])
        try assertFails(["sample", "--checkpoint", "x", "--count", "20000", "--out", "\(directory!)/x.png"],
                        status: 2, mentions: ["--count", "a PNG grid"])
        try assertFails(["train", "--out", ""], status: 2, mentions: ["--out"])
        try assertFails(["train", "--data", tinyData, "--labels", tinyData], status: 2, mentions: ["--labels", "--class"])
        try assertFails(["train", "--data", tinyData, "--class", "dragon"], status: 2, mentions: ["--class dragon", "named classes", "label number"])
        try assertFails(["train", "--class", "cat"], status: 2, mentions: ["--class cat", "give --data"])
        try assertFails(["train", "--class", "3", "--digit", "3"], status: 2, mentions: ["--class or --digit"])
        try assertFails(["train", "--learning-rate", "-1"], status: 2, mentions: ["--learning-rate must be a positive number"])
        try assertFails(["train", "--learning-rate", "nan"], status: 2, mentions: ["--learning-rate"])
        try assertFails(["bench", "--scheduler", ""], status: 2, mentions: ["--scheduler"])
        try assertFails(["bench", "--threads", "1,,2"], status: 2, mentions: ["--threads"])
        try assertFails(["bench", "--steps", "1000000000000"], status: 2, mentions: ["--steps must be 1–100000"])
        try assertFails(["topology", "--synthetic", "core:zero"], status: 2, mentions: ["--synthetic", "core:zero"])
        // The output directory is checked before the checkpoint is even read.
        try assertFails(["sample", "--checkpoint", "missing.safetensors", "--out", "\(directory!)/nowhere/x.png"],
                        status: 1, mentions: ["nowhere", "does not exist"])
    }

    func testDivergingTrainingStopsWithoutWritingACheckpoint() throws {
        let run = "\(directory!)/diverged"
        let result = try pgan(["train", "--data", tinyData, "--batch-size", "16", "--shards", "4", "--epochs", "2",
                               "--learning-rate", "1e30", "--out", run, "--quiet"])
        XCTAssertEqual(result.status, 1, result.error)
        XCTAssertTrue(result.error.hasPrefix("pgan: error: training diverged at step 1: "), result.error)
        XCTAssertTrue(result.error.contains("no checkpoint was written"), result.error)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/checkpoint.safetensors"))
    }

    /// `--resume DIR` alone continues a run on other data with its own settings and target; flags that would change
    /// the results are refused with both values; --out and --overwrite protect runs.
    func testResumeNeedsNothingElseAndRefusesContradictions() throws {
        let settings = ["--data", tinyData!, "--batch-size", "16", "--shards", "4", "--seed", "7", "--optimizer", "adam",
                        "--quiet"]
        let whole = "\(directory!)/whole", split = "\(directory!)/split"
        XCTAssertEqual(try pgan(["train", "--steps", "10", "--out", whole] + settings).status, 0)
        XCTAssertEqual(try pgan(["train", "--steps", "10", "--out", split] + settings).status, 0)
        try assertFails(["train", "--out", split, "--steps", "2"] + settings, status: 2,
                        mentions: ["already holds a run (checkpoint at step 10)", "--resume", "--overwrite"])
        try assertFails(["train", "--resume", split, "--seed", "8", "--optimizer", "rmsprop"], status: 2,
                        mentions: ["--seed 8 (the run has 7)", "--optimizer rmsprop (the run has adam)"])
        try assertFails(["train", "--resume", split, "--data", "\(directory!)/other.idx"], status: 2,
                        mentions: ["contradict the run in"])
        try assertFails(["train", "--resume", split, "--out", whole], status: 2, mentions: ["--out", "--resume"])
        // A run to step 6, resumed to 10 with no flag but the target, equals the run that went to 10 at once.
        let short = "\(directory!)/short"
        XCTAssertEqual(try pgan(["train", "--steps", "6", "--out", short] + settings).status, 0)
        let resumed = try pgan(["train", "--resume", short, "--steps", "10"])
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertTrue(resumed.output.contains("resuming at step 6 of 10"), resumed.output)
        XCTAssertEqual(try bytes("\(short)/checkpoint.safetensors"), try bytes("\(whole)/checkpoint.safetensors"))
        XCTAssertEqual(try bytes("\(short)/history.csv"), try bytes("\(whole)/history.csv"))
        let again = try pgan(["train", "--resume", short])
        XCTAssertTrue(again.output.contains("nothing to do: the checkpoint is at step 10"), again.output)
        // --overwrite starts over and removes the old run's files.
        XCTAssertEqual(try pgan(["train", "--out", short, "--overwrite", "--steps", "2"] + settings).status, 0)
        XCTAssertEqual(try String(contentsOfFile: "\(short)/history.csv", encoding: .utf8).split(separator: "\n").count, 3)
    }

    func testASecondRunOnTheSameDirectoryFailsAtOnceAndCtrlCStopsCleanly() throws {
        let run = "\(directory!)/busy"
        let first = Process()
        first.executableURL = URL(fileURLWithPath: Self.binary)
        first.arguments = ["train", "--data", tinyData, "--batch-size", "16", "--shards", "4", "--epochs", "1000",
                           "--threads", "1", "--out", run, "--quiet"]
        let errors = Pipe()
        first.standardError = errors
        try first.run()
        while !FileManager.default.fileExists(atPath: "\(run)/checkpoint.safetensors") && first.isRunning { usleep(10_000) }
        try assertFails(["train", "--data", tinyData, "--batch-size", "16", "--shards", "4", "--out", run, "--overwrite"],
                        status: 1, mentions: [run, "in use by another pgan run (PID \(first.processIdentifier))"])
        try assertFails(["train", "--resume", run], status: 1, mentions: ["PID \(first.processIdentifier)"])
        kill(first.processIdentifier, SIGINT)
        first.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(first.terminationStatus, 130, message)
        XCTAssertTrue(message.contains("Continue with: pgan train --resume \(run)"), message)
        let names = try FileManager.default.contentsOfDirectory(atPath: run)
        XCTAssertFalse(names.contains { $0.contains("pgan-tmp") }, "\(names)")
        let step = try SafeTensors.read(path: "\(run)/checkpoint.safetensors").metadataValue("step").flatMap(Int.init)
        let rows = try String(contentsOfFile: "\(run)/history.csv", encoding: .utf8).split(separator: "\n").count - 1
        XCTAssertEqual(step, rows, "the checkpoint and history.csv end at the same step")
    }
}
