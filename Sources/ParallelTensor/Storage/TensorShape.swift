/// Shape of an activation tensor in channels-last (NHWC) layout: element (n, y, x, c) lives at
/// `((n * height + y) * width + x) * channels + c`. Channels are innermost so that a pixel's channels fill
/// SIMD8 lanes and the Keras weight layouts (kh, kw, in, out) apply without transposition.
public struct TensorShape: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int
    public var height: Int
    public var width: Int
    public var channels: Int

    public init(batch: Int, height: Int, width: Int, channels: Int) {
        self.batch = batch
        self.height = height
        self.width = width
        self.channels = channels
    }

    public var pixelsPerImage: Int { height * width }
    public var elementsPerImage: Int { height * width * channels }
    public var elementCount: Int { batch * elementsPerImage }
    public var rows: Int { batch * height * width }

    public func withBatch(_ batch: Int) -> TensorShape {
        TensorShape(batch: batch, height: height, width: width, channels: channels)
    }

    public var description: String { "\(batch)×\(height)×\(width)×\(channels)" }
}
