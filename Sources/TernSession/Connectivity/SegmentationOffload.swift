#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// UDP segmentation offload (GSO, Linux `UDP_SEGMENT`): one write of up to
/// 64 datagrams that the kernel cuts into datagrams of one size (the last
/// may be shorter). On the data path this replaces a sendmmsg entry per
/// datagram (docs/architecture.md, "Measurements behind constants", has its
/// share of the sender's CPU) with one per batch.
///
/// A kernel whose route to the peer goes through a device without checksum
/// offload fails such a write with EIO, and SwiftNIO closes a datagram
/// socket on that error. So the route is probed first, from a throwaway
/// socket: a two-segment write to the peer's discard port (9), which
/// nothing on the peer reads.
enum SegmentationOffload {
    /// Most segments in one write (the kernel's UDP_MAX_SEGMENTS).
    static let maximumSegments = 64
    /// Most bytes in one write: within a UDP length over IPv4 and IPv6.
    static let maximumBytes = 65_000

    /// True if a segmented write towards `peer` goes through.
    static func works(towards peer: SocketAddress) -> Bool {
        #if os(Linux)
        guard System.supportsUDPSegmentationOffload else { return false }
        var probePeer = peer
        do {
            probePeer = try SocketAddress(ipAddress: peer.ipAddress ?? "", port: 9)
        } catch {
            return false
        }
        let family: Int32
        switch probePeer {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: return false
        }
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var segment: Int32 = 8
        guard setsockopt(fd, Int32(IPPROTO_UDP), 103 /* UDP_SEGMENT */, &segment, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            return false
        }
        let connected = probePeer.withSockAddr { address, length in connect(fd, address, socklen_t(length)) }
        guard connected == 0 else { return false }
        let payload = [UInt8](repeating: 0, count: 16)
        let sent = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return sent == payload.count
        #else
        return false
        #endif
    }
}
