/// How a protocol lays out its padded type-length-value items: a 16-bit
/// type, a 16-bit length, the value, then zero to three bytes of padding up
/// to a multiple of four.
public struct TLVFormat: Hashable, Sendable {
    /// Whether the length field counts the four header bytes (SCTP) or
    /// only the value (STUN).
    public var lengthCountsHeader: Bool
    /// Whether the last item may end without its padding (the padding then
    /// lies outside the region, as the enclosing chunk's own).
    public var lastPaddingOptional: Bool

    @inlinable
    public init(lengthCountsHeader: Bool, lastPaddingOptional: Bool) {
        self.lengthCountsHeader = lengthCountsHeader
        self.lastPaddingOptional = lastPaddingOptional
    }

    /// SCTP parameters and error causes (RFC 9260 §3.2.1, §3.3.10): the
    /// length counts the header; the chunk length leaves out the last item's
    /// padding, and RFC 9260 §3.2 asks receivers to accept it either way.
    public static let sctp = TLVFormat(lengthCountsHeader: true, lastPaddingOptional: true)
    /// STUN attributes (RFC 8489 §14): the length counts the value only, and
    /// the padding is part of the message, the last attribute's too.
    public static let stun = TLVFormat(lengthCountsHeader: false, lastPaddingOptional: false)
}

/// One item as it sits in the bytes.
@frozen
public struct WireTLV: Hashable, Sendable {
    public var type: UInt16
    /// Offset of the item's header from the start of the walked bytes.
    public var offset: Int
    /// The value, without header or padding: a slice of the walked bytes.
    public var value: ArraySlice<UInt8>

    @inlinable
    public init(type: UInt16, offset: Int, value: ArraySlice<UInt8>) {
        self.type = type
        self.offset = offset
        self.value = value
    }
}

/// Walks padded type-length-value items that fill a region exactly. Every
/// step moves forward by at least four bytes; an item that runs past the
/// region, a length shorter than its header, padding cut short or one to
/// three stray bytes after the last item throw a `WireError`.
@frozen
public struct PaddedTLVReader {
    public var reader: WireReader
    public let format: TLVFormat
    /// Offset of the header of the item `next()` read last (or failed on).
    public private(set) var itemOffset = 0

    @inlinable
    public init(_ region: ArraySlice<UInt8>, format: TLVFormat) {
        self.reader = WireReader(region)
        self.format = format
    }

    /// The type of the item `next()` read last or failed on, if its type
    /// field was there (for errors that name it).
    public var itemType: UInt16? {
        WireReader(reader.bytes).peekInteger(ahead: itemOffset)
    }

    /// The next item, or nil at the end of the region. (Not inlinable: TLV
    /// items are control-path values; the data path reads chunks itself.)
    public mutating func next() throws(WireError) -> WireTLV? {
        guard !reader.isAtEnd else { return nil }
        let start = reader.offset
        itemOffset = start
        guard reader.remaining >= 4 else { throw WireError(offset: start, expected: .tlvHeader, available: reader.remaining) }
        let type = try reader.readUInt16()
        let lengthField = Int(try reader.readUInt16())
        var valueLength = lengthField
        if format.lengthCountsHeader {
            guard lengthField >= 4 else { throw WireError(offset: start, expected: .tlvLength(minimum: 4), available: lengthField) }
            valueLength = lengthField &- 4
        }
        guard valueLength <= reader.remaining else {
            throw WireError(offset: reader.offset, expected: .tlvValue(length: valueLength), available: reader.remaining)
        }
        let value = try reader.readSlice(count: valueLength)
        let padding = (4 &- valueLength & 3) & 3
        if padding <= reader.remaining {
            try reader.skip(padding)
        } else if !(format.lastPaddingOptional && reader.isAtEnd) {
            throw WireError(offset: reader.offset, expected: .tlvPadding(length: valueLength), available: reader.remaining)
        }
        return WireTLV(type: type, offset: start, value: value)
    }
}

/// Rounds up to the next multiple of four: the padded length of a TLV,
/// an SCTP chunk or a stream-framed ChannelData message.
@inlinable
@inline(__always)
public func paddedToFour(_ length: Int) -> Int {
    (length &+ 3) & ~3
}
