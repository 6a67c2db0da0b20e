import Testing
import TernSTUN

@Suite("TURN ChannelData framing")
struct ChannelDataTests {
    @Test("encode and decode over UDP", arguments: [0, 1, 3, 4, 5, 1200])
    func datagramRoundTrip(length: Int) throws {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let message = ChannelData(channel: 0x4001, payload: payload)
        for padded in [false, true] {
            let encoded = try message.encode(padded: padded)
            #expect(encoded.count == 4 + (padded ? (length + 3) / 4 * 4 : length))
            #expect(Array(encoded.prefix(4)) == [0x40, 0x01, UInt8(length >> 8), UInt8(length & 0xFF)])
            let decoded = try ChannelData.decode(datagram: encoded)
            #expect(decoded == message)
            #expect(PacketKind.classify(encoded[0]) == .turnChannelData)
        }
    }

    @Test func streamFramingSplitsConcatenatedMessagesAndWaitsForMore() throws {
        let first = ChannelData(channel: 0x4000, payload: [1, 2, 3, 4, 5])
        let second = ChannelData(channel: 0x4FFF, payload: [9])
        var stream: [UInt8] = []
        try first.encode(padded: true, into: &stream)
        try second.encode(padded: true, into: &stream)
        #expect(stream.count == 12 + 8)

        // Every strict prefix of the first frame needs more bytes.
        for cut in 0..<12 {
            #expect(try ChannelData.decode(stream: stream[0..<cut]) == nil)
        }
        let one = try #require(try ChannelData.decode(stream: stream[...]))
        #expect(one.message == first)
        #expect(one.consumed == 12)
        let two = try #require(try ChannelData.decode(stream: stream[one.consumed...]))
        #expect(two.message == second)
        #expect(two.consumed == 8)
        #expect(one.consumed + two.consumed == stream.count)
    }

    @Test("channel numbers outside 0x4000-0x4FFF are rejected", arguments: [UInt16(0x0000), 0x3FFF, 0x5000, 0x7FFF, 0xFFFF])
    func rejectsBadChannelNumbers(channel: UInt16) {
        let datagram = [UInt8(channel >> 8), UInt8(channel & 0xFF), 0, 0]
        #expect(throws: STUNError.badChannelNumber(channel)) { try ChannelData.decode(datagram: datagram) }
        #expect(throws: STUNError.badChannelNumber(channel)) { try ChannelData.decode(stream: datagram[...]) }
        #expect(throws: STUNError.badChannelNumber(channel)) { try ChannelData(channel: channel, payload: []).encode(padded: false) }
    }

    @Test func rejectsTruncatedAndOverlongDatagrams() {
        #expect(throws: STUNError.channelDataTruncated(declared: 4, available: 3)) { try ChannelData.decode(datagram: [0x40, 0x00, 0x00]) }
        #expect(throws: STUNError.channelDataTruncated(declared: 5, available: 4)) {
            try ChannelData.decode(datagram: [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4])
        }
        // Data of 5 bytes may be followed by up to 3 bytes of padding, not 4.
        #expect(throws: STUNError.trailingBytes(4)) {
            try ChannelData.decode(datagram: [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0])
        }
        #expect(throws: STUNError.channelDataTooLarge(65_536)) {
            try ChannelData(channel: 0x4000, payload: [UInt8](repeating: 0, count: 65_536)).encode(padded: false)
        }
    }

    @Test func decodedPayloadIsASliceOfTheInput() throws {
        let datagram: [UInt8] = [0x40, 0x02, 0x00, 0x03, 7, 8, 9]
        let decoded = try ChannelData.decode(datagram: datagram)
        #expect(decoded.payload.startIndex == 4)
        #expect(Array(decoded.payload) == [7, 8, 9])
    }
}
