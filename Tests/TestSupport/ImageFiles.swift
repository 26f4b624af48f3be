import CPNG
import CTurboJPEG
import Foundation

/// PNG and JPEG files for the image-folder tests, written by the same system libraries pgan reads them with
/// (libpng's simplified API, TurboJPEG), in the forms users bring: 8- and 16-bit, grey, grey+alpha, RGB, RGBA and
/// palette PNGs; grey and colour JPEGs.
public enum ImageFiles {
    /// A PNG of `width` × `height`: `samples` in the layout libpng's `format` flags say (PNG_FORMAT_FLAG_COLOR,
    /// _ALPHA, _LINEAR for 16-bit samples given as UInt16), or, with `colormap` (RGB triples), 8-bit palette indices.
    public static func png(width: Int, height: Int, colour: Bool, alpha: Bool = false, samples8: [UInt8] = [],
                           samples16: [UInt16] = [], colormap: [UInt8]? = nil) -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = (colour ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (alpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
            | (samples16.isEmpty ? 0 : UInt32(PNG_FORMAT_FLAG_LINEAR)) | (colormap == nil ? 0 : UInt32(PNG_FORMAT_FLAG_COLORMAP))
        if let colormap { image.colormap_entries = UInt32(colormap.count / 3) }
        var size: png_alloc_size_t = 0
        func write(_ memory: UnsafeMutableRawPointer?) -> Int32 {
            samples16.isEmpty
                ? png_image_write_to_memory(&image, memory, &size, 0, samples8, 0, colormap)
                : png_image_write_to_memory(&image, memory, &size, 0, samples16, 0, colormap)
        }
        precondition(write(nil) != 0, "libpng could not size the test PNG")
        var bytes = [UInt8](repeating: 0, count: Int(size))
        precondition(bytes.withUnsafeMutableBytes { write($0.baseAddress) } != 0, "libpng could not write the test PNG")
        return Array(bytes.prefix(Int(size)))
    }

    /// A JPEG (quality 100, no chroma subsampling) of 8-bit grey or RGB `pixels`.
    public static func jpeg(width: Int, height: Int, colour: Bool, pixels: [UInt8]) -> [UInt8] {
        let handle = tjInitCompress()!
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let format = colour ? TJPF_RGB : TJPF_GRAY, sampling = colour ? TJSAMP_444 : TJSAMP_GRAY
        let status = tjCompress2(handle, pixels, Int32(width), 0, Int32(height), Int32(format.rawValue), &output, &size,
                                 Int32(sampling.rawValue), 100, 0)
        precondition(status == 0, "TurboJPEG could not write the test JPEG")
        defer { tjFree(output) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}
