import Testing
import TernSTUN
import TernTURN

@Suite("Permissions, Send/Data indications, channels and ChannelData")
struct DataTests {
    static let setups: [(TURNTransport, Chunking)] = [
        (.udp, .whole), (.tcp, .whole), (.tcp, .random(max: 13)), (.tcp, .random(max: 200)), (.tcp, .bytewise),
    ]

    @Test("data both ways: indications first, ChannelData after the bind", arguments: setups)
    func dataBothWays(transport: TURNTransport, chunking: Chunking) throws {
        var harness = Harness(transport: transport, chunking: chunking)
        // Also asks before the allocation exists: the data waits for it.
        try harness.client.send([0xAA], to: Harness.peer, now: harness.now)
        harness.start()

        // Without a channel yet, the client speaks through Send indications
        // (RFC 8656 §10.1) right after the permission (RFC 8656 §9).
        let kinds = harness.server.requests.map(\.message.method)
        #expect(kinds == [.allocate, .allocate, .createPermission, .channelBind])
        #expect(harness.server.deliveries == [.init(peer: Harness.peer, data: [0xAA], via: .sendIndication)])
        let events = harness.takeEvents()
        #expect(events == [
            .allocated(relayed: FakeTURNServer.relayed, mapped: FakeTURNServer.clientMapped, lifetime: .seconds(600)),
            .permissionCreated(peer: Harness.peer),
            .channelBound(channel: 0x4000, peer: Harness.peer),
        ])

        // Now ChannelData both ways (RFC 8656 §12), with odd lengths to
        // exercise the stream padding (RFC 8656 §12.5).
        for length in [0, 1, 2, 3, 4, 5, 1200, 1201] {
            let out = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try harness.clientSends(out)
            #expect(harness.server.deliveries.last == .init(peer: Harness.peer, data: out, via: .channelData))
            let back = out.reversed() + [0x55]
            harness.peerSends(Array(back))
            #expect(harness.takeEvents() == [.received(data: Array(back), from: Harness.peer)])
        }
        #expect(harness.client.counters == TURNCounters())
        #expect(harness.server.droppedData == 0)
    }

    @Test("Data indications reach the client before a channel is bound", arguments: setups)
    func dataIndicationBeforeBind(transport: TURNTransport, chunking: Chunking) throws {
        var harness = Harness(transport: transport, chunking: chunking, configure: { $0.useChannels = false })
        harness.start()
        try harness.clientSends([1, 2, 3])
        #expect(harness.server.deliveries == [.init(peer: Harness.peer, data: [1, 2, 3], via: .sendIndication)])
        harness.peerSends([4, 5, 6, 7, 8])
        #expect(harness.takeEvents().last == .received(data: [4, 5, 6, 7, 8], from: Harness.peer))
        // A peer on the same IP, another port: the permission covers it (RFC 8656 §9).
        let samePort = STUNAddress.ipv4(192, 0, 2, 50, port: 5001)
        harness.peerSends([9], from: samePort)
        #expect(harness.takeEvents().last == .received(data: [9], from: samePort))
        #expect(harness.server.requests(.channelBind).isEmpty)
    }

    @Test func queuesDataUntilThePermissionIsInstalled() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        for index in 0..<3 { try harness.client.send([UInt8(index)], to: Harness.peer, now: harness.now) }
        // Only the CreatePermission leaves: the data waits for its answer.
        let transmitted = harness.client.pollTransmit()
        let first = try #require(transmitted)
        #expect(try STUNMessage.decode(first).method == .createPermission)
        #expect(harness.client.pollTransmit() == nil)
        #expect(!harness.client.hasPermission(for: Harness.peer, now: harness.now))

        for reply in harness.server.receive(datagram: first, now: harness.now) { harness.toClient(reply) }
        harness.pump()
        #expect(harness.server.deliveries.map(\.data) == [[0], [1], [2]])
        #expect(harness.server.requests(.createPermission).count == 1)
        #expect(harness.server.requests(.channelBind).count == 1)
    }

    @Test func queueForAPeerIsBounded() throws {
        var harness = Harness(configure: {
            $0.maximumQueuedMessagesPerPeer = 4
            $0.maximumQueuedBytesPerPeer = 10
        })
        harness.server.dropRequests = 1
        harness.start()
        harness.run(until: .milliseconds(1))
        try harness.client.send([1, 2, 3], to: Harness.peer, now: harness.now)
        try harness.client.send([4, 5, 6], to: Harness.peer, now: harness.now)
        try harness.client.send([7, 8, 9], to: Harness.peer, now: harness.now)
        #expect(throws: TURNError.peerQueueFull(Harness.peer)) {
            try harness.client.send([10, 11], to: Harness.peer, now: harness.now)
        }
        try harness.client.send([10], to: Harness.peer, now: harness.now)
        #expect(throws: TURNError.peerQueueFull(Harness.peer)) {
            try harness.client.send([], to: Harness.peer, now: harness.now)
        }
        #expect(harness.client.counters.droppedSends == 2)
        // After the retransmitted Allocate, the four queued messages go out in order.
        harness.run(until: .seconds(1))
        #expect(harness.server.deliveries.map(\.data) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]])
    }

    @Test func numberOfPeersIsBounded() throws {
        var harness = Harness(configure: { $0.maximumPeers = 2 })
        harness.start()
        try harness.clientSends([1], to: Harness.peer)
        try harness.clientSends([1], to: Harness.otherPeer)
        #expect(throws: TURNError.tooManyPeers) {
            try harness.client.send([1], to: .ipv4(192, 0, 2, 99, port: 1), now: harness.now)
        }
        // Another port on a known IP is not a new permission.
        try harness.clientSends([2], to: .ipv4(192, 0, 2, 50, port: 7))
        #expect(harness.server.deliveries.count == 3)
    }

    @Test func refusesPayloadsThatCannotBeFramedAndPeersOfTheWrongFamily() throws {
        var harness = Harness.allocated()
        #expect(throws: TURNError.payloadTooLarge(TURNClient.maximumPayload + 1)) {
            try harness.client.send([UInt8](repeating: 0, count: TURNClient.maximumPayload + 1), to: Harness.peer, now: harness.now)
        }
        let v6 = try #require(STUNAddress(ipBytes: [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1], port: 9))
        #expect(throws: TURNError.peerFamilyMismatch(v6)) { try harness.client.send([1], to: v6, now: harness.now) }
        // The largest payload does go through, as a Send indication.
        try harness.clientSends([UInt8](repeating: 3, count: TURNClient.maximumPayload))
        #expect(harness.server.deliveries.last?.data.count == TURNClient.maximumPayload)
    }

    @Test func twoPeersGetTwoChannels() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1], to: Harness.peer)
        try harness.clientSends([2], to: Harness.otherPeer)
        #expect(harness.client.boundChannel(for: Harness.peer) == 0x4000)
        #expect(harness.client.boundChannel(for: Harness.otherPeer) == 0x4001)
        harness.peerSends([3], from: Harness.otherPeer)
        harness.peerSends([4], from: Harness.peer)
        let received = harness.takeEvents().compactMap(\.receivedData)
        #expect(received.map(\.data) == [[3], [4]])
        #expect(received.map(\.from) == [Harness.otherPeer, Harness.peer])
    }

    @Test func refusedChannelBindFallsBackToSendIndications() throws {
        var harness = Harness.allocated()
        harness.server.forcedErrors[.channelBind] = .badRequest
        try harness.clientSends([1])
        try harness.clientSends([2])
        #expect(harness.takeEvents().contains(.channelBindFailed(
            peer: Harness.peer, error: .serverRefused(method: .channelBind, code: .badRequest))))
        #expect(harness.server.deliveries.map(\.via) == [.sendIndication, .sendIndication])
        // No second attempt for the same peer.
        #expect(harness.server.requests(.channelBind).count == 1)
    }

    @Test func dropsDataFromPeersWithoutPermissionAndUnboundChannels() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        let indication = STUNMessage(.indication, .data, transactionID: .random(),
                                     attributes: [.xorPeerAddress(Harness.otherPeer), .data([1])])
        harness.client.handleDatagram(try indication.encode(), now: harness.now)
        harness.client.handleDatagram(try ChannelData(channel: 0x4123, payload: [1, 2]).encode(padded: false), now: harness.now)
        // A Send indication is client-to-server only.
        let wrongWay = STUNMessage(.indication, .send, transactionID: .random(),
                                   attributes: [.xorPeerAddress(Harness.peer), .data([1])])
        harness.client.handleDatagram(try wrongWay.encode(), now: harness.now)
        #expect(harness.takeEvents().isEmpty)
        #expect(harness.client.counters.unexpected == 3)
    }

    @Test func sendsTheClientsChannelDataPaddedOnlyOverTCP() throws {
        for transport in [TURNTransport.udp, .tcp] {
            var harness = Harness.allocated(transport: transport)
            try harness.clientSends([1])
            try harness.client.send([1, 2, 3, 4, 5], to: Harness.peer, now: harness.now)
            let transmitted = harness.client.pollTransmit()
            let bytes = try #require(transmitted)
            #expect(bytes.count == (transport == .tcp ? 12 : 9))
            #expect(Array(bytes.prefix(4)) == [0x40, 0x00, 0x00, 0x05])
        }
    }
}
