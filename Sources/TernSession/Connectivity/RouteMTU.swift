#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The MTU of the kernel's route towards a peer: what a datagram to it may
/// carry before this host would fragment it. Asked of a throwaway UDP
/// socket connected to the peer (IP_MTU, IPV6_MTU); nothing is sent. The
/// route, not the interface of the local address: traffic to this host's
/// own address goes over loopback whatever interface holds the address.
enum RouteMTU {
    static func towards(_ peer: SocketAddress) -> Int? {
        #if os(Linux)
        let family: Int32, level: Int32, option: Int32
        switch peer {
        case .v4: (family, level, option) = (AF_INET, Int32(IPPROTO_IP), 14 /* IP_MTU */)
        case .v6: (family, level, option) = (AF_INET6, Int32(IPPROTO_IPV6), 24 /* IPV6_MTU */)
        default: return nil
        }
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let connected = peer.withSockAddr { address, length in connect(fd, address, socklen_t(length)) }
        guard connected == 0 else { return nil }
        var mtu: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, option, &mtu, &length) == 0, mtu >= 68 else { return nil }
        return Int(mtu)
        #else
        return nil
        #endif
    }
}
