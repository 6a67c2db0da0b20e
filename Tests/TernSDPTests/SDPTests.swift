import Testing
@testable import TernSDP

@Suite struct SDPTests {
    static let fingerprintHex = "6B:8B:5D:EA:59:04:20:D2:B4:8F:69:5E:1B:1C:98:2D:AE:7E:5F:71:2B:0F:6C:4C:03:70:17:DA:1F:C8:0A:56"

    /// The shape of a data-channel-only offer from Chromium (trickle, with two candidates).
    static let chromeOffer = """
        v=0\r
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
        s=-\r
        t=0 0\r
        a=group:BUNDLE 0\r
        a=extmap-allow-mixed\r
        a=msid-semantic: WMS\r
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
        c=IN IP4 0.0.0.0\r
        a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1\r
        a=candidate:3648232545 1 udp 1686052607 203.0.113.7 46243 typ srflx raddr 192.168.0.196 rport 46243 generation 0 network-id 1\r
        a=ice-ufrag:Oyef\r
        a=ice-pwd:ZSgEGmqxdIbtnOgCbGUsUrAF\r
        a=ice-options:trickle\r
        a=fingerprint:sha-256 \(fingerprintHex)\r
        a=setup:actpass\r
        a=mid:0\r
        a=sctp-port:5000\r
        a=max-message-size:262144\r

        """

    /// The shape of Firefox's: fingerprint and ice-options at session level, LF only.
    static let firefoxOffer = """
        v=0
        o=mozilla...THIS_IS_SDPARTA-99.0 6071432224330143396 0 IN IP4 0.0.0.0
        s=-
        t=0 0
        a=fingerprint:sha-256 \(fingerprintHex)
        a=group:BUNDLE 0
        a=ice-options:trickle
        a=msid-semantic:WMS *
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel
        c=IN IP4 0.0.0.0
        a=sendrecv
        a=ice-pwd:2bd83b1b2f36bec2b7e0d3b9d5d4d4c5
        a=ice-ufrag:6e1c6b1b
        a=mid:0
        a=setup:actpass
        a=sctp-port:5000
        a=max-message-size:1073741823
        """

    @Test func parsesAChromiumDataChannelOffer() throws {
        let offer = try SessionDescription(parsing: Self.chromeOffer)
        #expect(offer.sessionID == 4611731400430051336)
        let channel = try #require(offer.dataChannel)
        #expect(channel.iceUfrag == "Oyef")
        #expect(channel.icePwd == "ZSgEGmqxdIbtnOgCbGUsUrAF")
        #expect(channel.iceOptions == ["trickle"])
        #expect(channel.setup == .actpass)
        #expect(channel.mid == "0")
        #expect(channel.sctpPort == 5000)
        #expect(channel.maxMessageSize == 262144)
        #expect(channel.fingerprints.first?.algorithm == "sha-256")
        #expect(channel.fingerprints.first?.digest.count == 32)
        #expect(channel.fingerprints.first?.description == "sha-256 " + Self.fingerprintHex)
        #expect(channel.candidates.count == 2)
        #expect(channel.candidates[1].hasPrefix("candidate:3648232545 1 udp 1686052607 203.0.113.7 46243 typ srflx"))
        #expect(!channel.endOfCandidates)
    }

    @Test func sessionLevelAttributesApplyToTheSection() throws {
        let offer = try SessionDescription(parsing: Self.firefoxOffer)
        let channel = try #require(offer.dataChannel)
        #expect(channel.fingerprints.count == 1)
        #expect(channel.iceOptions == ["trickle"])
        #expect(channel.iceUfrag == "6e1c6b1b")
        #expect(channel.maxMessageSize == 1073741823)
    }

    @Test func whatTernWritesParsesBackTheSame() throws {
        let fingerprint = Fingerprint(algorithm: "sha-256", digest: Array(0..<32))
        let answer = SessionDescription(sessionID: 42, media: [
            MediaDescription.dataChannel(
                iceUfrag: "abcd", icePwd: "0123456789abcdefghijkl", fingerprint: fingerprint, setup: .active,
                candidates: ["candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host"], endOfCandidates: true),
        ])
        let text = answer.formatted()
        #expect(text.hasPrefix("v=0\r\n"))
        #expect(text.contains("a=group:BUNDLE 0\r\n"))
        #expect(text.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"))
        #expect(try SessionDescription(parsing: text) == answer)
        // And a browser's offer survives a round trip through tern's writer.
        let offer = try SessionDescription(parsing: Self.chromeOffer)
        #expect(try SessionDescription(parsing: offer.formatted()) == offer)
    }

    @Test func otherMediaSectionsAreKeptSoTheAnswerCanRejectThem() throws {
        let text = Self.chromeOffer + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n"
        var offer = try SessionDescription(parsing: text)
        #expect(offer.media.count == 2)
        #expect(offer.media[1].kind == "audio")
        offer.media[1].port = 0
        let written = offer.formatted()
        #expect(written.contains("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"))
        #expect(written.contains("a=group:BUNDLE 0\r\n"))
    }

    @Test(arguments: [
        ("", "must start with v=0"),
        ("v=1\r\n", "must start with v=0"),
        ("v=0\r\ns=-\r\n", "no origin"),
        ("v=0\r\no=- x 2 IN IP4 127.0.0.1\r\n", "bad origin"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nthis is not sdp\r\n", "not a '<letter>=<value>' line"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application x UDP/DTLS/SCTP webrtc-datachannel\r\n", "bad media port"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=ice-ufrag:ab\r\n", "bad ice-ufrag"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=ice-pwd:short\r\n", "bad ice-pwd"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=ice-ufrag:ab;d\r\n", "bad ice-ufrag"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n", "sha-256 fingerprint must be 32 bytes"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 ZZ\r\n", "bad fingerprint digest"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=setup:holdconn\r\n", "unsupported setup 'holdconn'"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:0\r\n", "bad sctp-port"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=max-message-size:-1\r\n", "bad max-message-size"),
        ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=\u{1b}[2J\r\n", "control character"),
    ])
    func rejectsMalformedInputWithTheReason(text: String, reason: String) {
        do {
            _ = try SessionDescription(parsing: text)
            Issue.record("accepted: \(text.debugDescription)")
        } catch {
            #expect(error.reason.hasPrefix(reason), "\(error)")
        }
    }

    @Test func boundsEveryDimension() {
        let header = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
        let huge = header + String(repeating: "a=x\r\n", count: 20_000)
        #expect(throws: SDPError.self) { try SessionDescription(parsing: huge) }
        let longLine = header + "a=" + String(repeating: "x", count: 5000) + "\r\n"
        #expect(throws: SDPError.self) { try SessionDescription(parsing: longLine) }
        let sections = header + String(repeating: "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", count: 40)
        #expect(throws: SDPError.self) { try SessionDescription(parsing: sections) }
        let candidates = header + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
            + String(repeating: "a=candidate:1 1 udp 1 10.0.0.1 1 typ host\r\n", count: 300)
        #expect(throws: SDPError.self) { try SessionDescription(parsing: candidates) }
    }

    @Test func everyPrefixParsesOrFailsCleanly() throws {
        // Cut at every offset: a typed error or a description, never a trap;
        // and what parses must write out and parse back the same.
        let text = Self.chromeOffer
        for cut in 0...text.utf8.count {
            let prefix = String(decoding: Array(text.utf8.prefix(cut)), as: UTF8.self)
            if let parsed = try? SessionDescription(parsing: prefix) {
                #expect(try SessionDescription(parsing: parsed.formatted()) == parsed)
            }
        }
    }

    /// Found by the fuzzer: a rejected section with attributes did not
    /// survive a round trip, because the writer keeps only its mid.
    @Test func aRejectedSectionKeepsOnlyItsMid() throws {
        let text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"
            + "a=candidate:1 1 udp 1 10.0.0.1 1 typ host\r\na=mid:x\r\na=sctp-port:5000\r\n"
        let parsed = try SessionDescription(parsing: text)
        #expect(parsed.media.first?.candidates.isEmpty == true)
        #expect(parsed.media.first?.sctpPort == nil)
        #expect(parsed.media.first?.mid == "x")
        #expect(parsed.dataChannel == nil)
        #expect(try SessionDescription(parsing: parsed.formatted()) == parsed)
    }
}
