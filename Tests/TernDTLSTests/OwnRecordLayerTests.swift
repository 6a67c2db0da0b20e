import Testing
@testable import TernDTLS

/// The hand-over of application data from OpenSSL's record layer to the
/// association's own (see "Own record layer" in DTLSAssociation): when it
/// happens, that both kinds of record layer read each other's records, that
/// nonces and sequence numbers never repeat across the hand-over, and that
/// replays and forgeries are dropped without harm.
@Suite("Own record layer")
struct OwnRecordLayerTests {
    /// Each epoch-1 record in the log: who sent it, its type, sequence
    /// number and explicit nonce.
    struct ProtectedRecord {
        var from: Pair.Side
        var type: UInt8
        var sequence: UInt64
        var nonce: UInt64
    }

    static func protectedRecords(in log: [Pair.Sent]) -> [ProtectedRecord] {
        var records: [ProtectedRecord] = []
        for sent in log {
            var offset = 0
            let bytes = sent.bytes
            while bytes.count - offset >= 13 {
                let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
                let epoch = UInt16(bytes[offset + 3]) << 8 | UInt16(bytes[offset + 4])
                if epoch == 1, length >= 8 {
                    let sequence = bytes[(offset + 5)..<(offset + 11)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    let nonce = bytes[(offset + 13)..<(offset + 21)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    records.append(ProtectedRecord(from: sent.from, type: bytes[offset], sequence: sequence, nonce: nonce))
                }
                offset += 13 + length
            }
        }
        return records
    }

    @Test("the client hands over when connected, the server once the client's data arrives")
    func whenEachSideHandsOver() throws {
        let pair = try Pair()
        pair.handshake()
        #expect(pair.client.isConnected && pair.server.isConnected)
        #expect(pair.client.ownsRecordLayer)
        #expect(!pair.server.ownsRecordLayer, "the server may still have to resend its final flight")

        // The server's own data does not change that.
        try pair.server.write([1])
        pair.pump()
        #expect(!pair.server.ownsRecordLayer)
        #expect(pair.received(.client) == [[1]])

        try pair.client.write([2])
        pair.pump()
        #expect(pair.server.ownsRecordLayer)
        #expect(pair.received(.server) == [[2]])
    }

    @Test("with the hand-over off, OpenSSL keeps the records")
    func handOverOff() throws {
        let pair = try Pair(configure: { $0.protectsApplicationData = false })
        pair.handshake()
        try pair.client.write([1])
        try pair.server.write([2])
        pair.pump()
        #expect(!pair.client.ownsRecordLayer && !pair.server.ownsRecordLayer)
        #expect(pair.received(.server) == [[1]] && pair.received(.client) == [[2]])
    }

    /// One side's records from its own layer, the other's from OpenSSL's:
    /// each reads the other's, which shows our records are standard ones
    /// (key block, nonce and additional data as OpenSSL has them).
    @Test("each kind of record layer reads the other's", arguments: [Pair.Side.client, .server])
    func mixedLayers(ownSide: Pair.Side) throws {
        let pair = try Pair(configure: { configuration in
            configuration.protectsApplicationData = configuration.role == (ownSide == .client ? .client : .server)
        })
        pair.handshake()
        var generator = SeededGenerator(seed: ownSide == .client ? 11 : 12)
        let maximum = try #require(pair.client.maximumPayload)
        var fromClient: [[UInt8]] = [], fromServer: [[UInt8]] = []
        for round in 0..<60 {
            let size = round % 3 == 0 ? maximum : Int.random(in: 1...maximum, using: &generator)
            let message = generator.bytes(size)
            if round % 2 == 0 {
                try pair.client.write(message)
                fromClient.append(message)
            } else {
                try pair.server.write(message)
                fromServer.append(message)
            }
            pair.pump()
        }
        #expect(pair.association(ownSide).ownsRecordLayer)
        #expect(!pair.association(ownSide == .client ? .server : .client).ownsRecordLayer)
        #expect(pair.received(.server) == fromClient)
        #expect(pair.received(.client) == fromServer)
        #expect(pair.client.counters.discardedRecords == 0 && pair.server.counters.discardedRecords == 0)

        // close_notify from either layer ends the other side cleanly.
        pair.association(ownSide).close()
        pair.pump()
        #expect(pair.takeEvents(ownSide == .client ? .server : .client).last == .closed)
    }

    @Test("explicit nonces and sequence numbers never repeat across the hand-over")
    func noncesAndSequencesAreUnique() throws {
        let pair = try Pair()
        pair.handshake()
        for round in 0..<50 {
            try pair.client.write([UInt8(round)])
            try pair.server.write([UInt8(round), 1])
            pair.pump()
        }
        pair.client.close()
        pair.pump()
        #expect(pair.client.ownsRecordLayer && pair.server.ownsRecordLayer)
        #expect(pair.received(.server).count == 50 && pair.received(.client).count == 50)

        let records = Self.protectedRecords(in: pair.log)
        for side in [Pair.Side.client, .server] {
            let sent = records.filter { $0.from == side }
            // Finished (OpenSSL), data, and a close_notify from each side.
            #expect(sent.count >= 52, "\(side)")
            #expect(Set(sent.map(\.nonce)).count == sent.count, "\(side): an explicit nonce was used twice under one key")
            #expect(Set(sent.map(\.sequence)).count == sent.count, "\(side): a sequence number was used twice")
            // OpenSSL counts its nonces up from its Finished; ours start half
            // the counter's range from its last and count up too: exactly
            // one jump, of 2^63, and sequence numbers that only go up.
            #expect(sent.first?.type == 22, "the first is OpenSSL's Finished")
            let steps = zip(sent, sent.dropFirst()).map { $1.nonce &- $0.nonce }
            #expect(steps.filter { $0 == 1 << 63 }.count == 1, "\(side): one hand-over")
            #expect(steps.allSatisfy { $0 == 1 || $0 == 1 << 63 }, "\(side)")
            #expect(zip(sent, sent.dropFirst()).allSatisfy { $1.sequence > $0.sequence }, "\(side)")
        }
    }

    @Test("a replayed or altered record is dropped and counted; the association lives on")
    func replaysAndForgeriesAreDropped() throws {
        let pair = try Pair()
        pair.handshake()
        try pair.client.write([0])
        pair.pump()
        #expect(pair.server.ownsRecordLayer)
        _ = pair.takeEvents(.server)

        try pair.client.write([1, 2, 3])
        let datagram = try #require(pair.client.pollTransmit())
        pair.server.handleDatagram(datagram, now: pair.now)
        pair.server.handleDatagram(datagram, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([1, 2, 3])])
        #expect(pair.server.counters.discardedRecords == 1)

        // Any byte of the record changed: not authentic, never delivered.
        // (A changed version major byte or length fails the framing check
        // first and counts as malformed.)
        try pair.client.write([4, 5, 6])
        let original = try #require(pair.client.pollTransmit())
        let malformedBefore = pair.server.counters.malformedDatagrams
        for index in [1, 2, 6, 10, 12, 13, 20, 21, original.count - 1] {
            var altered = original
            altered[index] ^= 0x40
            pair.server.handleDatagram(altered, now: pair.now)
        }
        #expect(pair.takeEvents(.server).isEmpty)
        #expect(pair.server.counters.malformedDatagrams - malformedBefore == 2)
        #expect(pair.server.counters.discardedRecords == 1 + 7)
        #expect(pair.server.isConnected)
        // The original still arrives: forgeries did not move the window.
        pair.server.handleDatagram(original, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([4, 5, 6])])
    }

    @Test("a record older than the replay window is dropped; one inside it and unseen is delivered")
    func replayWindow() throws {
        let pair = try Pair()
        pair.handshake()
        try pair.client.write([0])
        pair.pump()
        _ = pair.takeEvents(.server)
        var held: [[UInt8]] = []
        for index in 0..<70 {
            try pair.client.write([UInt8(index)])
            held.append(try #require(pair.client.pollTransmit()))
        }
        // Deliver all but the first and the 10th: the 10th is 60 behind
        // the newest (inside the window), the first 69 behind (outside).
        for (index, datagram) in held.enumerated() where index != 0 && index != 9 {
            pair.server.handleDatagram(datagram, now: pair.now)
        }
        pair.collectEvents()
        #expect(pair.received(.server).count == 68)
        pair.server.handleDatagram(held[9], now: pair.now)
        pair.server.handleDatagram(held[0], now: pair.now)
        pair.collectEvents()
        #expect(pair.received(.server).last == [9])
        #expect(pair.received(.server).count == 69)
        #expect(pair.server.counters.discardedRecords == 1)
    }

    @Test("a repeated final flight after the client handed over still completes nothing twice")
    func repeatedFlightAfterHandOver() throws {
        // The server's final flight arrives twice (a duplicate on the path):
        // the client, which owns its records by then, gives the repeat to
        // OpenSSL, and data keeps flowing both ways.
        let pair = try Pair()
        var finalFlight: [UInt8]?
        pair.filter = { from, _, bytes in
            if from == .server, RecordHeader.all(in: bytes).contains(where: { $0.type == 20 }) { finalFlight = bytes }
            return true
        }
        pair.handshake()
        let repeated = try #require(finalFlight)
        #expect(pair.client.ownsRecordLayer)
        pair.client.handleDatagram(repeated, now: pair.now)
        pair.pump()
        try pair.client.write([7])
        try pair.server.write([8])
        pair.pump()
        #expect(pair.received(.server) == [[7]])
        #expect(pair.received(.client) == [[8]])
        #expect(pair.client.isConnected && pair.server.isConnected)
    }
}
