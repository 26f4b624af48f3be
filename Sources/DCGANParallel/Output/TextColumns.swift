/// Padding for the columns of text tables: `String(format:)` ignores widths for `%@` on Linux.
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
