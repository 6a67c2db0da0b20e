import TernSTUN

/// Textual IP addresses as SDP carries them (RFC 8839 §5.1 `connection-address`):
/// dotted-quad IPv4 (RFC 4566 `IP4-address`) and IPv6 in the forms of
/// RFC 4291 §2.2, formatted canonically (RFC 5952). Works on ASCII bytes, with
/// no Foundation and no `inet_pton`, so that parsing cannot depend on the platform.
enum IPAddressText {
    /// An IPv4 or IPv6 address, or nil if `text` is neither.
    static func parse(_ text: ArraySlice<UInt8>) -> STUNAddress.Family? {
        if text.contains(UInt8(ascii: ":")) { return parseIPv6(text) }
        return parseIPv4(text).map { .ipv4($0) }
    }

    /// Four decimal parts 0-255, no leading zeros (which some parsers read as octal).
    static func parseIPv4(_ text: ArraySlice<UInt8>) -> UInt32? {
        guard text.count >= 7, text.count <= 15 else { return nil }
        var value: UInt32 = 0
        var parts = 0
        for part in text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard let number = decimal(part, maxDigits: 3), number <= 255 else { return nil }
            guard part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            value = value << 8 | UInt32(number)
            parts += 1
        }
        return parts == 4 ? value : nil
    }

    /// RFC 4291 §2.2: eight groups of 1-4 hex digits, one `::` standing for
    /// one or more zero groups, optionally ending in a dotted-quad IPv4 address.
    /// Zone identifiers (`%eth0`) are not accepted.
    static func parseIPv6(_ text: ArraySlice<UInt8>) -> STUNAddress.Family? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        let colon = UInt8(ascii: ":")

        var index = text.startIndex
        if text[index] == colon {
            // Only "::" may start an address.
            guard text[text.index(after: index)] == colon else { return nil }
            sawDoubleColon = true
            index = text.index(index, offsetBy: 2)
            if index == text.endIndex { return .ipv6(0, 0) }
        }
        while index < text.endIndex {
            var end = index
            while end < text.endIndex, text[end] != colon { end += 1 }
            let group = text[index..<end]
            if group.contains(UInt8(ascii: ".")) {
                // An embedded IPv4 address must be the last thing.
                guard end == text.endIndex, let ipv4 = parseIPv4(group) else { return nil }
                let parts = [UInt16(truncatingIfNeeded: ipv4 >> 16), UInt16(truncatingIfNeeded: ipv4)]
                if sawDoubleColon { tail += parts } else { head += parts }
                index = end
                break
            }
            guard let value = hexGroup(group) else { return nil }
            if sawDoubleColon { tail.append(value) } else { head.append(value) }
            if end == text.endIndex {
                index = end
                break
            }
            // `end` is a colon: is it "::"?
            let next = text.index(after: end)
            if next < text.endIndex, text[next] == colon {
                guard !sawDoubleColon else { return nil }
                sawDoubleColon = true
                index = text.index(after: next)
                if index == text.endIndex { break }
            } else {
                guard next < text.endIndex else { return nil }  // a trailing single colon
                index = next
            }
        }
        let count = head.count + tail.count
        if sawDoubleColon {
            guard count <= 7 else { return nil }
        } else {
            guard count == 8 else { return nil }
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, group) in groups.enumerated() {
            if i < 4 { high = high << 16 | UInt64(group) } else { low = low << 16 | UInt64(group) }
        }
        return .ipv6(high, low)
    }

    /// The RFC 5952 §4 text: lower-case hex, no leading zeros, the longest run
    /// of two or more zero groups (the first one on a tie) as `::`.
    static func format(_ family: STUNAddress.Family) -> String {
        switch family {
        case .ipv4(let ip):
            return "\(ip >> 24).\(ip >> 16 & 0xFF).\(ip >> 8 & 0xFF).\(ip & 0xFF)"
        case .ipv6(let high, let low):
            var groups: [UInt16] = []
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: high >> UInt64(shift))) }
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: low >> UInt64(shift))) }
            var bestStart = -1
            var bestLength = 0
            var runStart = -1
            for i in 0...8 {
                if i < 8, groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength {
                        bestStart = runStart
                        bestLength = i - runStart
                    }
                    runStart = -1
                }
            }
            func hexText(_ range: Range<Int>) -> String {
                range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
            }
            guard bestLength >= 2 else { return hexText(0..<8) }
            return hexText(0..<bestStart) + "::" + hexText((bestStart + bestLength)..<8)
        }
    }

    /// A host name (RFC 1123 §2.1 labels: letters, digits, hyphens; at most 253
    /// bytes) such as an mDNS name "1f4712db-ea17-4bcf-a596-105139dfd8bf.local".
    static func isHostname(_ text: ArraySlice<UInt8>) -> Bool {
        guard !text.isEmpty, text.count <= 253 else { return false }
        var sawLetter = false
        for label in text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else {
                return false
            }
            for byte in label {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                    sawLetter = true
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                    break
                default:
                    return false
                }
            }
        }
        // All digits and dots would be a malformed IPv4 address, not a name.
        return sawLetter
    }

    /// True for IPv6 link-local unicast, fe80::/10 (RFC 4291 §2.5.6).
    static func isLinkLocal(_ family: STUNAddress.Family) -> Bool {
        if case .ipv6(let high, _) = family { return high >> 54 == 0x3FA }
        return false
    }

    /// An unsigned decimal with 1...maxDigits digits.
    static func decimal(_ text: ArraySlice<UInt8>, maxDigits: Int) -> UInt64? {
        guard !text.isEmpty, text.count <= maxDigits else { return nil }
        var value: UInt64 = 0
        for byte in text {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func hexGroup(_ text: ArraySlice<UInt8>) -> UInt16? {
        guard (1...4).contains(text.count) else { return nil }
        var value: UInt16 = 0
        for byte in text {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }
}
