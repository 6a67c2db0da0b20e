import Foundation
import Testing
@testable import TernRendezvous

@Suite struct CodeTests {
    @Test(arguments: [
        ("7-bluebird-caravan", "7-bluebird-caravan"),
        ("  7-Bluebird-CARAVAN \n", "7-bluebird-caravan"),
        ("\t123456-aardvark-adroitness", "123456-aardvark-adroitness"),
    ])
    func parsesForgivingCaseAndSurroundingSpace(input: String, expected: String) throws {
        let code = try Code(parsing: input)
        #expect(code.description == expected)
    }

    @Test(arguments: [
        "", "   ", "7", "7-bluebird", "7-bluebird-caravan-extra", "bluebird-caravan-7", "x-bluebird-caravan",
        "07-bluebird-caravan", "0-bluebird-caravan", "1234567-bluebird-caravan", "-7-bluebird-caravan",
        "7--bluebird-caravan", "7-bluebird-", "7-caravan-bluebird", "7-bluebird caravan", "7 -bluebird-caravan",
        "7-blue\u{1b}bird-caravan", "7-bluebird-caravan\u{0}", "7-bluebird-cara van", "٧-bluebird-caravan",
        String(repeating: "7", count: 100) + "-bluebird-caravan",
    ])
    func rejectsAnythingElse(input: String) {
        #expect(throws: RendezvousError.self) { try Code(parsing: input) }
    }

    @Test func unknownWordSuggestsTheNearestOne() throws {
        do {
            _ = try Code(parsing: "7-bluebrd-caravan")
            Issue.record("a misspelt word must be rejected")
        } catch {
            guard case .badCode(let why) = error else { Issue.record("wrong error \(error)"); return }
            #expect(why.contains("did you mean 'bluebird'"))
        }
    }

    @Test func rejectionNeverEchoesControlCharacters() throws {
        do {
            _ = try Code(parsing: "7-\u{1b}[31mred-caravan")
            Issue.record("must be rejected")
        } catch {
            #expect(!error.reason.unicodeScalars.contains { $0.value < 0x20 })
        }
    }

    @Test func generatedCodesParseBackForEveryWordPair() throws {
        for first in 0...255 {
            let second = (first * 7 + 3) % 256
            let code = try Code(nameplate: "42", randomBytes: (UInt8(first), UInt8(second)))
            let parsed = try Code(parsing: code.description)
            #expect(parsed == code)
            #expect(parsed.password == Array("\(code.firstWord)-\(code.secondWord)".utf8))
        }
    }

    @Test func wordListsHave256DistinctWordsEach() {
        #expect(WordList.even.count == 256)
        #expect(WordList.odd.count == 256)
        #expect(Set(WordList.even + WordList.odd).count == 512)
    }

    /// The generated Swift list matches ../shared/data/pgp-wordlist.txt where that file is present.
    @Test func wordListMatchesTheSharedData() throws {
        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/pgp-wordlist.txt")
        guard let text = try? String(contentsOf: shared, encoding: .utf8) else { return }
        let rows = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: " ") }.filter { $0.count == 3 }
        #expect(rows.count == 256)
        for row in rows {
            guard let index = Int(row[0], radix: 16) else { Issue.record("bad row \(row)"); continue }
            #expect(WordList.even[index] == row[1].lowercased())
            #expect(WordList.odd[index] == row[2].lowercased())
        }
    }
}
