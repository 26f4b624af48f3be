import Foundation
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

    public func encoded() -> Data {
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

    public static func decode(_ data: Data, path: String) throws -> SafeTensors {
        func corrupt(_ why: String) -> DataError { DataError(path: path, problem: "not a valid safetensors checkpoint (\(why))") }
        guard data.count >= 8 else { throw corrupt("only \(data.count) bytes") }
        let bytes = [UInt8](data)
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 1, headerLength <= bytes.count - 8, headerLength < 100_000_000 else {
            throw corrupt("header length \(headerLength) does not fit the file")
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])),
              let header = json as? [String: Any] else {
            throw corrupt("header is not a JSON object")
        }
        let base = 8 + headerLength
        var metadata: [(key: String, value: String)] = []
        if let map = header["__metadata__"] as? [String: String] {
            metadata = map.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }
        var tensors: [Tensor] = []
        for (name, entry) in header where name != "__metadata__" {
            guard let info = entry as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw corrupt("tensor \(name) has a malformed entry") }
            guard dtype == "F32" else { throw corrupt("tensor \(name) is \(dtype), expected F32") }
            let count = shape.reduce(1, *)
            guard offsets[0] >= 0, offsets[1] - offsets[0] == count * 4, base + offsets[1] <= bytes.count else {
                throw corrupt("tensor \(name) lies outside the file (truncated?)")
            }
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count {
                let o = base + offsets[0] + 4 * i
                let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
                values[i] = Float(bitPattern: bits)
            }
            tensors.append(Tensor(name: name, shape: shape, values: values))
        }
        return SafeTensors(metadata: metadata, tensors: tensors.sorted { $0.name < $1.name })
    }

    public static func read(path: String) throws -> SafeTensors {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw DataError(path: path, problem: exists ? "cannot be read" : "no such file")
        }
        return try decode(data, path: path)
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
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
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
    public static let version = "1"

    /// The checkpoint file's bytes, written straight from the trainer's buffers (no intermediate copies of the
    /// ~8 MB of tensors).
    public static func encoded(trainer: GANTrainer, dataset: DatasetFingerprint) -> Data {
        let c = trainer.configuration
        let metadata: [(key: String, value: String)] = [
            ("format", format), ("version", version), ("model", "seed-dcgan-\(Generator.imageSide)x\(Generator.imageSide)"),
            ("step", String(trainer.step)), ("seed", String(c.seed)), ("shards", String(c.shards)),
            ("batch_size", String(c.batchSize)), ("optimizer", c.optimizer.rawValue),
            ("learning_rate", String(c.effectiveLearningRate)),
            ("generator_optimizer_iterations", String(trainer.generatorOptimizer.iterations)),
            ("discriminator_optimizer_iterations", String(trainer.discriminatorOptimizer.iterations)),
            ("data_images", String(dataset.count)), ("data_crc32", String(dataset.checksum)),
        ]
        var sources: [(name: String, slot: ParameterSlot, buffer: AlignedBuffer)] = []
        func add(_ layout: ParameterLayout, _ buffer: AlignedBuffer, prefix: String = "", suffix: String = "") {
            for slot in layout.slots { sources.append((prefix + slot.name + suffix, slot, buffer)) }
        }
        add(trainer.generator.layout, trainer.generator.parameters)
        add(trainer.generator.stateLayout, trainer.generator.state)
        add(trainer.discriminator.layout, trainer.discriminator.parameters)
        for (optimizer, layout, owner) in [(trainer.generatorOptimizer, trainer.generator.layout, "generator"),
                                           (trainer.discriminatorOptimizer, trainer.discriminator.layout, "discriminator")] {
            for name in optimizer.slotNames {
                add(layout, optimizer.stateBuffer(named: name)!, prefix: "optimizer.\(owner).", suffix: ".\(name)")
            }
        }
        var data = SafeTensors.header(metadata: metadata, tensors: sources.map { ($0.name, $0.slot.shape) })
        for source in sources {
            SafeTensors.appendLittleEndian(UnsafeBufferPointer(start: source.buffer.pointer + source.slot.offset,
                                                               count: source.slot.count), to: &data)
        }
        return data
    }

    public static func write(trainer: GANTrainer, dataset: DatasetFingerprint, to path: String) throws {
        try writeAtomically(encoded(trainer: trainer, dataset: dataset), to: path)
    }

    /// Reads the run facts a trainer must be built with to resume this checkpoint.
    public static func configuration(of file: SafeTensors, path: String) throws -> TrainingConfiguration {
        guard file.metadataValue("format") == format else {
            throw DataError(path: path, problem: "not a pgan checkpoint (no \(format) metadata)")
        }
        guard file.metadataValue("model") == "seed-dcgan-\(Generator.imageSide)x\(Generator.imageSide)" else {
            throw DataError(path: path, problem: "checkpoint of another model (\(file.metadataValue("model") ?? "unknown"))")
        }
        guard let seed = file.metadataValue("seed").flatMap(UInt64.init),
              let shards = file.metadataValue("shards").flatMap(Int.init),
              let batch = file.metadataValue("batch_size").flatMap(Int.init),
              let optimizer = file.metadataValue("optimizer").flatMap(OptimizerKind.init(rawValue:)),
              let rate = file.metadataValue("learning_rate").flatMap(Float.init) else {
            throw DataError(path: path, problem: "corrupt checkpoint metadata")
        }
        let configuration = TrainingConfiguration(batchSize: batch, shards: shards, seed: seed, optimizer: optimizer,
                                                  learningRate: rate)
        do {
            try configuration.validate()
        } catch {
            throw DataError(path: path, problem: "corrupt checkpoint metadata (\(error))")
        }
        return configuration
    }

    /// Copies weights, running statistics, optimizer state and the step into `trainer`, whose configuration must be
    /// the checkpoint's.
    public static func restore(_ file: SafeTensors, path: String, into trainer: GANTrainer) throws {
        guard let step = file.metadataValue("step").flatMap(Int.init),
              let gIterations = file.metadataValue("generator_optimizer_iterations").flatMap(Int.init),
              let dIterations = file.metadataValue("discriminator_optimizer_iterations").flatMap(Int.init) else {
            throw DataError(path: path, problem: "corrupt checkpoint metadata (step)")
        }
        try restoreGenerator(file, path: path, into: trainer.generator)
        try load(file, path: path, layout: trainer.discriminator.layout, into: trainer.discriminator.parameters)
        for (optimizer, layout, owner) in [(trainer.generatorOptimizer, trainer.generator.layout, "generator"),
                                           (trainer.discriminatorOptimizer, trainer.discriminator.layout, "discriminator")] {
            for name in optimizer.slotNames {
                try load(file, path: path, layout: layout, into: optimizer.stateBuffer(named: name)!,
                         prefix: "optimizer.\(owner).", suffix: ".\(name)")
            }
        }
        trainer.discriminator.packWeights()
        trainer.step = step
        trainer.generatorOptimizer.iterations = gIterations
        trainer.discriminatorOptimizer.iterations = dIterations
    }

    /// Loads only the generator (weights and running statistics), for sampling.
    public static func restoreGenerator(_ file: SafeTensors, path: String, into generator: Generator) throws {
        guard file.metadataValue("format") == format else {
            throw DataError(path: path, problem: "not a pgan checkpoint (no \(format) metadata)")
        }
        try load(file, path: path, layout: generator.layout, into: generator.parameters)
        try load(file, path: path, layout: generator.stateLayout, into: generator.state)
        generator.packWeights()
    }

    static func load(_ file: SafeTensors, path: String, layout: ParameterLayout, into buffer: AlignedBuffer,
                     prefix: String = "", suffix: String = "") throws {
        for slot in layout.slots {
            let name = prefix + slot.name + suffix
            guard let tensor = file.tensor(name) else {
                throw DataError(path: path, problem: "checkpoint of another model: tensor \(name) is missing")
            }
            guard tensor.shape == slot.shape else {
                throw DataError(path: path, problem: "checkpoint of another model: \(name) has shape \(tensor.shape), expected \(slot.shape)")
            }
            guard tensor.values.allSatisfy(\.isFinite) else {
                throw DataError(path: path, problem: "corrupt checkpoint: \(name) holds non-finite values")
            }
            tensor.values.withUnsafeBufferPointer { (buffer.pointer + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
        }
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
