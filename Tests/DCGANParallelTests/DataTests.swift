import DCGANParallel
import Foundation
import TestSupport
import XCTest

final class DataTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("pgan-data-tests")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func write(_ bytes: [UInt8], _ name: String) -> String {
        let path = "\(directory!)/\(name)"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    func header(_ dimensions: [Int]) -> [UInt8] { IDXFile(dimensions: dimensions, bytes: []).encoded() }

    func testRealMNISTFiles() throws {
        let images = "\(sharedMNISTDirectory)/train-images-idx3-ubyte.gz", labels = "\(sharedMNISTDirectory)/train-labels-idx1-ubyte.gz"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: images), "shared MNIST not present")
        let zeros = try ImageDataset.load(imagesPath: images, labelsPath: labels, label: 0)
        XCTAssertEqual([zeros.count, zeros.height, zeros.width], [5923, 28, 28])
        let sevens = try ImageDataset.load(imagesPath: "\(sharedMNISTDirectory)/t10k-images-idx3-ubyte.gz",
                                           labelsPath: "\(sharedMNISTDirectory)/t10k-labels-idx1-ubyte.gz", label: 7)
        XCTAssertEqual(sevens.count, 1028)
        XCTAssertEqual(zeros.pixels.min(), -1)
        XCTAssertEqual(zeros.pixels.max(), 1)
        // The shipped default set is exactly these images.
        let builtIn = try ImageDataset.defaultZeros()
        XCTAssertEqual(builtIn.count, 5923)
        XCTAssertEqual(builtIn.checksum, zeros.checksum)
        XCTAssertEqual(builtIn.pixels, zeros.pixels)
    }

    func testRawAndGzipRoundTrip() throws {
        let file = IDXFile(dimensions: [2, 3, 2], bytes: [0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 127])
        let path = write(file.encoded(), "tiny.idx3-ubyte")
        let read = try IDXFile.read(path: path)
        XCTAssertEqual(read.dimensions, [2, 3, 2])
        XCTAssertEqual(read.bytes, file.bytes)
        let dataset = try ImageDataset.load(imagesPath: path, labelsPath: nil, label: nil)
        XCTAssertEqual(dataset.pixels[0], -1)
        XCTAssertEqual(dataset.pixels[1], 1)
        XCTAssertEqual(dataset.pixels[11], 127 / 127.5 - 1)
    }

    func testBadFilesGiveClearErrors() {
        let missing = "\(directory!)/missing.idx"
        assertDataError(try IDXFile.read(path: missing), contains: "no such file", path: missing)
        let magic = write([0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0], "magic.idx")
        assertDataError(try IDXFile.read(path: magic), contains: "not an IDX file (magic 0x89504e47)", path: magic)
        let type = write([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], "float.idx")
        assertDataError(try IDXFile.read(path: type), contains: "unsupported IDX element type 0x0d", path: type)
        let shortHeader = write([0, 0, 8, 3, 0, 0, 0, 2, 0, 0], "short.idx")
        assertDataError(try IDXFile.read(path: shortHeader), contains: "truncated IDX header", path: shortHeader)
        let tiny = write([0, 0], "tiny.idx")
        assertDataError(try IDXFile.read(path: tiny), contains: "truncated header", path: tiny)
        let shortData = write(header([2, 28, 28]) + [UInt8](repeating: 7, count: 1000), "data.idx")
        assertDataError(try IDXFile.read(path: shortData), contains: "truncated data: header promises 2×28×28 = 1568 bytes, file holds 1000",
                        path: shortData)
        let garbage = write([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "garbage.idx.gz")
        assertDataError(try IDXFile.read(path: garbage), contains: "not a valid gzip file", path: garbage)
        let images = write(header([3, 2, 2]) + [UInt8](repeating: 0, count: 12), "images.idx")
        let labels = write(header([2]) + [0, 1], "labels.idx")
        assertDataError(try ImageDataset.load(imagesPath: images, labelsPath: labels, label: 0),
                        contains: "holds 2 labels but \(images) holds 3 images", path: labels)
        let labels3 = write(header([3]) + [0, 1, 1], "labels3.idx")
        assertDataError(try ImageDataset.load(imagesPath: images, labelsPath: labels3, label: 5),
                        contains: "no image has label 5 (labels present: 0, 1)", path: labels3)
        XCTAssertEqual(try ImageDataset.load(imagesPath: images, labelsPath: labels3, label: 1).count, 2)
        assertDataError(try ImageDataset.load(imagesPath: labels3, labelsPath: nil, label: nil),
                        contains: "expected an image file", path: labels3)
        let empty = write(header([0, 28, 28]), "empty.idx")
        assertDataError(try ImageDataset.load(imagesPath: empty, labelsPath: nil, label: nil), contains: "holds no images",
                        path: empty)
    }

    func testTruncatedGzipIsAnError() throws {
        let file = IDXFile(dimensions: [4, 28, 28], bytes: [UInt8](repeating: 9, count: 4 * 784))
        let path = write(file.encoded(), "whole.idx")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-kf", path]
        try process.run()
        process.waitUntilExit()
        let compressed = try Data(contentsOf: URL(fileURLWithPath: path + ".gz"))
        XCTAssertEqual(try IDXFile.read(path: path + ".gz").bytes, file.bytes)
        let cut = write([UInt8](compressed.prefix(compressed.count / 2)), "cut.idx.gz")
        assertDataError(try IDXFile.read(path: cut), contains: "not a valid gzip file", path: cut)
    }
}

/// CIFAR-10/100 binary files and 4-dimensional IDX files: colour images, read into height × width × channels order.
final class ColourDataTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws { directory = try makeTemporaryDirectory("pgan-colour") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = "\(directory!)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testCIFAR10FileIsReadAsInterleavedColour() throws {
        let path = try write(cifarRecords(count: 25, hundred: false), "data_batch_1.bin")
        let all = try ImageDataset.load(imagesPath: path, labelsPath: nil, label: nil)
        XCTAssertEqual([all.count, all.height, all.width, all.channels], [25, 32, 32, 3])
        // Image 4, pixel (row 1, column 2) = plane offset 34: red, green, blue interleaved.
        let pixel = (4 * 1024 + 34) * 3
        XCTAssertEqual(Array(all.bytes[pixel..<(pixel + 3)]), [UInt8((28 + 34) % 256), UInt8((28 + 50 + 34) % 256), UInt8((28 + 100 + 34) % 256)])
        let cats = try ImageDataset.load(imagesPath: path, labelsPath: nil, label: 3)
        XCTAssertEqual(cats.count, 3)  // images 3, 13, 23
        XCTAssertEqual(cats.bytes[0], 21)  // image 3's first red byte: 3·7
        XCTAssertTrue(cats.source.hasSuffix("(class cat)"), cats.source)
        assertDataError(try ImageDataset.load(imagesPath: path, labelsPath: nil, label: 10), contains: "not a CIFAR-10 class (0–9)")
        assertDataError(try ImageDataset.load(imagesPath: path, labelsPath: path, label: 1), contains: "leave out --labels")
    }

    func testCIFAR100UsesTheFineLabelAndADirectoryReadsEveryTrainingBatch() throws {
        let hundred = try write(cifarRecords(count: 30, hundred: true), "train.bin")
        XCTAssertEqual(try ImageDataset.load(imagesPath: hundred, labelsPath: nil, label: 7).count, 3)
        XCTAssertEqual(CIFAR.kind(at: hundred), .cifar100)
        // A directory of CIFAR-10 batches: data_batch_2 after data_batch_1 (natural order, 10 after 9).
        let batches = "\(directory!)/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: batches, withIntermediateDirectories: true)
        try Data(cifarRecords(count: 4, hundred: false)).write(to: URL(fileURLWithPath: "\(batches)/data_batch_1.bin"))
        try Data(cifarRecords(count: 4, hundred: false, first: 4)).write(to: URL(fileURLWithPath: "\(batches)/data_batch_2.bin"))
        try Data(cifarRecords(count: 1, hundred: false, first: 99)).write(to: URL(fileURLWithPath: "\(batches)/test_batch.bin"))
        let both = try ImageDataset.load(imagesPath: batches, labelsPath: nil, label: nil)
        XCTAssertEqual(both.count, 8)
        XCTAssertEqual(both.bytes[5 * 3072], UInt8(5 * 7))
        XCTAssertEqual(CIFAR.kind(at: batches), .cifar10)
    }

    func testTruncatedAndOddCIFARFilesAreClearErrors() throws {
        var records = cifarRecords(count: 3, hundred: false)
        records.removeLast(100)
        let truncated = try write(records, "data_batch_1.bin")
        assertDataError(try ImageDataset.load(imagesPath: truncated, labelsPath: nil, label: nil), contains: "truncated?")
        let odd = try write([UInt8](repeating: 1, count: 5000), "mystery.bin")
        assertDataError(try ImageDataset.load(imagesPath: odd, labelsPath: nil, label: nil), contains: "not a CIFAR-10 or CIFAR-100")
        let empty = "\(directory!)/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        assertDataError(try ImageDataset.load(imagesPath: empty, labelsPath: nil, label: nil), contains: "without CIFAR training batches")
        let none = try write([], "data_batch_9.bin")
        assertDataError(try ImageDataset.load(imagesPath: none, labelsPath: nil, label: nil), contains: "truncated?")
    }

    func testFourDimensionalIDX() throws {
        let bytes = (0..<(2 * 4 * 4 * 3)).map { UInt8($0) }
        let path = try write(IDXFile(dimensions: [2, 4, 4, 3], bytes: bytes).encoded(), "colour.idx")
        let dataset = try ImageDataset.load(imagesPath: path, labelsPath: nil, label: nil)
        XCTAssertEqual([dataset.count, dataset.height, dataset.width, dataset.channels], [2, 4, 4, 3])
        XCTAssertEqual(dataset.bytes, bytes)
        let two = try write(IDXFile(dimensions: [1, 2, 2, 2], bytes: [UInt8](repeating: 0, count: 8)).encoded(), "two.idx")
        assertDataError(try ImageDataset.load(imagesPath: two, labelsPath: nil, label: nil), contains: "2 channels")
    }
}
