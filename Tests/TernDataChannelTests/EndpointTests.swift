import Testing
import TernTestSupport
@testable import TernSCTP
@testable import TernDataChannel

struct DataChannelPair {
    typealias Endpoint = DataChannelEndpoint<RFC9260CongestionControl>
    var sides: [Endpoint]
    var link: VirtualLink<SCTPAssociation<RFC9260CongestionControl>.Packet>
    var now: Duration = .zero
    var events: [[DataChannelEvent]] = [[], []]
    var received: [[DataChannelMessage]] = [[], []]

    init(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        sides = [
            Endpoint(association: SCTPAssociation(random: &random), isDTLSClient: true),
            Endpoint(association: SCTPAssociation(random: &random), isDTLSClient: false),
        ]
        link = VirtualLink(seed: seed &+ 7)
    }

    mutating func run(until limit: Duration, _ done: (DataChannelPair) -> Bool = { _ in false }) {
        func pump() {
            for index in 0..<2 {
                while let packet = sides[index].pollTransmit(now: now) { link.send(packet, to: 1 - index, now: now) }
                while let event = sides[index].pollEvent() { events[index].append(event) }
                while let message = sides[index].pollMessage() { received[index].append(message) }
            }
        }
        pump()
        while now < limit && !done(self) {
            var next = link.nextArrival
            for side in sides { if let deadline = side.nextDeadline { next = next.map { min($0, deadline) } ?? deadline } }
            guard let next else { break }
            now = max(now, next)
            if let packet = link.takeDue(now: now) {
                sides[packet.to].handleChunks(packet.packet.chunks, verificationTag: packet.packet.verificationTag, now: now)
            }
            for index in 0..<2 { sides[index].advanceTime(now: now) }
            pump()
        }
    }

    func messages(_ side: Int) -> [[UInt8]] { received[side].map(\.payload) }
}

struct DataChannelTests {
    @Test func channelsOpenBothWaysWithEvenAndOddStreamsAndEchoEveryByte() throws {
        var pair = DataChannelPair(seed: 1)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.events[0].contains(.ready) && $0.events[1].contains(.ready) }
        let mine = try pair.sides[0].open(label: "files", options: .init(protocol: "tern/1"), now: pair.now)
        let theirs = try pair.sides[1].open(label: "control", now: pair.now)
        #expect(mine % 2 == 0 && theirs % 2 == 1, "RFC 8832 §6: DTLS client even, server odd")
        let sizes = [1, 64 * 1024, 256 * 1024]
        for size in sizes {
            try pair.sides[0].send((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }, on: mine, now: pair.now)
        }
        try pair.sides[0].send([], binary: false, on: mine, now: pair.now)
        pair.run(until: pair.now + .seconds(20)) { $0.messages(1).count == 4 }
        #expect(pair.events[1].contains(.opened(stream: mine, label: "files", protocol: "tern/1", byPeer: true)))
        #expect(pair.events[0].contains(.opened(stream: theirs, label: "control", protocol: "", byPeer: true)))
        #expect(pair.events[0].contains(.opened(stream: mine, label: "files", protocol: "tern/1", byPeer: false)))
        #expect(pair.messages(1).map(\.count) == [1, 65536, 262144, 0])
        #expect(pair.messages(1)[2] == (0..<262144).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        #expect(pair.received[1].last == DataChannelMessage(stream: mine, payload: [], binary: false))
    }

    @Test func closingAChannelClosesItOnBothSides() throws {
        var pair = DataChannelPair(seed: 2)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.events[0].contains(.ready) && $0.events[1].contains(.ready) }
        let stream = try pair.sides[0].open(label: "x", now: pair.now)
        try pair.sides[0].send([1, 2, 3], on: stream, now: pair.now)
        pair.sides[0].close(stream)
        pair.run(until: pair.now + .seconds(5)) { $0.events[0].contains(.closed(stream: stream)) && $0.events[1].contains(.closed(stream: stream)) }
        #expect(pair.messages(1) == [[1, 2, 3]], "data before the close is delivered")
        #expect(pair.events[0].contains(.closed(stream: stream)) && pair.events[1].contains(.closed(stream: stream)))
        #expect(throws: DataChannelOperationError.self) { try pair.sides[0].send([4], on: stream, now: pair.now) }
    }

    /// A closed channel's stream is free again: a side opens and closes
    /// channels far more often than it has streams of its parity (before,
    /// stream ids were never reused and the 513th open failed).
    @Test func closedStreamsAreReusedSoOpensNeverRunOut() throws {
        var pair = DataChannelPair(seed: 3)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.events[0].contains(.ready) && $0.events[1].contains(.ready) }
        let perSide = Int(pair.sides[0].association.configuration.streams) / 2
        var seen = Set<UInt16>()
        for round in 0..<(perSide * 2 + 10) {
            let stream = try pair.sides[0].open(label: "c\(round)", now: pair.now)
            #expect(stream % 2 == 0)
            seen.insert(stream)
            try pair.sides[0].send([UInt8(truncatingIfNeeded: round)], on: stream, now: pair.now)
            pair.sides[0].close(stream)
            let closedBefore = pair.events[1].filter { $0 == .closed(stream: stream) }.count
            pair.run(until: pair.now + .seconds(5)) {
                $0.events[0].filter { $0 == .closed(stream: stream) }.count > closedBefore
                    && $0.events[1].filter { $0 == .closed(stream: stream) }.count > closedBefore
            }
        }
        #expect(seen.count == perSide, "every even stream was used, then used again")
        #expect(pair.messages(1).count == perSide * 2 + 10)
    }

    /// With every stream of its parity held open, `open` says so; closing
    /// one frees exactly that one.
    @Test func openFailsOnlyWhileEveryStreamIsHeld() throws {
        var pair = DataChannelPair(seed: 4)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.events[0].contains(.ready) && $0.events[1].contains(.ready) }
        let perSide = Int(pair.sides[1].association.configuration.streams) / 2
        var held: [UInt16] = []
        for index in 0..<perSide { held.append(try pair.sides[1].open(label: "h\(index)", now: pair.now)) }
        #expect(Set(held).count == perSide && held.allSatisfy { $0 % 2 == 1 })
        #expect(throws: DataChannelOperationError.noFreeStream) { try pair.sides[1].open(label: "more", now: pair.now) }
        let freed = held[perSide / 3]
        pair.sides[1].close(freed)
        pair.run(until: pair.now + .seconds(5)) { $0.events[1].contains(.closed(stream: freed)) && $0.events[0].contains(.closed(stream: freed)) }
        #expect(try pair.sides[1].open(label: "again", now: pair.now) == freed)
    }
}
