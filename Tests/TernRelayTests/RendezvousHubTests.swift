import NIOCore
import Testing
import TernRendezvous
@testable import TernRelay

/// The relay's core driven directly, with a virtual clock.
@Suite struct RendezvousHubTests {
    var hub = RendezvousHub(limits: RelayLimits())
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let alice = Identifier.random()
    let bob = Identifier.random()

    mutating func connect(_ id: UInt64, address: String = "10.0.0.1") -> ConnectionID {
        let connection = ConnectionID(id)
        let accepted = hub.connected(connection, address: address, now: now)
        #expect(accepted)
        return connection
    }

    mutating func send(_ frame: ClientFrame, from id: ConnectionID) -> [RendezvousHub.Action] {
        hub.received(Array(frame.encoded().utf8), from: id, now: now)
    }

    func frames(_ actions: [RendezvousHub.Action], to id: ConnectionID) -> [RelayFrame] {
        actions.compactMap { if case .send(id, let frame) = $0 { frame } else { nil } }
    }

    func closes(_ actions: [RendezvousHub.Action], _ id: ConnectionID) -> Bool {
        actions.contains(.close(id))
    }

    mutating func allocate(_ id: ConnectionID, side: Identifier) throws -> (String, Identifier) {
        let reply = frames(send(.allocate(side: side), from: id), to: id)
        guard case .allocated(let nameplate, let mailbox)? = reply.first else {
            Issue.record("expected allocated, got \(reply)")
            throw CancellationError()
        }
        return (nameplate, mailbox)
    }

    @Test mutating func allocatesRandomNameplatesFromARangeSizedToTheLoad() throws {
        var limits = RelayLimits()
        limits.maxMailboxesPerAddress = 1000
        limits.claimsPerMinute = 0
        hub = RendezvousHub(limits: limits)
        var seen = Set<String>()
        for index in 0..<200 {
            let nameplate = try allocate(connect(UInt64(index + 1)), side: Identifier.random()).0
            let number = try #require(Int(nameplate))
            #expect(seen.insert(nameplate).inserted)
            // Two digits while fewer than 50 are in use, then three.
            #expect(number >= 1 && number <= (index < 49 ? 99 : 999), "nameplate \(nameplate) at \(index) in use")
        }
        // Not handed out in order: the first 20 are not 1...20.
        #expect(Set(seen.prefix(20)) != Set((1...20).map(String.init)))
    }

    @Test mutating func tombstonesAreCappedPerAddress() throws {
        var limits = RelayLimits()
        limits.maxTombstonesPerAddress = 2
        hub = RendezvousHub(limits: limits)
        var abandoned: [String] = []
        for index in 0..<4 {
            let c = connect(UInt64(index + 1), address: "a")
            abandoned.append(try allocate(c, side: Identifier.random()).0)
            _ = send(.close(mood: .lonely), from: c)
        }
        #expect(hub.statistics.tombstones == 2)
        // The first two are refused as expired; the others are free again.
        let states = abandoned.map { hub.nameplateIsInUse($0) }
        #expect(states == [true, true, false, false])
        let late = connect(10, address: "b")
        let refused = send(.claim(nameplate: abandoned[0], side: bob), from: late)
        #expect(frames(refused, to: late).first.map { if case .error(.expired, _) = $0 { true } else { false } } == true)
        // Expiry gives the address its tombstones back.
        now = now + limits.idleLifetime
        _ = hub.tick(now: now)
        #expect(hub.statistics.tombstones == 0)
    }

    @Test mutating func claimsAreRateLimitedPerAddress() throws {
        var limits = RelayLimits()
        limits.claimsPerMinute = 3
        limits.maxMailboxesPerAddress = 100
        hub = RendezvousHub(limits: limits)
        for index in 0..<3 { _ = try allocate(connect(UInt64(index + 1), address: "a"), side: Identifier.random()) }
        let flooder = connect(10, address: "a")
        let refused = send(.claim(nameplate: "123456", side: Identifier.random()), from: flooder)
        #expect(frames(refused, to: flooder).first.map { if case .error(.limit, _) = $0 { true } else { false } } == true)
        #expect(hub.statistics.refusals["claims_per_address"] == 1)
        // Another address is not affected.
        _ = try allocate(connect(11, address: "b"), side: Identifier.random())
        // A third of a minute later, the bucket has one token again.
        now = now + .seconds(20)
        _ = try allocate(connect(12, address: "a"), side: Identifier.random())
        let again = connect(13, address: "a")
        #expect(frames(send(.allocate(side: Identifier.random()), from: again), to: again).first.map { if case .error(.limit, _) = $0 { true } else { false } } == true)
    }

    @Test mutating func storedBytesAreLimitedPerSidePerAddressAndInTotal() throws {
        var limits = RelayLimits()
        limits.maxBytesPerSide = 100
        limits.maxBytesPerAddress = 150
        limits.maxBytesTotal = 200
        hub = RendezvousHub(limits: limits)
        func refusal(_ actions: [RendezvousHub.Action], _ id: ConnectionID) -> RelayErrorCode? {
            frames(actions, to: id).first.flatMap { if case .error(let code, _) = $0 { code } else { nil } }
        }
        let a = connect(1, address: "a")
        _ = try allocate(a, side: alice)
        #expect(send(.add(seq: 0, body: [UInt8](repeating: 1, count: 60)), from: a).isEmpty)
        #expect(refusal(send(.add(seq: 1, body: [UInt8](repeating: 1, count: 41)), from: a), a) == .mailboxFull)
        #expect(hub.statistics.bytesStored == 60)
        // Per address: 60 + 60 + 40 > 150 across two mailboxes of address a.
        let a2 = connect(2, address: "a")
        _ = try allocate(a2, side: Identifier.random())
        #expect(send(.add(seq: 0, body: [UInt8](repeating: 2, count: 60)), from: a2).isEmpty)
        #expect(refusal(send(.add(seq: 1, body: [UInt8](repeating: 2, count: 40)), from: a2), a2) == .limit)
        // In total: 120 stored; b may add 80, not 81.
        let b = connect(3, address: "b")
        _ = try allocate(b, side: bob)
        #expect(refusal(send(.add(seq: 0, body: [UInt8](repeating: 3, count: 81)), from: b), b) == .limit)
        #expect(hub.statistics.refusals["bytes_total"] == 1)
        // Removing a mailbox gives its bytes back.
        hub.disconnected(a, now: now)
        now = now + limits.idleLifetime
        _ = hub.tick(now: now)
        #expect(hub.statistics.bytesStored == 0)
    }

    @Test mutating func turnIsGrantedOnlyOnceBothSidesAreInTheMailbox() throws {
        let a = connect(1), b = connect(2), idle = connect(3)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        #expect(!(send(.add(seq: 0, body: [1]), from: a).contains(.grantTURN(a))))
        let joined = send(.claim(nameplate: nameplate, side: bob), from: b)
        #expect(joined.filter { if case .grantTURN = $0 { true } else { false } } == [.grantTURN(b), .grantTURN(a)])
        // The grant comes before the peer's first message.
        let grant = try #require(joined.firstIndex(of: .grantTURN(b)))
        let message = try #require(joined.firstIndex(of: .send(b, .message(seq: 0, body: [1]))))
        #expect(grant < message)
        // Not again on the same connections; again on a side's new connection.
        #expect(!send(.add(seq: 0, body: [2]), from: b).contains(.grantTURN(a)))
        hub.disconnected(a, now: now)
        let a2 = connect(4)
        #expect(send(.attach(mailbox: mailbox, side: alice, received: 1), from: a2).contains(.grantTURN(a2)))
        #expect(!hub.tick(now: now).contains(.grantTURN(idle)))
    }

    @Test mutating func aConnectionThatClaimsNothingIsClosedAfterTheClaimTimeout() {
        let idle = connect(1)
        now = now + hub.limits.claimTimeout - .seconds(1)
        #expect(!closes(hub.tick(now: now), idle))
        now = now + .seconds(1)
        let actions = hub.tick(now: now)
        #expect(closes(actions, idle))
        #expect(frames(actions, to: idle).first.map { if case .error(.expired, _) = $0 { true } else { false } } == true)
    }

    @Test mutating func messagesReachTheOtherSideExactlyOnceInOrder() throws {
        let a = connect(1), b = connect(2)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        // Alice adds before Bob arrives: held for him.
        #expect(frames(send(.add(seq: 0, body: [1]), from: a), to: a).isEmpty)
        #expect(frames(send(.add(seq: 1, body: [2]), from: a), to: a).isEmpty)
        let joined = frames(send(.claim(nameplate: nameplate, side: bob), from: b), to: b)
        #expect(joined == [.claimed(nameplate: nameplate, mailbox: mailbox), .message(seq: 0, body: [1]), .message(seq: 1, body: [2])])
        // Live delivery both ways.
        #expect(frames(send(.add(seq: 0, body: [9]), from: b), to: a) == [.message(seq: 0, body: [9])])
        #expect(frames(send(.add(seq: 2, body: [3]), from: a), to: b) == [.message(seq: 2, body: [3])])
        // A resend of a stored message (after a reconnect) is not delivered twice.
        #expect(send(.add(seq: 2, body: [3]), from: a).isEmpty)
    }

    @Test mutating func aReconnectingSideGetsWhatItMissedOnce() throws {
        let a = connect(1), b = connect(2)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        _ = send(.add(seq: 0, body: [1]), from: a)
        // Bob loses his connection; Alice adds two more meanwhile.
        hub.disconnected(b, now: now)
        #expect(frames(send(.add(seq: 1, body: [2]), from: a), to: b).isEmpty)
        _ = send(.add(seq: 2, body: [3]), from: a)
        let b2 = connect(3)
        let replay = frames(send(.attach(mailbox: mailbox, side: bob, received: 1), from: b2), to: b2)
        #expect(replay == [.attached(mailbox: mailbox), .message(seq: 1, body: [2]), .message(seq: 2, body: [3])])
        #expect(frames(send(.add(seq: 3, body: [4]), from: a), to: b2) == [.message(seq: 3, body: [4])])
    }

    @Test mutating func attachRefusesStrangersAndImpossibleCounts() throws {
        let a = connect(1), b = connect(2), c = connect(3), d = connect(4)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        let stranger = send(.attach(mailbox: mailbox, side: Identifier.random(), received: 0), from: c)
        #expect(frames(stranger, to: c).first.map { if case .error(.unknownMailbox, _) = $0 { true } else { false } } == true)
        #expect(closes(stranger, c))
        let greedy = send(.attach(mailbox: mailbox, side: bob, received: 5), from: d)
        #expect(frames(greedy, to: d).first.map { if case .error(.outOfOrder, _) = $0 { true } else { false } } == true)
    }

    @Test mutating func aThirdSideIsRefused() throws {
        let a = connect(1), b = connect(2), c = connect(3)
        let (nameplate, _) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        let third = send(.claim(nameplate: nameplate, side: Identifier.random()), from: c)
        #expect(frames(third, to: c).first.map { if case .error(.crowded, _) = $0 { true } else { false } } == true)
        #expect(closes(third, c))
    }

    @Test mutating func anExpiredNameplateIsRefusedAndLaterFreed() throws {
        let a = connect(1)
        let (nameplate, _) = try allocate(a, side: alice)
        now = now + .minutes(10)
        let expiry = hub.tick(now: now)
        #expect(frames(expiry, to: a).first.map { if case .error(.expired, _) = $0 { true } else { false } } == true)
        #expect(closes(expiry, a))
        hub.disconnected(a, now: now)
        let b = connect(2)
        let late = send(.claim(nameplate: nameplate, side: bob), from: b)
        #expect(frames(late, to: b).first.map { if case .error(.expired, _) = $0 { true } else { false } } == true)
        // After another idle lifetime the tombstone goes and the number can be used again.
        now = now + .minutes(10)
        _ = hub.tick(now: now)
        #expect(!hub.nameplateIsInUse(nameplate))
    }

    @Test mutating func aPreAgreedNameplateOpensOnFirstClaim() throws {
        let a = connect(1), b = connect(2)
        let first = frames(send(.claim(nameplate: "4711", side: alice), from: a), to: a)
        guard case .claimed("4711", let mailbox)? = first.first else { Issue.record("got \(first)"); return }
        #expect(frames(send(.claim(nameplate: "4711", side: bob), from: b), to: b) == [.claimed(nameplate: "4711", mailbox: mailbox)])
    }

    @Test mutating func closingTellsThePeerAfterItsMessagesAndFreesTheNameplate() throws {
        let a = connect(1), b = connect(2)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        #expect(hub.nameplateIsInUse(nameplate))
        hub.disconnected(b, now: now)
        _ = send(.add(seq: 0, body: [7]), from: a)
        let closing = send(.close(mood: .happy), from: a)
        #expect(frames(closing, to: a) == [.closed])
        #expect(closes(closing, a))
        let b2 = connect(3)
        #expect(hub.statistics.mailboxes == 1)
        let attach = frames(send(.attach(mailbox: mailbox, side: bob, received: 0), from: b2), to: b2)
        #expect(attach == [.attached(mailbox: mailbox), .message(seq: 0, body: [7]), .peerClosed(mood: .happy)])
        _ = send(.close(mood: .happy), from: b2)
        #expect(hub.statistics.mailboxes == 0)
        #expect(!hub.nameplateIsInUse(nameplate))
    }

    @Test mutating func outOfOrderFramesCloseOnlyThatConnection() throws {
        let a = connect(1), b = connect(2), c = connect(3)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        // Add before joining, a gap in sequence numbers, a second claim, garbage.
        let early = send(.add(seq: 0, body: [1]), from: c)
        #expect(closes(early, c))
        let gap = send(.add(seq: 5, body: [1]), from: a)
        #expect(frames(gap, to: a).first.map { if case .error(.outOfOrder, _) = $0 { true } else { false } } == true)
        let d = connect(4)
        let garbage = hub.received(Array("not json".utf8), from: d, now: now)
        #expect(frames(garbage, to: d).first.map { if case .error(.malformed, _) = $0 { true } else { false } } == true)
        #expect(hub.statistics.protocolErrors == 3)
        // The server closes Alice's connection; the mailbox is untouched and
        // she can come back to it, and Bob's message waits for her.
        hub.disconnected(a, now: now)
        #expect(send(.add(seq: 0, body: [2]), from: b).isEmpty)
        let a2 = connect(5)
        let back = frames(send(.attach(mailbox: mailbox, side: alice, received: 0), from: a2), to: a2)
        #expect(back == [.attached(mailbox: mailbox), .message(seq: 0, body: [2])])
    }

    @Test mutating func limitsPerAddressAndInTotal() throws {
        var limits = RelayLimits()
        limits.maxMailboxesPerAddress = 2
        limits.maxMailboxes = 3
        hub = RendezvousHub(limits: limits)
        let c1 = connect(1, address: "a"), c2 = connect(2, address: "a"), c3 = connect(3, address: "a")
        _ = try allocate(c1, side: Identifier.random())
        _ = try allocate(c2, side: Identifier.random())
        let refused = send(.allocate(side: Identifier.random()), from: c3)
        #expect(frames(refused, to: c3).first.map { if case .error(.limit, _) = $0 { true } else { false } } == true)
        let c4 = connect(4, address: "b"), c5 = connect(5, address: "c")
        _ = try allocate(c4, side: Identifier.random())
        let full = send(.allocate(side: Identifier.random()), from: c5)
        #expect(frames(full, to: c5).first.map { if case .error(.limit, _) = $0 { true } else { false } } == true)
    }

    @Test mutating func aSideCannotFillTheMailboxWithoutBound() throws {
        var limits = RelayLimits()
        limits.maxMessagesPerSide = 3
        hub = RendezvousHub(limits: limits)
        let a = connect(1)
        _ = try allocate(a, side: alice)
        for seq in 0..<3 { #expect(send(.add(seq: seq, body: [1]), from: a).isEmpty) }
        let over = send(.add(seq: 3, body: [1]), from: a)
        #expect(frames(over, to: a).first.map { if case .error(.mailboxFull, _) = $0 { true } else { false } } == true)
    }

    @Test mutating func aPairedMailboxLivesWhileASideIsConnected() throws {
        let a = connect(1), b = connect(2)
        let (nameplate, _) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        now = now + .minutes(30)
        #expect(hub.tick(now: now).isEmpty)
        #expect(hub.statistics.mailboxes == 1)
        // One side gone: still alive while the other is there (which is
        // told, once the reattach window is over, that its peer left).
        hub.disconnected(a, now: now)
        now = now + .minutes(30)
        #expect(hub.tick(now: now) == [.send(b, .peerClosed(mood: .errory))])
        #expect(hub.statistics.mailboxes == 1)
        // Both gone and idle: removed, and the nameplate is free again.
        hub.disconnected(b, now: now)
        now = now + .minutes(10)
        _ = hub.tick(now: now)
        #expect(hub.statistics.mailboxes == 0)
        #expect(!hub.nameplateIsInUse(nameplate))
    }

    @Test mutating func attachingAgainDropsTheStaleConnection() throws {
        let a = connect(1), b = connect(2)
        let (nameplate, mailbox) = try allocate(a, side: alice)
        _ = send(.claim(nameplate: nameplate, side: bob), from: b)
        let a2 = connect(3)
        let actions = send(.attach(mailbox: mailbox, side: alice, received: 0), from: a2)
        #expect(closes(actions, a))
        #expect(frames(actions, to: a2) == [.attached(mailbox: mailbox)])
        // Bob's messages now go to the new connection only.
        let delivered = send(.add(seq: 0, body: [5]), from: b)
        #expect(frames(delivered, to: a2) == [.message(seq: 0, body: [5])])
        #expect(frames(delivered, to: a).isEmpty)
    }

    // MARK: Pre-agreed codes stay reusable

    func refusal(_ actions: [RendezvousHub.Action], to id: ConnectionID) -> RelayErrorCode? {
        if case .error(let code, _)? = frames(actions, to: id).first { return code }
        return nil
    }

    mutating func claim(_ nameplate: String, side: Identifier, from id: ConnectionID) -> Identifier? {
        if case .claimed(nameplate, let mailbox)? = frames(send(.claim(nameplate: nameplate, side: side), from: id), to: id).first {
            return mailbox
        }
        return nil
    }

    @Test mutating func aPreAgreedCodeWhoseOnlySideLeftCanBeClaimedAgainAtOnce() throws {
        let a = connect(1)
        #expect(claim("4242", side: alice, from: a) != nil)
        _ = send(.close(mood: .errory), from: a)  // a --timeout, say
        #expect(!hub.nameplateIsInUse("4242"))
        // The retry: both sides claim again and meet.
        let a2 = connect(2), b = connect(3)
        let mailbox = try #require(claim("4242", side: Identifier.random(), from: a2))
        #expect(claim("4242", side: bob, from: b) == mailbox)
    }

    @Test mutating func aSideThatDroppedWithoutClosingKeepsItsClaimForTheReattachWindowOnly() throws {
        let a = connect(1)
        let mailbox = try #require(claim("4242", side: alice, from: a))
        hub.disconnected(a, now: now)  // killed: no close
        now = now + .seconds(5)
        #expect(hub.tick(now: now).isEmpty)
        #expect(hub.nameplateIsInUse("4242"), "a side reconnecting within the window still has its mailbox")
        let back = connect(2)
        #expect(frames(send(.attach(mailbox: mailbox, side: alice, received: 0), from: back), to: back) == [.attached(mailbox: mailbox)])
        hub.disconnected(back, now: now)
        // Gone for good this time: after the window the code is free.
        now = now + hub.limits.reattachWindow
        _ = hub.tick(now: now)
        #expect(!hub.nameplateIsInUse("4242"))
        #expect(hub.statistics.mailboxes == 0)
        let c = connect(3), d = connect(4)
        let fresh = try #require(claim("4242", side: Identifier.random(), from: c))
        #expect(fresh != mailbox)
        #expect(claim("4242", side: bob, from: d) == fresh)
    }

    @Test mutating func aConsumedNameplateIsFreeOnceBothSidesAreGone() throws {
        let a = connect(1), b = connect(2)
        let mailbox = try #require(claim("77", side: alice, from: a))
        #expect(claim("77", side: bob, from: b) == mailbox)
        // Both sides met and were killed mid-session.
        hub.disconnected(a, now: now)
        hub.disconnected(b, now: now)
        let early = connect(3)
        #expect(refusal(send(.claim(nameplate: "77", side: Identifier.random()), from: early), to: early) == .crowded)
        now = now + hub.limits.reattachWindow
        _ = hub.tick(now: now)
        #expect(!hub.nameplateIsInUse("77"), "not crowded, not expired: the same pre-agreed code works for a new pair")
        let c = connect(4), d = connect(5)
        let again = try #require(claim("77", side: Identifier.random(), from: c))
        #expect(claim("77", side: Identifier.random(), from: d) == again)
    }

    @Test mutating func oneSideClosedAndTheOtherDroppedFreesTheNameplateAfterTheWindow() throws {
        let a = connect(1), b = connect(2)
        _ = try #require(claim("78", side: alice, from: a))
        _ = try #require(claim("78", side: bob, from: b))
        _ = send(.close(mood: .errory), from: a)
        hub.disconnected(b, now: now)
        now = now + .seconds(1)
        _ = hub.tick(now: now)
        #expect(hub.nameplateIsInUse("78"))
        now = now + hub.limits.reattachWindow
        _ = hub.tick(now: now)
        #expect(!hub.nameplateIsInUse("78"))
    }

    @Test mutating func anAllocatedCodeWhoseSenderLeftStillSaysExpired() throws {
        let a = connect(1)
        let (nameplate, _) = try allocate(a, side: alice)
        hub.disconnected(a, now: now)
        now = now + hub.limits.reattachWindow
        _ = hub.tick(now: now)
        let b = connect(2)
        #expect(refusal(send(.claim(nameplate: nameplate, side: bob), from: b), to: b) == .expired)
    }

    @Test mutating func aPeerThatDroppedAndDidNotComeBackIsReportedGone() throws {
        let a = connect(1), b = connect(2)
        let mailbox = try #require(claim("79", side: alice, from: a))
        _ = try #require(claim("79", side: bob, from: b))
        hub.disconnected(b, now: now)
        // Within the window Bob may reattach: Alice is told nothing.
        now = now + .seconds(14)
        #expect(hub.tick(now: now).isEmpty)
        now = now + .seconds(1)
        #expect(frames(hub.tick(now: now), to: a) == [.peerClosed(mood: .errory)])
        #expect(hub.tick(now: now + .seconds(1)).isEmpty, "told once")
        let late = connect(3)
        #expect(refusal(send(.attach(mailbox: mailbox, side: bob, received: 0), from: late), to: late) == .outOfOrder)
        // Alice leaves too: the code is free.
        _ = send(.close(mood: .errory), from: a)
        #expect(!hub.nameplateIsInUse("79"))
    }
}
