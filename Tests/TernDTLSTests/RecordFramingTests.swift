import Testing
@testable import TernDTLS

@Suite("Record framing (RFC 6347 §4.1)")
struct RecordFramingTests {
    static func record(type: UInt8 = 23, epoch: UInt8 = 1, length: Int, fill: UInt8 = 0) -> [UInt8] {
        header(type: type, epoch: epoch, length: length) + [UInt8](repeating: fill, count: length)
    }

    static func header(type: UInt8, epoch: UInt8, length: Int) -> [UInt8] {
        [type, 0xFE, 0xFD, 0, epoch, 0, 0, 0, 0, 0, 1, UInt8(length >> 8), UInt8(length & 0xFF)]
    }

    /// An epoch-0 handshake record holding one fragment.
    static func handshake(messageLength: Int, offset: Int, fragmentLength: Int, bodyLength: Int? = nil) -> [UInt8] {
        func u24(_ value: Int) -> [UInt8] { [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
        let body = [UInt8](repeating: 0x33, count: bodyLength ?? fragmentLength)
        let fragment = [11] + u24(messageLength) + [0, 1] + u24(offset) + u24(fragmentLength) + body
        return header(type: 22, epoch: 0, length: fragment.count) + fragment
    }

    static func pack(_ stream: [UInt8], mtu: Int) -> (datagrams: [[UInt8]], used: Int, oversized: Int) {
        var datagrams: [[UInt8]] = []
        var oversized = 0
        let used = stream.withUnsafeBytes { raw in
            DTLSRecordFraming.packDatagrams(raw, mtu: mtu, oversized: &oversized) { datagrams.append(Array($0)) }
        }
        return (datagrams, used, oversized)
    }

    static func validPrefix(_ datagram: [UInt8]) -> (Int, DTLSRecordFraming.Defect?) {
        datagram.withUnsafeBytes { DTLSRecordFraming.validPrefix(of: $0) }
    }

    @Test func packsWholeRecordsGreedilyUpToTheMTU() {
        // 113 + 213 + 513 + 1013 + 63 bytes of records into 1200-byte datagrams.
        let records = [100, 200, 500, 1000, 50].map { Self.record(length: $0, fill: UInt8($0 & 0xFF)) }
        let stream = records.flatMap { $0 }
        let (datagrams, used, oversized) = Self.pack(stream, mtu: 1200)
        #expect(used == stream.count)
        #expect(oversized == 0)
        #expect(datagrams.map(\.count) == [113 + 213 + 513, 1013 + 63])
        #expect(datagrams.flatMap { $0 } == stream)
    }

    @Test func aRecordExactlyTheMTUFillsADatagram() {
        let stream = Self.record(length: 1187) + Self.record(length: 1)
        let (datagrams, _, oversized) = Self.pack(stream, mtu: 1200)
        #expect(datagrams.map(\.count) == [1200, 14])
        #expect(oversized == 0)
    }

    @Test func anOversizedRecordTravelsAloneAndIsCounted() {
        let stream = Self.record(length: 10) + Self.record(length: 1300) + Self.record(length: 10)
        let (datagrams, _, oversized) = Self.pack(stream, mtu: 1200)
        #expect(datagrams.map(\.count) == [23, 1313, 23])
        #expect(oversized == 1)
    }

    @Test func aPartialTrailingRecordIsKeptForLater() {
        let whole = Self.record(length: 40)
        let stream = whole + Array(Self.record(length: 40).prefix(20))
        let (datagrams, used, _) = Self.pack(stream, mtu: 1200)
        #expect(used == whole.count)
        #expect(datagrams == [whole])
        #expect(Self.pack([1, 2, 3], mtu: 1200).used == 0)
        #expect(Self.pack([], mtu: 1200).datagrams.isEmpty)
    }

    @Test func validPrefixAcceptsBackToBackRecords() {
        let datagram = Self.handshake(messageLength: 500, offset: 100, fragmentLength: 50)
            + Self.header(type: 20, epoch: 0, length: 1) + [1]
            + Self.header(type: 21, epoch: 0, length: 2) + [2, 40]
            + Self.record(type: 22, epoch: 1, length: 40)
            + Self.record(length: 24)
        #expect(Self.validPrefix(datagram) == (datagram.count, nil))
        // ChaCha20-Poly1305 records may be as short as the 16-byte tag.
        let short = Self.record(length: 16)
        #expect(short.withUnsafeBytes { DTLSRecordFraming.validPrefix(of: $0, minimumProtectedLength: 16) } == (29, nil))
        #expect(Self.validPrefix(short) == (0, .shorterThanProtection(16, offset: 0)))
    }

    @Test("validPrefix stops at the first defect", arguments: [
        ([UInt8](), 0, DTLSRecordFraming.Defect.empty),
        ([23, 0xFE, 0xFD], 0, .truncatedHeader(offset: 0)),
        ([24, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0], 0, .unknownContentType(24, offset: 0)),
        ([0x16, 0x03, 0x03, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0], 0, .notDTLSVersion(0x0303, offset: 0)),
        ([23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 1, 0, 5, 1, 2], 0, .truncatedFragment(declared: 5, available: 2, offset: 0)),
        (RecordFramingTests.record(length: 30) + [23, 0xFE], 43, .truncatedHeader(offset: 43)),
        (RecordFramingTests.record(length: 23), 0, .shorterThanProtection(23, offset: 0)),
        (RecordFramingTests.record(length: 0), 0, .shorterThanProtection(0, offset: 0)),
        (RecordFramingTests.header(type: 20, epoch: 0, length: 1) + [2], 0, .malformedPlaintext(type: 20, offset: 0)),
        (RecordFramingTests.header(type: 20, epoch: 0, length: 2) + [1, 1], 0, .malformedPlaintext(type: 20, offset: 0)),
        (RecordFramingTests.header(type: 21, epoch: 0, length: 2) + [3, 40], 0, .malformedPlaintext(type: 21, offset: 0)),
        (RecordFramingTests.header(type: 21, epoch: 0, length: 3) + [2, 40, 0], 0, .malformedPlaintext(type: 21, offset: 0)),
        (RecordFramingTests.record(type: 23, epoch: 0, length: 30), 0, .malformedPlaintext(type: 23, offset: 0)),
        // A fragment that runs past its message, past its record, or a
        // header cut short.
        (RecordFramingTests.handshake(messageLength: 100, offset: 90, fragmentLength: 20), 0, .malformedPlaintext(type: 22, offset: 0)),
        (RecordFramingTests.handshake(messageLength: 100, offset: 0, fragmentLength: 50, bodyLength: 40), 0, .malformedPlaintext(type: 22, offset: 0)),
        (RecordFramingTests.header(type: 22, epoch: 0, length: 5) + [1, 0, 0, 0, 0], 0, .malformedPlaintext(type: 22, offset: 0)),
        (RecordFramingTests.handshake(messageLength: 1 << 20, offset: 0, fragmentLength: 10), 0, .malformedPlaintext(type: 22, offset: 0)),
    ])
    func validPrefixStopsAtTheFirstDefect(datagram: [UInt8], length: Int, defect: DTLSRecordFraming.Defect) {
        #expect(Self.validPrefix(datagram) == (length, defect))
    }

    @Test func validPrefixRefusesOverlongFragmentsAndDatagrams() {
        let overlong = Self.record(length: (1 << 14) + 2049)
        #expect(Self.validPrefix(Array(overlong.prefix(1 << 14))).1 == .fragmentTooLong((1 << 14) + 2049, offset: 0))
        #expect(Self.validPrefix([UInt8](repeating: 23, count: (1 << 14) + 1)) == (0, .tooLong((1 << 14) + 1)))
    }

    @Test func timerValuesConvertToMicroseconds() {
        #expect(Duration.seconds(1).clampedMicroseconds == 1_000_000)
        #expect(Duration.milliseconds(50).clampedMicroseconds == 50_000)
        #expect(Duration.seconds(-1).clampedMicroseconds == 0)
        #expect(Duration.seconds(1 << 40).clampedMicroseconds == UInt32.max)
    }
}
