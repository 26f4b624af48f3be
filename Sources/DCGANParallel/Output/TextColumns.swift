#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// C's printf formatting (`vsnprintf`) of numbers — `%d`, `%.2f`, `%6.1f`, `%02x`, `%%` — as Foundation's
    /// `String(format:)` gives it, without linking Foundation (pgan uses FoundationEssentials only: the full one costs
    /// ~6.5 MB of resident memory). Text goes in by interpolation: there is no `%@`.
    public init(printf format: String, _ arguments: CVarArg...) {
        let length = Int(withVaList(arguments) { vsnprintf(nil, 0, format, $0) })
        guard length > 0 else {
            self = ""
            return
        }
        var buffer = [CChar](repeating: 0, count: length + 1)
        _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        self = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension StringProtocol {
    /// The text without the spaces, tabs and line ends around it.
    public func trimmed() -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0.isNewline }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// Padding for the columns of text tables (widths count characters, not the UTF-8 bytes printf counts).
extension String {
    /// The text with spaces before it, `width` characters in all (longer text is left as it is).
    func rightAligned(_ width: Int) -> String {
        String(repeating: " ", count: max(0, width - count)) + self
    }

    /// The text with spaces after it, `width` characters in all (longer text is left as it is).
    func leftAligned(_ width: Int) -> String {
        self + String(repeating: " ", count: max(0, width - count))
    }
}
