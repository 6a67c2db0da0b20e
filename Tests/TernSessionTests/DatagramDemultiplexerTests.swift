import Testing
import TernSTUN
@testable import TernSession

/// The session socket's demultiplexer (RFC 7983 §7, Figure 3; RFC 8656 §12
/// for ChannelData): every first-byte range, from a TURN server over UDP
/// and from anyone else, and real messages of each kind.
@Suite struct DatagramDemultiplexerTests {
    typealias Route = DatagramDemultiplexer.Route

    /// A STUN message of `type` (RFC 8489 §5: type, length, magic cookie,
    /// transaction ID), without attributes.
    static func stun(type: UInt16) -> [UInt8] {
        [UInt8(type >> 8), UInt8(type & 0xFF), 0, 0, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 7, count: 12)
    }

    /// The first byte of each range's edges, with what it is from a peer
    /// (no TURN slot) and from TURN server slot 2. A datagram of that first
    /// byte followed by a TURN method's type byte (0x03, Allocate) where it
    /// is STUN, so that STUN from the server goes to its client.
    @Test("each first-byte range from a peer and from a TURN server", arguments: [
        (UInt8(0), Route.ice, Route.turn(slot: 2)), (3, .ice, .turn(slot: 2)),
        (4, .drop, .drop), (15, .drop, .drop),
        (16, .drop, .drop), (19, .drop, .drop),  // ZRTP
        (20, .application, .application), (23, .application, .application), (63, .application, .application),
        (64, .drop, .turn(slot: 2)), (79, .drop, .turn(slot: 2)),  // ChannelData 0x4000-0x4FFF
        (80, .drop, .drop), (127, .drop, .drop),  // RFC 8656 §12: 0x5000-0xFFFF reserved
        (128, .drop, .drop), (191, .drop, .drop),  // RTP/RTCP
        (192, .drop, .drop), (255, .drop, .drop),
    ])
    func routesByFirstByte(first: UInt8, fromPeer: Route, fromTURNServer: Route) {
        let datagram = [first, 0x03, 0, 4, 1, 2, 3, 4]
        #expect(DatagramDemultiplexer.route(datagram, fromTURNServer: nil) == fromPeer)
        #expect(DatagramDemultiplexer.route(datagram, fromTURNServer: 2) == fromTURNServer)
    }

    /// A Binding in any class is the STUN gathering's and ICE's even from a
    /// TURN server (one server can be both); TURN's methods from the server
    /// go to its client, from a peer to ICE (which drops what it does not
    /// understand).
    @Test("STUN by method", arguments: [
        (UInt16(0x0001), Route.ice, Route.ice),  // Binding request
        (0x0101, .ice, .ice),  // Binding success
        (0x0111, .ice, .ice),  // Binding error
        (0x0011, .ice, .ice),  // Binding indication
        (0x0103, .ice, .turn(slot: 0)),  // Allocate success
        (0x0113, .ice, .turn(slot: 0)),  // Allocate error
        (0x0104, .ice, .turn(slot: 0)),  // Refresh success
        (0x0108, .ice, .turn(slot: 0)),  // CreatePermission success
        (0x0109, .ice, .turn(slot: 0)),  // ChannelBind success
        (0x0017, .ice, .turn(slot: 0)),  // Data indication
    ])
    func routesSTUNByMethod(type: UInt16, fromPeer: Route, fromTURNServer: Route) {
        let message = Self.stun(type: type)
        #expect(DatagramDemultiplexer.route(message, fromTURNServer: nil) == fromPeer)
        #expect(DatagramDemultiplexer.route(message, fromTURNServer: 0) == fromTURNServer)
    }

    @Test func channelDataGoesToTheClientOfTheServerItCameFrom() throws {
        for channel: UInt16 in [0x4000, 0x4ABC, 0x4FFF] {
            let datagram = try ChannelData(channel: channel, payload: [23, 0xFE, 0xFD, 1]).encode(padded: true)
            #expect(DatagramDemultiplexer.route(datagram, fromTURNServer: 1) == .turn(slot: 1))
            // From a peer (or inside an allocation) ChannelData means nothing.
            #expect(DatagramDemultiplexer.route(datagram, fromTURNServer: nil) == .drop)
        }
    }

    @Test func aDTLSRecordGoesUpWhoeverSentIt() {
        // Content type 23 (application data), DTLS 1.2.
        let record: [UInt8] = [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 0xAA, 0xBB]
        #expect(DatagramDemultiplexer.route(record, fromTURNServer: nil) == .application)
        #expect(DatagramDemultiplexer.route(record, fromTURNServer: 3) == .application)
    }

    @Test func anEmptyDatagramIsDropped() {
        #expect(DatagramDemultiplexer.route([], fromTURNServer: nil) == .drop)
        #expect(DatagramDemultiplexer.route([], fromTURNServer: 0) == .drop)
    }

    /// A one-byte STUN-range datagram from a TURN server is no Binding
    /// (fewer than two bytes), so its client sees it and rejects it.
    @Test func aTruncatedSTUNDatagramFromTheServerGoesToItsClient() {
        #expect(DatagramDemultiplexer.route([0x01], fromTURNServer: 0) == .turn(slot: 0))
        #expect(DatagramDemultiplexer.route([0x01], fromTURNServer: nil) == .ice)
    }
}
