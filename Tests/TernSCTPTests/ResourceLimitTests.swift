import Testing
import TernTestSupport
@testable import TernSCTP

/// Each limit on what an association holds for its peer, driven from the
/// wire: DATA chunks built by hand, encoded, decoded by the codec (the data
/// path's decoder or the general one) and fed to an established receiver,
/// and the refusal checked (model: pion/sctp's association resource limit
/// tests).
@Suite("Resource limits")
struct ResourceLimitTests {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>

    /// An established receiver and what a hostile peer needs to write to it.
    struct Receiver {
        var association: Association
        /// The peer's next TSN, and the verification tag the receiver expects.
        var nextTSN: TSN
        let tag: UInt32
        /// Decode with the data path's decoder (packets of DATA only) or the general one.
        let fastPath: Bool
        var now: Duration = .seconds(1)
        var events: [SCTPEvent] = []

        init(receiver configuration: Association.Configuration, peer: Association.Configuration = .init(), fastPath: Bool) {
            var random = SplitMix64(seed: 0x11_317)
            var receiver = Association(configuration: configuration, random: &random)
            var peer = Association(configuration: peer, random: &random)
            peer.connect(now: .zero)
            var moved = true
            while moved {
                moved = false
                while let packet = peer.pollTransmit(now: .zero) {
                    receiver.handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: .zero)
                    moved = true
                }
                while let packet = receiver.pollTransmit(now: .zero) {
                    peer.handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: .zero)
                    moved = true
                }
            }
            association = receiver
            nextTSN = peer.retransmissions.nextTSN
            tag = receiver.localTag
            self.fastPath = fastPath
            while let event = association.pollEvent() { events.append(event) }
        }

        /// Sends `chunks` in one packet, through the codec.
        mutating func receive(_ chunks: [SCTPDataChunk]) throws {
            let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: tag, chunks: chunks.map { .data($0) })
            let bytes = try packet.encode(zeroChecksum: true)
            let decoded = fastPath ? SCTPWire.decode(bytes[...]) : SCTPWire.decode(bytes)
            let incoming = try #require(decoded)
            association.handleChunks(incoming.chunks, verificationTag: incoming.verificationTag, now: now)
            while let event = association.pollEvent() { events.append(event) }
        }

        /// A DATA chunk at the next TSN (and moves it on).
        mutating func chunk(stream: UInt16 = 0, ssn: UInt16 = 0, payload: [UInt8] = [1], flags: SCTPDataChunk.Flags = .complete) -> SCTPDataChunk {
            defer { nextTSN = nextTSN.next }
            return SCTPDataChunk(tsn: nextTSN.value, streamID: stream, ssn: ssn, ppid: 53, userData: payload, flags: flags)
        }

        /// Every packet the receiver sends now and within `wait`, as the peer would decode them.
        mutating func answers(within wait: Duration = .zero) throws -> [SCTPChunk] {
            var chunks: [SCTPChunk] = []
            func collect(_ association: inout Association) throws {
                while let packet = association.pollTransmit(now: now) {
                    chunks += try SCTPPacket.decode(SCTPWire.encode(packet), acceptZeroChecksum: true).chunks
                }
            }
            try collect(&association)
            if wait > .zero {
                now += wait
                association.advanceTime(now: now)
                try collect(&association)
            }
            return chunks
        }

        var aborted: Bool { events.contains { if case .aborted = $0 { true } else { false } } }
    }

    static let paths = [true, false]

    // MARK: - RFC 9260 §6.2: no user data

    @Test("a DATA chunk without user data is answered with ABORT \"No User Data\"", arguments: paths, [false, true])
    func emptyDataAborts(fastPath: Bool, aboveAGap: Bool) throws {
        var receiver = Receiver(receiver: .init(), fastPath: fastPath)
        if aboveAGap { _ = receiver.chunk() }  // never sent: a gap below
        let empty = receiver.chunk(payload: [], flags: aboveAGap ? [] : .complete)
        try receiver.receive([empty])
        #expect(receiver.association.state == .closed)
        #expect(receiver.aborted)
        let answers = try receiver.answers()
        #expect(answers == [.abort(tagReflected: false, causes: [.noUserData(tsn: empty.tsn)])])
    }

    @Test("empty middle fragments above a missing TSN end the association at the first one", arguments: paths)
    func emptyFragmentsDoNotAccumulate(fastPath: Bool) throws {
        var receiver = Receiver(receiver: .init(), fastPath: fastPath)
        _ = receiver.chunk()  // the missing TSN
        var packets = 0
        while receiver.association.state == .established, packets < 100 {
            try receiver.receive((0..<50).map { _ in receiver.chunk(payload: [], flags: []) })
            packets += 1
        }
        #expect(packets == 1)
        #expect(receiver.association.heldReceiveItems == 0)
    }

    // MARK: - RFC 9260 §6.5: invalid stream identifier

    @Test("DATA on a stream the peer may not use is acknowledged, answered with an ERROR and discarded",
          arguments: paths, [(receiver: UInt16(16), peer: UInt16(1024)), (receiver: 1024, peer: 8)])
    func invalidStream(fastPath: Bool, streams: (receiver: UInt16, peer: UInt16)) throws {
        var receiver = Receiver(receiver: .init(streams: streams.receiver), peer: .init(streams: streams.peer), fastPath: fastPath)
        let negotiated = min(streams.receiver, streams.peer)
        #expect(receiver.association.inboundStreams == negotiated)
        let first = receiver.chunk(stream: negotiated, payload: [1, 2, 3])
        let last = receiver.chunk(stream: .max, payload: [4])
        let valid = receiver.chunk(stream: negotiated - 1, payload: [5])
        try receiver.receive([first, last, valid])
        #expect(receiver.association.state == .established)
        #expect(receiver.association.pollMessage()?.payload == [5])
        #expect(receiver.association.pollMessage() == nil, "the others are discarded")
        #expect(receiver.association.invalidStreamChunks == 2)
        // The ERROR at once; the SACK (after the delayed-ack timer) covers all three TSNs.
        let answers = try receiver.answers(within: .milliseconds(250))
        #expect(answers.first == .error(causes: [
            .invalidStreamIdentifier(streamID: negotiated), .invalidStreamIdentifier(streamID: .max),
        ]))
        let sacks = answers.compactMap { if case .sack(let sack) = $0 { sack } else { nil } }
        #expect(sacks.count == 1)
        #expect(sacks.first?.cumulativeTSNAck == valid.tsn)
        #expect(sacks.first?.gapAckBlocks.isEmpty == true)
        // The stream below the count still works, and the receiver holds nothing.
        try receiver.receive([receiver.chunk(stream: 0, ssn: 0, payload: [6])])
        #expect(receiver.association.pollMessage()?.payload == [6])
        #expect(receiver.association.heldReceiveItems == 0)
    }

    @Test("a packet full of DATA on invalid streams is answered with one ERROR naming each stream once", arguments: paths)
    func oneErrorPerPacket(fastPath: Bool) throws {
        var receiver = Receiver(receiver: .init(streams: 4), fastPath: fastPath)
        try receiver.receive((0..<50).map { index in receiver.chunk(stream: 4 + UInt16(index % 3)) })
        let errors = try receiver.answers().filter { if case .error = $0 { true } else { false } }
        #expect(errors == [.error(causes: [4, 5, 6].map { .invalidStreamIdentifier(streamID: $0) })])
    }

    // MARK: - SCTPLimits.receivedChunkOverhead

    @Test("one-byte fragments above a missing TSN are charged their overhead: the window holds few of them", arguments: paths)
    func tinyFragmentsAboveAGap(fastPath: Bool) throws {
        let window = 64 * 1024
        var receiver = Receiver(receiver: .init(receiveWindow: window), fastPath: fastPath)
        let overhead = SCTPLimits.default.receivedChunkOverhead
        // The missing TSN (a message's beginning), then its middle fragments,
        // each held on its own (a run from a B fragment would hold them in one array).
        _ = receiver.chunk(flags: .beginning)
        for _ in 0..<400 {  // 20,000 middle fragments
            try receiver.receive((0..<50).map { _ in receiver.chunk(payload: [0], flags: []) })
        }
        let held = receiver.association.heldReceiveItems
        #expect(held <= window / (1 + overhead), "\(held) fragments held")
        #expect(held >= window / (1 + overhead) - 1, "the window is used, not refused early")
        #expect(receiver.association.heldReceiveBytes <= window)
        #expect(receiver.association.advertisedReceiveWindow < UInt32(1 + overhead))
        #expect(receiver.association.droppedChunks >= 20_000 - held)
        #expect(receiver.association.state == .established, "dropped, not fatal")
        // A dropped chunk is answered with a SACK at once (§6.2).
        #expect(try receiver.answers().contains { if case .sack = $0 { true } else { false } })
    }

    @Test("the overhead is the configured one", arguments: [0, 64, 1024])
    func overheadIsConfigurable(overhead: Int) throws {
        let window = 64 * 1024
        let limits = SCTPLimits(receivedChunkOverhead: overhead)
        var receiver = Receiver(receiver: .init(receiveWindow: window, limits: limits), fastPath: true)
        _ = receiver.chunk(flags: .beginning)
        for _ in 0..<40 {
            try receiver.receive((0..<10).map { _ in receiver.chunk(payload: [UInt8](repeating: 0, count: 100), flags: []) })
        }
        #expect(receiver.association.heldReceiveItems == min(400, window / (100 + overhead)))
    }

    // MARK: - SCTPLimits.maximumReceiveWindowOverrun

    @Test("ordered messages waiting for a missing SSN on every stream stop at the window and its overrun", arguments: paths)
    func waitingMessagesOnEveryStream(fastPath: Bool) throws {
        let window = 64 * 1024
        let limits = SCTPLimits.default
        var receiver = Receiver(receiver: .init(receiveWindow: window, streams: .max), peer: .init(streams: .max), fastPath: fastPath)
        // Each message is the next TSN in order (the one the window lets
        // through when full) and waits for SSN 0 of its stream, never sent.
        // One on each of the 65,535 streams the peer may use (the most there can be).
        var stream: UInt16 = 0
        while stream < .max {
            try receiver.receive((0..<min(50, Int(UInt16.max - stream))).map { _ in
                defer { stream += 1 }
                return receiver.chunk(stream: stream, ssn: 1, payload: [7])
            })
        }
        let bound = window + limits.maximumReceiveWindowOverrun
        #expect(receiver.association.heldReceiveBytes <= bound)
        #expect(receiver.association.heldReceiveItems <= bound / (1 + limits.receivedChunkOverhead))
        #expect(receiver.association.heldReceiveItems >= bound / (1 + limits.receivedChunkOverhead) - 1)
        #expect(receiver.association.droppedChunks > 0)
        #expect(receiver.association.state == .established)
        #expect(receiver.association.pollMessage() == nil)
    }

    @Test("unread messages arriving in order stop at the window and its overrun, and flow again once read", arguments: paths)
    func unreadMessagesInOrder(fastPath: Bool) throws {
        let window = 64 * 1024, overrun = 32 * 1024
        let limits = SCTPLimits(maximumReceiveWindowOverrun: overrun)
        var receiver = Receiver(receiver: .init(receiveWindow: window, limits: limits), fastPath: fastPath)
        let message = [UInt8](repeating: 9, count: 1000)
        let start = receiver.nextTSN
        var ssn: UInt16 = 0
        for _ in 0..<200 {
            try receiver.receive([receiver.chunk(ssn: ssn, payload: message)])
            ssn &+= 1
        }
        let held = receiver.association.heldReceiveBytes
        #expect(held <= window + overrun)
        #expect(held > window + overrun - 1000 - limits.receivedChunkOverhead)
        let accepted = receiver.association.heldReceiveItems
        #expect(receiver.association.droppedChunks == 200 - accepted)
        // Read: room again, and the next TSN (the first one dropped) goes in.
        while receiver.association.pollMessage() != nil {}
        receiver.nextTSN = start.advanced(by: UInt32(accepted))
        try receiver.receive([receiver.chunk(ssn: UInt16(accepted), payload: message)])
        #expect(receiver.association.pollMessage()?.payload == message)
    }

    // MARK: - SCTPLimits.maximumReceivedGaps, maximumTSNDistance

    @Test("a peer that leaves a gap before each TSN fills the receiver's gap list, then is refused", arguments: paths)
    func gapList(fastPath: Bool) throws {
        let limits = SCTPLimits(maximumReceivedGaps: 16)
        var receiver = Receiver(receiver: .init(limits: limits), fastPath: fastPath)
        for _ in 0..<4 {
            try receiver.receive((0..<10).map { _ in
                _ = receiver.chunk()  // never sent
                return receiver.chunk(flags: [.beginning, .end, .unordered])
            })
        }
        var delivered = 0
        while receiver.association.pollMessage() != nil { delivered += 1 }
        #expect(delivered == 16)
        #expect(receiver.association.droppedChunks == 40 - 16)
        let sacks = try receiver.answers().compactMap { if case .sack(let sack) = $0 { sack } else { nil } }
        #expect(sacks.last?.gapAckBlocks.count == 16, "what was dropped is not acknowledged")
        #expect(receiver.association.state == .established)
    }

    @Test("a TSN farther ahead of the cumulative TSN than the limit is refused", arguments: paths)
    func tsnDistance(fastPath: Bool) throws {
        let limits = SCTPLimits(maximumTSNDistance: 100)
        var receiver = Receiver(receiver: .init(limits: limits), fastPath: fastPath)
        let next = receiver.nextTSN
        receiver.nextTSN = next.advanced(by: 99)  // 100 ahead of the cumulative TSN
        try receiver.receive([receiver.chunk(flags: [.beginning, .end, .unordered])])  // and 101
        #expect(receiver.association.pollMessage() != nil)
        try receiver.receive([receiver.chunk(flags: [.beginning, .end, .unordered])])
        #expect(receiver.association.pollMessage() == nil)
        #expect(receiver.association.droppedChunks == 1)
    }

    // MARK: - The sender charges what the receiver charges

    @Test("a sender keeps its small messages within the window its receiver charges for them")
    func senderChargesTheOverhead() throws {
        // No overrun: a chunk beyond the window is dropped even in order, so
        // a sender that fills more than the charged window is seen at once.
        let limits = SCTPLimits(maximumReceiveWindowOverrun: 0)
        var pair = Pair(seed: 99, configuration: .init(receiveWindow: 64 * 1024, limits: limits))
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(2)) { $0.bothEstablished }
        // Side 1 does not read; 1000 messages of 100 bytes are charged 356 each, more than the window.
        pair.sendFromFirst((0..<1000).map { _ in [UInt8](repeating: 3, count: 100) })
        let charge = 100 + limits.receivedChunkOverhead
        var now = pair.now
        var overruns = 0
        for _ in 0..<200 {
            // A burst sent while the receiver had room for a chunk must fit
            // it (a zero window probe goes out when it had none).
            let room = Int(pair.sides[1].advertisedReceiveWindow)
            let dropped = pair.sides[1].droppedChunks
            while let packet = pair.sides[0].pollTransmit(now: now) {
                pair.sides[1].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
            }
            if room >= charge, pair.sides[1].droppedChunks > dropped { overruns += 1 }
            while let packet = pair.sides[1].pollTransmit(now: now) {
                pair.sides[0].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: now)
            }
            now += .milliseconds(10)
            pair.sides[0].advanceTime(now: now)
            pair.sides[1].advanceTime(now: now)
        }
        #expect(overruns == 0, "the sender sent more than the charged window")
        #expect(pair.sides[1].heldReceiveItems >= 64 * 1024 / charge - 1, "the window filled")
    }
}
