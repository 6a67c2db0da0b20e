/// A tern code: `<nameplate>-<word>-<word>`, such as `7-bluebird-caravan`.
///
/// The nameplate is a small decimal number that names a meeting place on the
/// relay. The two words carry the secret: the first from the PGP word list's
/// even column, the second from its odd column, 16 bits in all. The relay sees
/// the nameplate but never the words.
public struct Code: Sendable, Hashable, CustomStringConvertible {
    /// Decimal digits, no leading zero, at most `Nameplate.maxDigits`.
    public let nameplate: String
    public let firstWord: String
    public let secondWord: String

    public var description: String { "\(nameplate)-\(firstWord)-\(secondWord)" }

    /// The secret part of the code, as fed to the PAKE.
    public var password: [UInt8] { Array("\(firstWord)-\(secondWord)".utf8) }

    /// Parses a code typed by a person: case and surrounding white space are
    /// forgiven, anything else is rejected with a reason that says what is wrong.
    public init(parsing text: String) throws(RendezvousError) {
        let trimmed = text.trimmingWhitespace().lowercased()
        guard !trimmed.isEmpty else { throw .badCode("the code is empty") }
        guard trimmed.utf8.count <= 64 else { throw .badCode("the code is too long") }
        let parts = trimmed.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw .badCode("a code looks like 7-bluebird-caravan: a number and two words joined by '-'")
        }
        let nameplate = String(parts[0])
        try Nameplate.validate(nameplate)
        let first = String(parts[1])
        let second = String(parts[2])
        guard WordList.even.contains(first) else {
            throw .badCode(Code.unknownWordReason(first, position: "first", list: WordList.even))
        }
        guard WordList.odd.contains(second) else {
            throw .badCode(Code.unknownWordReason(second, position: "second", list: WordList.odd))
        }
        self.nameplate = nameplate
        self.firstWord = first
        self.secondWord = second
    }

    /// A new code for `nameplate` with two words chosen from `randomBytes`,
    /// which must be two bytes from a cryptographic source.
    public init(nameplate: String, randomBytes: (UInt8, UInt8)) throws(RendezvousError) {
        try Nameplate.validate(nameplate)
        self.nameplate = nameplate
        self.firstWord = WordList.even[Int(randomBytes.0)]
        self.secondWord = WordList.odd[Int(randomBytes.1)]
    }

    private static func unknownWordReason(_ word: String, position: String, list: [String]) -> String {
        let shown = String(word.unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f }.prefix(32).map(Character.init))
        var reason = "'\(shown)' is not a word that can stand \(position) in a code"
        // Words in the list are at most 11 letters; longer input is no typo of one.
        if word.utf8.count <= 16 {
            var best: (word: String, distance: Int)?
            for candidate in list {
                let distance = editDistance(candidate, word)
                if distance < (best?.distance ?? 3) { best = (candidate, distance) }
            }
            if let best { reason += " (did you mean '\(best.word)'?)" }
        }
        return reason
    }
}

/// Nameplates: the relay's small numbers.
public enum Nameplate {
    public static let maxDigits = 6

    public static func validate(_ nameplate: String) throws(RendezvousError) {
        guard !nameplate.isEmpty else { throw .badCode("the code must start with a number, like 7-bluebird-caravan") }
        guard nameplate.utf8.count <= maxDigits else {
            throw .badCode("the number at the start of the code has more than \(maxDigits) digits")
        }
        guard nameplate.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .badCode("the code must start with a number, like 7-bluebird-caravan")
        }
        guard nameplate.utf8.first != UInt8(ascii: "0") else {
            throw .badCode("the number at the start of the code cannot start with 0")
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}

/// Levenshtein distance over bytes, for "did you mean" hints on short words.
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.utf8.prefix(64)), y = Array(b.utf8.prefix(64))
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var previous = Array(0...y.count)
    var current = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        current[0] = i
        for j in 1...y.count {
            let cost = x[i - 1] == y[j - 1] ? 0 : 1
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[y.count]
}
