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

    @Test mutating func allocatesTheSmallestFreeNameplate() throws {
        let a = connect(1), b = connect(2), c = connect(3)
        #expect(try allocate(a, side: alice).0 == "1")
        #expect(try allocate(b, side: bob).0 == "2")
        // Freeing 1 (its only side leaves) tombstones it; the next allocation skips it.
        _ = send(.close(mood: .lonely), from: a)
        #expect(try allocate(c, side: Identifier.random()).0 == "3")
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
