import Testing
import TernSTUN
@testable import TernTURN

/// Nonce rotation and refused requests (RFC 8489 §9.2.5, RFC 8656 §7-§11):
/// the client keeps its allocation across 438s and makes a fresh one when the
/// server lost the old, instead of sitting on a dead relayed address.
@Suite("438 Stale Nonce on every request, and a fresh allocation when the server lost one")
struct RecoveryTests {
    /// The attributes of a request other than those that change with a new
    /// nonce (NONCE, MESSAGE-INTEGRITY, FINGERPRINT).
    static func unsigned(_ message: STUNMessage) -> [STUNAttribute] {
        message.attributes.filter {
            switch $0 {
            case .nonce, .messageIntegrity, .fingerprint: return false
            default: return true
            }
        }
    }

    @Test("the first Allocate, CreatePermission, ChannelBind and Refresh each get 438; every retry is what coturn accepts",
          arguments: [TURNTransport.udp, .tcp])
    func staleNonceOnTheFirstRequestOfEachKind(transport: TURNTransport) throws {
        var server = FakeTURNServer(transport: transport)
        server.staleNonceOnFirst = [.allocate, .createPermission, .channelBind, .refresh]
        var harness = Harness(transport: transport, server: server)
        harness.start()
        try harness.clientSends([1, 2, 3])
        harness.run(until: .seconds(600))
        harness.peerSends([4])
        try harness.clientSends([5])

        for method in [STUNMethod.allocate, .createPermission, .channelBind, .refresh] {
            // The signed request that got 438 and its retry.
            let signed = harness.server.requests(method).filter { $0.message.messageIntegrity != nil }
            try #require(signed.count >= 2, "\(method)")
            let (refused, retry) = (signed[0].message, signed[1].message)
            // RFC 8489 §9.2.5: the NONCE of the 438 (the server's next one),
            // a new transaction (RFC 8489 §6.2), everything else unchanged.
            #expect(retry.nonce != refused.nonce, "\(method)")
            #expect(retry.transactionID != refused.transactionID, "\(method)")
            #expect(Self.unsigned(retry) == Self.unsigned(refused), "\(method)")
            #expect(retry.username == harness.client.configuration.username)
            #expect(retry.realm == "tern.test")
        }
        // Five: at 540 s the channel's refresh goes out with the Refresh, on
        // the nonce the Refresh's 438 replaces, and is answered 438 in turn.
        #expect(harness.server.staleNonceReasons == Array(repeating: "Stale nonce", count: 5))
        #expect(harness.client.counters.staleNonceRetries == 5)
        #expect(harness.client.counters.reallocations == 0)
        // One allocation, kept: the permission, the channel and data both ways.
        #expect(harness.server.allocationCount == 1)
        #expect(harness.server.allocationAlive(at: harness.now))
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed)
        #expect(harness.server.permissionAlive(for: Harness.peer, at: harness.now))
        #expect(harness.server.channel(for: Harness.peer, at: harness.now) == 0x4000)
        #expect(harness.server.deliveries.map(\.data) == [[1, 2, 3], [5]])
        #expect(harness.server.deliveries.last?.via == .channelData)
        let events = harness.takeEvents()
        #expect(events.contains(.received(data: [4], from: Harness.peer)))
        #expect(events.contains(.refreshed(lifetime: .seconds(600))))
        #expect(!events.contains { $0.failure != nil })
    }

    @Test func keepsTheAllocationAcrossNoncesThatExpireEveryFewSeconds() throws {
        var server = FakeTURNServer()
        server.nonceLifetime = .seconds(2)
        var harness = Harness(server: server)
        harness.start()
        var peers: [STUNAddress] = []
        for round in 0..<5 {
            harness.advance(by: .seconds(3))
            let peer = STUNAddress.ipv4(192, 0, 2, UInt8(100 + round), port: 7000)
            peers.append(peer)
            try harness.clientSends([UInt8(round)], to: peer)
            try harness.clientSends([UInt8(round), 1], to: peer)
            harness.peerSends([UInt8(round), 2], from: peer)
        }
        // One 438 a round (the new peer's CreatePermission), one retry each.
        #expect(harness.client.counters.staleNonceRetries == 5)
        #expect(harness.server.staleNonceReasons == Array(repeating: "Stale nonce", count: 5))
        #expect(harness.server.allocationCount == 1)
        for peer in peers {
            #expect(harness.server.permissionAlive(for: peer, at: harness.now))
            #expect(harness.client.boundChannel(for: peer) != nil)
        }
        #expect(harness.server.deliveries.count == 10)
        #expect(harness.takeEvents().filter { $0.receivedData != nil }.count == 5)
    }

    /// The capture of issue 13 (turn-438-then-400.pcap), as coturn 4.6.1
    /// answers once the client's 5-tuple reaches a new session: 438 "Wrong
    /// nonce", then 400 Bad Request to the authenticated retry (there is no
    /// allocation in that session), then 437 to a Refresh. The client
    /// allocates afresh at the first 400 and asks again for every permission.
    @Test func aRetryRefusedAfterWrongNonceMeansTheAllocationIsGone() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        #expect(harness.client.boundChannel(for: Harness.peer) == 0x4000)
        _ = harness.takeEvents()

        harness.server.loseSession()
        try harness.clientSends([2], to: Harness.otherPeer)

        #expect(harness.server.staleNonceReasons == ["Wrong nonce"])
        let refused = TURNError.serverRefused(method: .createPermission, code: STUNErrorCode(code: 400, reason: "Bad Request"))
        let events = harness.takeEvents()
        try #require(events.count >= 2, "\(events)")
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: refused))
        #expect(events[1] == .allocated(relayed: FakeTURNServer.relayed(2), mapped: FakeTURNServer.clientMapped, lifetime: .seconds(600)))
        // Both peers' permissions are installed on the new allocation, and
        // the data that waited went out.
        #expect(Set(events.dropFirst(2)) == [
            .permissionCreated(peer: Harness.peer), .permissionCreated(peer: Harness.otherPeer),
            .channelBound(channel: 0x4001, peer: Harness.otherPeer),
        ])
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed(2))
        #expect(harness.server.permissionAlive(for: Harness.peer, at: harness.now))
        #expect(harness.server.deliveries.map(\.data) == [[1], [2]])
        #expect(harness.client.counters.reallocations == 1)
        // The sentence names the request that failed, without coturn's NUL.
        #expect(refused.reason == "the TURN server refused CreatePermission: 400 Bad Request")

        // Data both ways on the new allocation; a channel is bound again.
        try harness.clientSends([3])
        harness.peerSends([4])
        #expect(harness.server.deliveries.last == .init(peer: Harness.peer, data: [3], via: .sendIndication))
        #expect(harness.takeEvents().contains(.received(data: [4], from: Harness.peer)))
        try harness.clientSends([5])
        #expect(harness.server.deliveries.last == .init(peer: Harness.peer, data: [5], via: .channelData))
    }

    @Test func aRefreshAnswered437AllocatesAfresh() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        _ = harness.takeEvents()
        // coturn lost the session: the Refresh at 540 s gets 438 "Wrong
        // nonce", then 437 "Invalid allocation".
        harness.run(until: .seconds(539))
        harness.server.loseSession()
        harness.run(until: .seconds(541))

        let events = harness.takeEvents()
        try #require(events.count >= 2, "\(events)")
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: .allocationMismatch(.refresh)))
        #expect(events[1].isAllocated)
        #expect(events.contains(.permissionCreated(peer: Harness.peer)))
        #expect(harness.server.allocationAlive(at: harness.now))
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed(2))
        #expect(TURNError.allocationMismatch(.refresh).reason.hasPrefix("the TURN server refused Refresh:"))
        // And the new allocation is refreshed in its turn.
        harness.run(until: .seconds(541 + 600))
        #expect(harness.server.allocationAlive(at: harness.now))
        #expect(harness.takeEvents().contains(.refreshed(lifetime: .seconds(600))))
    }

    /// `checkAllocation` (an ICE restart asks): a live allocation is only
    /// refreshed; one the server lost is replaced at once, not at the next
    /// scheduled Refresh 9 minutes later.
    @Test func checkingALiveAllocationRefreshesIt() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        _ = harness.takeEvents()
        harness.advance(by: .seconds(10))
        harness.client.checkAllocation(now: harness.now)
        harness.pump()
        #expect(harness.takeEvents() == [.refreshed(lifetime: .seconds(600))])
        #expect(harness.server.requests(.refresh).count == 1)
        #expect(harness.server.allocationCount == 1)
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed)
        #expect(harness.client.counters.reallocations == 0)
    }

    @Test func checkingAnAllocationTheServerLostAllocatesAfreshAtOnce() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        _ = harness.takeEvents()
        harness.advance(by: .seconds(10))
        // As coturn after the client's 5-tuple changed: a new session,
        // 438 "Wrong nonce", then 437 to the retry.
        harness.server.loseSession()
        harness.client.checkAllocation(now: harness.now)
        harness.pump()
        let events = harness.takeEvents()
        try #require(events.count >= 2, "\(events)")
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: .allocationMismatch(.refresh)))
        #expect(events[1] == .allocated(relayed: FakeTURNServer.relayed(2), mapped: FakeTURNServer.clientMapped, lifetime: .seconds(600)))
        #expect(harness.server.staleNonceReasons == ["Wrong nonce"])
        #expect(harness.now == .seconds(10), "no timer needed: answered at once")
        #expect(harness.server.permissionAlive(for: Harness.peer, at: harness.now))
    }

    @Test func checkingAnAllocationTheServerDoesNotAnswerForAllocatesAfresh() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.dropRequests = 1000
        harness.client.checkAllocation(now: harness.now)
        harness.pump()
        // The Refresh's transmissions all go unanswered (RFC 8489 §6.2.1:
        // 39.5 s with the default RTO); a scheduled Refresh would try again
        // until the allocation expires, the check gives it up.
        harness.run(until: .seconds(45))
        let lost = harness.takeEvents()
        #expect(lost.first == .allocationLost(relayed: FakeTURNServer.relayed, error: .timedOut(.refresh)))
        harness.server.dropRequests = 0
        harness.run(until: .seconds(90))
        #expect(harness.client.isAllocated)
        #expect(harness.server.allocationCount == 2)
    }

    /// `allocateAfresh`: the local address the allocation was made from is
    /// gone, so the client asks for a new one without asking about the old.
    /// (The fake server keys by nothing but the one client, so it still
    /// holds the old allocation and answers 437; the client releases it
    /// and asks again, RFC 8656 §7.2.)
    @Test func allocatingAfreshGivesTheOldAllocationUpAtOnce() throws {
        var harness = Harness.allocated()
        try harness.clientSends([1])
        _ = harness.takeEvents()
        harness.client.allocateAfresh(now: harness.now)
        harness.pump()
        let events = harness.takeEvents()
        try #require(events.count >= 2, "\(events)")
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: .localAddressGone))
        #expect(events[1].isAllocated)
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed(2))
        #expect(harness.server.requests(.refresh).isEmpty == false)
        #expect(harness.client.counters.reallocations == 1)
        // Data flows on the new allocation.
        try harness.clientSends([2])
        #expect(harness.server.deliveries.map(\.data).last == [2])
    }

    /// A server that says 437 (RFC 8656 §18) to a CreatePermission while it
    /// still holds an allocation for the 5-tuple: the fresh Allocate gets 437
    /// too, so the client releases the old one (Refresh LIFETIME 0) first.
    @Test func a437ToCreatePermissionReleasesAndAllocatesAgain() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.forcedOnce[.createPermission] = .allocationMismatch
        try harness.clientSends([1])

        let events = harness.takeEvents()
        try #require(events.count >= 2, "\(events)")
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: .allocationMismatch(.createPermission)))
        #expect(events[1].isAllocated)
        #expect(harness.server.requests(.refresh).map(\.message.lifetime) == [0])
        #expect(harness.server.allocationCount == 2)
        #expect(harness.server.deliveries.map(\.data) == [[1]])
    }

    @Test func givesUpAfterBoundedReallocations() throws {
        var harness = Harness(configure: { $0.maximumReallocations = 2 })
        harness.start()
        _ = harness.takeEvents()
        harness.server.forcedErrors[.createPermission] = .allocationMismatch
        try harness.clientSends([1])
        let events = harness.takeEvents()
        #expect(events.filter { if case .allocationLost = $0 { true } else { false } }.count == 2)
        #expect(events.last == .failed(.allocationMismatch(.createPermission)))
        #expect(harness.client.isFinished)
        #expect(harness.client.nextDeadline == nil)
    }

    @Test func twoRefusalsInARowAllocateAfreshButPeerRefusalsDoNot() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        // 403 Forbidden IP is about one peer: reported, nothing else.
        harness.server.forcedErrors[.createPermission] = .forbidden
        try? harness.clientSends([1])
        try? harness.clientSends([2], to: Harness.otherPeer)
        #expect(harness.takeEvents() == [
            .permissionFailed(peer: Harness.peer, error: .forbidden),
            .permissionFailed(peer: Harness.otherPeer, error: .forbidden),
        ])
        // One 500 is reported; a second one in a row means the allocation is unusable.
        let serverError = STUNErrorCode(code: 500, reason: "Server Error")
        harness.server.forcedErrors[.createPermission] = serverError
        try harness.clientSends([3])
        let failed = TURNError.serverRefused(method: .createPermission, code: serverError)
        #expect(harness.takeEvents() == [.permissionFailed(peer: Harness.peer, error: failed)])
        try harness.clientSends([4], to: Harness.otherPeer)
        harness.server.forcedErrors = [:]
        harness.pump()
        let events = harness.takeEvents()
        try #require(!events.isEmpty)
        #expect(events[0] == .allocationLost(relayed: FakeTURNServer.relayed, error: failed))
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed(2))
    }

    /// RFC 8489 §14.8: the reason phrase is text from the network. coturn
    /// counts its C string's NUL (even two, "Invalid allocation\0\0"); a
    /// hostile server may send terminal controls.
    @Test("reason phrases are trimmed of NULs and padding and escaped", arguments: [
        ("Bad Request\u{0}", "400 Bad Request"),
        ("Invalid allocation\u{0}\u{0}", "400 Invalid allocation"),
        ("Bad \u{1B}[2J Request \n", "400 Bad \\u{1b}[2J Request"),
        (String(repeating: "x", count: 300), "400 " + String(repeating: "x", count: 127) + "…"),
    ])
    func reasonPhrasesAreCleaned(wire: String, shown: String) throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        harness.server.forcedErrors[.createPermission] = STUNErrorCode(code: 400, reason: wire)
        try harness.clientSends([1])
        let events = harness.takeEvents()
        guard case .permissionFailed(_, .serverRefused(.createPermission, let code))? = events.first else {
            Issue.record("\(events)")
            return
        }
        #expect(code.description == shown)
        #expect(!TURNError.serverRefused(method: .createPermission, code: code).reason.contains("\u{0}"))
    }
}

/// RFC 8489 §9.2: the nonce cookie and its "Password algorithms" feature.
/// coturn 4.6.1 sends none (16 hexadecimal digits, as in the capture).
@Suite("Nonce cookie (RFC 8489 §9.2)")
struct NonceCookieTests {
    /// MD5 (1) and SHA-256 (2), no parameters (RFC 8489 §14.11).
    static let md5AndSHA256: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]

    @Test func readsTheSecurityFeatureBits() {
        // RFC 8489 appendix B.1: bit 1, username anonymity.
        #expect(NonceCookie.features(of: "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA") == 2)
        #expect(NonceCookie.features(of: "obMatJos2AAAB-nonce") == 1)
        #expect(NonceCookie.features(of: "298bc34d8ee5fbc3") == nil)
        #expect(NonceCookie.features(of: "obMatJos2A") == nil)
        #expect(NonceCookie.features(of: "obMatJos2AA*B") == nil)
        #expect(NonceCookie.offersMD5(Self.md5AndSHA256))
        #expect(!NonceCookie.offersMD5([0x00, 0x02, 0x00, 0x00]))
        #expect(!NonceCookie.offersMD5([0x00, 0x02, 0xFF, 0xFF, 0x00, 0x01]))
        // After an entry with parameters, padded to four bytes.
        #expect(NonceCookie.offersMD5([0x00, 0x02, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]))
        // A malformed list lists nothing, MD5 included: stray bytes after
        // it, an entry whose padding is cut short.
        #expect(!NonceCookie.offersMD5([0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00]))
        #expect(!NonceCookie.offersMD5([0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0xAA, 0xBB]))
    }

    @Test func answersThePasswordAlgorithmsAndKeepsThemAcross438() throws {
        var server = FakeTURNServer()
        server.nonceCookie = "obMatJos2AAAB"
        server.passwordAlgorithms = Self.md5AndSHA256
        server.staleNonceOnFirst = [.createPermission]
        var harness = Harness(server: server)
        harness.start()
        try harness.clientSends([1])
        #expect(harness.client.isAllocated)
        #expect(harness.server.deliveries.map(\.data) == [[1]])
        let signed = harness.server.requests.filter { $0.message.messageIntegrity != nil }
        #expect(signed.allSatisfy {
            $0.message.attributes.contains(.passwordAlgorithms(Self.md5AndSHA256))
                && $0.message.attributes.contains(.passwordAlgorithm([0x00, 0x01, 0x00, 0x00]))
        })
        #expect(harness.client.counters.staleNonceRetries == 1)
    }

    @Test("a cookie asking for an algorithm the client cannot give is not retried", arguments: [
        (nil, "lists none"), ([0x00, 0x02, 0x00, 0x00] as [UInt8]?, "MD5"),
    ])
    func unmetSecurityFeatureIsNotRetried(offered: [UInt8]?, reason: String) {
        var server = FakeTURNServer()
        server.nonceCookie = "obMatJos2AAAB"
        server.passwordAlgorithms = offered
        var harness = Harness(server: server)
        harness.start()
        let events = harness.takeEvents()
        guard case .failed(.securityFeatureUnmet(let why))? = events.first else {
            Issue.record("\(events)")
            return
        }
        #expect(why.contains(reason))
        // RFC 8489 §9.2.5: no signed retry after the 401.
        #expect(harness.server.requests.count == 1)
    }
}
