import TernSTUN

/// Addresses a peer may name in a candidate that no check can be sent to:
/// the unspecified address, multicast groups and IPv4's limited broadcast
/// (RFC 8445 §5.1.1.1 gathers none of them; a peer that signals one is
/// wrong or hostile). Such a candidate is refused when it is added, so it
/// never becomes a pair.
extension STUNAddress {
    /// Why no check can go to this address, or nil when one can.
    public var unsendableReason: String? {
        switch family {
        case .ipv4(let ip):
            return Self.unsendableIPv4(ip)
        case .ipv6(let high, let low):
            if high == 0 && low == 0 { return "the unspecified address" }
            if high >> 56 == 0xff { return "a multicast address" }
            // An IPv4 address in IPv6 form (::ffff:a.b.c.d) follows IPv4's rules.
            if high == 0 && low >> 32 == 0xffff { return Self.unsendableIPv4(UInt32(truncatingIfNeeded: low)) }
            return nil
        }
    }

    private static func unsendableIPv4(_ ip: UInt32) -> String? {
        if ip >> 24 == 0 { return "an address of 0.0.0.0/8 (this host, unspecified)" }
        if ip >> 28 == 0xe { return "a multicast address" }
        if ip == 0xffff_ffff { return "the broadcast address" }
        return nil
    }
}
