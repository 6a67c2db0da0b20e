import Testing
import TernSTUN
import TernTURN

@Suite("Refresh (RFC 8656 §8), permission and channel refreshes, deallocation")
struct RefreshTests {
    @Test("refreshes a minute before expiry, again and again", arguments: [TURNTransport.udp, .tcp])
    func refreshesBeforeExpiry(transport: TURNTransport) throws {
        var harness = Harness(transport: transport)
        harness.start()
        #expect(harness.client.nextDeadline == .seconds(540))

        harness.run(until: .seconds(3 * 3600))
        let refreshes = harness.server.requests(.refresh)
        #expect(refreshes.count == 20)
        #expect(refreshes.map(\.at) == (1...20).map { Duration.seconds(540 * $0) })
        #expect(refreshes.allSatisfy { $0.message.lifetime == 600 && $0.message.messageIntegrity != nil })
        #expect(harness.server.allocationAlive(at: harness.now))
        let events = harness.takeEvents()
        #expect(events.filter { $0 == .refreshed(lifetime: .seconds(600)) }.count == 20)
        #expect(!events.contains { $0.failure != nil })
    }

    @Test func refreshesAtHalfTimeForShortLifetimes() {
        var server = FakeTURNServer()
        server.defaultLifetime = 60
        server.maximumLifetime = 60
        var harness = Harness(requestedLifetime: .seconds(60), server: server)
        harness.start()
        #expect(harness.takeEvents().first == .allocated(
            relayed: FakeTURNServer.relayed, mapped: FakeTURNServer.clientMapped, lifetime: .seconds(60)))
        harness.run(until: .seconds(301))
        #expect(harness.server.requests(.refresh).map(\.at) == (1...10).map { Duration.seconds(30 * $0) })
        #expect(harness.server.allocationAlive(at: harness.now))
    }

    @Test func followsTheLifetimeTheServerGrants() {
        // Asks for an hour, the server caps at 20 minutes: refresh at 19.
        var server = FakeTURNServer()
        server.maximumLifetime = 1200
        var harness = Harness(requestedLifetime: .seconds(3600), server: server)
        harness.start()
        #expect(harness.server.requests(.allocate).last?.message.lifetime == 3600)
        #expect(harness.client.nextDeadline == .seconds(1140))
    }

    @Test func refreshSurvivesAStaleNonce() {
        var harness = Harness.allocated()
        harness.server.staleNonceAnswers = 1
        harness.run(until: .seconds(600))
        let refreshes = harness.server.requests(.refresh)
        #expect(refreshes.count == 2)
        #expect(refreshes.map(\.message.nonce) == ["nonce-0", "nonce-1"])
        #expect(harness.takeEvents().last == .refreshed(lifetime: .seconds(600)))
        // The new nonce is kept for the next request.
        harness.run(until: .seconds(1100))
        #expect(harness.server.requests(.refresh).last?.message.nonce == "nonce-1")
        #expect(harness.server.allocationAlive(at: harness.now))
    }

    @Test func allocationExpiresWhenRefreshesGoUnanswered() {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.dropRequests = 1_000
        harness.run(until: .seconds(599))
        // The Refresh at 540 s times out at 579.5 s (RFC 8489 §6.2.1); the
        // client tries again, since the allocation lives until 600 s.
        #expect(harness.takeEvents().isEmpty)
        // Six retransmissions of the first, five of the second by 599 s
        // (580, 581, 583, 587, 595).
        #expect(harness.client.counters.retransmissions == 6 + 5)
        harness.run(until: .seconds(700))
        #expect(harness.takeEvents() == [.failed(.allocationExpired)])
        #expect(harness.client.nextDeadline == nil)
    }

    @Test("keeps permissions and channels alive for an hour", arguments: [TURNTransport.udp, .tcp])
    func refreshesPermissionsAndChannels(transport: TURNTransport) throws {
        var harness = Harness.allocated(transport: transport)
        try harness.clientSends([1, 2, 3])
        try #require(harness.client.boundChannel(for: Harness.peer) != nil)

        var time = Duration.zero
        while time < .seconds(3600) {
            time += .seconds(30)
            harness.run(until: time)
            #expect(harness.server.permissionAlive(for: Harness.peer, at: harness.now))
            #expect(harness.server.channel(for: Harness.peer, at: harness.now) != nil)
        }
        // RFC 8656 §9: every 4 minutes (permissions last 5).
        let permissionTimes = harness.server.requests(.createPermission).map(\.at)
        #expect(permissionTimes == (0...15).map { Duration.seconds(240 * $0) })
        // RFC 8656 §11: every 9 minutes (bindings last 10).
        let channelTimes = harness.server.requests(.channelBind).map(\.at)
        #expect(channelTimes == (0...6).map { Duration.seconds(540 * $0) })
        #expect(Set(harness.server.requests(.channelBind).compactMap(\.message.channelNumber)) == [0x4000])

        harness.peerSends([9, 9])
        #expect(harness.takeEvents().last == .received(data: [9, 9], from: Harness.peer))
        try harness.clientSends([8])
        #expect(harness.server.deliveries.last == .init(peer: Harness.peer, data: [8], via: .channelData))
    }

    @Test func refusedPermissionRefreshIsReportedAndRetriedOnTheNextSend() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        _ = harness.takeEvents()
        harness.server.forcedErrors[.createPermission] = .forbidden
        harness.run(until: .seconds(241))
        #expect(harness.takeEvents() == [.permissionFailed(peer: Harness.peer, error: .forbidden)])
        #expect(!harness.client.hasPermission(for: Harness.peer, now: harness.now))

        harness.server.forcedErrors = [:]
        try harness.clientSends([2])
        #expect(harness.client.hasPermission(for: Harness.peer, now: harness.now))
        #expect(harness.server.deliveries.last?.data == [2])
    }

    @Test("deallocate sends Refresh with LIFETIME 0", arguments: [TURNTransport.udp, .tcp])
    func deallocates(transport: TURNTransport) throws {
        var harness = Harness.allocated(transport: transport)
        try harness.clientSends([1])
        _ = harness.takeEvents()
        harness.advance(by: .seconds(10))
        harness.client.deallocate(now: harness.now)
        harness.pump()

        let last = try #require(harness.server.requests.last)
        #expect(last.message.method == .refresh)
        #expect(last.message.lifetime == 0)
        #expect(last.message.messageIntegrity != nil)
        #expect(!harness.server.allocationAlive(at: harness.now))
        #expect(harness.takeEvents() == [.deallocated])
        #expect(harness.client.isFinished)
        #expect(harness.client.nextDeadline == nil)
        #expect(throws: TURNError.notAllocated) { try harness.client.send([1], to: Harness.peer, now: harness.now) }
        // Nothing else goes out afterwards.
        harness.run(until: .seconds(3600))
        #expect(harness.server.requests.last?.message.transactionID == last.message.transactionID)
    }

    @Test func deallocateHandlesAStaleNonce() {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.staleNonceAnswers = 1
        harness.client.deallocate(now: harness.now)
        harness.pump()
        #expect(harness.server.requests(.refresh).map(\.message.lifetime) == [0, 0])
        #expect(!harness.server.allocationAlive(at: harness.now))
        #expect(harness.takeEvents() == [.deallocated])
    }

    @Test func deallocateFinishesEvenWhenTheServerIsSilent() {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.dropRequests = 100
        harness.client.deallocate(now: harness.now)
        harness.run(until: .seconds(60))
        #expect(harness.takeEvents() == [.deallocated])
    }

    @Test func deallocateBeforeAllocationJustStops() {
        var harness = Harness()
        harness.server.dropRequests = 1
        harness.start()
        harness.client.deallocate(now: harness.now)
        #expect(harness.takeEvents() == [.deallocated])
        #expect(harness.client.pollTransmit() == nil)
        #expect(harness.client.nextDeadline == nil)
    }
}
