@testable import DCGANParallel
import Foundation
import TestSupport
import XCTest

/// Folders of PNG and JPEG images: every PNG form users bring read pixel for pixel, JPEGs within the codec's error,
/// centre crops and the area filter, class folders, unreadable files skipped or (--strict) refused, the same bytes on
/// every load.
final class ImageFolderTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws { directory = try makeTemporaryDirectory("pgan-folder") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func put(_ bytes: [UInt8], _ relative: String) throws {
        let path = "\(directory!)/\(relative)"
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func load(_ relative: String = "", label: Int? = nil, side: Int? = nil, strict: Bool = false,
              warnings: inout [String]) throws -> ImageDataset {
        var collected: [String] = []
        defer { warnings = collected }
        return try ImageFolder.load(path: "\(directory!)/\(relative)", label: label, side: side, strict: strict) {
            collected.append($0)
        }
    }

    func load(_ relative: String = "", label: Int? = nil, side: Int? = nil) throws -> ImageDataset {
        var warnings: [String] = []
        let dataset = try load(relative, label: label, side: side, warnings: &warnings)
        XCTAssertEqual(warnings, [])
        return dataset
    }

    /// 28×28 pixels, value (x·9 + y·5 + c·40) mod 256 for channel c.
    func pattern(side: Int, channels: Int) -> [UInt8] {
        (0..<(side * side * channels)).map { i in
            let p = i / channels, c = i % channels
            return UInt8((p % side * 9 + p / side * 5 + c * 40) % 256)
        }
    }

    func testEveryPNGFormIsReadPixelForPixel() throws {
        let grey = pattern(side: 28, channels: 1), rgb = pattern(side: 28, channels: 3)
        try put(ImageFiles.png(width: 28, height: 28, colour: false, samples8: grey), "grey/a.png")
        XCTAssertEqual(try load("grey", side: 28).bytes, grey)
        try put(ImageFiles.png(width: 28, height: 28, colour: true, samples8: rgb), "rgb/a.png")
        let colour = try load("rgb", side: 28)
        XCTAssertEqual([colour.channels, colour.height], [3, 28])
        XCTAssertEqual(colour.bytes, rgb)
        // Alpha is dropped, the stored colour kept (also where it is fully transparent).
        var rgba: [UInt8] = [], ga: [UInt8] = []
        for p in 0..<(28 * 28) {
            rgba += rgb[(3 * p)..<(3 * p + 3)] + [UInt8(p % 2 == 0 ? 0 : 200)]
            ga += [grey[p], UInt8(p % 3 == 0 ? 0 : 255)]
        }
        try put(ImageFiles.png(width: 28, height: 28, colour: true, alpha: true, samples8: rgba), "rgba/a.png")
        XCTAssertEqual(try load("rgba", side: 28).bytes, rgb)
        try put(ImageFiles.png(width: 28, height: 28, colour: false, alpha: true, samples8: ga), "ga/a.png")
        XCTAssertEqual(try load("ga", side: 28).bytes, grey)
        // 16-bit: the high byte of each sample.
        let wide = rgb.enumerated().map { UInt16($0.element) << 8 | UInt16($0.offset % 251) }
        try put(ImageFiles.png(width: 28, height: 28, colour: true, samples16: wide), "sixteen/a.png")
        XCTAssertEqual(try load("sixteen", side: 28).bytes, rgb)
        // A palette: each index's colour.
        let palette: [UInt8] = [10, 20, 30, 200, 100, 0, 0, 0, 255]
        let indices = (0..<(28 * 28)).map { UInt8($0 % 3) }
        try put(ImageFiles.png(width: 28, height: 28, colour: true, samples8: indices, colormap: palette), "palette/a.png")
        XCTAssertEqual(try load("palette", side: 28).bytes, indices.flatMap { palette[(3 * Int($0))..<(3 * Int($0) + 3)] })
    }

    func testJPEGsAreReadWithinTheCodecsError() throws {
        let rgb = pattern(side: 32, channels: 3), grey = pattern(side: 28, channels: 1)
        try put(ImageFiles.jpeg(width: 32, height: 32, colour: true, pixels: rgb), "colour/a.jpg")
        try put(ImageFiles.jpeg(width: 28, height: 28, colour: false, pixels: grey), "grey/b.JPEG")
        let colour = try load("colour")
        XCTAssertEqual([colour.count, colour.height, colour.channels], [1, 32, 3])
        XCTAssertLessThanOrEqual(zip(colour.bytes, rgb).map { abs(Int($0) - Int($1)) }.max()!, 6)
        let mono = try load("grey", side: 28)
        XCTAssertEqual(mono.channels, 1)
        XCTAssertLessThanOrEqual(zip(mono.bytes, grey).map { abs(Int($0) - Int($1)) }.max()!, 6)
    }

    /// Other sizes are centre-cropped to a square and area-filtered: a 2:1 reduction averages 2×2 blocks, a flat
    /// image stays flat, and a grey image among colour ones repeats its value in three channels.
    func testCentreCropAndAreaFilter() throws {
        // 64 wide × 48 high: the centre 48×48 square starts at x = 8; columns left of it are 0, right of it 255.
        var wideImage = [UInt8](repeating: 0, count: 64 * 48)
        for y in 0..<48 { for x in 0..<64 { wideImage[y * 64 + x] = x < 8 ? 0 : x >= 56 ? 255 : 90 } }
        try put(ImageFiles.png(width: 64, height: 48, colour: false, samples8: wideImage), "crop/a.png")
        XCTAssertEqual(try load("crop", side: 32).bytes, [UInt8](repeating: 90, count: 32 * 32))
        // A 56×56 checkerboard of 0 and 255 to 28: each output averages a 2×2 block, 127.5 → 128.
        let checker = (0..<(56 * 56)).map { UInt8(($0 % 56 + $0 / 56) % 2 == 0 ? 0 : 255) }
        try put(ImageFiles.png(width: 56, height: 56, colour: false, samples8: checker), "checker/a.png")
        XCTAssertEqual(try load("checker", side: 28).bytes, [UInt8](repeating: 128, count: 28 * 28))
        // 3 → 2 pixels: weights (1, ½) and (½, 1) of 1.5: [0, 90, 180] → [30, 150].
        XCTAssertEqual(ImageFolder.areaWeights(from: 3, to: 2).map { $0.map(\.0) }, [[0, 1], [1, 2]])
        try put(ImageFiles.png(width: 28, height: 28, colour: true, samples8: [UInt8](repeating: 7, count: 28 * 28 * 3)), "mixed/a.png")
        try put(ImageFiles.png(width: 28, height: 28, colour: false, samples8: [UInt8](repeating: 60, count: 28 * 28)), "mixed/b.png")
        let mixed = try load("mixed", side: 28)
        XCTAssertEqual([mixed.count, mixed.channels], [2, 3])
        XCTAssertEqual(Array(mixed.bytes[(28 * 28 * 3)...]), [UInt8](repeating: 60, count: 28 * 28 * 3))
    }

    func testClassFoldersAndSelection() throws {
        for (name, value) in [("dog", UInt8(200)), ("cat", 100), ("cat", 101)] {
            try put(ImageFiles.png(width: 28, height: 28, colour: false, samples8: [UInt8](repeating: value, count: 784)),
                    "pets/\(name)/\(value).png")
        }
        try put(Array("notes".utf8), "pets/README.txt")
        XCTAssertEqual(ImageFolder.classes(at: "\(directory!)/pets"), ["cat", "dog"])
        XCTAssertEqual(try load("pets").count, 3)
        let cats = try load("pets", label: 0)
        XCTAssertEqual(cats.count, 2)
        XCTAssertTrue(cats.source.hasSuffix("(class cat)"), cats.source)
        XCTAssertEqual(try ImageDataset.classIndex(named: "dog", dataPath: "\(directory!)/pets"), 1)
        assertDataError(try ImageDataset.classIndex(named: "bird", dataPath: "\(directory!)/pets"), contains: "no class folder bird (cat, dog)")
        var warnings: [String] = []
        assertDataError(try load("pets", label: 2, warnings: &warnings), contains: "not one of its 2 class folders")
        // Through ImageDataset.load, as pgan train reads --data: --labels is refused, --image-size honoured.
        XCTAssertEqual(try ImageDataset.load(imagesPath: "\(directory!)/pets", labelsPath: nil, label: 1, imageSide: 32).height, 32)
        assertDataError(try ImageDataset.load(imagesPath: "\(directory!)/pets", labelsPath: "x", label: 1), contains: "leave out --labels")
    }

    func testUnreadableImagesAreSkippedWithAWarningOrRefusedWhenStrict() throws {
        let good = ImageFiles.png(width: 28, height: 28, colour: false, samples8: [UInt8](repeating: 5, count: 784))
        try put(good, "mixed/good.png")
        try put(Array(good.prefix(good.count / 2)), "mixed/truncated.png")
        try put(Array("not an image".utf8), "mixed/text.jpg")
        try put([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3], "mixed/corrupt.jpeg")
        // A header that promises 20 000 × 20 000 pixels (CRC fixed, so libpng accepts it): skipped before decoding.
        var huge = good
        for offset in [16, 20] { huge.replaceSubrange(offset..<(offset + 4), with: [0, 0, 0x4E, 0x20]) }
        let crc = Gzip.crc32(Array(huge[12..<29]))
        huge.replaceSubrange(29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
        try put(huge, "mixed/huge.png")
        var warnings: [String] = []
        let dataset = try load("mixed", warnings: &warnings)
        XCTAssertEqual(dataset.count, 1)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("skipped 4 of 5 images") && warnings[0].contains("--strict"), warnings[0])
        XCTAssertThrowsError(try ImageFolder.decode(path: "\(directory!)/mixed/huge.png")) {
            XCTAssertTrue(($0 as? ImageFolder.Unreadable)?.reason.contains("20000×20000 pixels is beyond") == true, "\($0)")
        }
        assertDataError(try load("mixed", strict: true, warnings: &warnings), contains: "(--strict)")
        try put(Array("x".utf8), "broken/only.png")
        assertDataError(try load("broken", warnings: &warnings), contains: "none of its 1 images could be read")
        try FileManager.default.createDirectory(atPath: "\(directory!)/empty", withIntermediateDirectories: true)
        assertDataError(try ImageDataset.load(imagesPath: "\(directory!)/empty", labelsPath: nil, label: nil),
                        contains: "without CIFAR training batches (data_batch_*.bin or train.bin) or PNG/JPEG images")
    }

    /// Decoding runs on all cores; the data set does not depend on which finished first.
    func testTheSameBytesOnEveryLoad() throws {
        for index in 0..<24 {
            try put(ImageFiles.png(width: 40 + index, height: 30 + 2 * index, colour: index % 3 == 0,
                                   samples8: (0..<((40 + index) * (30 + 2 * index) * (index % 3 == 0 ? 3 : 1))).map { UInt8(($0 * 7 + index) % 256) }),
                    "many/\(index).png")
        }
        let first = try load("many", side: 32)
        XCTAssertEqual([first.count, first.channels], [24, 3])
        for _ in 0..<3 { XCTAssertEqual(try load("many", side: 32).bytes, first.bytes) }
    }
}
