import Testing
@testable import TernDTLS

/// `DTLSRecordLayer`, the hand-over from OpenSSL's record layer to the own
/// one as a state machine, driven without OpenSSL: records "written by
/// OpenSSL" are built here, and the keys are made up.
@Suite("Record layer hand-over")
struct RecordLayerTests {
    static let keys = DTLSRecordKeys(
        clientWriteKey: [UInt8](repeating: 1, count: 16), serverWriteKey: [UInt8](repeating: 2, count: 16),
        clientWriteSalt: [1, 1, 1, 1], serverWriteSalt: [2, 2, 2, 2])

    /// An epoch-1 record as OpenSSL writes it: header, explicit nonce, a body.
    static func openSSLRecord(sequence: UInt64, nonce: UInt64, type: UInt8 = 23) -> [UInt8] {
        var bytes: [UInt8] = [type, 0xFE, 0xFD, 0, 1]
        for shift in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: sequence >> UInt64(shift))) }
        let length = 8 + 20
        bytes += [UInt8(length >> 8), UInt8(length & 0xFF)]
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: nonce >> UInt64(shift))) }
        return bytes + [UInt8](repeating: 0xAB, count: 20)
    }

    static func handOver(_ layer: inout DTLSRecordLayer, role: DTLSRole = .client) {
        layer.takeOver(role: role) { () throws(DTLSError) in Self.keys }
    }

    @Test("the own layer goes on from OpenSSL's last sequence number, its nonces 2^63 away")
    func continuesFromOpenSSLsLastRecord() throws {
        var layer = DTLSRecordLayer(enabled: true)
        var stream = Self.openSSLRecord(sequence: 0, nonce: 0x1234)
        // An epoch-0 record in between does not count.
        stream += RecordFramingTests.record(type: 22, epoch: 0, length: 30)
        layer.noteWritten(stream, from: 0)
        let before = stream.count
        stream += Self.openSSLRecord(sequence: 7, nonce: 0xFFFF_FFFF_FFFF_FFF0, type: 21)
        layer.noteWritten(stream, from: before)
        Self.handOver(&layer)
        let own = try #require(layer.own)
        #expect(own.nextSequence == 8)
        #expect(own.nextExplicitNonce == 0xFFFF_FFFF_FFFF_FFF0 &+ (1 << 63))

        var output: [UInt8] = []
        try [UInt8]([9]).withUnsafeBytes { try own.seal(type: 23, $0, appendingTo: &output) }
        #expect(own.nextSequence == 9)
        #expect(own.nextExplicitNonce == 0xFFFF_FFFF_FFFF_FFF0 &+ (1 << 63) &+ 1)
        let sealedSequence = output[5..<11].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let sealedNonce = output[13..<21].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(sealedSequence == 8)
        #expect(sealedNonce == 0x7FFF_FFFF_FFFF_FFF0)
    }

    @Test("the replay window starts as exactly the records OpenSSL delivered")
    func windowStartsWithTheDeliveries() throws {
        var layer = DTLSRecordLayer(enabled: true)
        layer.noteWritten(Self.openSSLRecord(sequence: 3, nonce: 1), from: 0)
        layer.noteDelivered(sequence: 1)
        layer.noteDelivered(sequence: 4)
        #expect(layer.peerSentApplicationData)
        Self.handOver(&layer, role: .server)
        let own = try #require(layer.own)
        var expected = DTLSReplayWindow()
        expected.accept(1)
        expected.accept(4)
        #expect(own.window == expected)
        #expect(!own.window.isFresh(1) && !own.window.isFresh(4))
        #expect(own.window.isFresh(0) && own.window.isFresh(2) && own.window.isFresh(3) && own.window.isFresh(5))
    }

    @Test("a delivery whose sequence number is unknown keeps the records with OpenSSL for good")
    func unattributedDeliveryStaysWithOpenSSL() {
        var layer = DTLSRecordLayer(enabled: true)
        layer.noteWritten(Self.openSSLRecord(sequence: 3, nonce: 1), from: 0)
        layer.noteDelivered(sequence: nil)
        Self.handOver(&layer)
        #expect(layer.own == nil)
        guard case .stayWithOpenSSL(.unattributedDelivery) = layer.state else {
            Issue.record("expected to stay with OpenSSL, got \(layer.state)")
            return
        }
        // Asked again, it does not change its mind.
        Self.handOver(&layer)
        #expect(layer.own == nil && !layer.watchesOpenSSL)
    }

    @Test("no epoch-1 record from OpenSSL, no keys, or turned off: the records stay with OpenSSL")
    func refusals() {
        var noRecord = DTLSRecordLayer(enabled: true)
        Self.handOver(&noRecord)
        guard case .stayWithOpenSSL(.noRecordWritten) = noRecord.state else {
            Issue.record("expected noRecordWritten, got \(noRecord.state)")
            return
        }

        var noKeys = DTLSRecordLayer(enabled: true)
        noKeys.noteWritten(Self.openSSLRecord(sequence: 0, nonce: 0), from: 0)
        noKeys.takeOver(role: .client) { () throws(DTLSError) in nil }
        guard case .stayWithOpenSSL(.noKeys) = noKeys.state else {
            Issue.record("expected noKeys, got \(noKeys.state)")
            return
        }

        var failing = DTLSRecordLayer(enabled: true)
        failing.noteWritten(Self.openSSLRecord(sequence: 0, nonce: 0), from: 0)
        failing.takeOver(role: .client) { () throws(DTLSError) in throw .notConnected }
        #expect(failing.own == nil && !failing.watchesOpenSSL)

        var off = DTLSRecordLayer(enabled: false)
        off.noteWritten(Self.openSSLRecord(sequence: 0, nonce: 0), from: 0)
        Self.handOver(&off)
        guard case .stayWithOpenSSL(.disabled) = off.state else {
            Issue.record("expected disabled, got \(off.state)")
            return
        }
    }

    @Test("records sealed by one side's own layer open on the other's, once; forgeries and replays are refused")
    func sealAndOpenAcrossTheLayers() throws {
        var client = DTLSRecordLayer(enabled: true)
        var server = DTLSRecordLayer(enabled: true)
        client.noteWritten(Self.openSSLRecord(sequence: 0, nonce: 10), from: 0)
        server.noteWritten(Self.openSSLRecord(sequence: 0, nonce: 20), from: 0)
        Self.handOver(&client, role: .client)
        Self.handOver(&server, role: .server)
        let sender = try #require(client.own)
        let receiver = try #require(server.own)

        var stream: [UInt8] = []
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try sender.seal(type: 23, $0, appendingTo: &stream) }
        var plaintext = [UInt8](repeating: 0, count: 64)
        func open(_ record: [UInt8]) -> OwnRecordLayer.Opened {
            let sequence = record[5..<11].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return record.withUnsafeBytes { bytes in
                plaintext.withUnsafeMutableBytes { receiver.open(record: bytes, sequence: sequence, into: $0) }
            }
        }
        var forged = stream
        forged[forged.count - 1] ^= 1
        #expect(open(forged) == .forged)
        #expect(receiver.window.isFresh(1), "a forgery does not move the window")
        #expect(open(stream) == .plaintext(3))
        #expect(Array(plaintext.prefix(3)) == [1, 2, 3])
        #expect(open(stream) == .replay)
    }
}
