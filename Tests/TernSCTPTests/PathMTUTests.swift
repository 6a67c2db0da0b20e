import Testing
import TernTestSupport
@testable import TernSCTP

/// Path MTU probing: two associations in one process over a virtual link
/// that carries packets up to `linkLimit` bytes and silently drops larger
/// ones, as a path with a smaller MTU does (RFC 8899's black hole).
struct PathMTUTests {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>

    struct Run {
        var sides: [Association]
        var link: VirtualLink<[UInt8]>
        var now: Duration = .zero
        var linkLimit: Int
        var received: [SCTPMessage] = []
        /// Sizes of the encoded packets side 0 sent, probes apart.
        var dataPacketSizes: [Int] = []
        var probeSizes: [Int] = []
        /// Side 0's packets the link dropped for their size.
        var droppedForSize = 0

        init(seed: UInt64, linkLimit: Int, maximumMTU: Int? = 1432) {
            var random = SplitMix64(seed: seed)
            let configuration = Association.Configuration(mtu: 1163, maximumMTU: maximumMTU)
            sides = [Association(configuration: configuration, random: &random), Association(configuration: configuration, random: &random)]
            link = VirtualLink(seed: seed &+ 1)
            self.linkLimit = linkLimit
        }

        mutating func pump() {
            for index in 0..<2 {
                while let packet = sides[index].pollTransmit(now: now) {
                    guard let bytes = try? SCTPWire.encode(packet) else {
                        Issue.record("a packet did not encode")
                        continue
                    }
                    if index == 0 {
                        if packet.isProbe { probeSizes.append(bytes.count) } else { dataPacketSizes.append(bytes.count) }
                    }
                    if !packet.isProbe {
                        #expect(bytes.count <= sides[index].pathMTU, "a packet within the path MTU in use")
                    }
                    if bytes.count > linkLimit {
                        if index == 0 { droppedForSize += 1 }
                        continue
                    }
                    link.send(bytes, to: 1 - index, now: now)
                }
                while sides[index].pollEvent() != nil {}
                while let message = sides[index].pollMessage() { received.append(message) }
            }
        }

        mutating func run(until limit: Duration, _ done: (Run) -> Bool = { _ in false }) {
            pump()
            while now < limit && !done(self) {
                var next = link.nextArrival
                for side in sides { if let deadline = side.nextDeadline { next = next.map { min($0, deadline) } ?? deadline } }
                guard let next else { break }
                now = max(now, next)
                if let arrival = link.takeDue(now: now) {
                    guard let decoded = SCTPWire.decode(arrival.packet[...]) else {
                        Issue.record("a packet did not decode")
                        continue
                    }
                    sides[arrival.to].handleChunks(decoded.chunks, verificationTag: decoded.verificationTag, now: now)
                }
                for index in 0..<2 { sides[index].advanceTime(now: now) }
                pump()
            }
        }

        /// Connects, then sends `count` messages of `size` bytes from side 0.
        mutating func transfer(count: Int, size: Int) throws {
            sides[0].connect(now: now)
            run(until: .seconds(5)) { run in run.sides.allSatisfy { $0.state == .established } }
            #expect(sides.allSatisfy { $0.state == .established })
            for index in 0..<count {
                try sides[0].send(stream: 1, ppid: 53, payload: Self.message(index, size: size), now: now)
            }
            // Until everything arrived and the search ended (probes wait
            // out a retransmission timeout each; data keeps flowing meanwhile).
            run(until: now + .seconds(120)) { $0.received.count == count && !$0.sides[0].isProbingPathMTU }
        }

        static func message(_ index: Int, size: Int) -> [UInt8] {
            (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
        }
    }

    @Test func theLargestCandidateIsTakenWhenThePathCarriesIt() throws {
        var run = Run(seed: 1, linkLimit: 1500)
        try run.transfer(count: 40, size: 64 * 1024)
        #expect(run.received.count == 40)
        for (index, message) in run.received.enumerated() { #expect(message.payload == Run.message(index, size: 64 * 1024)) }
        #expect(run.sides[0].pathMTU == 1432)
        #expect(run.sides[0].statistics.mtuProbes == 1)
        #expect(run.probeSizes == [1432], "one probe, exactly the candidate's size on the wire")
        // Most data went in full packets of the new size.
        #expect(run.dataPacketSizes.filter { $0 > 1163 }.count > run.dataPacketSizes.count / 2)
        #expect(run.dataPacketSizes.max() == 1432)
    }

    @Test func aSmallerPathSettlesOnTheLargestCandidateThatGetsThrough() throws {
        // Candidates for 1163...1432: 1432, 1412, 1372, 1292.
        var run = Run(seed: 2, linkLimit: 1400)
        try run.transfer(count: 40, size: 64 * 1024)
        #expect(run.received.count == 40)
        for (index, message) in run.received.enumerated() { #expect(message.payload == Run.message(index, size: 64 * 1024)) }
        #expect(run.sides[0].pathMTU == 1372)
        #expect(run.probeSizes == [1432, 1432, 1412, 1412, 1372], "each failing size is probed twice")
        #expect(run.sides[0].statistics.retransmittedChunks == 0, "a lost probe is not a lost DATA chunk")
        #expect(run.sides[0].statistics.timeouts == 0)
        #expect(run.droppedForSize == 4, "only the failed probes were too large")
    }

    @Test func aPathAtTheBaseMTUKeepsItAndLosesNothing() throws {
        var run = Run(seed: 3, linkLimit: 1200)
        try run.transfer(count: 20, size: 64 * 1024)
        #expect(run.received.count == 20)
        #expect(run.sides[0].pathMTU == 1163)
        #expect(run.probeSizes == [1432, 1432, 1412, 1412, 1372, 1372, 1292, 1292])
        #expect(run.sides[0].statistics.mtuProbes == 0)
        #expect(run.sides[0].statistics.retransmittedChunks == 0)
        #expect(run.droppedForSize == 8)
    }

    @Test func withoutAMaximumThereIsNoProbe() throws {
        var run = Run(seed: 4, linkLimit: 1500, maximumMTU: nil)
        try run.transfer(count: 4, size: 16 * 1024)
        #expect(run.received.count == 4)
        #expect(run.probeSizes.isEmpty)
        #expect(run.sides[0].pathMTU == 1163)
    }

    @Test func candidatesRunFromTheMaximumDownAndStayAboveTheBase() {
        #expect(Association.MTUSearch.candidates(base: 1163, maximum: 1435) == [1432, 1412, 1372, 1292])
        #expect(Association.MTUSearch.candidates(base: 1400, maximum: 1435) == [1432, 1412])
        #expect(Association.MTUSearch.candidates(base: 1432, maximum: 1432).isEmpty)
        #expect(Association.MTUSearch.candidates(base: 1163, maximum: 1000).isEmpty)
    }

    @Test func anAnswerToAStaleProbeIsIgnored() throws {
        var run = Run(seed: 5, linkLimit: 1200)  // the real probes go unanswered
        run.sides[0].connect(now: run.now)
        run.run(until: .seconds(5)) { run in run.sides.allSatisfy { $0.state == .established } }
        // A HEARTBEAT ACK with probe-shaped information that was never sent.
        var info: [UInt8] = []
        info.appendBigEndian(UInt64(0xDEAD_BEEF))
        info.appendBigEndian(UInt32(1432))
        run.sides[0].handleChunks([.heartbeatAck(info: info)], verificationTag: run.sides[0].localTag, now: run.now)
        #expect(run.sides[0].pathMTU == 1163)
    }

    @Test func aPADChunkSurvivesTheCodecAndIsSkipped() throws {
        let packet = Association.Packet(
            verificationTag: 7, chunks: [.heartbeat(info: [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 5, 0x98]), .padding(length: 100)],
            zeroChecksum: false, isProbe: true)
        let bytes = try SCTPWire.encode(packet)
        #expect(bytes.count == 12 + 20 + 100)
        let decoded = try #require(SCTPWire.decode(bytes[...]))
        #expect(decoded.chunks.count == 2)
        #expect(decoded.chunks.last == .padding(length: 100))
    }
}
