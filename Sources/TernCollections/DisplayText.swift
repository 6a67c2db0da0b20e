/// Makes text from the peer safe to print on a terminal.
public enum DisplayText {
    /// Replaces every character that could drive a terminal or hide what is
    /// shown (C0 and C1 controls, DEL, bidirectional overrides and isolates,
    /// line and paragraph separators) with a visible `\u{…}` escape, and a
    /// backslash with `\\` so an escape cannot be faked. Printable text,
    /// including non-Latin scripts, is kept as it is.
    ///
    /// With a `limit`, text longer than that many characters is cut with an
    /// ellipsis, so a hostile 100 KB name cannot flood the terminal.
    ///
    /// `keepingLines` keeps line feeds and tabs as they are (a text message's
    /// lines, not a name): they move the cursor only to the next line or tab
    /// stop, and cannot hide or rewrite what was shown. A carriage return
    /// (which can overwrite the line) is still escaped.
    public static func escaped(_ text: String, limit: Int? = nil, keepingLines: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var shown = 0
        for scalar in text.unicodeScalars {
            if let limit, shown == limit {
                out += "…"
                break
            }
            shown += 1
            if scalar == "\\" {
                out += "\\\\"
            } else if needsEscape(scalar), !(keepingLines && (scalar == "\n" || scalar == "\t")) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1f, 0x7f...0x9f: return true  // C0, DEL, C1 (CSI is 0x9b)
        case 0x200e, 0x200f, 0x202a...0x202e, 0x2066...0x2069: return true  // bidi marks, embeddings, overrides, isolates
        case 0x2028, 0x2029: return true  // line and paragraph separators
        case 0xfeff: return true  // zero-width no-break space
        default: return false
        }
    }
}
