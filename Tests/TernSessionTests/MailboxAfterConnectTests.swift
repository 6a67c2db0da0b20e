import Foundation
import NIOConcurrencyHelpers
import Testing
import TernPairing
import TernRendezvous
import TernTestSupport
@testable import TernSession

/// After the data path is up, each side keeps reading its mailbox in the
/// background (`readInBackground`), so a tern peer can restart ICE through
/// it during the transfer: two sessions paired through a real `tern relay`
/// trade messages both ways while neither owner reads, every one arriving
/// once and in order, and `close` still leaves the mailbox as before.
@Suite(.serialized) struct MailboxAfterConnectTests {
    static func restart(_ generation: Int) -> PeerMessage {
        .iceRestart(ICERestartMessage(
            generation: generation, ufrag: "gen\(generation)", password: "password-of-generation-\(generation)".replacingOccurrences(of: "-", with: "/"),
            candidates: ["candidate:1 1 udp 2130706431 127.0.0.1 \(40000 + generation) typ host"], complete: true))
    }

    final class Received: Sendable {
        let messages = NIOLockedValueBox<[PeerMessage]>([])
        func wait(for count: Int, within limit: Duration) async -> [PeerMessage] {
            let deadline = ContinuousClock.now + limit
            while messages.withLockedValue({ $0.count }) < count, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            return messages.withLockedValue { $0 }
        }
    }

    /// A sender and a receiver paired through `relay` with `code`, past
    /// `connected`, each reading its mailbox in the background into its
    /// `Received`.
    static func connectedSessions(
        _ relay: RelayProcess, code text: String
    ) async throws -> (sender: PairingSession, receiver: PairingSession, atSender: Received, atReceiver: Received) {
        let url = try RelayURL(parsing: relay.url)
        let code = try Code(parsing: text)
        async let pairedReceiver = PairingSession.pair(relay: url, role: .receiver, code: code) { _ in }
        let sender = try await PairingSession.pair(relay: url, role: .sender, code: code) { _ in }
        let receiver = try await pairedReceiver
        try await sender.send(.connected)
        #expect(try await receiver.receive() == .connected)
        let atSender = Received(), atReceiver = Received()
        sender.readInBackground { message in atSender.messages.withLockedValue { $0.append(message) } }
        receiver.readInBackground { message in atReceiver.messages.withLockedValue { $0.append(message) } }
        return (sender, receiver, atSender, atReceiver)
    }

    @Test func messagesAfterConnectingArriveOnceInOrderBothWays() async throws {
        let relay = try await RelayProcess.start()
        let (sender, receiver, atSender, atReceiver) = try await Self.connectedSessions(relay, code: "71-acme-aftermath")
        // Other tasks (the connectivity driver) send through the outboxes.
        let toReceiver = sender.outbox, toSender = receiver.outbox
        for generation in 1...3 { toReceiver.send(Self.restart(generation)) }
        toSender.send(Self.restart(1))
        toSender.send(.endOfCandidates)

        let gotByReceiver = await atReceiver.wait(for: 3, within: .seconds(10))
        let gotBySender = await atSender.wait(for: 2, within: .seconds(10))
        #expect(gotByReceiver == (1...3).map(Self.restart), "\(gotByReceiver)")
        #expect(gotBySender == [Self.restart(1), .endOfCandidates], "\(gotBySender)")

        // Closing stops the reader first; the peer's reader ends when it
        // learns that the sender left, and its own close still completes.
        let started = ContinuousClock.now
        await sender.close(mood: .happy)
        await receiver.close(mood: .happy)
        #expect(ContinuousClock.now - started < .seconds(5), "closing took \(ContinuousClock.now - started)")
        try await Task.sleep(for: .milliseconds(200))
        #expect(atReceiver.messages.withLockedValue { $0.count } == 3 && atSender.messages.withLockedValue { $0.count } == 2)
    }

    /// The relay dies just as the transfer ends: both background readers
    /// lose their connection and start reconnecting (a backoff of 0.1, 0.3,
    /// 1, 2 and 4 s). Closing then must not wait through that backoff (about
    /// 8 s before the reconnection gave up): with no connection there is
    /// nobody to tell, and each close returns at once.
    @Test func closeDoesNotWaitForAReconnectionAfterTheRelayDied() async throws {
        try await Self.closesAtOnceAfterTheRelayDied(code: "72-acme-aftermath")
    }

    /// As above, but what listens on the relay's port after it died takes
    /// TCP connections and never answers the WebSocket upgrade (a relay
    /// that hangs, a middlebox): the reconnection's attempt is under way,
    /// waiting up to its 10 s, when `close` comes, and is abandoned.
    @Test func closeDoesNotWaitForAConnectionAttemptThatHangs() async throws {
        try await Self.closesAtOnceAfterTheRelayDied(code: "73-acme-aftermath", thenListen: true)
    }

    static func closesAtOnceAfterTheRelayDied(code: String, thenListen: Bool = false) async throws {
        let relay = try await RelayProcess.start()
        let (sender, receiver, _, atReceiver) = try await Self.connectedSessions(relay, code: code)
        sender.outbox.send(Self.restart(1))
        #expect(await atReceiver.wait(for: 1, within: .seconds(10)).count == 1)

        relay.running.signal(SIGKILL)
        _ = try await relay.running.wait(timeout: 10)
        let silent = thenListen ? try SilentListener(port: relay.port) : nil
        defer { silent?.close() }
        // Both readers have seen the connection end and are in their backoff
        // (the first attempt, after 100 ms, was refused: nothing listened)
        // or, with the silent listener, in an attempt waiting for the upgrade.
        try await Task.sleep(for: .milliseconds(thenListen ? 1500 : 400))
        if let silent { #expect(silent.pendingConnections() > 0, "no reconnection attempt reached the listener") }
        for session in [sender, receiver] {
            let started = ContinuousClock.now
            await session.close(mood: .happy)
            let took = ContinuousClock.now - started
            print("close after the relay died\(thenListen ? " (a silent listener on its port)" : "") took \(took)")
            // 18-20 ms on a quiet machine, 0.61 s once in a clean-clone CI
            // run, under the parallel phase's load; waiting for the reconnection took 2.0 s
            // and 9.0 s (before 1720aa7), which this bound still fails.
            #expect(took < .milliseconds(1500), "closing took \(took)")
        }
    }
}

/// A TCP socket listening on 127.0.0.1:`port` that never accepts: the
/// kernel completes each connection's handshake, and nothing ever answers.
final class SilentListener {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(description: "socket: \(errno)") }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(description: "bind or listen on \(port): \(code)")
        }
    }

    /// Connections the kernel completed and nobody accepted (from the
    /// listening socket's receive queue, as `ss` shows it).
    func pendingConnections() -> Int {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return 0 }
        // For a listening socket tcpi_unacked is the accept queue's length.
        return Int(info.tcpi_unacked)
    }

    func close() {
        Glibc.close(fd)
    }
}
