/// What a datagram on a multiplexed UDP socket is, from its first byte
/// (RFC 7983 §7, as used by WebRTC: STUN, DTLS, TURN ChannelData, RTP/RTCP
/// and ZRTP share one port).
public enum PacketKind: Hashable, Sendable {
    /// 0-3 (RFC 7983 §7).
    case stun
    /// 16-19.
    case zrtp
    /// 20-63.
    case dtls
    /// 64-79 (RFC 7983 §7; RFC 8656 §12).
    case turnChannelData
    /// 128-191.
    case rtpOrRTCP
    /// Anything else: drop it.
    case unknown

    /// RFC 7983 §7, Figure 3.
    @inlinable
    public static func classify(_ firstByte: UInt8) -> PacketKind {
        switch firstByte {
        case 0...3: return .stun
        case 16...19: return .zrtp
        case 20...63: return .dtls
        case 64...79: return .turnChannelData
        case 128...191: return .rtpOrRTCP
        default: return .unknown
        }
    }
}
