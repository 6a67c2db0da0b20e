import Testing
import TernSDP

/// The capability a tern peer announces so that the other side may restart
/// ICE through the mailbox: an `a=ice-options` token browsers do not know.
struct ICERestartOptionTests {
    @Test func ternAnnouncesTheOptionAndReadsItBack() throws {
        var media = MediaDescription.dataChannel(iceUfrag: "abcd", icePwd: "0123456789abcdefghijkl", fingerprint: nil, setup: .actpass)
        media.iceOptions.append(MediaDescription.ternICERestartOption)
        let text = SessionDescription(sessionID: 7, media: [media]).formatted()
        #expect(text.contains("a=ice-options:trickle tern-ice-restart\r\n"), "\(text)")
        let parsed = try #require(try SessionDescription(parsing: text).dataChannel)
        #expect(parsed.restartsICEThroughMailbox)
    }

    @Test func withoutItNoRestartIsAssumed() throws {
        let plain = MediaDescription.dataChannel(iceUfrag: "abcd", icePwd: "0123456789abcdefghijkl", fingerprint: nil, setup: .active)
        let text = SessionDescription(sessionID: 7, media: [plain]).formatted()
        #expect(text.contains("a=ice-options:trickle\r\n"))
        #expect(try SessionDescription(parsing: text).dataChannel?.restartsICEThroughMailbox == false)
        // A browser's offer (its own ice-options, or none) never asks for one.
        #expect(try SessionDescription(parsing: SDPTests.chromeOffer).dataChannel?.restartsICEThroughMailbox == false)
        #expect(try SessionDescription(parsing: SDPTests.firefoxOffer).dataChannel?.restartsICEThroughMailbox == false)
    }
}
