import Testing
import TernWire

/// `UnsafeWireReader` holds the same rules as `WireReader` over raw bytes:
/// each read is checked against what `WireReader` answers for the same
/// bytes, at every cut and offset.
@Suite("Unsafe wire reader")
struct UnsafeWireReaderTests {
    static let bytes = WireReaderTests.bytes

    @Test("every integer read agrees with WireReader's, at every cut and offset", arguments: WireReaderTests.Read.allCases)
    func integerReadsAgreeWithWireReader(read: WireReaderTests.Read) throws {
        for cut in 0...Self.bytes.count {
            let region = Array(Self.bytes.prefix(cut))
            try region.withUnsafeBytes { raw in
                for start in 0...cut {
                    var safe = WireReader(region)
                    var unsafe = UnsafeWireReader(raw)
                    try safe.skip(start)
                    try unsafe.skip(start)
                    let expected = Result { () throws(WireError) in try read.read(&safe) }
                    let got = Result { () throws(WireError) in try Self.read(read, &unsafe) }
                    #expect(got == expected, "cut \(cut) start \(start)")
                    #expect(unsafe.offset == safe.offset && unsafe.remaining == safe.remaining)
                }
            }
        }
    }

    static func read(_ read: WireReaderTests.Read, _ reader: inout UnsafeWireReader) throws(WireError) -> UInt64 {
        switch read {
        case .uint8: return UInt64(try reader.readUInt8())
        case .uint16: return UInt64(try reader.readUInt16())
        case .uint32: return UInt64(try reader.readUInt32())
        case .uint64: return try reader.readUInt64()
        }
    }

    @Test("a 24-bit read: its value, and a throw with nothing moved when fewer than three bytes are left")
    func uint24() throws {
        try Self.bytes.withUnsafeBytes { raw in
            for start in 0...Self.bytes.count {
                var reader = UnsafeWireReader(raw)
                try reader.skip(start)
                if start + 3 <= Self.bytes.count {
                    #expect(UInt64(try reader.readUInt24()) == WireReaderTests.expected(Self.bytes[...], at: start, count: 3))
                    #expect(reader.offset == start + 3)
                } else {
                    #expect(throws: WireError(offset: start, expected: .bytes(3), available: Self.bytes.count - start)) {
                        _ = try reader.readUInt24()
                    }
                    #expect(reader.offset == start)
                }
            }
        }
    }

    @Test("slices are views of the same bytes; skips, peeks, sub-readers and the end as WireReader's")
    func slicesPeeksAndTheEnd() throws {
        try Self.bytes.withUnsafeBytes { raw in
            for start in 0...raw.count {
                for count in -1...(raw.count + 1) {
                    var reader = UnsafeWireReader(raw)
                    try reader.skip(start)
                    if count >= 0, start + count <= raw.count {
                        let slice = try reader.readSlice(count: count)
                        #expect(Array(slice) == Array(Self.bytes.dropFirst(start).prefix(count)))
                        #expect(slice.baseAddress == raw.baseAddress.map { $0 + start })
                    } else {
                        #expect(throws: WireError(offset: start, expected: .bytes(count), available: raw.count - start)) {
                            _ = try reader.readSlice(count: count)
                        }
                        #expect(throws: WireError.self) { try reader.skip(count) }
                        #expect(reader.offset == start)
                    }
                }
            }
            var reader = UnsafeWireReader(raw)
            try reader.skip(5)
            #expect(reader.peekInteger(ahead: 7, as: UInt32.self).map(UInt64.init) == WireReaderTests.expected(Self.bytes[...], at: 12, count: 4))
            #expect(reader.peekInteger(ahead: 8, as: UInt32.self) == nil)
            #expect(reader.peekInteger(ahead: -1, as: UInt8.self) == nil)
            #expect(reader.offset == 5)
            var part = try reader.readReader(count: 3)
            #expect(try part.readUInt16() == 0x6576)
            #expect(throws: WireError(offset: 2, expected: .bytes(2), available: 1)) { _ = try part.readUInt16() }
            #expect(throws: WireError(offset: 8, expected: .end, available: 8)) { try reader.expectEnd() }
            #expect(Array(reader.readRemaining()) == Array(Self.bytes[8...]))
            try reader.expectEnd()
            #expect(reader.isAtEnd)
        }
        // Empty bytes (possibly no address): every read throws, none traps.
        var empty = UnsafeWireReader(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(throws: WireError(offset: 0, expected: .bytes(1), available: 0)) { _ = try empty.readUInt8() }
        #expect(try empty.readSlice(count: 0).isEmpty)
        try empty.expectEnd()
    }
}
