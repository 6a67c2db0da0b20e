/// A read that did not fit the bytes: where it was, what it needed, and
/// how many bytes were left there. Every read of `WireReader` and
/// `PaddedTLVReader` throws this and nothing else; each protocol module
/// maps it to its own error type where it has a more specific word.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What the read was looking for.
    public enum Expected: Hashable, Sendable {
        /// A field of this many bytes.
        case bytes(Int)
        /// A type-length-value header (four bytes).
        case tlvHeader
        /// A TLV length field of at least this value (one that counts its
        /// own header cannot be less than four).
        case tlvLength(minimum: Int)
        /// A TLV value of this length.
        case tlvValue(length: Int)
        /// The zero to three padding bytes after a TLV value of this length.
        case tlvPadding(length: Int)
        /// The end of the bytes: nothing may follow.
        case end
        /// (Writing) a length that fits its field: at most this much.
        case lengthAtMost(Int)
    }

    /// Where the read started, counted from the start of the reader's bytes.
    public var offset: Int
    public var expected: Expected
    /// Bytes left at `offset`; for `.tlvLength`, the length field's value.
    public var available: Int

    @inlinable
    public init(offset: Int, expected: Expected, available: Int) {
        self.offset = offset
        self.expected = expected
        self.available = available
    }

    public var description: String {
        switch expected {
        case .bytes(let count): return "at offset \(offset): expected \(count) bytes, \(available) left"
        case .tlvHeader: return "at offset \(offset): expected a 4-byte type-length header, \(available) bytes left"
        case .tlvLength(let minimum): return "at offset \(offset): a length of \(available), expected at least \(minimum)"
        case .tlvValue(let length): return "at offset \(offset): expected a value of \(length) bytes, \(available) left"
        case .tlvPadding(let length): return "at offset \(offset): expected the padding of a \(length)-byte value, \(available) bytes left"
        case .end: return "at offset \(offset): expected the end, \(available) bytes follow"
        case .lengthAtMost(let maximum): return "at offset \(offset): a length of \(available), its field holds at most \(maximum)"
        }
    }
}
