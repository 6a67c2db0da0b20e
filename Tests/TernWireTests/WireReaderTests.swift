import Testing
import TernWire

@Suite("Wire reader")
struct WireReaderTests {
    /// Sixteen distinct bytes: every read below has a value to check.
    static let bytes: [UInt8] = (0..<16).map { UInt8(truncatingIfNeeded: 0x10 + $0 * 0x11) }

    /// The big-endian value of `count` bytes at `offset`, computed the slow way.
    static func expected(_ bytes: ArraySlice<UInt8>, at offset: Int, count: Int) -> UInt64 {
        bytes.dropFirst(offset).prefix(count).reduce(0) { $0 << 8 | UInt64($1) }
    }

    enum Read: String, CaseIterable {
        case uint8, uint16, uint32, uint64
        var width: Int { ["uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8][rawValue] ?? 0 }
        func read(_ reader: inout WireReader) throws(WireError) -> UInt64 {
            switch self {
            case .uint8: return UInt64(try reader.readUInt8())
            case .uint16: return UInt64(try reader.readUInt16())
            case .uint32: return UInt64(try reader.readUInt32())
            case .uint64: return try reader.readUInt64()
            }
        }
    }

    @Test("every integer read, cut at every length and started at every offset", arguments: Read.allCases)
    func integerReadsAtEveryCut(read: Read) throws {
        // A slice that does not start at index 0, as the codecs get them.
        let backing: [UInt8] = [0xEE, 0xEE, 0xEE] + Self.bytes
        for cut in 0...Self.bytes.count {
            let region = backing[3..<(3 + cut)]
            for start in 0...cut {
                var reader = WireReader(region)
                try reader.skip(start)
                let left = cut - start
                if left >= read.width {
                    let value = try read.read(&reader)
                    #expect(value == Self.expected(region, at: start, count: read.width), "cut \(cut) start \(start)")
                    #expect(reader.offset == start + read.width)
                    #expect(reader.remaining == left - read.width)
                } else {
                    #expect(throws: WireError(offset: start, expected: .bytes(read.width), available: left)) {
                        _ = try read.read(&reader)
                    }
                    // A failed read moves nothing.
                    #expect(reader.offset == start)
                    #expect(reader.remaining == left)
                }
            }
        }
    }

    @Test("readSlice and skip at every offset and count")
    func slicesAtEveryCut() throws {
        let region = ([0xAA] + Self.bytes)[1...]
        for start in 0...region.count {
            for count in 0...(region.count + 1) {
                var reader = WireReader(region)
                try reader.skip(start)
                var skipper = reader
                if start + count <= region.count {
                    let slice = try reader.readSlice(count: count)
                    #expect(Array(slice) == Array(region.dropFirst(start).prefix(count)))
                    #expect(slice.startIndex == region.startIndex + start, "a slice of the same storage")
                    try skipper.skip(count)
                    #expect(skipper.offset == reader.offset)
                } else {
                    let error = WireError(offset: start, expected: .bytes(count), available: region.count - start)
                    #expect(throws: error) { _ = try reader.readSlice(count: count) }
                    #expect(throws: error) { try skipper.skip(count) }
                    #expect(reader.offset == start && skipper.offset == start)
                }
            }
        }
    }

    @Test("negative counts throw instead of moving back")
    func negativeCounts() throws {
        var reader = WireReader(Self.bytes)
        try reader.skip(4)
        #expect(throws: WireError.self) { _ = try reader.readSlice(count: -1) }
        #expect(throws: WireError.self) { try reader.skip(-4) }
        #expect(reader.offset == 4)
        #expect(reader.peekInteger(ahead: -1, as: UInt8.self) == nil)
    }

    @Test("peeks see what a read would, without moving; nil past the end")
    func peeks() throws {
        var reader = WireReader(Self.bytes)
        try reader.skip(5)
        for ahead in 0...12 {
            let peeked = reader.peekInteger(ahead: ahead, as: UInt32.self)
            if ahead + 4 <= 11 {
                #expect(peeked.map(UInt64.init) == Self.expected(Self.bytes[...], at: 5 + ahead, count: 4))
            } else {
                #expect(peeked == nil, "ahead \(ahead)")
            }
        }
        #expect(reader.offset == 5)
    }

    @Test("expectEnd: trailing bytes throw with their count")
    func trailingBytes() throws {
        var reader = WireReader(Self.bytes)
        _ = try reader.readUInt64()
        #expect(throws: WireError(offset: 8, expected: .end, available: 8)) { try reader.expectEnd() }
        let rest = reader.readRemaining()
        #expect(Array(rest) == Array(Self.bytes[8...]))
        try reader.expectEnd()
        #expect(reader.isAtEnd)
    }

    @Test("a sub-reader counts from its own start and cannot read past its part")
    func subReader() throws {
        var reader = WireReader(Self.bytes)
        try reader.skip(2)
        var part = try reader.readReader(count: 3)
        #expect(reader.offset == 5)
        #expect(part.offset == 0)
        #expect(try part.readUInt16() == 0x3243)
        #expect(throws: WireError(offset: 2, expected: .bytes(2), available: 1)) { _ = try part.readUInt16() }
    }

    @Test("errors say where and what")
    func errorText() {
        let error = WireError(offset: 12, expected: .bytes(4), available: 2)
        #expect(error.description == "at offset 12: expected 4 bytes, 2 left")
    }
}
