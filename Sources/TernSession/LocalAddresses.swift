import NIOCore
import NIOPosix

/// The machine's addresses that can carry host candidates (RFC 8445 §5.1.1.1).
public enum LocalAddresses {
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var interface: String
        /// 4 bytes for IPv4, 16 for IPv6.
        public var ip: [UInt8]
        public var description: String { "\(interface) \(LocalAddresses.text(ip))" }
    }

    /// Every address of every interface that is up, without loopback and
    /// link-local addresses. Loopback is returned only when there is nothing
    /// else, so two processes on one isolated host can still connect.
    public static func usable() throws -> [Address] {
        let all = try System.enumerateDevices().compactMap { device -> Address? in
            device.address.flatMap(bytes(of:)).map { Address(interface: device.name, ip: $0) }
        }
        return select(all)
    }

    /// The selection rule on its own, for tests.
    static func select(_ addresses: [Address]) -> [Address] {
        var seen = Set<[UInt8]>()
        let unique = addresses.filter { !isLinkLocal($0.ip) && seen.insert($0.ip).inserted }
        let outside = unique.filter { !isLoopback($0.ip) }
        return outside.isEmpty ? unique : outside
    }

    static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        default:
            return nil
        }
    }

    static func isLoopback(_ ip: [UInt8]) -> Bool {
        ip.count == 4 ? ip[0] == 127 : ip == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// 169.254/16 and fe80::/10: they need a scope and do not route.
    static func isLinkLocal(_ ip: [UInt8]) -> Bool {
        ip.count == 4 ? ip[0] == 169 && ip[1] == 254 : ip.count == 16 && ip[0] == 0xfe && ip[1] & 0xc0 == 0x80
    }

    static func text(_ ip: [UInt8]) -> String {
        if ip.count == 4 { return ip.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: ip.count, by: 2).map { String(UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
