import Testing
@testable import TernRendezvous

@Suite struct CodeCompletionTests {
    @Test func aNameplateGetsItsDash() {
        #expect(CodeCompletion.complete("7") == .init(text: "7-", candidates: []))
        #expect(CodeCompletion.complete("") == .init(text: "", candidates: []))
        #expect(CodeCompletion.complete("07") == .init(text: "07", candidates: []))
    }

    @Test func aUniqueFirstWordIsCompletedWithTheDash() {
        #expect(CodeCompletion.complete("7-blu") == .init(text: "7-bluebird-", candidates: []))
        #expect(CodeCompletion.complete("7-BLU") == .init(text: "7-bluebird-", candidates: []))
        #expect(CodeCompletion.complete("7-bluebird") == .init(text: "7-bluebird-", candidates: []))
    }

    @Test func aUniqueSecondWordIsCompletedWithoutADash() {
        #expect(CodeCompletion.complete("7-bluebird-carav") == .init(text: "7-bluebird-caravan", candidates: []))
    }

    @Test func theSecondWordComesFromTheOddColumn() {
        // "caravan" stands second only; the even column has no word for "carav".
        #expect(CodeCompletion.complete("7-carav").candidates.isEmpty)
        #expect(CodeCompletion.complete("7-carav").text == "7-carav")
        #expect(WordList.odd.contains("caravan") && !WordList.even.contains("caravan"))
    }

    @Test func anAmbiguousWordExtendsAsFarAsTheCandidatesAgree() {
        let result = CodeCompletion.complete("7-bluebird-ca")
        #expect(result.text == "7-bluebird-ca")
        #expect(result.candidates == ["camelot", "candidate", "cannonball", "capricorn", "caravan", "caretaker"])
        let further = CodeCompletion.complete("7-bluebird-car")
        #expect(further.text == "7-bluebird-car")
        #expect(further.candidates == ["caravan", "caretaker"])
        // Both "beehive" and "beeswax" start with "bee".
        #expect(CodeCompletion.complete("7-be").text == "7-be")
        #expect(CodeCompletion.complete("7-bee").candidates == ["beehive", "beeswax"])
        #expect(CodeCompletion.complete("7-bees").text == "7-beeswax-")
    }

    @Test func everyCompletedCodeParses() throws {
        for first in WordList.even.prefix(16) {
            let afterFirst = CodeCompletion.complete("42-" + first)
            #expect(afterFirst.text == "42-\(first)-")
            for second in WordList.odd.prefix(16) {
                let text = CodeCompletion.complete(afterFirst.text + second).text
                #expect(try Code(parsing: text).description == "42-\(first)-\(second)")
            }
        }
    }

    @Test func nothingMatchesNothingIsAdded() {
        #expect(CodeCompletion.complete("7-zzz") == .init(text: "7-zzz", candidates: []))
        #expect(CodeCompletion.complete("7-a-b-c") == .init(text: "7-a-b-c", candidates: []))
    }
}
