/// Tab completion for a code being typed at the prompt, as magic-wormhole
/// does it: after `7-`, TAB completes the first word from the even column of
/// the word list and adds the `-`; after that, the second word from the odd
/// column. A word that several list words start with is extended as far as
/// they agree, and the candidates are offered for display.
public enum CodeCompletion {
    public struct Result: Equatable, Sendable {
        /// The text after completion (the input itself when nothing could be added).
        public var text: String
        /// Words the part being typed could still become (empty when it
        /// was completed to a single word, or nothing matches).
        public var candidates: [String]

        public init(text: String, candidates: [String]) {
            self.text = text
            self.candidates = candidates
        }
    }

    /// Completes `text`, the whole line typed so far.
    public static func complete(_ text: String) -> Result {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            // A nameplate alone: a TAB after its digits adds the dash.
            let nameplate = parts[0]
            if (try? Nameplate.validate(nameplate)) != nil { return Result(text: nameplate + "-", candidates: []) }
            return Result(text: text, candidates: [])
        case 2:
            return completeWord(typed: parts[1], before: parts[0] + "-", list: WordList.even, last: false)
        case 3:
            return completeWord(typed: parts[2], before: parts[0] + "-" + parts[1] + "-", list: WordList.odd, last: true)
        default:
            return Result(text: text, candidates: [])
        }
    }

    /// The words of the list that the part typed at that position may become.
    public static func candidates(for text: String) -> [String] {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 2: return matches(parts[1], in: WordList.even)
        case 3: return matches(parts[2], in: WordList.odd)
        default: return []
        }
    }

    private static func matches(_ typed: String, in list: [String]) -> [String] {
        let prefix = typed.lowercased()
        return list.filter { $0.hasPrefix(prefix) }
    }

    private static func completeWord(typed: String, before: String, list: [String], last: Bool) -> Result {
        let found = matches(typed, in: list)
        guard let first = found.first else { return Result(text: before + typed, candidates: []) }
        if found.count == 1 { return Result(text: before + first + (last ? "" : "-"), candidates: []) }
        // Several: as far as they all agree (at least what was typed).
        var common = first
        for word in found.dropFirst() {
            common = String(zip(common, word).prefix { $0 == $1 }.map(\.0))
        }
        let extended = common.count > typed.count ? common : typed
        return Result(text: before + extended, candidates: found)
    }
}
