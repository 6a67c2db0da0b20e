import TernSTUN

/// Which layer takes a datagram that arrived on the session's one UDP
/// socket (or inside a TURN allocation), from its first byte (RFC 7983 §7,
/// Figure 3) and, for STUN, its method: the connectivity core's
/// demultiplexer, which decides and counts nothing itself.
///
/// - 0-3, STUN (RFC 8489 §5: the two top bits are zero): from a TURN server
///   over UDP, its answers and Data indications go to that server's TURN
///   client, except Binding, which is the STUN gathering's (one server can
///   be both); from anyone else, to the ICE agent.
/// - 20-63, DTLS: the layer above (whether the source is one ICE validated
///   is the core's question, not this one's).
/// - 64-79, TURN ChannelData (RFC 8656 §12: channel numbers 0x4000-0x4FFF,
///   whose first two bits are 0b01): only from a TURN server over UDP, to
///   its client.
/// - Everything else (ZRTP 16-19, RTP/RTCP 128-191, the unassigned ranges,
///   an empty datagram, ChannelData from a peer, anything inside an
///   allocation that is neither STUN nor DTLS): dropped.
enum DatagramDemultiplexer {
    enum Route: Equatable {
        /// To the TURN client of server `slot`.
        case turn(slot: Int)
        /// To the ICE agent.
        case ice
        /// To DTLS, above.
        case application
        case drop
    }

    /// - Parameter turnSlot: the slot of the TURN server over UDP the
    ///   datagram came from, nil if it came from anyone else (or from
    ///   inside an allocation).
    static func route(_ bytes: [UInt8], fromTURNServer turnSlot: Int?) -> Route {
        guard let first = bytes.first else { return .drop }
        let kind = PacketKind.classify(first)
        if let turnSlot, kind == .turnChannelData || (kind == .stun && !STUN.isBinding(bytes)) {
            return .turn(slot: turnSlot)
        }
        switch kind {
        case .stun: return .ice
        case .dtls: return .application
        default: return .drop
        }
    }
}
