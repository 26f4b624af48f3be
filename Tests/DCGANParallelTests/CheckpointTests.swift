import DCGANParallel
import Foundation
import ParallelTensor
import TestSupport
import XCTest

final class CheckpointTests: XCTestCase {
    func makeTrainer(seed: UInt64 = 3) -> GANTrainer {
        GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: seed),
                   executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
    }

    func testSafeTensorsLayoutIsStandard() throws {
        let trainer = makeTrainer()
        let data = Checkpoint.encoded(trainer: trainer, dataset: DatasetFingerprint(count: 10, checksum: 5))
        let bytes = [UInt8](data)
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data starts 8-byte aligned")
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let kernel = try XCTUnwrap(header["generator.dense.kernel"] as? [String: Any])
        XCTAssertEqual(kernel["dtype"] as? String, "F32")
        XCTAssertEqual(kernel["shape"] as? [Int], [100, 6272])
        let offsets = try XCTUnwrap(kernel["data_offsets"] as? [Int])
        XCTAssertEqual(offsets[1] - offsets[0], 100 * 6272 * 4)
        // The bytes at the offsets are the little-endian weights.
        let slot = try XCTUnwrap(trainer.generator.layout.slot(named: "generator.dense.kernel"))
        let first = 8 + headerLength + offsets[0]
        let value = Float(bitPattern: UInt32(bytes[first]) | UInt32(bytes[first + 1]) << 8 | UInt32(bytes[first + 2]) << 16 | UInt32(bytes[first + 3]) << 24)
        XCTAssertEqual(value, trainer.generator.parameters[slot.offset])
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        XCTAssertEqual(metadata["format"], Checkpoint.format)
        XCTAssertEqual(metadata["step"], "0")
        XCTAssertNil(metadata["threads"])
        XCTAssertEqual(data.count, 8 + headerLength + (header.count - 1 > 0 ? offsetsEnd(header) : 0))
    }

    func offsetsEnd(_ header: [String: Any]) -> Int {
        header.values.compactMap { ($0 as? [String: Any])?["data_offsets"] as? [Int] }.map { $0[1] }.max() ?? 0
    }

    func testRoundTripRestoresEverything() throws {
        let source = makeTrainer()
        let images = [Float](repeating: 0.5, count: 8 * 784)
        images.withUnsafeBufferPointer { _ = source.trainStep(realImages: $0.baseAddress!) }
        let encoded = Checkpoint.encoded(trainer: source, dataset: DatasetFingerprint(count: 8, checksum: 1))
        let reader = try CheckpointReader(bytes: [UInt8](encoded), path: "memory")
        let configuration = try Checkpoint.configuration(of: reader.metadata, path: "memory")
        XCTAssertEqual(configuration, source.configuration.withLearningRate(source.configuration.effectiveLearningRate))
        let target = GANTrainer(configuration: configuration, executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        try Checkpoint.restore(from: reader, into: target)
        XCTAssertEqual(target.step, 1)
        assertBitIdentical(target.generator.parameters.array, source.generator.parameters.array)
        assertBitIdentical(target.generator.state.array, source.generator.state.array)
        assertBitIdentical(target.discriminator.parameters.array, source.discriminator.parameters.array)
        assertBitIdentical(target.discriminatorOptimizer.first.array, source.discriminatorOptimizer.first.array)
        XCTAssertEqual(Checkpoint.encoded(trainer: target, dataset: DatasetFingerprint(count: 8, checksum: 1)), encoded)
    }

    /// `Checkpoint.write` streams the tensors from the trainer's buffers instead of building the file in memory; the
    /// file must still be exactly `encoded`'s bytes, moving average and both optimizers included.
    func testWrittenFileHasTheEncodedBytes() throws {
        let trainer = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 5, averageDecay: 0.9),
                                 executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
        let images = [Float](repeating: -0.25, count: 8 * 784)
        images.withUnsafeBufferPointer { _ = trainer.trainStep(realImages: $0.baseAddress!) }
        let directory = try makeTemporaryDirectory("checkpoint-write")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/checkpoint.safetensors", fingerprint = DatasetFingerprint(count: 8, checksum: 7)
        let run = RunRecord(data: nil, labels: nil, digit: 0, targetSteps: 3)
        try Checkpoint.write(trainer: trainer, dataset: fingerprint, run: run, to: path)
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(written, Checkpoint.encoded(trainer: trainer, dataset: fingerprint, run: run))
        let file = try SafeTensors.decode(written, path: path)
        XCTAssertNotNil(file.tensor("ema.generator.dense.kernel"))
        XCTAssertEqual(file.metadataValue("run_target_steps"), "3")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["checkpoint.safetensors"],
                       "no temporary file is left behind")
    }

    /// Resuming streams the file's tensor data once, in 1 MiB pieces (so tensors straddle pieces), straight into the
    /// trainer: the restored trainer writes the same bytes. A file damaged on disk, or cut while it is being read,
    /// fails with one line naming it.
    func testRestoreStreamsFromTheFile() throws {
        let source = GANTrainer(configuration: TrainingConfiguration(batchSize: 8, shards: 4, seed: 6, averageDecay: 0.9),
                                executor: ShardedExecutor(threadCount: 2, pinsThreads: false))
        let images = [Float](repeating: 0.25, count: 8 * 784)
        images.withUnsafeBufferPointer { _ = source.trainStep(realImages: $0.baseAddress!) }
        let directory = try makeTemporaryDirectory("checkpoint-stream")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/checkpoint.safetensors", fingerprint = DatasetFingerprint(count: 8, checksum: 2)
        try Checkpoint.write(trainer: source, dataset: fingerprint, run: nil, to: path)
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertGreaterThan(written.count, 4 * CheckpointReader.chunkBytes)
        let reader = try CheckpointReader(path: path)
        let target = GANTrainer(configuration: try Checkpoint.configuration(of: reader.metadata, path: path),
                                executor: ShardedExecutor(threadCount: 1, pinsThreads: false))
        try Checkpoint.restore(from: reader, into: target)
        XCTAssertEqual(target.step, 1)
        XCTAssertEqual(Checkpoint.encoded(trainer: target, dataset: fingerprint), written)

        var damaged = written
        damaged[damaged.count / 2] ^= 0x10
        try damaged.write(to: URL(fileURLWithPath: path))
        assertDataError(try Checkpoint.restore(from: CheckpointReader(path: path), into: target),
                        contains: "fails the CRC-32 check", path: path)
        try written.write(to: URL(fileURLWithPath: path))
        let cut = try CheckpointReader(path: path)
        XCTAssertEqual(truncate(path, off_t(written.count / 2)), 0)
        assertDataError(try Checkpoint.restore(from: cut, into: target), contains: "ended while it was being read",
                        path: path)
        assertDataError(try CheckpointReader(path: path), contains: "lies outside the file", path: path)
        try Data([7, 0, 0]).write(to: URL(fileURLWithPath: path))
        assertDataError(try CheckpointReader(path: path), contains: "only 3 bytes", path: path)
        assertDataError(try CheckpointReader(path: directory), contains: "is not a regular file", path: directory)
        let fifo = directory + "/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertDataError(try CheckpointReader(path: fifo), contains: "is not a regular file", path: fifo)
        assertDataError(try CheckpointReader(path: directory + "/none"), contains: "no such file", path: directory + "/none")
    }

    func testCorruptAndForeignFilesAreRejected() throws {
        let good = Checkpoint.encoded(trainer: makeTrainer(), dataset: DatasetFingerprint(count: 8, checksum: 1))
        XCTAssertThrowsError(try SafeTensors.decode(good.prefix(good.count - 100), path: "cut.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("cut.safetensors: not a valid safetensors checkpoint"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensors.decode(Data([1, 2, 3]), path: "tiny")) { XCTAssertTrue("\($0)".contains("only 3 bytes")) }
        XCTAssertThrowsError(try SafeTensors.decode(Data([255, 255, 255, 255, 0, 0, 0, 0, 1]), path: "huge"))
        // Another model: a tensor with the wrong shape.
        var file = try SafeTensors.decode(good, path: "good")
        let index = try XCTUnwrap(file.tensors.firstIndex { $0.name == "discriminator.dense.kernel" })
        file.tensors[index] = .init(name: "discriminator.dense.kernel", shape: [10, 1], values: [Float](repeating: 0, count: 10))
        let foreign = try CheckpointReader(bytes: [UInt8](file.encoded()), path: "other.safetensors")
        XCTAssertThrowsError(try Checkpoint.restore(from: foreign, into: makeTrainer())) { error in
            XCTAssertEqual("\(error)", "other.safetensors: checkpoint of another model: discriminator.dense.kernel has shape [10, 1], expected [6272, 1]")
        }
        let plain = SafeTensors(metadata: [], tensors: [])
        XCTAssertThrowsError(try Checkpoint.configuration(of: plain, path: "plain")) { XCTAssertTrue("\($0)".contains("not a pgan checkpoint")) }
    }
}

extension TrainingConfiguration {
    func withLearningRate(_ rate: Float) -> TrainingConfiguration {
        var copy = self
        copy.learningRate = rate
        return copy
    }
}
