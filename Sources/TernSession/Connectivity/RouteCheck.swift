#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import TernSTUN

/// Whether the kernel takes a datagram to a destination at all, asked before
/// the session socket's first send there.
///
/// SwiftNIO closes a UDP channel when a send fails with anything but
/// EMSGSIZE, EHOSTUNREACH, ECONNREFUSED or ENOMEM, and the session has one
/// socket: a single check to a network with no route (ENETUNREACH), to an
/// IPv6 link-local address without a zone (EINVAL) or to a broadcast address
/// (EACCES) would end ICE for every pair. `connect` on a throwaway socket of
/// the same family runs the kernel's route and address checks without
/// sending anything; a destination it refuses is never written to, and its
/// pairs time out like any unanswered pair.
enum RouteCheck {
    /// How many destinations a session remembers (remote candidates and
    /// servers are bounded far below this by ICE's and TURN's limits).
    static let maxRemembered = 4096

    /// Why no datagram can go to `address`, or nil when the kernel has a
    /// route (or the check itself could not run: the send decides then).
    static func refusal(to address: SocketAddress) -> String? {
        let fd = socket(address.protocolFamily, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let result = address.withSockAddr { connect(fd, $0, socklen_t($1)) }
        guard result != 0 else { return nil }
        let code = errno
        switch code {
        case EINTR, EAGAIN, EINPROGRESS: return nil
        default: return String(cString: strerror(code))
        }
    }
}

/// What one session learned about its destinations: checked once each.
struct RouteCheckCache {
    private var verdicts: [STUNAddress: String?] = [:]

    /// The refusal for `destination`, checking it the first time it is seen.
    mutating func refusal(to destination: STUNAddress, at address: SocketAddress) -> (reason: String?, new: Bool) {
        if let known = verdicts[destination] { return (known, false) }
        if verdicts.count >= RouteCheck.maxRemembered { verdicts.removeAll(keepingCapacity: true) }
        let reason = RouteCheck.refusal(to: address)
        verdicts[destination] = .some(reason)
        return (reason, true)
    }
}
