#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// ECN on the session's UDP socket (RFC 3168 §5; RFC 8311 for its use by
/// transports over UDP): which socket options read the ECN field of arriving
/// datagrams, and which mark the ones sent ECT(0).
///
/// The socket is dual-stack: an IPv4 datagram on it (an IPv4-mapped peer)
/// takes the IPv4 options (IP_TOS, IP_RECVTOS), an IPv6 one the IPv6 options
/// (IPV6_TCLASS, IPV6_RECVTCLASS), so both are set. SwiftNIO's own
/// `explicitCongestionNotification` option sets only the socket family's,
/// and its per-write ECN metadata only the family's control message, which
/// Linux ignores for an IPv4-mapped destination: hence the socket options.
///
/// Known limit: SwiftNIO leaves 64 bytes of control messages per datagram
/// read. A GRO aggregate uses 24 for its segment size and 40 for the packet
/// information ICE needs, so its ECN field is cut off (MSG_CTRUNC) and reads
/// as not-ECT: a CE mark on a datagram the kernel merged with others is not
/// seen. Datagrams read one by one (a paced sender behind a bottleneck) keep it.
enum ExplicitCongestion {
    /// The IP header's ECN bits for ECT(0) (RFC 3168 §5).
    static let ect0: CInt = 0x02

    static let receiveTOS = ChannelOptions.Types.SocketOption(level: .ip, name: NIOBSDSocket.Option(rawValue: CInt(IP_RECVTOS)))
    static let receiveTrafficClass = ChannelOptions.Types.SocketOption(
        level: .ipv6, name: NIOBSDSocket.Option(rawValue: CInt(IPV6_RECVTCLASS)))
    static let sendTOS = ChannelOptions.Types.SocketOption(level: .ip, name: NIOBSDSocket.Option(rawValue: CInt(IP_TOS)))
    static let sendTrafficClass = ChannelOptions.Types.SocketOption(level: .ipv6, name: NIOBSDSocket.Option(rawValue: CInt(IPV6_TCLASS)))

    /// Marks what the socket sends ECT(0), or nothing (the other bits of
    /// the byte, DSCP, stay zero as tern never sets them).
    static func setMarking(_ on: Bool, options: NIOSynchronousChannelOptions, dualStack: Bool) throws {
        let value = Int(on ? ect0 : 0)
        try options.setOption(sendTOS, value: value)
        if dualStack { try options.setOption(sendTrafficClass, value: value) }
    }
}
