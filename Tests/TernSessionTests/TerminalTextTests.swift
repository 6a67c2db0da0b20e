import Foundation
import NIOCore
import Testing
@testable import TernCollections
@testable import TernSession

@Suite struct TerminalTextTests {
    @Test(arguments: [
        ("abc", 3),
        ("résumé", 6),
        ("e\u{301}", 1),  // e and a combining acute accent
        ("履歴書", 6),
        ("ｆｕｌｌ", 8),
        ("🎉", 2),
    ])
    func measuresColumns(text: String, columns: Int) {
        #expect(TerminalText.width(text) == columns)
    }

    @Test func keepsTextThatFits() {
        #expect(TerminalText.elidingMiddle("short.txt", toWidth: 9) == "short.txt")
        #expect(TerminalText.elidingMiddle("short.txt", toWidth: 40) == "short.txt")
    }

    @Test func shortensInTheMiddleToTheExactWidth() {
        let name = "very-long-name-of-a-file.txt"
        let short = TerminalText.elidingMiddle(name, toWidth: 21)
        #expect(short == "very-long-…a-file.txt")
        #expect(TerminalText.width(short) == 21)
        #expect(short.hasPrefix("very-long-"))
        #expect(short.hasSuffix("file.txt"))
    }

    @Test(arguments: 0...30)
    func neverExceedsTheWidth(columns: Int) {
        for name in ["a-name-that-is-long-enough-to-cut.tar.gz", "履歴書と職務経歴書のまとめ.pdf", "mixed-名前-🎉-e\u{301}-end"] {
            let short = TerminalText.elidingMiddle(name, toWidth: columns)
            #expect(TerminalText.width(short) <= columns, "\(short) at \(columns)")
            if TerminalText.width(name) > columns, columns >= 1 { #expect(short.contains("…")) }
        }
    }

    @Test func cutsAPrefixByColumns() {
        #expect(TerminalText.prefix("履歴書", width: 5) == "履歴")
        #expect(TerminalText.prefix("abc", width: 2) == "ab")
    }
}

@Suite struct ByteFormatTests {
    @Test(arguments: [
        (UInt64(0), "0 B"),
        (UInt64(1023), "1023 B"),
        (UInt64(1024), "1.0 KiB"),
        (UInt64(1536), "1.5 KiB"),
        (UInt64(1_048_575), "1.0 MiB"),  // not "1024.0 KiB"
        (UInt64(314_572_800), "300.0 MiB"),
        (UInt64(5 * 1_073_741_824), "5.0 GiB"),
    ])
    func sizesInBinaryUnits(bytes: UInt64, text: String) {
        #expect(ByteFormat.size(bytes) == text)
    }

    @Test(arguments: [
        (0.0, "0 B/s"),
        (512.0, "512 B/s"),
        (7_025_459.2, "6.7 MiB/s"),
        (49_597_235.0, "47.3 MiB/s"),
        (Double.nan, "0 B/s"),
    ])
    func ratesInTheSameUnitsAsSizes(rate: Double, text: String) {
        #expect(ByteFormat.rate(rate) == text)
    }
}

@Suite struct ErrorTextTests {
    @Test func systemErrorsReadAsPlainWords() {
        let refused = IOError(errnoCode: ECONNREFUSED, reason: "connect")
        #expect(ErrorText.describe(refused) == "connection refused")
        #expect(!ErrorText.describe(refused).contains("errno"))
    }

    @Test func channelErrorsReadAsPlainWords() {
        #expect(ErrorText.describe(ChannelError.connectTimeout(.seconds(3))) == "the connection attempt timed out")
        #expect(ErrorText.describe(ChannelError.eof) == "the other end closed the connection")
    }
}
