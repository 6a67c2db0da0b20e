/// Measuring and shortening text for a terminal line of a given width.
///
/// Widths are in terminal columns: most characters take one, East Asian wide
/// and fullwidth characters and emoji take two, combining marks and other
/// zero-width characters none. Text from a peer should be made safe with
/// `DisplayText.escaped` first; this only measures and cuts.
public enum TerminalText {
    /// The columns `text` takes on a terminal.
    public static func width(_ text: String) -> Int {
        text.reduce(0) { $0 + width($1) }
    }

    /// The columns one character (a grapheme cluster) takes: that of its
    /// widest scalar, so a base letter with combining marks takes one.
    public static func width(_ character: Character) -> Int {
        character.unicodeScalars.reduce(0) { Swift.max($0, width($1)) }
    }

    static func width(_ scalar: Unicode.Scalar) -> Int {
        let value = scalar.value
        switch value {
        case 0x0300...0x036f, 0x1ab0...0x1aff, 0x1dc0...0x1dff, 0x20d0...0x20ff, 0xfe20...0xfe2f:
            return 0  // combining marks
        case 0x200b...0x200f, 0x2060...0x2064, 0xfe00...0xfe0f, 0xfeff:
            return 0  // zero-width spaces and joiners, variation selectors
        case 0x1100...0x115f, 0x2e80...0x303e, 0x3041...0x33ff, 0x3400...0x4dbf, 0x4e00...0x9fff,
             0xa000...0xa4cf, 0xac00...0xd7a3, 0xf900...0xfaff, 0xfe30...0xfe4f, 0xff00...0xff60,
             0xffe0...0xffe6, 0x1f300...0x1f64f, 0x1f900...0x1f9ff, 0x20000...0x2fffd, 0x30000...0x3fffd:
            return 2  // CJK, Hangul, fullwidth forms, emoji
        default:
            return 1
        }
    }

    /// `text` if it fits in `columns`, otherwise its start and its end
    /// joined by "…" so that the whole takes at most `columns`
    /// (`very-long-na…file.txt`): both ends of a file name say more than
    /// either alone.
    public static func elidingMiddle(_ text: String, toWidth columns: Int) -> String {
        guard width(text) > columns else { return text }
        guard columns > 1 else { return columns == 1 ? "…" : "" }
        let room = columns - 1  // one column for the ellipsis
        let tailRoom = room / 2
        let headRoom = room - tailRoom
        let characters = Array(text)
        var head = ""
        var used = 0
        var headEnd = 0
        while headEnd < characters.count, used + width(characters[headEnd]) <= headRoom {
            used += width(characters[headEnd])
            head.append(characters[headEnd])
            headEnd += 1
        }
        // The tail may use what the head could not (a wide character that
        // did not fit at the end of the head's share).
        let tailBudget = room - used
        var tail: [Character] = []
        used = 0
        var tailStart = characters.count
        while tailStart > headEnd, used + width(characters[tailStart - 1]) <= tailBudget {
            tailStart -= 1
            used += width(characters[tailStart])
            tail.append(characters[tailStart])
        }
        return head + "…" + String(tail.reversed())
    }

    /// The longest start of `text` that takes at most `columns`.
    public static func prefix(_ text: String, width columns: Int) -> String {
        var out = ""
        var used = 0
        for character in text {
            let next = width(character)
            guard used + next <= columns else { break }
            used += next
            out.append(character)
        }
        return out
    }
}
