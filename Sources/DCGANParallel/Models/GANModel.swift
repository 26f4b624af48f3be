import ParallelTensor

/// The two networks of a GAN, checked to fit together: the generator maps a noise vector to an image of the shape
/// the discriminator reads, and the discriminator ends in one sigmoid unit, whose logit the loss takes.
public struct GANModel: Sendable, Equatable {
    public let generator: ModelDescription
    public let discriminator: ModelDescription
    /// Names the model in checkpoints, which refuse to load into another.
    public let identifier: String

    public init(generator: ModelDescription, discriminator: ModelDescription, identifier: String) throws {
        let generated = try generator.shapes().last!, judged = try discriminator.shapes()
        guard generator.input.isVector else {
            throw ModelError("\(generator.name): the input must be a noise vector (1×1×n)")
        }
        guard generated == judged[0] else {
            throw ModelError("\(generator.name) makes \(generated.height)×\(generated.width)×\(generated.channels) images but \(discriminator.name) reads \(judged[0].height)×\(judged[0].width)×\(judged[0].channels)")
        }
        guard judged.last!.elementsPerImage == 1, discriminator.layers.last?.activation == .sigmoid else {
            throw ModelError("\(discriminator.name) must end in one unit with a sigmoid, e.g. .dense(units: 1, activation: .sigmoid)")
        }
        guard generator.conventions == discriminator.conventions else {
            throw ModelError("\(generator.name) and \(discriminator.name) follow different conventions (\(generator.conventions.rawValue), \(discriminator.conventions.rawValue))")
        }
        // The Keras step runs the discriminator two samples at a time, forward then backward
        // (GANStepPlan.discriminatorChunk): a whole-minibatch reduction inside it needs the PyTorch step, which keeps
        // the discriminator's activations per shard.
        guard generator.conventions == .pytorch || !discriminator.layers.contains(.batchNormalization) else {
            throw ModelError("\(discriminator.name): BatchNormalization in the discriminator needs the PyTorch step (conventions: .pytorch)")
        }
        // Each network draws its dropout masks from 8 substreams of its own (GANTrainer.networks).
        for description in [generator, discriminator] {
            let dropouts = description.layers.filter { if case .dropout = $0 { true } else { false } }.count
            guard dropouts <= 8 else { throw ModelError("\(description.name) has \(dropouts) dropout layers; at most 8 are supported") }
        }
        self.generator = generator
        self.discriminator = discriminator
        self.identifier = identifier
    }

    /// The seed DCGAN (docs/ARCHITECTURE.md §1) on 28×28 grey images.
    public static let seed = seed(imageSide: 28, channels: 1)!

    /// The image sides and channel counts the seed DCGAN is built for: its two stride-2 layers need a side that is a
    /// multiple of 4; MNIST-like and CIFAR-like images, grey or colour.
    public static let seedImageSides = [28, 32], seedChannels = [1, 3]

    /// The seed DCGAN for imageSide² × channels images, or nil for a size it is not built for. Named
    /// "seed-dcgan-28x28" (the original) or "seed-dcgan-SxSxC".
    public static func seed(imageSide: Int, channels: Int) -> GANModel? {
        guard seedImageSides.contains(imageSide), seedChannels.contains(channels) else { return nil }
        let name = imageSide == 28 && channels == 1 ? "seed-dcgan-28x28" : "seed-dcgan-\(imageSide)x\(imageSide)x\(channels)"
        return try! GANModel(generator: .seedGenerator(imageSide: imageSide, channels: channels),
                             discriminator: .seedDiscriminator(imageSide: imageSide, channels: channels),
                             identifier: name)
    }

    /// The model a checkpoint names, or nil when pgan does not know it.
    public static func named(_ identifier: String) -> GANModel? {
        for side in seedImageSides {
            for channels in seedChannels {
                if let model = seed(imageSide: side, channels: channels), model.identifier == identifier { return model }
            }
        }
        // "dcgan-64x64x3-g64-d64"
        let parts = identifier.split(separator: "-")
        guard parts.count == 4, parts[0] == "dcgan", parts[2].first == "g", parts[3].first == "d",
              let generatorWidth = Int(parts[2].dropFirst()), let discriminatorWidth = Int(parts[3].dropFirst()) else {
            return nil
        }
        let size = parts[1].split(separator: "x").compactMap { Int($0) }
        guard size.count == 3, size[0] == size[1],
              let model = dcgan(imageSide: size[0], channels: size[2], generatorWidth: generatorWidth,
                                discriminatorWidth: discriminatorWidth),
              model.identifier == identifier else { return nil }
        return model
    }

    /// The image sides and channel counts the DCGAN paper's model is built for, and the widths (ngf, ndf) allowed.
    public static let dcganImageSides = [16, 32, 64, 128], dcganChannels = [1, 3], dcganWidths = 1...1024

    /// The DCGAN paper's model as PyTorch's example builds it (`ModelDescription.dcganGenerator`/`dcganDiscriminator`)
    /// for imageSide² × channels images, or nil for a size or width it is not built for. Named
    /// "dcgan-SxSxC-gW-dW".
    public static func dcgan(imageSide: Int, channels: Int, generatorWidth: Int = 64,
                             discriminatorWidth: Int = 64) -> GANModel? {
        guard dcganImageSides.contains(imageSide), dcganChannels.contains(channels),
              dcganWidths.contains(generatorWidth), dcganWidths.contains(discriminatorWidth) else { return nil }
        return try! GANModel(
            generator: .dcganGenerator(imageSide: imageSide, channels: channels, width: generatorWidth),
            discriminator: .dcganDiscriminator(imageSide: imageSide, channels: channels, width: discriminatorWidth),
            identifier: "dcgan-\(imageSide)x\(imageSide)x\(channels)-g\(generatorWidth)-d\(discriminatorWidth)")
    }

    /// The model a new run trains on images of this shape, or an error naming what the kind supports.
    public static func make(_ kind: GANModelKind, for image: TensorShape, generatorWidth: Int = 64,
                            discriminatorWidth: Int = 64, source: String) throws -> GANModel {
        switch kind {
        case .seed:
            return try seed(for: image, source: source)
        case .dcgan:
            guard image.height == image.width,
                  let model = dcgan(imageSide: image.height, channels: image.channels, generatorWidth: generatorWidth,
                                    discriminatorWidth: discriminatorWidth) else {
                throw DataError(path: source, problem: "images are \(image.height)×\(image.width)×\(image.channels); --model dcgan trains on \(dcganImageSides.map { "\($0)×\($0)" }.joined(separator: ", ")) images with \(dcganChannels.map(String.init).joined(separator: " or ")) channels (--image-size resizes)")
            }
            return model
        }
    }

    /// The kind of model this is.
    public var kind: GANModelKind { conventions == .pytorch ? .dcgan : .seed }

    /// How a training step uses the two networks: the Keras seed's or PyTorch's DCGAN example's (`GANStepPlan`).
    public var conventions: ModelConventions { generator.conventions }

    /// The seed DCGAN for images of this shape, or an error naming what it supports.
    public static func seed(for image: TensorShape, source: String) throws -> GANModel {
        guard image.height == image.width, let model = seed(imageSide: image.height, channels: image.channels) else {
            throw DataError(path: source, problem: "images are \(image.height)×\(image.width)×\(image.channels); the seed DCGAN trains on \(seedImageSides.map { "\($0)×\($0)" }.joined(separator: " or ")) images with \(seedChannels.map(String.init).joined(separator: " or ")) channels (grey or RGB)")
        }
        return model
    }

    /// One image: height × width × channels.
    public var imageShape: TensorShape { discriminator.input }
}

/// The models `pgan train --model` offers.
public enum GANModelKind: String, Sendable, CaseIterable {
    /// The Keras DCGAN of the seed project (docs/ARCHITECTURE.md §1), RMSprop: 28×28 or 32×32.
    case seed
    /// The DCGAN paper's model as PyTorch's example builds and trains it, Adam: 16×16 to 128×128.
    case dcgan

    /// The image sides the kind is built for.
    public var imageSides: [Int] { self == .seed ? GANModel.seedImageSides : GANModel.dcganImageSides }

    /// The side images are resized to when the data is not already one of `imageSides`: the smallest supported side
    /// at least as large, or the largest.
    public func imageSide(for dataSide: Int) -> Int {
        imageSides.first { $0 >= dataSide } ?? imageSides.last!
    }

    /// The optimizer the model's own code trains with: the seed's RMSprop, the DCGAN paper's Adam.
    public var defaultOptimizer: OptimizerKind { self == .seed ? .rmsprop : .adam }
}
