import NIOCore

/// The unit the relay's per-address limits count in: one IPv4 address, or
/// one IPv6 /64 (a single host or home network is usually given a whole /64,
/// so counting full IPv6 addresses would make those limits meaningless).
/// IPv4-mapped IPv6 addresses count as their IPv4 address.
public struct AddressKey: Hashable, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ text: String) {
        self.description = text
    }

    public init(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4):
            self.description = Self.dotted(withUnsafeBytes(of: v4.address.sin_addr.s_addr) { Array($0) })
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                self.description = Self.dotted(Array(bytes[12...]))
            } else {
                let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                self.description = groups.joined(separator: ":") + "::/64"
            }
        default:
            self.description = "unknown"
        }
    }

    private static func dotted(_ bytes: [UInt8]) -> String {
        bytes.prefix(4).map(String.init).joined(separator: ".")
    }
}
