import Foundation
import NIOConcurrencyHelpers
import Testing
import TernDTLS
import TernDataChannel
import TernICE
import TernPairing
import TernSDP
import TernTestSupport
@testable import TernSession

/// A second WebRTC stack as the peer: unmodified aiortc from PyPI (`make
/// deps` puts aiortc 1.16.0 in .venv-aiortc) runs Tests/aiortc/peer.py. tern
/// runs in-process, as in BrowserInteropHeavyTests; the descriptions go through
/// the peer's standard input and output, one JSON object a line. Both ways:
/// tern offers and aiortc answers, and aiortc offers and tern answers.
@Suite(.serialized) struct AiortcInteropHeavyTests {
    /// Tests/aiortc/peer.py under the venv's Python, stopped when the value goes away.
    final class Peer: @unchecked Sendable {
        let process: RunningProcess

        static var python: URL { PackagePaths.root.appendingPathComponent(".venv-aiortc/bin/python3") }

        /// - Parameter mode: "offer" or "answer", aiortc's part.
        init(mode: String) throws {
            guard FileManager.default.isExecutableFile(atPath: Self.python.path) else {
                throw SocketFailure(description: "no aiortc at \(Self.python.path): run `make deps` (it makes the venv with aiortc 1.16.0)")
            }
            let script = PackagePaths.root.appendingPathComponent("Tests/aiortc/peer.py")
            // Not tern, and tern runs in this process: the peer keeps this
            // process's user, so that the venv in the package folder need not
            // be reachable by the unprivileged test user.
            process = try RunningProcess(
                executable: Self.python, arguments: [script.path, mode, "--timeout", "90"], privileged: true)
        }

        func send(_ message: [String: String]) throws {
            let data = try JSONSerialization.data(withJSONObject: message)
            try process.write(String(decoding: data, as: UTF8.self) + "\n")
        }

        /// Everything the peer printed so far, one object a line.
        var messages: [[String: String]] {
            process.stdout.lines.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: String]
            }
        }

        var reports: [[String: String]] { messages.filter { $0["type"] == "report" } }

        /// The peer's description of `kind`, waiting up to `timeout` seconds.
        func description(_ kind: String, timeout: Double = 10) async throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let sdp = messages.first(where: { $0["type"] == kind })?["sdp"] { return sdp }
                guard process.process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw SocketFailure(description: "no \(kind) from aiortc: \(diagnostics)")
        }

        /// Waits up to `timeout` seconds for reports to satisfy `done`.
        @discardableResult
        func waitForReports(timeout: Double = 10, until done: ([[String: String]]) -> Bool) async throws -> [[String: String]] {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let reports = self.reports
                if done(reports) { return reports }
                guard process.process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            return reports
        }

        /// Why waiting on the peer is pointless: it failed or exited.
        var gaveUp: String? {
            if let failed = reports.first(where: { $0["what"] == "connection" && $0["detail"] == "failed" || $0["what"] == "dtls-failed" }) {
                return "aiortc reports \(failed["what"] ?? ""): \(failed["detail"] ?? "")"
            }
            return process.process.isRunning ? nil : "aiortc exited (\(process.process.terminationStatus))"
        }

        var diagnostics: String {
            "reports \(reports); stderr: \(process.stderr.text.suffix(2000))"
        }

        deinit {
            process.signal(SIGKILL)
        }
    }

    struct Timeout: Error, CustomStringConvertible {
        var description: String
    }

    /// `body`'s result, or a `Timeout` naming `what` after `seconds`, or
    /// as soon as `abandon` (asked every 50 ms) gives a reason: every wait
    /// on the peer is bounded. (On a timeout the body is left waiting; the
    /// test then fails and its cleanup closes what it waits on.)
    static func within<T: Sendable>(
        _ seconds: Double, _ what: String, abandon: @escaping @Sendable () -> String? = { nil },
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let settled = NIOLockedValueBox(false)
        let claim: @Sendable () -> Bool = { settled.withLockedValue { done in defer { done = true }; return !done } }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let timer = Task {
                let deadline = ContinuousClock.now + .seconds(seconds)
                while ContinuousClock.now < deadline, !Task.isCancelled {
                    if let reason = abandon() {
                        if claim() { continuation.resume(throwing: Timeout(description: "\(what) abandoned: \(reason)")) }
                        return
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                if !Task.isCancelled, claim() { continuation.resume(throwing: Timeout(description: "\(what) took longer than \(seconds) s")) }
            }
            Task {
                let result: Result<T, Error>
                do {
                    result = .success(try await body())
                } catch {
                    result = .failure(error)
                }
                if claim() { continuation.resume(with: result) }
                timer.cancel()
            }
        }
    }

    static func pattern(_ size: Int, seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    /// The messages tern sends on its channel; aiortc echoes them.
    static let sizes = [1, 64 * 1024, 256 * 1024]

    /// tern's description as the signals carry it: the description, then
    /// every candidate, then end-of-candidates, folded into one SDP (aiortc
    /// does not take trickled candidates).
    static func completeDescription(_ signals: NIOLockedValueBox<[PeerMessage]>) async throws -> String {
        for _ in 0..<250 {
            let sent = signals.withLockedValue { $0 }
            if sent.contains(.endOfCandidates), case .sessionDescription(_, let sdp)? = sent.first {
                let candidates = sent.compactMap { message -> String? in
                    if case .candidate(_, let line) = message { return "a=" + line } else { return nil }
                }
                return sdp + (candidates + ["a=end-of-candidates"]).joined(separator: "\r\n") + "\r\n"
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Timeout(description: "tern gathered no complete description in 5 s")
    }

    static func start(role: ICERole, certificate: DTLSCertificate) async throws -> (ConnectivityDriver, NIOLockedValueBox<[PeerMessage]>) {
        let signals = NIOLockedValueBox<[PeerMessage]>([])
        var options = ConnectivityOptions(
            role: role, stun: [], turn: nil,
            fingerprint: Fingerprint(algorithm: DTLSFingerprint.algorithm, digest: certificate.fingerprint.bytes))
        // aiortc sends no tern `connected` message: our own selection is enough.
        options.awaitPeerConnected = false
        let driver = try await ConnectivityDriver.start(options: options, signal: { message in signals.withLockedValue { $0.append(message) } })
        return (driver, signals)
    }

    @Test func ternOffersAndAiortcAnswers() async throws {
        let started = ContinuousClock.now
        let peer = try Peer(mode: "answer")
        let certificate = try DTLSCertificate.generate()
        let (driver, signals) = try await Self.start(role: .controlling, certificate: certificate)
        do {
            let offer = try await Self.completeDescription(signals)
            try peer.send(["type": "offer", "sdp": offer])
            let answer = try await peer.description("answer")
            // aiortc, answering tern's actpass, is the DTLS client.
            let parsed = try SessionDescription(parsing: answer)
            #expect(parsed.dataChannel?.setup == .active)
            #expect(parsed.dataChannel?.mid == "0")
            await driver.handle(.sessionDescription(kind: .answer, sdp: answer))
            await driver.handle(.endOfCandidates)
            try await exchange(with: peer, driver: driver, role: .controlling, certificate: certificate, peerDescription: parsed)
        } catch {
            await driver.close()
            throw error
        }
        await driver.close()
        print("aiortc answering: \(ContinuousClock.now - started)")
    }

    @Test func aiortcOffersAndTernAnswers() async throws {
        let started = ContinuousClock.now
        let peer = try Peer(mode: "offer")
        let offer = try await peer.description("offer")
        // JSEP (RFC 9429 §5.2.1): an offer says actpass.
        let parsedOffer = try SessionDescription(parsing: offer)
        let offered = try #require(parsedOffer.dataChannel, "no data channel in aiortc's offer: \(offer)")
        #expect(offered.setup == .actpass)

        let certificate = try DTLSCertificate.generate()
        let (driver, signals) = try await Self.start(role: .controlled, certificate: certificate)
        do {
            await driver.handle(.sessionDescription(kind: .offer, sdp: offer))
            if !offered.endOfCandidates { await driver.handle(.endOfCandidates) }
            let answer = try await Self.completeDescription(signals)
            // tern's answer: the offer's data channel section (same mid),
            // setup:active (RFC 8842 §5.3: tern is the DTLS client).
            let parsedAnswer = try SessionDescription(parsing: answer)
            #expect(parsedAnswer.dataChannel?.setup == .active)
            #expect(parsedAnswer.dataChannel?.mid == offered.mid)
            try peer.send(["type": "answer", "sdp": answer])
            try await exchange(with: peer, driver: driver, role: .controlled, certificate: certificate, peerDescription: parsedOffer)
        } catch {
            await driver.close()
            throw error
        }
        await driver.close()
        print("aiortc offering: \(ContinuousClock.now - started)")
    }

    /// Once the descriptions are traded: ICE, DTLS (with an SRTP profile,
    /// which aiortc insists on), SCTP, then messages both ways with every byte
    /// checked on the side that sent it.
    func exchange(
        with peer: Peer, driver: ConnectivityDriver, role: ICERole, certificate: DTLSCertificate, peerDescription: SessionDescription
    ) async throws {
        let path: ConnectedPath
        do {
            path = try await Self.within(10, "ICE", abandon: { peer.gaveUp }) { try await driver.connected() }
        } catch {
            throw SocketFailure(description: "\(error); aiortc: \(peer.diagnostics)")
        }
        let channels: SecureChannels
        do {
            channels = try await Self.within(10, "DTLS and SCTP", abandon: { peer.gaveUp }) {
                try await PeerConnection.secure(driver: driver, path: path, role: role, certificate: certificate)
            }
        } catch {
            throw SocketFailure(description: "\(error); aiortc: \(peer.diagnostics)")
        }
        do {
            try await exchangeMessages(with: peer, channels: channels, role: role, peerDescription: peerDescription)
        } catch {
            await channels.close()
            throw SocketFailure(description: "\(error); aiortc: \(peer.diagnostics)")
        }
        await channels.close()
    }

    func exchangeMessages(with peer: Peer, channels: SecureChannels, role: ICERole, peerDescription: SessionDescription) async throws {
        // What aiortc accepts (RFC 8841 §6: absent means 64 KiB, 0 no limit).
        let peerLimit = peerDescription.dataChannel?.maxMessageSize.map { $0 == 0 ? Int.max : Int(clamping: $0) } ?? 65536
        let sizes = Self.sizes.filter { $0 <= peerLimit }
        #expect(channels.peerMaximumMessageSize == min(peerLimit, 262_144))
        #expect(sizes.count >= 2, "aiortc accepts \(peerLimit)-byte messages")

        let ours = try await Self.within(5, "opening tern's channel", abandon: { peer.gaveUp }) { try await channels.open(label: "from-tern") }
        // RFC 8832 §6: the DTLS client uses even streams, the server odd ones.
        // tern answering is the client; tern offering, the server.
        #expect(Int(ours) % 2 == (role == .controlled ? 0 : 1), "stream \(ours)")

        let plan = try await peer.waitForReports(timeout: 5) { $0.contains { $0["what"] == "plan" } }
        let theirs = (plan.first { $0["what"] == "plan" }?["detail"] ?? "").split(separator: ",").compactMap { Int($0) }
        // aiortc sends the same three: tern accepts 256 KiB (a=max-message-size:262144).
        #expect(theirs == Self.sizes)

        try await Self.within(15, "the messages both ways", abandon: { peer.gaveUp }) {
            for (index, size) in sizes.enumerated() {
                try await channels.send(Self.pattern(size, seed: index), on: ours)
            }
            var echoes = 0, echoedToPeer = 0
            while echoes < sizes.count || echoedToPeer < theirs.count {
                guard let message = try await channels.receive() else { break }
                if message.stream == ours {
                    #expect(message.binary)
                    #expect(message.payload == Self.pattern(sizes[echoes], seed: echoes), "echo \(echoes) of \(sizes[echoes]) bytes")
                    echoes += 1
                } else if message.binary {
                    // aiortc's own channel: it checks what we echo.
                    echoedToPeer += 1
                    try await channels.send(message.payload, on: message.stream)
                }
            }
            #expect(echoes == sizes.count)
            #expect(echoedToPeer == theirs.count)
        }

        let reports = try await peer.waitForReports { $0.contains { $0["what"] == "all-echoed" || $0["what"] == "echo-bad" } }
        let echoes = reports.filter { $0["what"]?.hasPrefix("echo-") == true }
        #expect(echoes.map { $0["what"] } == theirs.map { _ in "echo-ok" }, "\(reports)")
        #expect(echoes.map { $0["detail"] } == theirs.map(String.init))
        #expect(reports.contains { $0["what"] == "channel-from-tern" })
        // The profile aiortc's DTLS transport says it negotiated with tern.
        #expect(reports.first { $0["what"] == "srtp-profile" }?["detail"] == "SRTP_AEAD_AES_128_GCM", "\(reports)")
        #expect(!reports.contains { $0["what"] == "dtls-failed" })

        // tern protected its records itself once it could, and aiortc's
        // OpenSSL read them; nothing aiortc sent was refused.
        let records = await channels.recordLayer()
        #expect(records.own)
        #expect(records.counters.discardedRecords == 0)

        try peer.send(["type": "bye"])
        let status = try await peer.process.wait(timeout: 5)
        #expect(status == 0, "aiortc exited \(status): \(peer.diagnostics)")
    }
}
