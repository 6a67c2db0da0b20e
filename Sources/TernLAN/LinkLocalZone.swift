import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv6 link-local address (fe80::/10) names a host only together with the
/// interface it is reached on, its zone (`fe80::1%eth0`): the same address can
/// be on every link. A typed one (`--from`) is checked against this machine's
/// interfaces before anything is sent, so that a wrong or missing zone is a
/// sentence and not "invalid argument" from connect().
public enum LinkLocalZone {
    public enum Problem: Error, Equatable, Sendable {
        /// The zone names no interface here that has a link-local address.
        case unknownInterface(String, known: [String])
        /// No zone, and several interfaces could be meant.
        case ambiguous([String])
        /// No zone, and no interface here has a link-local address.
        case noInterface
    }

    /// `host` ready to use: as given when it is not a link-local IPv6 address
    /// or its zone names one of `interfaces`; with no zone, given the zone of
    /// the only one of `interfaces` (those with a link-local address).
    public static func resolve(_ host: String, interfaces: [String]) throws(Problem) -> String {
        let parts = host.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard isLinkLocal(parts[0]) else { return host }
        if parts.count == 2 {
            guard interfaces.contains(parts[1]) else { throw .unknownInterface(parts[1], known: interfaces) }
            return host
        }
        switch interfaces.count {
        case 0: throw .noInterface
        case 1: return parts[0] + "%" + interfaces[0]
        default: throw .ambiguous(interfaces)
        }
    }

    /// fe80::/10, written as an IPv6 address without a zone.
    public static func isLinkLocal(_ address: String) -> Bool {
        var raw = in6_addr()
        guard inet_pton(AF_INET6, address, &raw) == 1 else { return false }
        let bytes = withUnsafeBytes(of: &raw) { Array($0) }
        return bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80
    }

    /// The names of this machine's interfaces that have a link-local IPv6
    /// address, in the system's order, each once.
    public static func interfaces() -> [String] {
        var names: [String] = []
        for device in (try? System.enumerateDevices()) ?? [] {
            guard case .v6(let address) = device.address, !names.contains(device.name) else { continue }
            var raw = address.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { names.append(device.name) }
        }
        return names
    }
}
