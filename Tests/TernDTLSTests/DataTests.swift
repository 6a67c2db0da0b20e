import Testing
import TernDTLS

@Suite("Application data and close_notify")
struct DataTests {
    enum Size: CustomStringConvertible, CaseIterable {
        case one, thousand, largest
        var description: String {
            switch self {
            case .one: return "1 byte"
            case .thousand: return "1000 bytes"
            case .largest: return "the largest record inside the MTU"
            }
        }
    }

    @Test("data echoes both ways", arguments: Size.allCases)
    func echoesBothWays(size: Size) throws {
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.client)
        _ = pair.takeEvents(.server)
        let maximum = try #require(pair.client.maximumPayload)
        #expect(pair.server.maximumPayload == maximum)
        let count: Int
        switch size {
        case .one: count = 1
        case .thousand: count = 1000
        case .largest: count = maximum
        }
        var generator = SeededGenerator(seed: UInt64(count))
        let message = generator.bytes(count)

        // Client to server, and the server echoes it back.
        try pair.client.write(message)
        pair.pump()
        #expect(pair.takeEvents(.server) == [.data(message)])
        try pair.server.write(message)
        pair.pump()
        #expect(pair.takeEvents(.client) == [.data(message)])

        // Server first, client echoes.
        let reply = generator.bytes(count)
        try pair.server.write(reply)
        pair.pump()
        #expect(pair.takeEvents(.client) == [.data(reply)])
        try pair.client.write(reply)
        pair.pump()
        #expect(pair.takeEvents(.server) == [.data(reply)])

        // One record each way, each in one datagram of its own.
        let dataDatagrams = pair.log.suffix(4)
        for sent in dataDatagrams {
            let records = RecordHeader.all(in: sent.bytes)
            #expect(records.count == 1 && records.first?.type == 23)
            #expect(sent.bytes.count <= pair.client.configuration.mtu)
        }
    }

    @Test func theLargestPayloadFillsTheMTUAndOneMoreByteIsRefused() throws {
        let pair = try Pair()
        pair.handshake()
        let maximum = try #require(pair.client.maximumPayload)
        try pair.client.write([UInt8](repeating: 1, count: maximum))
        let datagram = try #require(pair.client.pollTransmit())
        // AES-GCM: 13-byte header, 8-byte explicit nonce, 16-byte tag
        // (RFC 5288 §3); ChaCha20-Poly1305: header and tag (RFC 7905 §2).
        // Either way the record fills the MTU exactly.
        #expect(datagram.count == 1200)
        #expect(throws: DTLSError.payloadTooLarge(size: maximum + 1, maximum: maximum)) {
            try pair.client.write([UInt8](repeating: 1, count: maximum + 1))
        }
        #expect(pair.client.isConnected)
    }

    @Test func aProbeMayExceedTheMTUAndGoesAloneInItsDatagram() throws {
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.server)
        let maximum = try #require(pair.client.maximumPayload)
        let probe = [UInt8](repeating: 7, count: maximum + 235)
        // A small record queued before the probe keeps a datagram of its own.
        try pair.client.write([1, 2, 3])
        try pair.client.write(probe, oversized: true)
        let first = try #require(pair.client.pollTransmit())
        let second = try #require(pair.client.pollTransmit())
        #expect(first.count < 100)
        #expect(second.count == 1200 + 235)
        #expect(pair.client.pollTransmit() == nil)
        #expect(pair.client.counters.oversizedDatagrams == 0)
        pair.server.handleDatagram(first, now: pair.now)
        pair.server.handleDatagram(second, now: pair.now)
        pair.collectEvents()
        let received = pair.received(.server)
        #expect(received.map(\.count) == [3, probe.count])
        #expect(received.first == [1, 2, 3] && received.last == probe, "both records whole")
        // Ordinary writes keep the MTU.
        #expect(throws: DTLSError.payloadTooLarge(size: maximum + 1, maximum: maximum)) {
            try pair.client.write([UInt8](repeating: 1, count: maximum + 1))
        }
    }

    @Test func aLargerPathMTURaisesTheLargestPayload() throws {
        let pair = try Pair()
        #expect(throws: DTLSError.notConnected) { try pair.client.setPathMTU(1472) }
        pair.handshake()
        _ = pair.takeEvents(.server)
        let before = try #require(pair.client.maximumPayload)
        try pair.client.setPathMTU(1472)
        #expect(pair.client.pathMTU == 1472)
        let after = try #require(pair.client.maximumPayload)
        #expect(after == before + 272)
        let message = [UInt8](repeating: 9, count: after)
        try pair.client.write(message)
        let datagram = try #require(pair.client.pollTransmit())
        #expect(datagram.count == 1472)
        pair.server.handleDatagram(datagram, now: pair.now)
        pair.collectEvents()
        #expect(pair.received(.server).count == 1)
        #expect(pair.received(.server).first == message, "the record arrived whole")
        #expect(throws: DTLSError.self) { try pair.client.setPathMTU(100) }
        #expect(pair.client.pathMTU == 1472)
    }

    @Test func manyRecordsArriveInOrderAndWhole() throws {
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.server)
        var sent: [[UInt8]] = []
        for index in 0..<200 {
            let message = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 1 + index * 5)
            sent.append(message)
            try pair.client.write(message)
        }
        pair.pump()
        #expect(pair.received(.server) == sent)
    }

    @Test func writingBeforeTheHandshakeIsRefused() throws {
        let pair = try Pair()
        #expect(throws: DTLSError.notConnected) { try pair.client.write([1]) }
        pair.start()
        #expect(throws: DTLSError.notConnected) { try pair.client.write([1]) }
        #expect(pair.client.maximumPayload == nil)
    }

    @Test("close_notify reaches the peer", arguments: [Pair.Side.client, .server])
    func closeNotifyReachesThePeer(closer: Pair.Side) throws {
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.client)
        _ = pair.takeEvents(.server)
        let closing = pair.association(closer)
        let other: Pair.Side = closer == .client ? .server : .client

        closing.close()
        #expect(closing.isFinished)
        #expect(pair.takeEvents(closer) == []) // no event for a local close
        pair.pump()

        // RFC 5246 §7.2.1: the peer sees close_notify and answers with its own.
        #expect(pair.takeEvents(other) == [.closed])
        #expect(pair.association(other).isFinished)
        #expect(pair.association(other).failure == nil)
        let alerts = pair.log.suffix(2)
        #expect(alerts.map(\.from) == [closer, other])
        for alert in alerts { #expect(RecordHeader.all(in: alert.bytes).map(\.type) == [21]) }
        // The answer arrives after our close and is ignored.
        #expect(closing.counters.ignoredDatagrams == 1)
        #expect(throws: DTLSError.notConnected) { try closing.write([1]) }
        #expect(throws: DTLSError.notConnected) { try pair.association(other).write([1]) }
    }

    @Test func dataBeforeCloseNotifyIsDelivered() throws {
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.server)
        try pair.client.write([1, 2, 3])
        pair.client.close()
        pair.pump()
        #expect(pair.takeEvents(.server) == [.data([1, 2, 3]), .closed])
    }

    @Test func severalRecordsInOneDatagramAreAllDelivered() throws {
        // RFC 6347 §4.1.1: a datagram may carry several records; another
        // stack may pack application data that way.
        let pair = try Pair()
        pair.handshake()
        _ = pair.takeEvents(.server)
        try pair.client.write([1])
        try pair.client.write([2, 2])
        try pair.client.write([3, 3, 3])
        var packed: [UInt8] = []
        while let datagram = pair.client.pollTransmit() { packed += datagram }
        pair.client.close()
        while let datagram = pair.client.pollTransmit() { packed += datagram }
        pair.server.handleDatagram(packed, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([1]), .data([2, 2]), .data([3, 3, 3]), .closed])
    }
}
