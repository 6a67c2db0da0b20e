import TernWire

/// A TURN ChannelData message (RFC 8656 §12.4): a 2-byte channel number, a
/// 2-byte length and the application data, without any STUN header. This is
/// the relayed data path, so decoding returns a slice of the input, not a copy.
public struct ChannelData: Hashable, Sendable {
    /// RFC 8656 §12: channel numbers 0x4000 through 0x4FFF are usable;
    /// 0x5000-0xFFFF are reserved, 0x0000-0x3FFF are STUN.
    public static let validChannels: ClosedRange<UInt16> = 0x4000...0x4FFF
    public static let headerLength = 4

    public var channel: UInt16
    public var payload: ArraySlice<UInt8>

    public init(channel: UInt16, payload: ArraySlice<UInt8>) {
        self.channel = channel
        self.payload = payload
    }

    public init(channel: UInt16, payload: [UInt8]) {
        self.init(channel: channel, payload: payload[...])
    }

    /// Appends the framed message to `buffer`. `padded` adds zero bytes up to a
    /// multiple of four, which RFC 8656 §12.5 requires over TCP and TLS and
    /// allows over UDP.
    public func encode(padded: Bool, into buffer: inout [UInt8]) throws(STUNError) {
        guard Self.validChannels.contains(channel) else { throw .badChannelNumber(channel) }
        guard payload.count <= Int(UInt16.max) else { throw .channelDataTooLarge(payload.count) }
        let start = buffer.count
        buffer.appendBigEndian(channel)
        buffer.appendBigEndian(UInt16(payload.count))
        buffer.append(contentsOf: payload)
        if padded { buffer.padToFour(from: start) }
    }

    public func encode(padded: Bool) throws(STUNError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.headerLength + paddedToFour(payload.count))
        try encode(padded: padded, into: &buffer)
        return buffer
    }

    /// Decodes a ChannelData message that arrived as one UDP datagram.
    ///
    /// RFC 8656 §12.6: a datagram shorter than the length field says is
    /// discarded. Up to the padding to four bytes may follow the data (RFC
    /// 8656 §12.5 lets a sender pad over UDP); anything more is rejected.
    public static func decode(datagram: ArraySlice<UInt8>) throws(STUNError) -> ChannelData {
        var reader = WireReader(datagram)
        let (channel, length) = try header(&reader)
        let available = reader.remaining
        guard length <= available else { throw .channelDataTruncated(declared: length, available: available) }
        guard available <= paddedToFour(length) else { throw .trailingBytes(available - length) }
        return ChannelData(channel: channel, payload: reader.remainingBytes.prefix(length))
    }

    public static func decode(datagram: [UInt8]) throws(STUNError) -> ChannelData {
        try decode(datagram: datagram[...])
    }

    /// Decodes the ChannelData message at the front of a stream buffer (TCP or
    /// TLS), where every message is padded to a multiple of four (RFC 8656
    /// §12.5). Returns nil when more bytes are needed, otherwise the message
    /// and how many bytes it used, padding included.
    public static func decode(stream: ArraySlice<UInt8>) throws(STUNError) -> (message: ChannelData, consumed: Int)? {
        guard stream.count >= headerLength else { return nil }
        var reader = WireReader(stream)
        let (channel, length) = try header(&reader)
        let frame = headerLength + paddedToFour(length)
        guard stream.count >= frame else { return nil }
        return (ChannelData(channel: channel, payload: reader.remainingBytes.prefix(length)), frame)
    }

    private static func header(_ reader: inout WireReader) throws(STUNError) -> (UInt16, Int) {
        let available = reader.remaining
        guard let channel = try? reader.readUInt16(), let length = try? reader.readUInt16() else {
            throw .channelDataTruncated(declared: headerLength, available: available)
        }
        // RFC 8656 §12.6: a number outside the range is not ChannelData.
        guard validChannels.contains(channel) else { throw .badChannelNumber(channel) }
        return (channel, Int(length))
    }
}
