import TernSTUN
import TernWire

/// Splits a TCP (or TLS) byte stream to or from a TURN server into messages
/// (RFC 8656 §12.5): STUN messages and ChannelData messages back to back, told
/// apart by their first two bits (00 STUN, 01 ChannelData, RFC 8656 §12), each
/// ChannelData padded to a multiple of four bytes.
///
/// Feed it chunks of any size with `append`, then take frames with
/// `nextFrame()` until it returns nil. It keeps at most one partial frame
/// (under 64 KiB plus a header) between chunks. A stream whose next bytes
/// cannot start a message throws: there is no way to find the next message
/// boundary, so the connection must be closed.
public struct TURNStreamFramer: Sendable {
    /// The longest frame: a 20-byte STUN header and a 0xFFFC-byte body, or a
    /// 4-byte ChannelData header and 65535 bytes padded to 65536.
    public static let maximumFrameLength = ChannelData.headerLength + 0x1_0000

    private var buffer: [UInt8] = []
    /// Bytes before `start` are consumed.
    private var start = 0
    private var failure: TURNError?

    public init() {}

    /// Bytes held that do not form a whole frame yet.
    public var bufferedCount: Int { buffer.count - start }

    public mutating func append(_ bytes: ArraySlice<UInt8>) {
        guard failure == nil else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 0, start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        append(bytes[...])
    }

    /// The next whole frame (a STUN message, or ChannelData with its padding),
    /// or nil when more bytes are needed.
    public mutating func nextFrame() throws(TURNError) -> ArraySlice<UInt8>? {
        if let failure { throw failure }
        let reader = WireReader(buffer[start...])
        // Every message starts with a type (or channel number) and a length.
        guard let first = reader.peekInteger(as: UInt8.self),
              let length = reader.peekInteger(ahead: 2, as: UInt16.self).map(Int.init)
        else { return nil }
        let frameLength: Int
        switch first >> 6 {
        case 0b00:
            // RFC 8489 §5: the length is a multiple of four and the cookie fixed.
            guard length % 4 == 0 else { return try fail("STUN length \(length) is not a multiple of 4") }
            if let cookie = reader.peekInteger(ahead: 4, as: UInt32.self) {
                guard cookie == STUN.magicCookie else { return try fail("STUN message without the magic cookie") }
            }
            frameLength = STUN.headerLength + length
        case 0b01:
            // RFC 8656 §12.5: over a stream, ChannelData is padded to four bytes.
            frameLength = ChannelData.headerLength + paddedToFour(length)
        default:
            return try fail("first byte 0x\(String(first, radix: 16)) starts neither STUN nor ChannelData")
        }
        var frames = reader
        guard let frame = try? frames.readSlice(count: frameLength) else { return nil }
        start += frameLength
        return frame
    }

    private mutating func fail(_ why: String) throws(TURNError) -> ArraySlice<UInt8>? {
        let error = TURNError.streamCorrupted(why)
        failure = error
        buffer = []
        start = 0
        throw error
    }
}
