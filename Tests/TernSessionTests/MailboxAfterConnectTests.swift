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
        let relay = try await RelayProcess.start()
        let (sender, receiver, _, atReceiver) = try await Self.connectedSessions(relay, code: "72-acme-aftermath")
        sender.outbox.send(Self.restart(1))
        #expect(await atReceiver.wait(for: 1, within: .seconds(10)).count == 1)

        relay.running.signal(SIGKILL)
        _ = try await relay.running.wait(timeout: 10)
        // Both readers have seen the connection end and are in their backoff
        // (the first attempt, after 100 ms, was refused: nothing listens).
        try await Task.sleep(for: .milliseconds(400))
        for session in [sender, receiver] {
            let started = ContinuousClock.now
            await session.close(mood: .happy)
            let took = ContinuousClock.now - started
            print("close after the relay died took \(took)")
            #expect(took < .milliseconds(500), "closing took \(took)")
        }
    }
}
