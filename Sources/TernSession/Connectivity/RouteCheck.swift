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

    /// Why a datagram to `address`'s IP address is refused at the send, or
    /// nil when it leaves: an empty datagram to the discard port (9) from a
    /// throwaway socket. Unlike `refusal(to:)` this sees what only a send
    /// meets, such as a firewall that drops output (EPERM).
    static func sendRefusal(to address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let probe = try? SocketAddress(ipAddress: ip, port: 9) else { return nil }
        if let refused = refusal(to: probe) { return refused }
        let fd = socket(probe.protocolFamily, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard probe.withSockAddr({ connect(fd, $0, socklen_t($1)) }) == 0 else { return nil }
        guard send(fd, nil, 0, Int32(MSG_DONTWAIT)) < 0 else { return nil }
        let code = errno
        switch code {
        case EINTR, EAGAIN, ENOBUFS, ECONNREFUSED: return nil
        default: return String(cString: strerror(code))
        }
    }
}

/// What one session learned about its destinations: each checked before
/// its first datagram; a refusal is checked again after `refusalLifetime`
/// (the route may be back), and after a send error every destination that
/// passed is checked again with a real send (`recheck`).
struct RouteCheckCache {
    /// How long a refusal holds before the destination is checked again.
    static let refusalLifetime: Duration = .seconds(5)

    private struct Verdict {
        var reason: String?
        var at: Duration
        /// Refused by a real send (a firewall), which the route check does not see.
        var bySend = false
    }

    private var verdicts: [STUNAddress: Verdict] = [:]
    /// The kernel's answers (`RouteCheck.refusal`, `RouteCheck.sendRefusal`);
    /// tests stand in for a route that goes away and comes back.
    var routeRefusal: (SocketAddress) -> String? = RouteCheck.refusal
    var sendRefusal: (SocketAddress) -> String? = RouteCheck.sendRefusal

    /// The refusal for `destination`, checking it the first time it is seen
    /// and again once a refusal is older than `refusalLifetime`. `new` is
    /// true for a first check (to log it once).
    mutating func refusal(to destination: STUNAddress, at address: SocketAddress, now: Duration) -> (reason: String?, new: Bool) {
        if let known = verdicts[destination] {
            guard let _ = known.reason, now - known.at >= Self.refusalLifetime else { return (known.reason, false) }
            let reason = routeRefusal(address) ?? (known.bySend ? sendRefusal(address) : nil)
            verdicts[destination] = Verdict(reason: reason, at: now, bySend: known.bySend && reason != nil)
            return (reason, false)
        }
        if verdicts.count >= RouteCheck.maxRemembered { verdicts.removeAll(keepingCapacity: true) }
        let reason = routeRefusal(address)
        verdicts[destination] = Verdict(reason: reason, at: now)
        return (reason, true)
    }

    /// Checks every destination that passed with `check` (a real send);
    /// those it refuses are remembered as refused, and returned.
    mutating func recheck(now: Duration, _ check: (STUNAddress) -> String?) -> [(destination: STUNAddress, reason: String)] {
        var refused: [(destination: STUNAddress, reason: String)] = []
        for (destination, verdict) in verdicts where verdict.reason == nil {
            guard let reason = check(destination) else { continue }
            verdicts[destination] = Verdict(reason: reason, at: now, bySend: true)
            refused.append((destination, reason))
        }
        return refused
    }
}
