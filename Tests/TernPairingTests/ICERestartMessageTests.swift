import Testing
@testable import TernPairing

/// The `ice-restart` peer message (docs/protocol.md §7.3): what a tern peer
/// sends through the mailbox to restart ICE, each field bounded on decode.
struct ICERestartMessageTests {
    static let host = "candidate:1 1 udp 2130706431 10.0.3.2 40002 typ host"

    @Test func roundTripsThroughTheWire() throws {
        let message = PeerMessage.iceRestart(ICERestartMessage(
            generation: 2, ufrag: "Ab+/1234", password: "abcdefghijklmnopqrstuvwx", candidates: [Self.host], complete: false))
        #expect(try PeerMessage(decoding: message.encoded()) == message)
        let text = String(decoding: message.encoded(), as: UTF8.self)
        #expect(text.contains(#""type":"ice-restart""#) && text.contains(#""pwd":"abcdefghijklmnopqrstuvwx""#), "\(text)")
    }

    @Test func aSealedRestartFitsTheRelaysSmallestDefaultBody() {
        let many = (0..<ICERestartMessage.maximumCandidates).map { _ in Self.host }
        let message = PeerMessage.iceRestart(ICERestartMessage(
            generation: ICERestartMessage.maximumGeneration, ufrag: String(repeating: "u", count: 256),
            password: String(repeating: "p", count: 256), candidates: many, complete: true))
        // One byte of kind, 8 of sequence, 16 of tag (PairingMachine.seal), under 64 KiB.
        #expect(message.encoded().count + 25 <= 65536)
    }

    @Test(arguments: [
        #"{"type":"ice-restart"}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstuv","candidates":[]}"#,
        #"{"type":"ice-restart","generation":0,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstuv","candidates":[],"complete":true}"#,
        #"{"type":"ice-restart","generation":17,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstuv","candidates":[],"complete":true}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"abc","pwd":"abcdefghijklmnopqrstuv","candidates":[],"complete":true}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstu","candidates":[],"complete":true}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"ab:d","pwd":"abcdefghijklmnopqrstuv","candidates":[],"complete":true}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstuv","candidates":["1 1 udp 1 10.0.0.1 1 typ host"],"complete":true}"#,
        #"{"type":"ice-restart","generation":1,"ufrag":"abcd","pwd":"abcdefghijklmnopqrstuv","candidates":["candidate:1\n1"],"complete":true}"#,
    ])
    func rejectsMalformedRestarts(text: String) {
        #expect(throws: PairingError.self) { try PeerMessage(decoding: Array(text.utf8)) }
    }

    @Test func rejectsTooManyCandidatesOrTooLongCredentials() {
        let many = (0...ICERestartMessage.maximumCandidates).map { _ in Self.host }
        let tooMany = PeerMessage.iceRestart(ICERestartMessage(
            generation: 1, ufrag: "abcd", password: "abcdefghijklmnopqrstuv", candidates: many, complete: true))
        #expect(throws: PairingError.self) { try PeerMessage(decoding: tooMany.encoded()) }
        let long = PeerMessage.iceRestart(ICERestartMessage(
            generation: 1, ufrag: String(repeating: "u", count: 257), password: "abcdefghijklmnopqrstuv", candidates: [], complete: true))
        #expect(throws: PairingError.self) { try PeerMessage(decoding: long.encoded()) }
    }
}
