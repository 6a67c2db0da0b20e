import Testing
import TernDTLS

/// RFC 6347 §4.2.4: a flight that gets no answer is sent again when its timer
/// runs out. OpenSSL 3.0 times these with the real clock, so these tests wait
/// for real, with short timers (50 ms) to keep them quick.
@Suite("Retransmission of lost flights (RFC 6347 §4.2.4)")
struct RetransmissionTests {
    static func shortTimers(_ configuration: inout DTLSAssociation.Configuration) {
        configuration.initialRetransmissionTimeout = .milliseconds(50)
        configuration.maximumRetransmissionTimeout = .milliseconds(200)
    }

    @Test func lostClientHelloIsSentAgain() async throws {
        let pair = try Pair(configure: Self.shortTimers)
        pair.filter = { from, index, _ in !(from == .client && index == 0) }
        pair.handshake()
        #expect(!pair.client.isConnected)
        #expect(pair.server.counters.datagramsReceived == 0)

        // The deadline is the initial timer value after the start.
        let deadline = try #require(pair.client.nextDeadline)
        #expect(deadline - pair.now <= .milliseconds(50))
        #expect(deadline - pair.now > .milliseconds(20))

        try await pair.waitForNextDeadline()
        #expect(pair.client.counters.timerRetransmissions == 1)
        pair.pump()
        #expect(pair.client.isConnected && pair.server.isConnected)
        // The retransmitted ClientHello is the same message again.
        let hellos = pair.log.filter { $0.from == .client }.prefix(2)
        #expect(hellos.count == 2)
        #expect(hellos.first?.bytes.count == hellos.last?.bytes.count)
    }

    @Test func lostServerFlightIsSentAgain() async throws {
        let pair = try Pair(configure: Self.shortTimers)
        var dropping = true
        pair.filter = { from, _, _ in !(from == .server && dropping) }
        pair.handshake()
        #expect(!pair.client.isConnected && !pair.server.isConnected)
        dropping = false

        try await pair.waitForNextDeadline()
        pair.pump()
        #expect(pair.client.isConnected && pair.server.isConnected)
    }

    @Test func lostFinalFlightIsSentAgainByAConnectedServer() async throws {
        // The server's last flight (ChangeCipherSpec, Finished) is lost: the
        // server is connected already, the client is not. The client's timer
        // repeats its flight and the server answers with its own again
        // (RFC 6347 §4.2.4).
        let pair = try Pair(configure: Self.shortTimers)
        var droppedFinal = false
        pair.filter = { from, _, bytes in
            if from == .server, !droppedFinal, RecordHeader.all(in: bytes).contains(where: { $0.type == 20 }) {
                droppedFinal = true
                return false
            }
            return true
        }
        pair.handshake()
        #expect(droppedFinal)
        #expect(pair.server.isConnected)
        #expect(!pair.client.isConnected)

        try await pair.waitForNextDeadline()
        pair.pump()
        #expect(pair.client.isConnected)
        #expect(pair.client.counters.timerRetransmissions >= 1)

        // And data flows both ways afterwards.
        try pair.client.write([1, 2, 3])
        try pair.server.write([4, 5, 6])
        pair.pump()
        #expect(pair.received(.server) == [[1, 2, 3]])
        #expect(pair.received(.client) == [[4, 5, 6]])
    }

    @Test("completes over a link that loses a third of the datagrams", arguments: [1, 2, 3] as [UInt64])
    func completesOverALossyLink(seed: UInt64) async throws {
        let pair = try Pair(configure: Self.shortTimers)
        var generator = SeededGenerator(seed: seed)
        pair.filter = { _, _, _ in Int.random(in: 0..<3, using: &generator) != 0 }
        pair.handshake()
        var waits = 0
        while !(pair.client.isConnected && pair.server.isConnected), waits < 40 {
            try await pair.waitForNextDeadline()
            pair.pump()
            waits += 1
        }
        #expect(pair.client.isConnected && pair.server.isConnected)
        #expect(pair.clientEvents.filter(\.isConnected).count == 1)
        #expect(pair.serverEvents.filter(\.isConnected).count == 1)
    }

    @Test func aTimerThatHasNotRunOutInRealTimeDoesNothing() throws {
        // The driver's clock may run ahead of the real one (here: a virtual
        // clock jumps 500 ms while no real time passes). OpenSSL's timer has
        // not expired, so nothing is sent, and a new deadline is given.
        let pair = try Pair()
        pair.filter = { _, _, _ in false }
        pair.client.start(now: pair.now)
        pair.pump()
        let first = try #require(pair.client.nextDeadline)
        #expect(first - pair.now > .milliseconds(900) && first - pair.now <= .seconds(1))
        pair.now += .milliseconds(500)
        pair.client.advanceTime(now: pair.now)
        #expect(pair.client.pollTransmit() == nil)
        #expect(pair.client.counters.timerRetransmissions == 0)
        let second = try #require(pair.client.nextDeadline)
        #expect(second > pair.now)
    }
}
