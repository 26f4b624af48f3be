#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// A safetensors file (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON
/// header mapping tensor names to dtype, shape and byte offsets (plus a `__metadata__` map of strings), then the raw
/// little-endian tensor data. Python opens it with `safetensors.numpy.load_file`.
///
/// The header is written by hand in a fixed order with no time stamps or thread counts, so two runs that differ only
/// in `--threads` (or in when they ran) write byte-identical files.
public struct SafeTensors: Sendable {
    public struct Tensor: Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    public var metadata: [(key: String, value: String)]
    public var tensors: [Tensor]

    public init(metadata: [(key: String, value: String)], tensors: [Tensor]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    public func metadataValue(_ key: String) -> String? { metadata.first { $0.key == key }?.value }
    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// The file's bytes, with `tensors_crc32` in the metadata computed afresh over the tensors.
    public func encoded() -> Data {
        var crc: UInt32 = 0
        for tensor in tensors { crc = tensor.values.withUnsafeBytes { Gzip.crc32($0, initial: crc) } }
        let metadata = self.metadata.filter { $0.key != Self.checksumKey } + [(Self.checksumKey, String(crc))]
        var data = Self.header(metadata: metadata, tensors: tensors.map { ($0.name, $0.shape) })
        for tensor in tensors {
            tensor.values.withUnsafeBufferPointer { Self.appendLittleEndian($0, to: &data) }
        }
        return data
    }

    /// The length prefix and JSON header for tensors stored one after another in the given order.
    static func header(metadata: [(key: String, value: String)], tensors: [(name: String, shape: [Int])]) -> Data {
        var header = "{\"__metadata__\":{"
        header += metadata.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
        header += "}"
        var offset = 0
        for tensor in tensors {
            let bytes = tensor.shape.reduce(1, *) * 4
            header += ",\(jsonString(tensor.name)):{\"dtype\":\"F32\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while (header.utf8.count + 8) % 8 != 0 { header += " " }
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        return data
    }

    /// Appends floats as little-endian F32 (safetensors' byte order).
    static func appendLittleEndian(_ values: UnsafeBufferPointer<Float>, to data: inout Data) {
        #if _endian(little)
        data.append(UnsafeBufferPointer(start: UnsafeRawPointer(values.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                        count: values.count * 4))
        #else
        for value in values {
            var bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { data.append(contentsOf: $0) }
        }
        #endif
    }

    /// Parses a safetensors file. Every size in the header is checked (non-negative, no overflow, inside the file)
    /// before anything is allocated for it; a file whose metadata carries `tensors_crc32` must match it.
    public static func decode(_ data: Data, path: String) throws -> SafeTensors {
        try data.withUnsafeBytes { try decode(bytes: $0, path: path) }
    }

    /// `decode` reading the file's bytes where they lie: the tensors are the only copy made.
    public static func decode(bytes: UnsafeRawBufferPointer, path: String) throws -> SafeTensors {
        let header = try SafeTensorsHeader(file: bytes, path: path)
        try header.checkCRC(Gzip.crc32(UnsafeRawBufferPointer(rebasing: bytes[header.dataStart...])), path: path)
        let tensors = header.entries.sorted { $0.name < $1.name }.map { entry in
            Tensor(name: entry.name, shape: entry.shape, values: [Float](unsafeUninitializedCapacity: entry.count) { values, initialized in
                for i in 0..<entry.count {
                    let bits = bytes.loadUnaligned(fromByteOffset: entry.start + 4 * i, as: UInt32.self)
                    values[i] = Float(bitPattern: UInt32(littleEndian: bits))
                }
                initialized = entry.count
            })
        }
        return SafeTensors(metadata: header.metadata, tensors: tensors)
    }

    /// Metadata key of the CRC-32 (decimal) of all the tensor data bytes, checked on every load.
    public static let checksumKey = "tensors_crc32"

    public static func read(path: String) throws -> SafeTensors {
        try decode(readFile(path: path, maximumBytes: MemoryBudget.dataBytes), path: path)
    }
}

/// Any JSON value, as `JSONDecoder` reads it: what a safetensors header may hold, checked after decoding so that each
/// malformed part gets its own message.
enum JSONValue: Decodable {
    case string(String), integer(Int), number(Double), bool(Bool), null
    case array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// The integers of an array of integers, else nil.
    var integers: [Int]? {
        guard case .array(let values) = self else { return nil }
        var integers: [Int] = []
        for value in values {
            guard case .integer(let n) = value else { return nil }
            integers.append(n)
        }
        return integers
    }

    /// The map of an object whose values are all strings, else nil.
    var stringMap: [String: String]? {
        guard case .object(let values) = self else { return nil }
        var map: [String: String] = [:]
        for (key, value) in values {
            guard case .string(let text) = value else { return nil }
            map[key] = text
        }
        return map
    }
}

/// A safetensors file's header, every size in it checked (non-negative, no overflow, inside a file of the given size)
/// before anything is allocated for it: the metadata, and where each tensor's bytes lie.
struct SafeTensorsHeader {
    struct Entry {
        let name: String
        let shape: [Int]
        /// Byte offset in the file.
        let start: Int
        /// Floats.
        let count: Int
    }

    let metadata: [(key: String, value: String)]
    let entries: [Entry]
    /// Byte offset of the tensor data: 8 + the JSON's length.
    let dataStart: Int

    static func corrupt(_ path: String, _ why: String) -> DataError {
        DataError(path: path, problem: "not a valid safetensors checkpoint (\(why))")
    }

    /// The JSON's length from the file's first 8 bytes (`prefix` holds at least those it has).
    static func jsonLength(prefix: UnsafeRawBufferPointer, fileSize: Int, path: String) throws -> Int {
        guard fileSize >= 8, prefix.count >= 8 else { throw corrupt(path, "only \(fileSize) bytes") }
        let rawLength = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        guard rawLength > 1, rawLength <= UInt64(fileSize - 8), rawLength < 100_000_000 else {
            throw corrupt(path, "header length \(rawLength) does not fit the file")
        }
        return Int(rawLength)
    }

    /// The header of a whole file held in memory.
    init(file bytes: UnsafeRawBufferPointer, path: String) throws {
        let length = try Self.jsonLength(prefix: bytes, fileSize: bytes.count, path: path)
        try self.init(json: UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)]), fileSize: bytes.count, path: path)
    }

    /// Parses the JSON (the file's bytes 8..<8 + json.count) of a file of `fileSize` bytes.
    init(json: UnsafeRawBufferPointer, fileSize: Int, path: String) throws {
        guard let header = try? JSONDecoder().decode([String: JSONValue].self, from: Data(json)) else {
            throw Self.corrupt(path, "header is not a JSON object")
        }
        let base = 8 + json.count
        let dataBytes = fileSize - base
        var metadata: [(key: String, value: String)] = []
        if let entry = header["__metadata__"] {
            guard let map = entry.stringMap else { throw Self.corrupt(path, "__metadata__ is not a map of strings") }
            metadata = map.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }
        var entries: [Entry] = []
        for (name, entry) in header where name != "__metadata__" {
            guard case .object(let info) = entry, case .string(let dtype) = info["dtype"],
                  let shape = info["shape"]?.integers, let offsets = info["data_offsets"]?.integers, offsets.count == 2
            else { throw Self.corrupt(path, "tensor \(name) has a malformed entry") }
            guard dtype == "F32" else { throw Self.corrupt(path, "tensor \(name) is \(dtype), expected F32") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw Self.corrupt(path, "tensor \(name) has a negative dimension \(shape)") }
            var count = 1
            for dimension in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= dataBytes / 4 else {
                    throw Self.corrupt(path, "tensor \(name) of shape \(shape) is larger than the file")
                }
                count = product
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= dataBytes, offsets[1] - offsets[0] == count * 4
            else { throw Self.corrupt(path, "tensor \(name) lies outside the file or does not match its shape (truncated?)") }
            entries.append(Entry(name: name, shape: shape, start: base + offsets[0], count: count))
        }
        self.metadata = metadata
        self.entries = entries
        dataStart = base
    }

    /// Throws unless `actual`, the CRC-32 of all the bytes from `dataStart` on, is the one the metadata records
    /// (a file without one passes).
    func checkCRC(_ actual: UInt32, path: String) throws {
        guard let stored = metadata.first(where: { $0.key == SafeTensors.checksumKey })?.value else { return }
        guard UInt32(stored) == actual else {
            throw DataError(path: path, problem: "corrupt checkpoint: its tensor data fails the CRC-32 check (stored \(stored), computed \(actual)); the file was damaged or changed after pgan wrote it")
        }
    }
}

/// A safetensors file read in two steps so that its tensors never sit in memory beside the buffers they are meant
/// for: the header up front (a run's configuration, record and data fingerprint come from `metadata`), the tensors
/// only by `readTensors` (`Checkpoint.restore(from:into:)`, `Checkpoint.sampler`, `Classifier.read`), which streams
/// the data once, in file order, straight into those buffers and checks the CRC-32 on the way. From a file it reads
/// with `pread`, `chunkBytes` at a time; from bytes in memory (what an MPI rank receives from rank 0) it copies from
/// them.
public final class CheckpointReader {
    public let path: String
    /// The header's metadata, as a file of no tensors (for `Checkpoint.configuration` and `runRecord`).
    public let metadata: SafeTensors
    let header: SafeTensorsHeader
    private let descriptor: Int32
    private let size: Int
    private let bytes: [UInt8]

    /// The piece of the tensor data read from a file at a time.
    public static let chunkBytes = 1 << 20

    /// Opens the file and reads its header.
    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: a FIFO planted at the path must not block the open; it is refused as not a regular file.
        let opened = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard opened >= 0 else {
            throw DataError(path: path, problem: errno == ENOENT ? "no such file" : "cannot be read (\(String(cString: strerror(errno))))")
        }
        var status = stat()
        guard fstat(opened, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(opened)
            throw DataError(path: path, problem: "is not a regular file")
        }
        let fileSize = Int(status.st_size)
        do {
            var prefix = [UInt8](repeating: 0, count: min(8, fileSize))
            try Self.read(opened, into: &prefix, at: 0, path: path)
            let length = try prefix.withUnsafeBytes { try SafeTensorsHeader.jsonLength(prefix: $0, fileSize: fileSize, path: path) }
            var json = [UInt8](repeating: 0, count: length)
            try Self.read(opened, into: &json, at: 8, path: path)
            header = try json.withUnsafeBytes { try SafeTensorsHeader(json: $0, fileSize: fileSize, path: path) }
        } catch {
            close(opened)
            throw error
        }
        descriptor = opened
        size = fileSize
        bytes = []
        metadata = SafeTensors(metadata: header.metadata, tensors: [])
    }

    /// Reads the header of a file's bytes held in memory.
    public init(bytes: [UInt8], path: String) throws {
        self.path = path
        descriptor = -1
        size = bytes.count
        self.bytes = bytes
        header = try bytes.withUnsafeBytes { try SafeTensorsHeader(file: $0, path: path) }
        metadata = SafeTensors(metadata: header.metadata, tensors: [])
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Fills `buffer` from byte `offset`; a file that ends first (cut while being read) is an error naming it.
    private static func read(_ descriptor: Int32, into buffer: inout [UInt8], at offset: Int, path: String) throws {
        try buffer.withUnsafeMutableBytes { try read(descriptor, into: $0, at: offset, path: path) }
    }

    private static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                             path: String) throws {
        var done = 0
        while done < buffer.count {
            let got = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw DataError(path: path, problem: got == 0 ? "ended while it was being read (truncated?)"
                                    : "cannot be read (\(String(cString: strerror(errno))))")
            }
            done += got
        }
    }

    /// Reads the named tensors into `targets`' floats, checking first that each is there with that shape, then the
    /// CRC-32 while the data streams by (once, in file order), then that every value read is finite.
    public func readTensors(into targets: [(name: String, shape: [Int], values: UnsafeMutableBufferPointer<Float>)]) throws {
        let entries = Dictionary(header.entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let placed = try targets.map { target in
            guard let entry = entries[target.name] else {
                throw DataError(path: path, problem: "checkpoint of another model: tensor \(target.name) is missing")
            }
            guard entry.shape == target.shape else {
                throw DataError(path: path, problem: "checkpoint of another model: \(target.name) has shape \(entry.shape), expected \(target.shape)")
            }
            return (name: target.name, start: entry.start, destination: UnsafeMutableRawBufferPointer(target.values))
        }
        #if !_endian(little)
        #error("tensors are copied as bytes, which are the in-memory floats of safetensors' little-endian only here")
        #endif
        var crc: UInt32 = 0
        try forEachDataChunk { offset, chunk in
            crc = Gzip.crc32(chunk, initial: crc)
            let end = offset + chunk.count
            for target in placed where target.start < end && target.start + target.destination.count > offset {
                let from = max(offset, target.start), to = min(end, target.start + target.destination.count)
                UnsafeMutableRawBufferPointer(rebasing: target.destination[(from - target.start)..<(to - target.start)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[(from - offset)..<(to - offset)]))
            }
        }
        try header.checkCRC(crc, path: path)
        for target in targets where !target.values.allSatisfy(\.isFinite) {
            throw DataError(path: path, problem: "corrupt checkpoint: \(target.name) holds non-finite values")
        }
    }

    /// Calls `body(offset, chunk)` for the tensor data in order, in pieces, `offset` being the piece's byte offset in
    /// the file.
    private func forEachDataChunk(_ body: (Int, UnsafeRawBufferPointer) throws -> Void) throws {
        if descriptor < 0 {
            try bytes.withUnsafeBytes { try body(header.dataStart, UnsafeRawBufferPointer(rebasing: $0[header.dataStart...])) }
            return
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkBytes, alignment: 64)
        defer { chunk.deallocate() }
        var offset = header.dataStart
        while offset < size {
            let piece = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(Self.chunkBytes, size - offset)])
            try Self.read(descriptor, into: piece, at: offset, path: path)
            try body(offset, UnsafeRawBufferPointer(piece))
            offset += piece.count
        }
    }
}

func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(printf: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// The pgan checkpoint: both models' weights, the BatchNorm running statistics, both optimizers' state and the run
/// facts a step depends on (seed, shards, batch size, optimizer, step, data fingerprint). Since every random number
/// is addressed by (seed, step, …) and the data order by (seed, epoch), the step is the whole RNG position.
public enum Checkpoint {
    public static let format = "pgan-dcgan-checkpoint"
    /// The largest step count pgan trains to: 2^48 steps, far beyond any run, keeps every step arithmetic exact.
    public static let maximumStep = 1 << 48
    public static let version = "1"

    /// The checkpoint file's bytes: `contents`' header followed by its tensors.
    public static func encoded(trainer: GANTrainer, dataset: DatasetFingerprint, run: RunRecord? = nil) -> Data {
        let (header, tensors) = contents(trainer: trainer, dataset: dataset, run: run)
        var data = header
        for tensor in tensors { data.append(tensor.assumingMemoryBound(to: UInt8.self)) }
        return data
    }

    /// Writes the checkpoint through an `AtomicFile`, tensor by tensor straight from the trainer's buffers: a whole
    /// file's copy in memory would add the size of every weight and optimizer slot to the run's peak (14 MiB for the
    /// seed model, ~90 MB for `--model dcgan` at 64×64 with Adam and `--ema`).
    public static func write(trainer: GANTrainer, dataset: DatasetFingerprint, run: RunRecord?, to path: String) throws {
        let (header, tensors) = contents(trainer: trainer, dataset: dataset, run: run)
        let file = try AtomicFile(path: path)
        try file.append(header)
        for tensor in tensors { try file.append(tensor) }
        try file.commit()
    }

    /// The safetensors header (length prefix and JSON) and, in file order, the bytes of each tensor as views of the
    /// trainer's buffers (valid while the trainer lives): its models' weights and state, both optimizers' slots and
    /// the moving average.
    static func contents(trainer: GANTrainer, dataset: DatasetFingerprint, run: RunRecord?)
        -> (header: Data, tensors: [UnsafeRawBufferPointer]) {
        let c = trainer.configuration
        var metadata: [(key: String, value: String)] = [
            ("format", format), ("version", version), ("model", trainer.configuration.model.identifier),
            ("step", String(trainer.step)), ("seed", String(c.seed)), ("shards", String(c.shards)),
            ("batch_size", String(c.batchSize)), ("optimizer", c.optimizer.rawValue),
            ("learning_rate", String(c.effectiveLearningRate)),
            ("generator_optimizer_iterations", String(trainer.generatorOptimizer.iterations)),
            ("discriminator_optimizer_iterations", String(trainer.discriminatorOptimizer.iterations)),
            ("data_images", String(dataset.count)), ("data_crc32", String(dataset.checksum)),
        ]
        if let average = trainer.average { metadata.append(("ema_decay", String(average.decay))) }
        let sources = tensorSlots(of: trainer).map { (name: $0.name, shape: $0.shape, bytes: UnsafeRawBufferPointer($0.values)) }
        metadata += run?.metadata ?? []
        // The tensors are the in-memory floats, which are safetensors' little-endian bytes only on a little-endian
        // CPU. The CRC-32 of those bytes goes into the metadata, which precedes them: computed over the buffers first.
        #if !_endian(little)
        #error("checkpoints are written from the in-memory floats, which are safetensors' little-endian bytes only here")
        #endif
        var crc: UInt32 = 0
        for source in sources { crc = Gzip.crc32(source.bytes, initial: crc) }
        metadata.append((SafeTensors.checksumKey, String(crc)))
        return (SafeTensors.header(metadata: metadata, tensors: sources.map { ($0.name, $0.shape) }), sources.map(\.bytes))
    }

    /// Reads the run facts a trainer must be built with to resume this checkpoint.
    /// Throws unless `file`'s metadata names this format (a safetensors file pgan did not write).
    static func requireFormat(_ file: SafeTensors, path: String) throws {
        guard file.metadataValue("format") == format else {
            throw DataError(path: path, problem: "not a pgan checkpoint (no \(format) metadata)")
        }
    }

    public static func configuration(of file: SafeTensors, path: String) throws -> TrainingConfiguration {
        try requireFormat(file, path: path)
        guard let model = file.metadataValue("model").flatMap(GANModel.named) else {
            throw DataError(path: path, problem: "checkpoint of another model (\(file.metadataValue("model") ?? "unknown"))")
        }
        guard let seed = file.metadataValue("seed").flatMap(UInt64.init),
              let shards = file.metadataValue("shards").flatMap(Int.init),
              let batch = file.metadataValue("batch_size").flatMap(Int.init),
              let optimizer = file.metadataValue("optimizer").flatMap(OptimizerKind.init(rawValue:)),
              let rate = file.metadataValue("learning_rate").flatMap(Float.init) else {
            throw DataError(path: path, problem: "corrupt checkpoint metadata")
        }
        let decay = file.metadataValue("ema_decay")
        let averageDecay = decay.flatMap(Float.init)
        guard decay == nil || averageDecay != nil else { throw DataError(path: path, problem: "corrupt checkpoint metadata (ema_decay)") }
        let configuration = TrainingConfiguration(batchSize: batch, shards: shards, seed: seed, optimizer: optimizer,
                                                  learningRate: rate, model: model, averageDecay: averageDecay)
        do {
            try configuration.validate()
        } catch {
            throw DataError(path: path, problem: "corrupt checkpoint metadata (\(error))")
        }
        return configuration
    }

    /// The run record of a checkpoint; nil for a checkpoint written before runs were recorded.
    public static func runRecord(of file: SafeTensors, path: String) throws -> RunRecord? {
        guard let target = file.metadataValue("run_target_steps") else { return nil }
        func nonEmpty(_ key: String) -> String? { file.metadataValue(key).flatMap { $0.isEmpty ? nil : $0 } }
        let digitText = file.metadataValue("run_digit") ?? ""
        let digit = Int(digitText)
        guard let steps = Int(target), (1...maximumStep).contains(steps),
              digitText.isEmpty || digit.map({ (0...255).contains($0) }) == true else {
            throw DataError(path: path, problem: "corrupt checkpoint metadata (run record)")
        }
        return RunRecord(data: nonEmpty("run_data"), labels: nonEmpty("run_labels"), digit: digit, targetSteps: steps)
    }

    /// Every tensor a checkpoint of `trainer` holds, in the file's order, with the trainer's floats it is: both models'
    /// weights and running statistics, both optimizers' slots, and the moving average when the trainer keeps one.
    static func tensorSlots(of trainer: GANTrainer) -> [(name: String, shape: [Int], values: UnsafeMutableBufferPointer<Float>)] {
        var slots = trainer.generator.layout.checkpointTensors(in: trainer.generator.parameters)
            + trainer.generator.stateLayout.checkpointTensors(in: trainer.generator.state)
            + trainer.discriminator.layout.checkpointTensors(in: trainer.discriminator.parameters)
            + trainer.discriminator.stateLayout.checkpointTensors(in: trainer.discriminator.state)  // empty unless D has BatchNorms
        for (optimizer, layout, owner) in [(trainer.generatorOptimizer, trainer.generator.layout, "generator"),
                                           (trainer.discriminatorOptimizer, trainer.discriminator.layout, "discriminator")] {
            for name in optimizer.slotNames {
                slots += layout.checkpointTensors(in: optimizer.stateBuffer(named: name)!, prefix: "optimizer.\(owner).",
                                                  suffix: ".\(name)")
            }
        }
        if let average = trainer.average {
            slots += trainer.generator.layout.checkpointTensors(in: average.parameters, prefix: "ema.")
                + trainer.generator.stateLayout.checkpointTensors(in: average.state, prefix: "ema.")
        }
        return slots
    }

    /// Copies weights, running statistics, optimizer state and the step into `trainer`, whose configuration must be
    /// the checkpoint's, reading the tensors straight into its buffers (`CheckpointReader.readTensors`).
    public static func restore(from reader: CheckpointReader, into trainer: GANTrainer) throws {
        let path = reader.path, file = reader.metadata
        let counters = ["step", "generator_optimizer_iterations", "discriminator_optimizer_iterations"].map { key in
            file.metadataValue(key).flatMap(Int.init).flatMap { (0...maximumStep).contains($0) ? $0 : nil }
        }
        guard let step = counters[0], let gIterations = counters[1], let dIterations = counters[2] else {
            throw DataError(path: path, problem: "corrupt checkpoint metadata (step and optimizer iterations must be whole numbers 0–\(maximumStep))")
        }
        try requireFormat(file, path: path)
        try reader.readTensors(into: tensorSlots(of: trainer))
        trainer.generator.packWeights()
        trainer.discriminator.packWeights()
        trainer.step = step
        trainer.generatorOptimizer.iterations = gIterations
        trainer.discriminatorOptimizer.iterations = dIterations
    }

    /// A trainer of the checkpoint's model holding only its generator, for drawing samples: the moving average's
    /// weights when the run kept one (then `averaged`), its trained weights otherwise.
    public static func sampler(_ reader: CheckpointReader, executor: ShardedExecutor) throws
        -> (trainer: GANTrainer, averaged: Bool) {
        var configuration = try configuration(of: reader.metadata, path: reader.path)
        // The average is loaded as the generator itself: the trainer keeps none of its own.
        configuration.averageDecay = nil
        let trainer = GANTrainer(configuration: configuration, executor: executor)
        return (trainer, try restoreGenerator(from: reader, into: trainer.generator))
    }

    /// Loads only the generator (weights and running statistics), for sampling: its moving average when the run kept
    /// one (`--ema`), which is then what the returned value says. `sampler`, its caller, has checked the format.
    static func restoreGenerator(from reader: CheckpointReader, into generator: Network) throws -> Bool {
        let averaged = reader.metadata.metadataValue("ema_decay") != nil, prefix = averaged ? "ema." : ""
        try reader.readTensors(into: generator.layout.checkpointTensors(in: generator.parameters, prefix: prefix)
                                   + generator.stateLayout.checkpointTensors(in: generator.state, prefix: prefix))
        generator.packWeights()
        return averaged
    }
}

extension ParameterLayout {
    /// Each slot as a checkpoint tensor: its name (between `prefix` and `suffix`), its shape and its floats in
    /// `buffer`, which this layout describes.
    func checkpointTensors(in buffer: AlignedBuffer, prefix: String = "", suffix: String = "")
        -> [(name: String, shape: [Int], values: UnsafeMutableBufferPointer<Float>)] {
        slots.map { slot in
            (prefix + slot.name + suffix, slot.shape, UnsafeMutableBufferPointer(start: buffer.pointer + slot.offset, count: slot.count))
        }
    }
}

/// What a run was started with beyond the trainer's configuration, recorded in its checkpoint so that
/// `pgan train --resume DIR` needs no other flag: where the data came from and how far the run was asked to go.
public struct RunRecord: Sendable, Equatable {
    /// The `--data` file as an absolute path; nil for the built-in zeros.
    public var data: String?
    public var labels: String?
    public var digit: Int?
    /// The step the run trains to (from `--epochs` or `--steps`).
    public var targetSteps: Int

    public init(data: String?, labels: String?, digit: Int?, targetSteps: Int) {
        self.data = data
        self.labels = labels
        self.digit = digit
        self.targetSteps = targetSteps
    }

    var metadata: [(key: String, value: String)] {
        [("run_data", data ?? ""), ("run_labels", labels ?? ""), ("run_digit", digit.map(String.init) ?? ""),
         ("run_target_steps", String(targetSteps))]
    }
}

/// What identifies a data set in a checkpoint.
public struct DatasetFingerprint: Sendable, Equatable {
    public let count: Int
    public let checksum: UInt32

    public init(count: Int, checksum: UInt32) {
        self.count = count
        self.checksum = checksum
    }
}
