import Testing
import TernWire

@Suite("Padded TLV reader and writer")
struct PaddedTLVTests {
    static func walk(_ bytes: [UInt8], _ format: TLVFormat) throws(WireError) -> [WireTLV] {
        var walker = PaddedTLVReader(bytes[...], format: format)
        var items: [WireTLV] = []
        while let item = try walker.next() { items.append(item) }
        return items
    }

    /// Two items in each format: values of 5 and 0 bytes, the first padded.
    static let sctpItems: [UInt8] = [0x00, 0x07, 0x00, 0x09, 1, 2, 3, 4, 5, 0, 0, 0, 0x80, 0x00, 0x00, 0x04]
    static let stunItems: [UInt8] = [0x00, 0x06, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0x80, 0x28, 0x00, 0x00]

    @Test("both formats read types, offsets and values", arguments: [(TLVFormat.sctp, sctpItems), (TLVFormat.stun, stunItems)])
    func readsItems(format: TLVFormat, bytes: [UInt8]) throws {
        let items = try Self.walk(bytes, format)
        #expect(items.count == 2)
        #expect(items.first?.offset == 0)
        #expect(items.first.map { Array($0.value) } == [1, 2, 3, 4, 5])
        #expect(items.last?.offset == 12)
        #expect(items.last?.value.isEmpty == true)
    }

    @Test("every cut of a well-formed region: a clean end or a typed error, never a trap", arguments: [TLVFormat.sctp, TLVFormat.stun])
    func everyCut(format: TLVFormat) throws {
        let bytes = format == .sctp ? Self.sctpItems : Self.stunItems
        for cut in 0...bytes.count {
            let region = Array(bytes.prefix(cut))
            let result = Result { () throws(WireError) in try Self.walk(region, format) }
            switch cut {
            case 0: #expect(try result.get().isEmpty)
            case 12: #expect(try result.get().count == 1)
            case 16: #expect(try result.get().count == 2)
            case 9 where format.lastPaddingOptional:
                // The first item's value ends the region: its padding may lie outside (RFC 9260 §3.2).
                #expect(try result.get().count == 1)
            default:
                #expect(throws: WireError.self, "cut \(cut)") { try result.get() }
            }
        }
    }

    @Test("the errors: header cut, length below the header, value overrun, padding cut, stray bytes")
    func typedErrors() {
        // Three bytes: no room for a header.
        #expect(throws: WireError(offset: 0, expected: .tlvHeader, available: 3)) { try Self.walk([0, 1, 0], .sctp) }
        // An SCTP length of 3 cannot hold its own header.
        #expect(throws: WireError(offset: 0, expected: .tlvLength(minimum: 4), available: 3)) { try Self.walk([0, 1, 0, 3], .sctp) }
        // A value of 8 where 4 bytes are left.
        #expect(throws: WireError(offset: 4, expected: .tlvValue(length: 8), available: 4)) {
            try Self.walk([0, 1, 0, 12, 1, 2, 3, 4], .sctp)
        }
        #expect(throws: WireError(offset: 4, expected: .tlvValue(length: 8), available: 4)) {
            try Self.walk([0, 1, 0, 8, 1, 2, 3, 4], .stun)
        }
        // STUN: the last attribute's padding is part of the message (RFC 8489 §14).
        #expect(throws: WireError(offset: 5, expected: .tlvPadding(length: 1), available: 0)) { try Self.walk([0, 1, 0, 1, 9], .stun) }
        // Padding cut inside: two of three padding bytes, then the region ends.
        #expect(throws: WireError(offset: 5, expected: .tlvPadding(length: 1), available: 2)) {
            try Self.walk([0, 1, 0, 5, 9, 0, 0], .sctp)
        }
        // One to three stray bytes after the last item.
        #expect(throws: WireError(offset: 4, expected: .tlvHeader, available: 2)) { try Self.walk([0, 1, 0, 4, 0, 0], .sctp) }
    }

    @Test("a length field of 65,535 is bounded by the region, not trusted")
    func hugeLength() {
        #expect(throws: WireError(offset: 4, expected: .tlvValue(length: 65_531), available: 4)) {
            try Self.walk([0, 1, 0xFF, 0xFF, 1, 2, 3, 4], .sctp)
        }
    }

    @Test("the writer's TLVs read back in both formats, every value length 0 to 9", arguments: [TLVFormat.sctp, TLVFormat.stun])
    func writerRoundTrip(format: TLVFormat) throws {
        var buffer: [UInt8] = [0xAB]  // the writer appends after what is there
        var ends: [Int] = []
        for length in 0...9 {
            let start = buffer.startTLV(type: UInt16(0x100 + length))
            buffer.append(contentsOf: (0..<length).map { UInt8($0 + 1) })
            let end = try buffer.finishTLV(startingAt: start, format: format, padding: 0x20)
            ends.append(end)
            #expect(end == start + 4 + length)
            #expect((buffer.count - start) % 4 == 0)
        }
        let items = try Self.walk(Array(buffer.dropFirst()), format)
        #expect(items.map(\.type) == (0...9).map { UInt16(0x100 + $0) })
        #expect(items.map { Array($0.value) } == (0...9).map { length in (0..<length).map { UInt8($0 + 1) } })
        // The one-byte value's three padding bytes are the padding asked for.
        #expect(Array(buffer[ends[1]..<(ends[1] + 3)]) == [0x20, 0x20, 0x20])
    }

    @Test("a value too long for its length field is removed and throws")
    func writerRefusesLongValue() {
        var buffer: [UInt8] = [1, 2, 3]
        let start = buffer.startTLV(type: 9)
        buffer.append(contentsOf: [UInt8](repeating: 0, count: 65_532))
        #expect(throws: WireError(offset: 3, expected: .lengthAtMost(65_535), available: 65_536)) {
            try buffer.finishTLV(startingAt: start, format: .sctp)
        }
        #expect(buffer == [1, 2, 3])
    }

    @Test("appendBigEndian and setBigEndian are big-endian")
    func integers() {
        var buffer: [UInt8] = []
        buffer.appendBigEndian(UInt8(1))
        buffer.appendBigEndian(UInt16(0x0203))
        buffer.appendBigEndian(UInt32(0x0405_0607))
        buffer.appendBigEndian(UInt64(0x0809_0A0B_0C0D_0E0F))
        #expect(buffer == Array(1...15))
        buffer.setBigEndian(UInt16(0xFFEE), at: 13)
        #expect(buffer.suffix(3) == [0x0D, 0xFF, 0xEE])
        buffer.padToFour(from: 0)
        #expect(buffer.count == 16 && buffer.last == 0)
    }
}
