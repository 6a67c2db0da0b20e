import Testing
import TernTestSupport
@testable import TernSCTP

struct Pair {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>
    var sides: [Association]
    var link: VirtualLink<Association.Packet>
    var now: Duration = .zero
    var received: [[SCTPMessage]] = [[], []]
    var events: [[SCTPEvent]] = [[], []]
    /// Encode and decode every packet with the codec (checksums included).
    var throughWire = true
    /// Encoded packets larger than this are dropped on delivery, as a path
    /// with a smaller MTU drops them (checked only through the wire).
    var linkLimit = Int.max
    /// Side 0's packets as they reached the far end of the link: encoded
    /// size, whether a path MTU probe, whether dropped for their size.
    var delivered: [(size: Int, probe: Bool, dropped: Bool)] = []
    /// TSNs whose first transmission from side 0 is lost (the whole packet).
    var dropFirstTransmission: Set<UInt32> = []
    private var droppedOnce: Set<UInt32> = []

    init(seed: UInt64, configuration: Association.Configuration = .init()) {
        var random = SplitMix64(seed: seed)
        sides = [Association(configuration: configuration, random: &random), Association(configuration: configuration, random: &random)]
        link = VirtualLink(seed: seed &+ 1)
    }

    mutating func pump() {
        for index in 0..<2 {
            while let packet = sides[index].pollTransmit(now: now) {
                // Within the path MTU in use when built, unless flagged as
                // larger (a probe, or a chunk cut before the MTU went down).
                let size = 12 + packet.chunks.reduce(0) { $0 + Association.size(of: $1) }
                #expect(packet.exceedsPathMTU == (size > sides[index].pathMTU), "\(size) bytes, path MTU \(sides[index].pathMTU)")
                if index == 0, dropsFirstTransmission(packet) { continue }
                link.send(packet, to: 1 - index, now: now)
            }
            while let event = sides[index].pollEvent() { events[index].append(event) }
            while let message = sides[index].pollMessage() { received[index].append(message) }
        }
    }

    /// Runs until `done` or `limit` of virtual time.
    mutating func run(until limit: Duration, _ done: (Pair) -> Bool = { _ in false }) {
        pump()
        while now < limit && !done(self) {
            var next = link.nextArrival
            for side in sides { if let deadline = side.nextDeadline { next = next.map { min($0, deadline) } ?? deadline } }
            guard let next else { break }
            now = max(now, next)
            if let packet = link.takeDue(now: now) {
                if throughWire {
                    guard let bytes = try? SCTPWire.encode(packet.packet), let decoded = SCTPWire.decode(bytes) else {
                        Issue.record("a packet did not survive the codec: \(packet.packet.chunks.map { "\($0)".prefix(40) })")
                        continue
                    }
                    let dropped = bytes.count > linkLimit
                    if packet.to == 1 { delivered.append((bytes.count, packet.packet.isProbe, dropped)) }
                    if !dropped {
                        sides[packet.to].handleChunks(decoded.chunks, verificationTag: decoded.verificationTag, now: now)
                    }
                } else {
                    sides[packet.to].handleChunks(packet.packet.chunks, verificationTag: packet.packet.verificationTag, now: now)
                }
            }
            for index in 0..<2 { sides[index].advanceTime(now: now) }
            pump()
        }
    }

    private mutating func dropsFirstTransmission(_ packet: Association.Packet) -> Bool {
        let tsns = packet.chunks.compactMap { chunk -> UInt32? in
            if case .data(let fragment) = chunk { return fragment.tsn.value }
            return nil
        }
        let hit = tsns.filter { dropFirstTransmission.contains($0) && !droppedOnce.contains($0) }
        droppedOnce.formUnion(hit)
        return !hit.isEmpty
    }

    var bothEstablished: Bool { sides.allSatisfy { $0.state == .established } }

    /// Queues messages on side 0, stream 1, PPID 53; a refused one is a test failure.
    mutating func sendFromFirst(_ messages: [[UInt8]]) {
        for message in messages {
            do {
                try sides[0].send(stream: 1, ppid: 53, payload: message, now: now)
            } catch {
                Issue.record("send failed: \(error)")
            }
        }
    }
}

struct AssociationTests {
    @Test func readingUnreadMessagesSendsAWindowUpdateAtOnce() throws {
        var pair = Pair(seed: 7, configuration: .init(receiveWindow: 64 * 1024))
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(2)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        for _ in 0..<8 { try pair.sides[0].send(stream: 0, ppid: 53, payload: [UInt8](repeating: 1, count: 16 * 1024), now: pair.now) }
        // A reader that takes messages but does not read them: they count
        // against the window until it does.
        var unread = 0
        var now = pair.now
        for _ in 0..<20 {
            var moved = true
            while moved {
                moved = false
                while let packet = pair.sides[0].pollTransmit(now: now) {
                    pair.sides[1].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
                    moved = true
                }
                while let message = pair.sides[1].pollMessage() {
                    unread += message.payload.count
                    pair.sides[1].applicationBufferedBytes += message.payload.count
                }
                while let packet = pair.sides[1].pollTransmit(now: now) {
                    pair.sides[0].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
                    moved = true
                }
            }
            now += .milliseconds(50)
            pair.sides[0].advanceTime(now: now)
            pair.sides[1].advanceTime(now: now)
        }
        // Whatever is due goes out; then the receiver has nothing to say.
        while let packet = pair.sides[1].pollTransmit(now: now) {
            pair.sides[0].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
        }
        while let packet = pair.sides[0].pollTransmit(now: now) {
            pair.sides[1].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
        }
        #expect(pair.sides[1].pollTransmit(now: now) == nil)
        #expect(unread >= 48 * 1024 && unread < 128 * 1024, "the window closed with messages unread")
        #expect(pair.sides[1].advertisedReceiveWindow < 16 * 1024)
        // The application reads them: a SACK with the open window goes out
        // now, not with the next data or the delayed-ack timer.
        pair.sides[1].applicationBufferedBytes = 0
        let update = pair.sides[1].pollTransmit(now: now)
        let sack = update?.chunks.compactMap { chunk -> SCTPChunkModel.SACKFields? in
            if case .sack(let fields) = chunk { return fields }
            return nil
        }.first
        #expect(sack.map { $0.receiveWindow >= 48 * 1024 } == true)
        #expect(pair.sides[1].pollTransmit(now: now) == nil, "one update, not a stream of them")
    }

    @Test func theHandshakeEstablishesBothSidesInTwoRoundTrips() {
        var pair = Pair(seed: 1)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        #expect(pair.now <= .milliseconds(80), "INIT, INIT ACK, COOKIE ECHO, COOKIE ACK: 4 x 20 ms")
        #expect(pair.events[0].first == .established && pair.events[1].first == .established)
    }

    @Test func bothSidesInitiatingAtOnceStillEstablish() {
        var pair = Pair(seed: 2)
        pair.sides[0].connect(now: .zero)
        pair.sides[1].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
    }

    @Test func aLostINITIsRetransmitted() {
        var pair = Pair(seed: 3)
        pair.link.loss = 1
        pair.sides[0].connect(now: .zero)
        pair.run(until: .milliseconds(100))
        pair.link.loss = 0
        pair.run(until: .seconds(10)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        #expect(pair.now > .milliseconds(400), "after T1-init")
    }

    static func messages(count: Int, seed: UInt64) -> [[UInt8]] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            let size = [1, 100, 1171, 1172, 1173, 5000, 64 * 1024, 256 * 1024][index % 8]
            return (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
    }

    @Test(arguments: [(0.0, 0.0, 0.0), (0.01, 0.0, 0.0), (0.05, 0.0, 0.0), (0.02, 0.1, 0.05)])
    func everyMessageArrivesIntactAndInOrder(loss: Double, reordering: Double, duplication: Double) {
        var pair = Pair(seed: 10)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        pair.link.loss = loss
        pair.link.reordering = reordering
        pair.link.duplication = duplication
        let sent = Self.messages(count: 24, seed: 99)
        pair.sendFromFirst(sent)
        pair.run(until: .seconds(600)) { $0.received[1].count == sent.count }
        #expect(pair.received[1].count == sent.count, "loss \(loss): \(pair.received[1].count) of \(sent.count) after \(pair.now)")
        #expect(pair.received[1].map(\.payload) == sent)
        #expect(pair.received[1].allSatisfy { $0.stream == 1 && $0.ppid == 53 })
        print("[sctp] loss \(loss) reorder \(reordering) dup \(duplication): \(sent.reduce(0) { $0 + $1.count }) bytes in \(pair.now), \(pair.link.lost) packets lost")
    }

    /// A resent chunk keeps its low TSN; SACKs for data sent before the
    /// resend must not count as misses against it, or one loss turns into a
    /// resend per few SACKs for as long as the resend takes to be acked.
    @Test(arguments: [0.01, 0.05])
    func aLostChunkIsResentAboutOnceNotOncePerSACK(loss: Double) {
        var pair = Pair(seed: 21)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        pair.link.loss = loss
        let sent = Self.messages(count: 64, seed: 7).map { _ in [UInt8](repeating: 0x42, count: 128 * 1024) }
        pair.sendFromFirst(sent)
        pair.run(until: .seconds(600)) { $0.received[1].count == sent.count }
        #expect(pair.received[1].count == sent.count)
        let statistics = pair.sides[0].statistics
        // Every lost packet (DATA or SACK) may cost a resend or two, not dozens.
        #expect(statistics.retransmittedChunks <= 2 * pair.link.lost,
                "\(statistics.retransmittedChunks) chunks resent for \(pair.link.lost) lost packets (\(statistics.dataChunksSent) data chunks)")
    }

    /// The last packets of a transfer cannot collect the three miss
    /// indications fast retransmit needs. The tail timer, about two round
    /// trips after the last SACK that acknowledged something, resends a
    /// hole below data that arrived or, when the very last packet was lost,
    /// probes with it; T3 (an RTO of at least 400 ms, then a one-packet
    /// window) does not fire. `fromEnd`: the lost packet, counted back from
    /// the transfer's last (0); one chunk per packet here.
    @Test(arguments: [0, 1, 2] as [UInt32])
    func aLossAtTheEndOfATransferIsRepairedWithoutATimeout(fromEnd: UInt32) throws {
        let sent = (0..<6).map { index in [UInt8](repeating: UInt8(index), count: 3000) }
        func transfer(dropping tsns: Set<UInt32>) -> Pair {
            var pair = Pair(seed: 33)
            pair.sides[0].connect(now: .zero)
            pair.run(until: .seconds(5)) { $0.bothEstablished }
            pair.dropFirstTransmission = tsns
            pair.sendFromFirst(sent)
            pair.run(until: .seconds(30)) { $0.received[1].count == sent.count }
            return pair
        }
        // The same run without the loss (the simulation is deterministic)
        // names the last TSN and how long the transfer takes.
        let clean = transfer(dropping: [])
        let last = clean.sides[0].retransmissions.nextTSN.value &- 1
        let lossy = transfer(dropping: [last &- fromEnd])
        #expect(lossy.received[1].map(\.payload) == sent)
        let statistics = lossy.sides[0].statistics
        #expect(statistics.timeouts == 0)
        #expect(statistics.retransmittedChunks == 1)
        if fromEnd == 0 {
            #expect(statistics.tailProbes == 1 && statistics.tailRetransmits == 0)
        } else {
            #expect(statistics.tailRetransmits + statistics.fastRetransmits == 1 && statistics.tailProbes == 0)
        }
        // A 40 ms round trip: the tail timer's 80 ms (280 ms for a lone
        // newest chunk, which a receiver may hold for its delayed SACK) and
        // a round trip, where T3 would take 400 ms or more and a round trip.
        let cost = lossy.now - clean.now
        #expect(cost < (fromEnd == 0 ? .milliseconds(350) : .milliseconds(200)), "\(cost)")
        print("[sctp] lost \(fromEnd) from the end: \(cost) longer, tail \(statistics.tailRetransmits), probes \(statistics.tailProbes), fast \(statistics.fastRetransmits)")
    }

    @Test(arguments: [1163, 1171, 1200, 1201, 1202, 1203])
    func everyPacketFitsTheMTUWhateverItsAlignment(mtu: Int) {
        var pair = Pair(seed: 11, configuration: .init(mtu: mtu))
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        for size in [1, 1135, 1136, 5000, 100_000] {
            try? pair.sides[0].send(stream: 0, ppid: 53, payload: [UInt8](repeating: 9, count: size), now: pair.now)
        }
        var largest = 0
        for _ in 0..<10_000 {
            guard let packet = pair.sides[0].pollTransmit(now: pair.now) else { break }
            let bytes = (try? SCTPWire.encode(packet)) ?? []
            largest = max(largest, bytes.count)
            pair.link.send(packet, to: 1, now: pair.now)
        }
        #expect(largest > mtu - 8 && largest <= mtu, "largest packet \(largest) for MTU \(mtu)")
    }

    @Test func theCongestionWindowGrowsThenHalvesOnLossAndCollapsesOnTimeout() {
        var pair = Pair(seed: 20)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        let initial = pair.sides[0].congestion?.congestionWindow ?? 0
        #expect(initial == 4404)
        for _ in 0..<64 { try? pair.sides[0].send(stream: 0, ppid: 53, payload: [UInt8](repeating: 1, count: 16 * 1024), now: pair.now) }
        pair.run(until: pair.now + .milliseconds(300))
        let grown = pair.sides[0].congestion?.congestionWindow ?? 0
        #expect(grown > 4 * initial, "slow start: \(grown)")
        // Drop everything for a while: the T3 timer fires, cwnd = 1 MTU.
        pair.link.loss = 1
        pair.run(until: pair.now + .seconds(2))
        #expect(pair.sides[0].congestion?.congestionWindow == 1200)
        pair.link.loss = 0
        pair.run(until: pair.now + .seconds(120)) { $0.received[1].count == 64 }
        #expect(pair.received[1].count == 64)
    }

    @Test func aWindowLeftIdleDecaysBeforeNewData() {
        var pair = Pair(seed: 21)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        for _ in 0..<32 { try? pair.sides[0].send(stream: 0, ppid: 53, payload: [UInt8](repeating: 1, count: 16 * 1024), now: pair.now) }
        pair.run(until: pair.now + .seconds(5)) { $0.received[1].count == 32 }
        let grown = pair.sides[0].congestion?.congestionWindow ?? 0
        #expect(grown >= 16 * 1200, "slow start grew the window: \(grown)")
        // Idle for ten seconds (several RTOs), then one message.
        pair.run(until: pair.now + .seconds(10))
        try? pair.sides[0].send(stream: 0, ppid: 53, payload: [1], now: pair.now)
        _ = pair.sides[0].pollTransmit(now: pair.now)
        let decayed = pair.sides[0].congestion?.congestionWindow ?? 0
        #expect(decayed < grown && decayed >= 4 * 1200, "RFC 9260 §7.2.1: halved per RTO of idleness, not below 4 MTU: \(grown) -> \(decayed)")
    }

    @Test func resettingAStreamIsReportedOnBothSides() {
        var pair = Pair(seed: 30)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        try? pair.sides[0].send(stream: 3, ppid: 51, payload: Array("bye".utf8), now: pair.now)
        pair.sides[0].resetStreams([3])
        pair.run(until: pair.now + .seconds(5)) { $0.events[0].contains(.outgoingStreamsReset([3])) }
        #expect(pair.received[1].map(\.payload) == [Array("bye".utf8)])
        #expect(pair.events[1].contains(.incomingStreamsReset([3])))
        #expect(pair.events[0].contains(.outgoingStreamsReset([3])))
    }

    @Test func aGracefulShutdownClosesBothSidesAfterTheData() {
        var pair = Pair(seed: 40)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        try? pair.sides[0].send(stream: 0, ppid: 53, payload: [UInt8](repeating: 7, count: 100_000), now: pair.now)
        pair.sides[0].shutdown(now: pair.now)
        pair.run(until: pair.now + .seconds(10)) { $0.sides.allSatisfy { $0.state == .closed } }
        #expect(pair.received[1].first?.payload.count == 100_000)
        #expect(pair.events[0].last == .closed && pair.events[1].last == .closed)
    }

    @Test func partiallyReliableMessagesAreAbandonedAndTheStreamMovesOn() {
        var pair = Pair(seed: 50)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        pair.link.loss = 1
        try? pair.sides[0].send(stream: 2, ppid: 53, payload: [1], reliability: .maxRetransmits(0), now: pair.now)
        pair.run(until: pair.now + .milliseconds(50))
        pair.link.loss = 0
        try? pair.sides[0].send(stream: 2, ppid: 53, payload: [2], now: pair.now)
        pair.run(until: pair.now + .seconds(10)) { !$0.received[1].isEmpty }
        #expect(pair.received[1].map(\.payload) == [[2]], "the first was abandoned, FORWARD-TSN let the second through")
    }

    @Test func aForgedCookieIsIgnored() {
        var random = SplitMix64(seed: 60)
        var side = SCTPAssociation<RFC9260CongestionControl>(random: &random)
        side.handleChunks([.cookieEcho(cookie: [UInt8](repeating: 0, count: 80))], verificationTag: side.localTag, now: .zero)
        #expect(side.state == .closed)
        #expect(side.pollEvent() == nil)
    }
}
