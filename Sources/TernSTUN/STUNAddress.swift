/// A transport address as STUN carries it: an IPv4 or IPv6 address and a port.
///
/// Deliberately not a socket type: TernSTUN does no I/O. The driver converts
/// from whatever its socket layer uses (NIO's `SocketAddress`, `sockaddr`).
/// The address is stored in integers, so a value can never have a wrong length.
public struct STUNAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Hashable, Sendable {
        /// An IPv4 address in network order: 192.0.2.1 is 0xC000_0201.
        case ipv4(UInt32)
        /// An IPv6 address as its high and low 64 bits, network order.
        case ipv6(UInt64, UInt64)

        /// The family code STUN uses on the wire (RFC 8489 §14.1).
        public var code: UInt8 {
            switch self {
            case .ipv4: return 0x01
            case .ipv6: return 0x02
            }
        }
    }

    public var family: Family
    public var port: UInt16

    public init(family: Family, port: UInt16) {
        self.family = family
        self.port = port
    }

    /// An IPv4 address from its four dotted-quad parts.
    public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> STUNAddress {
        let ip = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        return STUNAddress(family: .ipv4(ip), port: port)
    }

    /// An address from 4 (IPv4) or 16 (IPv6) bytes in network order; nil for
    /// any other count.
    public init?(ipBytes: some Collection<UInt8>, port: UInt16) {
        switch ipBytes.count {
        case 4:
            var ip: UInt32 = 0
            for byte in ipBytes { ip = ip << 8 | UInt32(byte) }
            self.init(family: .ipv4(ip), port: port)
        case 16:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in ipBytes.enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.init(family: .ipv6(high, low), port: port)
        default:
            return nil
        }
    }

    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    public var ipBytes: [UInt8] {
        var bytes: [UInt8] = []
        switch family {
        case .ipv4(let ip):
            bytes.reserveCapacity(4)
            bytes.appendBigEndian(ip)
        case .ipv6(let high, let low):
            bytes.reserveCapacity(16)
            bytes.appendBigEndian(high)
            bytes.appendBigEndian(low)
        }
        return bytes
    }

    /// "192.0.2.1:32853" or "[2001:db8:0:0:0:0:0:1]:32853" (groups are not
    /// compressed; this is for logs, not for parsing).
    public var description: String {
        switch family {
        case .ipv4(let ip):
            return "\(ip >> 24).\(ip >> 16 & 0xFF).\(ip >> 8 & 0xFF).\(ip & 0xFF):\(port)"
        case .ipv6(let high, let low):
            var groups: [String] = []
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(String(high >> UInt64(shift) & 0xFFFF, radix: 16)) }
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(String(low >> UInt64(shift) & 0xFFFF, radix: 16)) }
            return "[\(groups.joined(separator: ":"))]:\(port)"
        }
    }
}
