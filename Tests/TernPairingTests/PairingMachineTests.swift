import Testing
import TernRendezvous
@testable import TernPairing

/// Two pairing cores talking through a perfect in-memory mailbox.
@Suite struct PairingMachineTests {
    static let mailbox = Identifier.random()

    /// Runs both machines to completion; returns them and what each saw.
    static func pair(senderCode: String, receiverCode: String) throws -> (PairingMachine, PairingMachine, [Result<[PairingMachine.Output], PairingError>], [Result<[PairingMachine.Output], PairingError>]) {
        var sender = try PairingMachine(role: .sender, code: try Code(parsing: senderCode), mailbox: mailbox)
        var receiver = try PairingMachine(role: .receiver, code: try Code(parsing: receiverCode), mailbox: mailbox)
        var toReceiver = [sender.start()]
        var toSender = [receiver.start()]
        var senderSaw: [Result<[PairingMachine.Output], PairingError>] = []
        var receiverSaw: [Result<[PairingMachine.Output], PairingError>] = []
        while !toReceiver.isEmpty || !toSender.isEmpty {
            if !toReceiver.isEmpty {
                let result = Result { () throws(PairingError) in try receiver.receive(toReceiver.removeFirst()) }
                receiverSaw.append(result)
                if case .success(let outputs) = result { for case .send(let body) in outputs { toSender.append(body) } }
            }
            if !toSender.isEmpty {
                let result = Result { () throws(PairingError) in try sender.receive(toSender.removeFirst()) }
                senderSaw.append(result)
                if case .success(let outputs) = result { for case .send(let body) in outputs { toReceiver.append(body) } }
            }
        }
        return (sender, receiver, senderSaw, receiverSaw)
    }

    @Test func sameCodePairsAndSealedMessagesFlowBothWays() throws {
        var (sender, receiver, senderSaw, receiverSaw) = try Self.pair(senderCode: "7-bluebird-caravan", receiverCode: "7-BLUEBIRD-caravan ")
        #expect(sender.isPaired && receiver.isPaired)
        #expect(senderSaw.contains { (try? $0.get())?.contains(.paired) == true })
        #expect(receiverSaw.contains { (try? $0.get())?.contains(.paired) == true })
        let offer = Offer(entries: [OfferEntry(name: "a.txt", kind: .file, size: 3, files: 1)])
        let sealed = try sender.seal(.offer(offer))
        #expect(try receiver.receive(sealed) == [.message(.offer(offer))])
        let answer = try receiver.seal(.answer(accept: true, reason: nil))
        #expect(try sender.receive(answer) == [.message(.answer(accept: true, reason: nil))])
    }

    @Test func wrongCodeFailsKeyConfirmationOnBothSides() throws {
        let (sender, receiver, senderSaw, receiverSaw) = try Self.pair(senderCode: "7-bluebird-caravan", receiverCode: "7-bluebird-candidate")
        #expect(!sender.isPaired && !receiver.isPaired)
        #expect(senderSaw.contains { if case .failure(.confirmationFailed) = $0 { true } else { false } })
        #expect(receiverSaw.contains { if case .failure(.confirmationFailed) = $0 { true } else { false } })
    }

    @Test func nothingIsSealedBeforeConfirmation() throws {
        var sender = try PairingMachine(role: .sender, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Self.mailbox)
        _ = sender.start()
        #expect(throws: PairingError.notPaired) { try sender.seal(.answer(accept: true, reason: nil)) }
    }

    @Test func outOfOrderAndUnknownMessagesAreRejected() throws {
        var receiver = try PairingMachine(role: .receiver, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Self.mailbox)
        _ = receiver.start()
        // A confirmation tag before any share, an unknown kind, a short share.
        #expect(throws: PairingError.self) { try receiver.receive([0x02] + [UInt8](repeating: 0, count: 32)) }
        var fresh = try PairingMachine(role: .receiver, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Self.mailbox)
        #expect(throws: PairingError.self) { try fresh.receive([0x7f]) }
        var short = try PairingMachine(role: .receiver, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Self.mailbox)
        #expect(throws: PairingError.self) { try short.receive([0x01, 0x01, 0x02]) }
        var future = try PairingMachine(role: .receiver, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Self.mailbox)
        #expect(throws: PairingError.unsupportedVersion(9)) { try future.receive([0x01, 0x09] + [UInt8](repeating: 1, count: 32)) }
    }

    @Test func aTamperedSealedMessageIsRejected() throws {
        var (sender, receiver, _, _) = try Self.pair(senderCode: "9-acme-adviser", receiverCode: "9-acme-adviser")
        var sealed = try sender.seal(.answer(accept: false, reason: "no"))
        sealed[sealed.count - 1] ^= 1
        #expect(throws: PairingError.self) { try receiver.receive(sealed) }
    }

    @Test func differentMailboxesDoNotPair() throws {
        var sender = try PairingMachine(role: .sender, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Identifier.random())
        var receiver = try PairingMachine(role: .receiver, code: try Code(parsing: "7-bluebird-caravan"), mailbox: Identifier.random())
        let senderShare = sender.start()
        let receiverShare = receiver.start()
        let senderOut = try sender.receive(receiverShare)
        let receiverOut = try receiver.receive(senderShare)
        guard case .send(let senderTag)? = senderOut.first, case .send(let receiverTag)? = receiverOut.first else {
            Issue.record("expected confirmation tags")
            return
        }
        #expect(throws: PairingError.confirmationFailed) { try sender.receive(receiverTag) }
        #expect(throws: PairingError.confirmationFailed) { try receiver.receive(senderTag) }
    }
}

@Suite struct PeerMessageTests {
    @Test func offersAndAnswersRoundTrip() throws {
        let offer = Offer(entries: [
            OfferEntry(name: "photos", kind: .directory, size: 1 << 40, files: 3),
            OfferEntry(name: "stdin", kind: .stream, size: nil, files: 0),
        ])
        #expect(try PeerMessage(decoding: PeerMessage.offer(offer).encoded()) == .offer(offer))
        #expect(offer.totalBytes == nil)
        #expect(offer.totalFiles == 3)
        #expect(try PeerMessage(decoding: PeerMessage.answer(accept: false, reason: "full").encoded()) == .answer(accept: false, reason: "full"))
    }

    @Test func anOfferCarriesDirectoryAndLinkCountsAndOmitsThemWhenAbsent() throws {
        let counted = Offer(entries: [OfferEntry(name: "photos", kind: .directory, size: 10, files: 2, directories: 3, links: 1)])
        #expect(try PeerMessage(decoding: PeerMessage.offer(counted).encoded()) == .offer(counted))
        let plain = PeerMessage.offer(Offer(entries: [OfferEntry(name: "a", kind: .file, size: 1, files: 1)])).encoded()
        #expect(String(decoding: plain, as: UTF8.self) == #"{"offer":{"entries":[{"files":1,"kind":"file","name":"a","size":1}]},"type":"offer"}"#)
    }

    /// 1024 entries of one-letter names fit in one sealed message; 4096 never could.
    @Test func anOfferHoldsAtMost1024Entries() throws {
        let fits = Offer(entries: (0..<1024).map { OfferEntry(name: "\($0 % 10)", kind: .file, size: 0, files: 1) })
        #expect(PeerMessage.offer(fits).encoded().count + 25 <= 65536)
        #expect(try PeerMessage(decoding: PeerMessage.offer(fits).encoded()) == .offer(fits))
        let over = Offer(entries: fits.entries + [OfferEntry(name: "x", kind: .file, size: 0, files: 1)])
        #expect(throws: PairingError.self) { try PeerMessage(decoding: PeerMessage.offer(over).encoded()) }
    }

    @Test(arguments: [
        "", "{}", #"{"type":"offer"}"#, #"{"type":"offer","offer":{"entries":[]}}"#,
        #"{"type":"offer","offer":{"entries":[{"name":"","kind":"file","size":1,"files":1}]}}"#,
        #"{"type":"offer","offer":{"entries":[{"name":"a","kind":"socket","size":1,"files":1}]}}"#,
        #"{"type":"offer","offer":{"entries":[{"name":"a","kind":"file","size":-1,"files":1}]}}"#,
        #"{"type":"answer"}"#, #"{"type":"answer","accept":"yes"}"#, #"{"type":"launch"}"#,
    ])
    func rejectsMalformedPeerMessages(text: String) {
        #expect(throws: PairingError.self) { try PeerMessage(decoding: Array(text.utf8)) }
    }

    @Test(arguments: [
        PeerMessage.sessionDescription(kind: .offer, sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"),
        PeerMessage.sessionDescription(kind: .answer, sdp: "v=0\r\n"),
        PeerMessage.candidate(mid: "0", candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host"),
        PeerMessage.endOfCandidates,
        PeerMessage.connected,
        PeerMessage.mappingOpened,
    ])
    func signalingMessagesRoundTrip(message: PeerMessage) throws {
        #expect(try PeerMessage(decoding: message.encoded()) == message)
    }

    @Test(arguments: [
        #"{"type":"description","kind":"pranswer","sdp":"v=0"}"#,
        #"{"type":"description","kind":"offer","sdp":""}"#,
        #"{"type":"description","sdp":"v=0"}"#,
        #"{"type":"candidate","mid":"0","candidate":"1 1 udp 1 10.0.0.1 1 typ host"}"#,
        #"{"type":"candidate","mid":"","candidate":"candidate:1 1 udp 1 10.0.0.1 1 typ host"}"#,
        #"{"type":"candidate","mid":"0","candidate":"candidate:1\n1 udp"}"#,
        #"{"type":"candidate","candidate":"candidate:1 1 udp 1 10.0.0.1 1 typ host"}"#,
    ])
    func rejectsMalformedSignaling(text: String) {
        #expect(throws: PairingError.self) { try PeerMessage(decoding: Array(text.utf8)) }
    }

    @Test func rejectsOversizeSignaling() {
        let sdp = PeerMessage.sessionDescription(kind: .offer, sdp: String(repeating: "a", count: 40_000))
        #expect(throws: PairingError.self) { try PeerMessage(decoding: sdp.encoded()) }
        let candidate = PeerMessage.candidate(mid: "0", candidate: "candidate:" + String(repeating: "1", count: 2000))
        #expect(throws: PairingError.self) { try PeerMessage(decoding: candidate.encoded()) }
    }

    @Test func rejectsOversizeNamesAndTexts() {
        let longName = Offer(entries: [OfferEntry(name: String(repeating: "a", count: 5000), kind: .file, size: 1, files: 1)])
        #expect(throws: PairingError.self) { try PeerMessage(decoding: PeerMessage.offer(longName).encoded()) }
        let longText = Offer(entries: [OfferEntry(name: "text", kind: .text, size: 1, files: 0)], text: String(repeating: "x", count: 40_000))
        #expect(throws: PairingError.self) { try PeerMessage(decoding: PeerMessage.offer(longText).encoded()) }
    }
}

/// The offer's numbers are added with overflow checked where it is decoded:
/// a hostile sender's sizes cannot wrap a total, and a total past the
/// range never reads as "unknown" (which skipped the free-space check).
@Suite struct OfferTotalsTests {
    @Test func anOfferWhoseSizesAddUpPast2To63IsRefusedWhenDecoded() throws {
        let half = UInt64(1) << 62
        let over = Offer(entries: [
            OfferEntry(name: "a", kind: .file, size: half, files: 1), OfferEntry(name: "b", kind: .file, size: half, files: 1),
        ])
        #expect(throws: PairingError.malformedPeerMessage("the offered sizes add up to more than 2^63 - 1 bytes")) {
            try PeerMessage(decoding: PeerMessage.offer(over).encoded())
        }
        let wrapping = Offer(entries: [
            OfferEntry(name: "d", kind: .directory, size: UInt64.max, files: 2), OfferEntry(name: "e", kind: .file, size: 1, files: 1),
        ])
        #expect(throws: PairingError.self) { try PeerMessage(decoding: PeerMessage.offer(wrapping).encoded()) }
        let fits = Offer(entries: [
            OfferEntry(name: "a", kind: .file, size: half, files: 1), OfferEntry(name: "b", kind: .file, size: half - 1, files: 1),
        ])
        #expect(try PeerMessage(decoding: PeerMessage.offer(fits).encoded()) == .offer(fits))
        #expect(fits.totalBytes == UInt64(Int64.max))
    }

    @Test func anOfferWhoseCountsAddUpPast2To63IsRefusedWhenDecoded() {
        let many = Offer(entries: [
            OfferEntry(name: "d", kind: .directory, size: 0, files: UInt64.max, directories: 1),
        ])
        #expect(throws: PairingError.malformedPeerMessage("the offered files, directories and links add up to more than 2^63 - 1")) {
            try PeerMessage(decoding: PeerMessage.offer(many).encoded())
        }
    }

    /// Totals that do not fit read as the largest value, so "needs more than
    /// the disk has" holds, instead of nil ("unknown, do not check").
    @Test func totalsPastTheRangeSaturateInsteadOfReadingAsUnknown() {
        let offer = Offer(entries: [
            OfferEntry(name: "a", kind: .file, size: UInt64.max, files: UInt64.max), OfferEntry(name: "b", kind: .file, size: 2, files: 2),
        ])
        #expect(offer.totalBytes == UInt64.max)
        #expect(offer.totalFiles == UInt64.max)
        #expect(Offer(entries: [OfferEntry(name: "s", kind: .stream, size: nil, files: 0)]).totalBytes == nil)
    }
}
