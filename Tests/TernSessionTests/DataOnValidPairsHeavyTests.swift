import Foundation
import NIOConcurrencyHelpers
import Testing
import TernICE
import TernPairing
import TernSDP
import TernSTUN
import TernTestSupport
@testable import TernSession

/// RFC 8445 §12.2: data may arrive on a pair other than the selected one. A
/// controlling peer that nominates several pairs (aiortc nominates every pair
/// it checks and sends on the last to succeed) can send its DTLS on a pair
/// tern did not select; tern must take it from any pair whose checks
/// succeeded, and still refuse it from an address ICE never checked.
///
/// The peer here is two UDP sockets on 127.0.0.1 speaking ICE by hand:
/// it answers tern's checks on both and nominates the first. Its threads
/// start only once tern's answer is read, while tern's checks already run:
/// beside the parallel suites on two cores that start came late enough for
/// tern's pairs to fail (twice in clean-clone runs), so the suite runs in
/// the serial Heavy phase.
@Suite(.serialized) struct DataOnValidPairsHeavyTests {
    struct SocketHandle: @unchecked Sendable {
        let socket: UDPTestSocket
    }

    static let peerUfrag = "peerfrag"
    static let peerPassword = "peerpasswordpeerpassword"

    /// Answers tern's checks on `socket` (setting `answered` after the first)
    /// and, when `nominate`, sends checks of its own with USE-CANDIDATE once
    /// `other` is set, until `stop` is set.
    static func runPeer(
        socket: UDPTestSocket, ternPort: UInt16, ternUfrag: String, ternPassword: String, nominate: Bool,
        answered: NIOLockedValueBox<Bool>, other: NIOLockedValueBox<Bool>, stop: NIOLockedValueBox<Bool>
    ) {
        let peerKey = STUNKey(bytes: Array(peerPassword.utf8))
        let ternKey = STUNKey(bytes: Array(ternPassword.utf8))
        var lastCheck = Date.distantPast
        while !stop.withLockedValue({ $0 }) {
            // Nominating only once tern's check on the other pair succeeded:
            // a nomination ends the checks of pairs not yet checked (§8.1.2).
            if nominate, other.withLockedValue({ $0 }), Date().timeIntervalSince(lastCheck) > 0.05 {
                lastCheck = Date()
                let check = STUNMessage(.request, .binding, transactionID: .random(), attributes: [
                    .username("\(ternUfrag):\(peerUfrag)"), .priority(2_130_706_431), .iceControlling(42), .useCandidate,
                ])
                if let bytes = try? check.encode(integrity: ternKey, fingerprint: true) { try? socket.send(bytes, to: ternPort) }
            }
            guard let (datagram, port) = try? socket.receive(timeoutMilliseconds: 10), port == ternPort,
                  let message = try? STUNMessage.decode(datagram), message.messageClass == .request, message.method == .binding
            else { continue }
            let response = STUNMessage(.successResponse, .binding, transactionID: message.transactionID, attributes: [
                .xorMappedAddress(.ipv4(127, 0, 0, 1, port: ternPort)),
            ])
            if let bytes = try? response.encode(integrity: peerKey, fingerprint: true) {
                try? socket.send(bytes, to: ternPort)
                answered.withLockedValue { $0 = true }
            }
        }
    }

    @Test func dtlsFromAnotherValidPairReachesTheLayerAboveAndFromAnUncheckedAddressDoesNot() async throws {
        let selectedSocket = try UDPTestSocket()
        let otherValidSocket = try UDPTestSocket()
        let uncheckedSocket = try UDPTestSocket()
        let signals = NIOLockedValueBox<[PeerMessage]>([])
        var options = ConnectivityOptions(role: .controlled, stun: [], turn: nil)
        options.awaitPeerConnected = false
        let driver = try await ConnectivityDriver.start(options: options, signal: { message in signals.withLockedValue { $0.append(message) } })
        let stop = NIOLockedValueBox(false)
        var peers: [Thread] = []
        defer { stop.withLockedValue { $0 = true } }

        let offer = [
            "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:\(Self.peerUfrag)", "a=ice-pwd:\(Self.peerPassword)", "a=setup:actpass", "a=mid:0",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 \(selectedSocket.localPort) typ host",
            "a=candidate:2 1 udp 2130706175 127.0.0.1 \(otherValidSocket.localPort) typ host",
            "a=end-of-candidates",
        ].joined(separator: "\r\n") + "\r\n"
        await driver.handle(.sessionDescription(kind: .offer, sdp: offer))
        await driver.handle(.endOfCandidates)

        // tern's answer: its credentials and its port (one socket for every candidate).
        var answer: MediaDescription?
        var ternPort: UInt16?
        for _ in 0..<250 where answer == nil || ternPort == nil {
            for message in signals.withLockedValue({ $0 }) {
                if case .sessionDescription(_, let sdp) = message { answer = try SessionDescription(parsing: sdp).dataChannel }
                if case .candidate(_, let line) = message, case .candidate(let candidate)? = try? ICECandidate.parse(line) {
                    ternPort = candidate.address.port
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let media = try #require(answer)
        let port = try #require(ternPort)
        let ufrag = try #require(media.iceUfrag), password = try #require(media.icePwd)
        let selectedAnswered = NIOLockedValueBox(false), otherAnswered = NIOLockedValueBox(false)
        for (socket, nominate, answered, other) in [
            (selectedSocket, true, selectedAnswered, otherAnswered), (otherValidSocket, false, otherAnswered, selectedAnswered),
        ] {
            // The socket is used by this thread only from here on.
            let handle = SocketHandle(socket: socket)
            let thread = Thread {
                Self.runPeer(
                    socket: handle.socket, ternPort: port, ternUfrag: ufrag, ternPassword: password, nominate: nominate,
                    answered: answered, other: other, stop: stop)
            }
            thread.start()
            peers.append(thread)
        }

        let path = try await AiortcInteropHeavyTests.within(10, "ICE with the hand-made peer") { try await driver.connected() }
        #expect(path.pair.remote.address.port == selectedSocket.localPort)
        #expect(otherAnswered.withLockedValue { $0 }, "tern's check on the other pair was answered")

        let received = NIOLockedValueBox<[[UInt8]]>([])
        try await driver.loop.submit {
            driver.setApplicationHandler({ datagram in received.withLockedValue { $0.append(datagram) } })
        }.get()
        // DTLS (RFC 7983: first byte 20...63) from each address in turn.
        let fromSelected: [UInt8] = [23, 0xFE, 0xFD, 1], fromOther: [UInt8] = [23, 0xFE, 0xFD, 2], fromUnchecked: [UInt8] = [23, 0xFE, 0xFD, 3]
        try uncheckedSocket.send(fromUnchecked, to: port)
        try otherValidSocket.send(fromOther, to: port)
        try selectedSocket.send(fromSelected, to: port)
        for _ in 0..<250 where received.withLockedValue({ $0.count }) < 2 {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(100))  // room for the unchecked one to show up, were it let through
        let delivered = Set(received.withLockedValue { $0 })
        #expect(delivered == [fromSelected, fromOther])
        stop.withLockedValue { $0 = true }
        await driver.close()
    }
}
