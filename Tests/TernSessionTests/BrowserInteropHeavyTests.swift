import Foundation
import NIOConcurrencyHelpers
import Testing
import TernDTLS
import TernDataChannel
import TernPairing
import TernSDP
import TernTestSupport
@testable import TernSession

/// A real browser as the peer: headless Chromium (Debian's `chromium`,
/// installed by `make deps`) runs Tests/browser/peer.html, which answers
/// tern's offer with an RTCPeerConnection. Signalling goes through
/// Tests/browser/signal.py on loopback; nothing else is involved.
@Suite(.serialized) struct BrowserInteropHeavyTests {
    static func pattern(_ size: Int, seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    /// With `mdns`, Chromium hides its host addresses behind `.local` names
    /// (its default): tern skips those candidates and reaches Chromium
    /// through the peer-reflexive candidate its checks reveal.
    @Test(arguments: [false, true]) func chromiumEchoesOnChannelsOpenedBothWays(mdns: Bool) async throws {
        let browser = try await HeadlessBrowser(page: "peer.html", hideLocalAddresses: mdns)
        let certificate = try DTLSCertificate.generate()
        let signals = NIOLockedValueBox<[PeerMessage]>([])
        var options = ConnectivityOptions(
            role: .controlling, stun: [], turn: nil,
            fingerprint: Fingerprint(algorithm: DTLSFingerprint.algorithm, digest: certificate.fingerprint.bytes))
        options.awaitPeerConnected = false
        let driver = try await ConnectivityDriver.start(options: options, signal: { message in signals.withLockedValue { $0.append(message) } })

        // The page does not trickle: one offer with every candidate.
        var offer: String?
        for _ in 0..<200 {
            let sent = signals.withLockedValue { $0 }
            if sent.contains(.endOfCandidates), case .sessionDescription(_, let sdp)? = sent.first {
                let candidates = sent.compactMap { message -> String? in
                    if case .candidate(_, let line) = message { return "a=" + line } else { return nil }
                }
                offer = sdp + (candidates + ["a=end-of-candidates"]).joined(separator: "\r\n") + "\r\n"
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let offerSDP = try #require(offer)
        try await browser.put("/offer", offerSDP)

        var answer: String?
        for _ in 0..<300 {
            if let text = try await browser.get("/answer"), !text.isEmpty {
                answer = text
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let pageReports = try await browser.reports()
        let answerSDP = try #require(answer, "no answer from chromium: \(pageReports) \(browser.chromium.stderr.text.suffix(2000))")
        // Chromium's answer must parse, and says setup:active (it is the DTLS client).
        let parsed = try SessionDescription(parsing: answerSDP)
        #expect(parsed.dataChannel?.setup == .active)
        if mdns {
            // Every host candidate Chromium offers is a name, not an address.
            let hosts = answerSDP.components(separatedBy: "\r\n").filter { $0.hasPrefix("a=candidate:") && $0.contains(" typ host") }
            #expect(!hosts.isEmpty && hosts.allSatisfy { $0.contains(".local ") }, "\(hosts)")
        }
        await driver.handle(.sessionDescription(kind: .answer, sdp: answerSDP))
        await driver.handle(.endOfCandidates)
        let path = try await driver.connected()
        let channels = try await PeerConnection.secure(driver: driver, path: path, role: .controlling, certificate: certificate)

        // Our channel: Chromium echoes every message; check every byte.
        let ours = try await channels.open(label: "from-tern")
        #expect(ours % 2 == 1, "the DTLS server opens odd streams")
        let sizes = [1, 64 * 1024, 256 * 1024]
        var echoesOnOurs = 0
        for (index, size) in sizes.enumerated() {
            try await channels.send(Self.pattern(size, seed: index), on: ours)
        }
        // Messages on the browser's channel are echoed back; the page checks them.
        var browserMessages = 0
        while echoesOnOurs < sizes.count || browserMessages < sizes.count {
            guard let message = try await channels.receive() else { break }
            if message.stream == ours {
                #expect(message.payload == Self.pattern(sizes[echoesOnOurs], seed: echoesOnOurs), "echo \(echoesOnOurs)")
                echoesOnOurs += 1
            } else if message.binary {
                browserMessages += 1
                try await channels.send(message.payload, on: message.stream)
            }
        }
        #expect(echoesOnOurs == sizes.count)
        #expect(browserMessages == sizes.count)
        // The page reports its own checks of our echoes.
        var reports: [[String: String]] = []
        for _ in 0..<200 {
            reports = try await browser.reports()
            if reports.filter({ $0["what"]?.hasPrefix("echo-") == true }).count == sizes.count { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let echoes = reports.filter { $0["what"]?.hasPrefix("echo-") == true }
        #expect(echoes.map { $0["what"] } == ["echo-ok", "echo-ok", "echo-ok"], "\(reports)")
        #expect(echoes.map { $0["detail"] } == ["1", "65536", "262144"])
        #expect(reports.contains { $0["what"] == "channel-from-tern" && $0["detail"] == "from-tern" })
        // tern, the DTLS server here, protected its records itself once
        // Chromium's data had arrived, and BoringSSL read them all; nothing
        // Chromium sent was refused by our record layer.
        let records = await channels.recordLayer()
        #expect(records.own)
        #expect(records.counters.discardedRecords == 0)
        await channels.close()
        await driver.close()
    }
}
