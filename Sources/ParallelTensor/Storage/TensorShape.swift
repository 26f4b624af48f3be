/// Shape of an activation tensor in channels-last (NHWC) layout: element (n, y, x, c) lives at
/// `((n * height + y) * width + x) * channels + c`. Channels are innermost so that a pixel's channels fill
/// SIMD8 lanes and the Keras weight layouts (kh, kw, in, out) apply without transposition.
public struct TensorShape: Hashable, Sendable {
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

    public var elementsPerImage: Int { height * width * channels }
}
