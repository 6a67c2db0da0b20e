import Testing
@testable import TernSession
@testable import TernCollections

@Suite struct DisplayTextTests {
    @Test(arguments: [
        ("plain.txt", "plain.txt"),
        ("résumé 履歴書.pdf", "résumé 履歴書.pdf"),
        ("\u{1b}[2Jevil", "\\u{1b}[2Jevil"),
        ("bell\u{7}", "bell\\u{7}"),
        ("csi\u{9b}31m", "csi\\u{9b}31m"),
        ("new\nline", "new\\u{a}line"),
        ("txt.\u{202e}exe", "txt.\\u{202e}exe"),
        ("back\\slash", "back\\\\slash"),
        ("del\u{7f}", "del\\u{7f}"),
    ])
    func escapesWhatCouldDriveATerminal(input: String, expected: String) {
        #expect(DisplayText.escaped(input) == expected)
    }

    @Test func keepingLinesKeepsOnlyLineFeedsAndTabs() {
        #expect(DisplayText.escaped("a\nb\tc\rd\u{1b}e\u{2028}f", keepingLines: true) == "a\nb\tc\\u{d}d\\u{1b}e\\u{2028}f")
        let everything = String(String.UnicodeScalarView((0..<0x200).compactMap(Unicode.Scalar.init)))
        let kept = DisplayText.escaped(everything, keepingLines: true)
        #expect(!kept.unicodeScalars.contains { DisplayText.needsEscape($0) && $0 != "\n" && $0 != "\t" })
    }

    @Test func escapedTextHasNoControlCharacterLeft() {
        let everything = String(String.UnicodeScalarView((0..<0x200).compactMap(Unicode.Scalar.init)))
        let escaped = DisplayText.escaped(everything)
        #expect(!escaped.unicodeScalars.contains { DisplayText.needsEscape($0) })
    }
}

@Suite struct RelayURLTests {
    @Test(arguments: [
        ("ws://127.0.0.1:4747", "127.0.0.1", 4747),
        ("ws://relay.example", "relay.example", 4747),
        ("WS://[::1]:9000/", "::1", 9000),
        ("wss://relay.example", "relay.example", 443),
    ])
    func parsesBaseURLs(text: String, host: String, port: Int) throws {
        let url = try RelayURL(parsing: text)
        #expect(url.host == host)
        #expect(url.port == port)
    }

    @Test(arguments: ["", "127.0.0.1:4747", "http://relay", "ws://", "ws://relay/v1/extra", "ws://relay:99999", "ftp://relay"])
    func rejectsOthersWithAReason(text: String) {
        #expect(throws: SessionError.self) { try RelayURL(parsing: text) }
    }
}
