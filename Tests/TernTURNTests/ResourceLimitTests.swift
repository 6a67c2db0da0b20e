import Testing
import TernSTUN
@testable import TernTURN

/// The client's bounds at their defaults (`TURNClient.Configuration`:
/// `maximumPeers` 64, `maximumQueuedMessagesPerPeer` 64,
/// `maximumQueuedBytesPerPeer` 256 KiB), each reached and refused. The
/// peers a session sends to are the peer's signalled and peer-reflexive
/// candidates, which ICE bounds at 64 too.
@Suite("TURN resource limits")
struct ResourceLimitTests {
    static let defaults = (peers: 64, messages: 64, bytes: 256 * 1024)

    static func peer(_ index: Int) -> STUNAddress { .ipv4(198, 51, UInt8(index / 200), UInt8(index % 200 + 1), port: 9000) }

    @Test func permissionsStopAtTheDefaultPeerCount() throws {
        var harness = Harness.allocated()
        #expect(harness.client.configuration.maximumPeers == Self.defaults.peers)
        for index in 0..<Self.defaults.peers { try harness.clientSends([1], to: Self.peer(index)) }
        #expect(throws: TURNError.tooManyPeers) {
            try harness.client.send([1], to: Self.peer(Self.defaults.peers), now: harness.now)
        }
        // Each permission (and channel) serves every port of its IP.
        try harness.clientSends([2], to: .ipv4(198, 51, 0, 1, port: 9999))
        #expect(harness.server.deliveries.count == Self.defaults.peers + 1)
    }

    /// While the allocation is not there yet, data for a peer waits: at
    /// most 64 messages and 256 KiB.
    @Test func aPeersQueueStopsAtTheDefaultCountAndBytes() throws {
        var byCount = Harness(configure: { _ in })
        byCount.server.dropRequests = 1
        byCount.start()
        for index in 0..<Self.defaults.messages { try byCount.client.send([UInt8(index)], to: Harness.peer, now: byCount.now) }
        #expect(throws: TURNError.peerQueueFull(Harness.peer)) {
            try byCount.client.send([0], to: Harness.peer, now: byCount.now)
        }

        var byBytes = Harness(configure: { _ in })
        byBytes.server.dropRequests = 1
        byBytes.start()
        let large = [UInt8](repeating: 7, count: TURNClient.maximumPayload)
        for _ in 0..<4 { try byBytes.client.send(large, to: Harness.peer, now: byBytes.now) }
        let room = Self.defaults.bytes - 4 * TURNClient.maximumPayload
        #expect(throws: TURNError.peerQueueFull(Harness.peer)) {
            try byBytes.client.send([UInt8](repeating: 8, count: room + 1), to: Harness.peer, now: byBytes.now)
        }
        try byBytes.client.send([UInt8](repeating: 8, count: room), to: Harness.peer, now: byBytes.now)
        #expect(byBytes.client.counters.droppedSends == 1)
        // Once allocated, everything queued goes out.
        byBytes.run(until: .seconds(2))
        #expect(byBytes.server.deliveries.map(\.data.count) == Array(repeating: TURNClient.maximumPayload, count: 4) + [room])
    }
}
