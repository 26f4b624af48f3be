import ParallelTensor

/// An activation function, as a layer of its own or attached to a Dense/Conv layer like Keras' `activation=`.
public enum Activation: Sendable, Equatable, CustomStringConvertible {
    case selu
    case tanh
    case leakyReLU(slope: Float)
    /// max(x, 0), as the DCGAN paper's generator uses it.
    case relu
    /// Only as the discriminator's last activation: the loss takes its logit (sigmoid cross-entropy from logits).
    case sigmoid

    public var description: String {
        switch self {
        case .selu: "selu"
        case .tanh: "tanh"
        case .leakyReLU(let slope): "LeakyReLU(\(slope))"
        case .relu: "ReLU"
        case .sigmoid: "sigmoid"
        }
    }
}

/// How a convolution pads its input.
public enum Padding: Sendable, Equatable {
    /// Keras/TensorFlow "same": ceil(n/s) outputs (n·s for a transposed convolution), the padding split with the
    /// smaller half first (docs/ARCHITECTURE.md §1).
    case same
    /// PyTorch's `padding=p`: p zeros on every side; a convolution makes (n + 2p − k)/s + 1 outputs, a transposed one
    /// (n − 1)·s − 2p + k.
    case explicit(Int)
}

/// One layer of a model description: what Keras (or PyTorch) would be told, nothing about memory or threads. Shapes
/// follow from the model's input, layer by layer.
public enum LayerDescription: Sendable, Equatable {
    case dense(units: Int, activation: Activation? = nil)
    case reshape(height: Int, width: Int, channels: Int)
    case flatten
    /// BatchNormalization over the last (channel) axis: a whole-minibatch reduction. Its momentum, epsilon and
    /// running variance follow the model's `ModelConventions`.
    case batchNormalization
    /// `useBias: false` is PyTorch's `bias=False` (the DCGAN paper's layers, each followed by a BatchNorm).
    case conv2D(filters: Int, kernelSize: Int, stride: Int, padding: Padding = .same, useBias: Bool = true,
                activation: Activation? = nil)
    case conv2DTranspose(filters: Int, kernelSize: Int, stride: Int, padding: Padding = .same, useBias: Bool = true,
                         activation: Activation? = nil)
    case activation(Activation)
    case dropout(rate: Float)
}

/// The defaults of the framework a model is written in, where the two differ beyond the layer list.
public enum ModelConventions: String, Sendable, Equatable {
    /// Keras: Glorot-uniform kernels, zero biases; BatchNorm momentum 0.99 (running = 0.99·running + 0.01·batch),
    /// epsilon 1e-3, gamma 1, the biased batch variance in the running variance.
    case keras
    /// PyTorch's DCGAN example: every kernel N(0, 0.02), BatchNorm gamma N(1, 0.02) (its `weights_init`), zero
    /// biases; BatchNorm momentum 0.1 (running = 0.9·running + 0.1·batch), epsilon 1e-5, the unbiased batch variance
    /// (·n/(n−1)) in the running variance.
    case pytorch
}

/// A model as data: an input geometry and an ordered list of layers, readable next to the Keras (or PyTorch) code it
/// reproduces. `Network` builds the layers, their parameters and their memory plan from it.
public struct ModelDescription: Sendable, Equatable {
    /// The prefix of every parameter name ("generator" → "generator.dense.kernel").
    public var name: String
    /// One sample's input: height × width × channels (a vector is 1 × 1 × n).
    public var input: TensorShape
    public var layers: [LayerDescription]
    public var conventions: ModelConventions

    public init(name: String, input: TensorShape, layers: [LayerDescription], conventions: ModelConventions = .keras) {
        self.name = name
        self.input = input
        self.layers = layers
        self.conventions = conventions
    }

    /// The seed generator (docs/ARCHITECTURE.md §1), as its Keras code reads:
    /// `Dense(7*7*128), Reshape([7, 7, 128]), BatchNormalization(),
    ///  Conv2DTranspose(64, 5, strides=2, padding="same", activation="selu"), BatchNormalization(),
    ///  Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh")`.
    /// For other images the same layers start from side/4 (8×8 for 32×32) and end in `channels` filters.
    public static func seedGenerator(codings: Int = 100, imageSide: Int = 28, channels: Int = 1) -> ModelDescription {
        let start = imageSide / 4
        return ModelDescription(name: "generator", input: .vector(codings), layers: [
            .dense(units: start * start * 128),
            .reshape(height: start, width: start, channels: 128),
            .batchNormalization,
            .conv2DTranspose(filters: 64, kernelSize: 5, stride: 2, activation: .selu),
            .batchNormalization,
            .conv2DTranspose(filters: channels, kernelSize: 5, stride: 2, activation: .tanh),
        ])
    }

    /// The seed discriminator: `Conv2D(64, 5, strides=2, padding="same", activation=LeakyReLU(0.2)), Dropout(0.3),
    /// Conv2D(128, 5, strides=2, padding="same", activation=LeakyReLU(0.2)), Dropout(0.3), Flatten(),
    /// Dense(1, activation="sigmoid")` on 28×28×1 images (or imageSide² × channels).
    public static func seedDiscriminator(imageSide: Int = 28, channels: Int = 1) -> ModelDescription {
        ModelDescription(name: "discriminator",
                         input: TensorShape(batch: 1, height: imageSide, width: imageSide, channels: channels),
                         layers: [
            .conv2D(filters: 64, kernelSize: 5, stride: 2, activation: .leakyReLU(slope: 0.2)),
            .dropout(rate: 0.3),
            .conv2D(filters: 128, kernelSize: 5, stride: 2, activation: .leakyReLU(slope: 0.2)),
            .dropout(rate: 0.3),
            .flatten,
            .dense(units: 1, activation: .sigmoid),
        ])
    }
}

extension ModelDescription {
    /// The DCGAN paper's generator as PyTorch's `examples/dcgan` writes it, for imageSide² × channels images
    /// (imageSide = 2^k, k ≥ 4): `ConvTranspose2d(nz, ngf·2^(n−1), 4, 1, 0, bias=False), BatchNorm2d, ReLU`, then for
    /// each width down to ngf `ConvTranspose2d(·, ·/2, 4, 2, 1, bias=False), BatchNorm2d, ReLU`, and
    /// `ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), Tanh` — n = k − 2 doublings from 4×4 (n = 4 at 64×64, as in
    /// the example).
    public static func dcganGenerator(imageSide: Int, channels: Int, width: Int, codings: Int = 100) -> ModelDescription {
        let doublings = imageSide.trailingZeroBitCount - 2
        var layers: [LayerDescription] = [
            .conv2DTranspose(filters: width << (doublings - 1), kernelSize: 4, stride: 1, padding: .explicit(0),
                             useBias: false),
            .batchNormalization, .activation(.relu),
        ]
        for power in (0..<(doublings - 1)).reversed() {
            layers += [.conv2DTranspose(filters: width << power, kernelSize: 4, stride: 2, padding: .explicit(1),
                                        useBias: false),
                       .batchNormalization, .activation(.relu)]
        }
        layers.append(.conv2DTranspose(filters: channels, kernelSize: 4, stride: 2, padding: .explicit(1),
                                       useBias: false, activation: .tanh))
        return ModelDescription(name: "generator", input: .vector(codings), layers: layers, conventions: .pytorch)
    }

    /// The DCGAN paper's discriminator as PyTorch's example writes it: `Conv2d(nc, ndf, 4, 2, 1, bias=False),
    /// LeakyReLU(0.2)`, then for each doubling width `Conv2d(·, 2·, 4, 2, 1, bias=False), BatchNorm2d,
    /// LeakyReLU(0.2)` down to 4×4, and `Conv2d(ndf·2^(n−1), 1, 4, 1, 0, bias=False), Sigmoid`.
    public static func dcganDiscriminator(imageSide: Int, channels: Int, width: Int) -> ModelDescription {
        let doublings = imageSide.trailingZeroBitCount - 2
        var layers: [LayerDescription] = [
            .conv2D(filters: width, kernelSize: 4, stride: 2, padding: .explicit(1), useBias: false,
                    activation: .leakyReLU(slope: 0.2)),
        ]
        for power in 1..<doublings {
            layers += [.conv2D(filters: width << power, kernelSize: 4, stride: 2, padding: .explicit(1), useBias: false),
                       .batchNormalization, .activation(.leakyReLU(slope: 0.2))]
        }
        layers.append(.conv2D(filters: 1, kernelSize: 4, stride: 1, padding: .explicit(0), useBias: false,
                              activation: .sigmoid))
        return ModelDescription(name: "discriminator",
                                input: TensorShape(batch: 1, height: imageSide, width: imageSide, channels: channels),
                                layers: layers, conventions: .pytorch)
    }
}

extension Padding {
    var suffix: String {
        switch self {
        case .same: ""
        case .explicit(let p): ", padding \(p)"
        }
    }
}

extension TensorShape {
    /// One sample of n features.
    public static func vector(_ n: Int) -> TensorShape { TensorShape(batch: 1, height: 1, width: 1, channels: n) }

    var isVector: Bool { height == 1 && width == 1 }
}

/// A model description that cannot be built; the message names the layer.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension LayerDescription {
    /// The activation this layer applies: its own (`.activation`) or the one attached to a Dense/Conv layer.
    public var activation: Activation? {
        switch self {
        case .dense(_, let activation), .conv2D(_, _, _, _, _, let activation),
             .conv2DTranspose(_, _, _, _, _, let activation):
            activation
        case .activation(let activation):
            activation
        default:
            nil
        }
    }

    /// The Keras layer kind that names a layer with weights ("dense", "conv2d", …); nil for layers without.
    var kerasKind: String? {
        switch self {
        case .dense: "dense"
        case .conv2D: "conv2d"
        case .conv2DTranspose: "conv_transpose"
        case .batchNormalization: "batch_norm"
        default: nil
        }
    }

    var name: String {
        switch self {
        case .dense(let units, _): "Dense(\(units))"
        case .reshape(let h, let w, let c): "Reshape(\(h), \(w), \(c))"
        case .flatten: "Flatten"
        case .batchNormalization: "BatchNormalization"
        case .conv2D(let filters, let k, let s, let padding, _, _):
            "Conv2D(\(filters), \(k)×\(k), stride \(s)\(padding.suffix))"
        case .conv2DTranspose(let filters, let k, let s, let padding, _, _):
            "Conv2DTranspose(\(filters), \(k)×\(k), stride \(s)\(padding.suffix))"
        case .activation(let activation): "Activation(\(activation))"
        case .dropout(let rate): "Dropout(\(rate))"
        }
    }
}

extension ModelDescription {
    /// The largest tensor one sample may have anywhere in a model (2^26 floats, 256 MiB), and the largest kernel or
    /// stride: bounds that keep an absurd description an error instead of an allocation that cannot succeed.
    public static let maximumElementsPerSample = 1 << 26
    static let maximumKernelSize = 64

    /// One sample's shape before every layer and after the last (`layers.count + 1` shapes), checking that each layer
    /// can take its input; the error names the layer.
    public func shapes() throws -> [TensorShape] {
        func fail(_ index: Int, _ problem: String) -> ModelError {
            ModelError("\(name) layer \(index + 1) (\(layers[index].name)): \(problem)")
        }
        func checked(_ shape: TensorShape, _ index: Int) throws -> TensorShape {
            let (hw, o1) = shape.height.multipliedReportingOverflow(by: shape.width)
            let (all, o2) = hw.multipliedReportingOverflow(by: shape.channels)
            guard shape.height > 0, shape.width > 0, shape.channels > 0, !o1, !o2,
                  all <= Self.maximumElementsPerSample else {
                throw fail(index, "its output \(shape.height)×\(shape.width)×\(shape.channels) is empty or larger than \(Self.maximumElementsPerSample) elements")
            }
            return shape
        }
        guard input.height > 0, input.width > 0, input.channels > 0,
              input.height.multipliedReportingOverflow(by: input.width).partialValue
                .multipliedReportingOverflow(by: input.channels).partialValue <= Self.maximumElementsPerSample,
              input.height <= Self.maximumElementsPerSample, input.width <= Self.maximumElementsPerSample else {
            throw ModelError("\(name): the input \(input.height)×\(input.width)×\(input.channels) is empty or too large")
        }
        guard !layers.isEmpty else { throw ModelError("\(name) has no layers") }
        var shapes = [TensorShape(batch: 1, height: input.height, width: input.width, channels: input.channels)]
        for (index, layer) in layers.enumerated() {
            let x = shapes[index]
            var y = x
            switch layer {
            case .dense(let units, _):
                guard x.isVector else { throw fail(index, "Dense takes a vector; add .flatten before it (input \(x.height)×\(x.width)×\(x.channels))") }
                y = .vector(units)
            case .reshape(let h, let w, let c):
                y = TensorShape(batch: 1, height: h, width: w, channels: c)
                guard h > 0, w > 0, c > 0,
                      h.multipliedReportingOverflow(by: w).partialValue.multipliedReportingOverflow(by: c).partialValue
                        == x.elementsPerImage, h <= x.elementsPerImage, w <= x.elementsPerImage else {
                    throw fail(index, "\(x.elementsPerImage) elements cannot be viewed as \(h)×\(w)×\(c)")
                }
            case .flatten:
                y = .vector(x.elementsPerImage)
            case .batchNormalization, .activation:
                break
            case .dropout(let rate):
                guard rate >= 0, rate < 1 else { throw fail(index, "the rate must be in [0, 1)") }
            case .conv2D(let filters, let k, let s, let padding, _, _),
                 .conv2DTranspose(let filters, let k, let s, let padding, _, _):
                guard (1...Self.maximumKernelSize).contains(k), (1...Self.maximumKernelSize).contains(s), filters > 0 else {
                    throw fail(index, "kernel size and stride must be 1–\(Self.maximumKernelSize) and filters positive")
                }
                guard x.height <= Self.maximumElementsPerSample / s, x.width <= Self.maximumElementsPerSample / s else {
                    throw fail(index, "the output is too large")
                }
                let transposed: Bool
                if case .conv2DTranspose = layer { transposed = true } else { transposed = false }
                switch padding {
                case .same where transposed:
                    y = TensorShape(batch: 1, height: x.height * s, width: x.width * s, channels: filters)
                case .same:
                    y = TensorShape(batch: 1, height: (x.height + s - 1) / s, width: (x.width + s - 1) / s, channels: filters)
                case .explicit(let p):
                    guard (0..<k).contains(p) else { throw fail(index, "the padding must be 0–\(k - 1) for a \(k)×\(k) kernel") }
                    func side(_ n: Int) -> Int { transposed ? (n - 1) * s - 2 * p + k : (n + 2 * p - k) / s + 1 }
                    guard transposed || (x.height + 2 * p >= k && x.width + 2 * p >= k) else {
                        throw fail(index, "a \(x.height)×\(x.width) input padded by \(p) is smaller than the kernel")
                    }
                    y = TensorShape(batch: 1, height: side(x.height), width: side(x.width), channels: filters)
                }
            }
            if layer.activation == .sigmoid && index != layers.count - 1 {
                throw fail(index, "a sigmoid is only supported as the last activation (the loss takes its logit)")
            }
            shapes.append(try checked(y, index))
        }
        return shapes
    }
}
