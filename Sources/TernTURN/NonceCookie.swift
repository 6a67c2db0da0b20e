import TernWire

/// The nonce cookie of RFC 8489 §9.2: a NONCE that starts with "obMatJos2"
/// carries 24 STUN Security Feature bits in the four base64 characters that
/// follow (RFC 8489 §9.2.1, §18.1; bit 0 is the rightmost, erratum 6290).
///
/// coturn 4.6.1 sends no cookie: its nonces are 16 hexadecimal digits
/// (ns_turn_server.c, check_stun_auth). A server that sends one and sets
/// "Password algorithms" wants PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM
/// in every request (RFC 8489 §9.2.4).
enum NonceCookie {
    static let prefix: [UInt8] = Array("obMatJos2".utf8)
    /// RFC 8489 §18.1: bit 0, "Password algorithms".
    static let passwordAlgorithmsBit: UInt32 = 1 << 0
    /// RFC 8489 §18.5.1.1: MD5, the only algorithm this client derives keys with.
    static let md5: UInt16 = 0x0001
    /// PASSWORD-ALGORITHM naming MD5: the algorithm, no parameters (RFC 8489 §14.12).
    static let md5Algorithm: [UInt8] = [0x00, 0x01, 0x00, 0x00]

    /// The security feature bits, or nil when the nonce carries no cookie
    /// (or one whose four characters are not base64).
    static func features(of nonce: String) -> UInt32? {
        let bytes = Array(nonce.utf8.prefix(prefix.count + 4))
        guard bytes.count == prefix.count + 4, bytes.starts(with: prefix) else { return nil }
        var value: UInt32 = 0
        for byte in bytes.dropFirst(prefix.count) {
            guard let sextet = base64Digit(byte) else { return nil }
            value = value << 6 | UInt32(sextet)
        }
        return value
    }

    /// Whether a PASSWORD-ALGORITHMS value (RFC 8489 §14.11: entries of
    /// algorithm, parameters length and parameters padded to four bytes,
    /// STUN's attribute layout) lists MD5. A malformed list lists nothing.
    static func offersMD5(_ value: [UInt8]) -> Bool {
        var entries = PaddedTLVReader(value[...], format: .stun)
        var offered = false
        do {
            while let entry = try entries.next() {
                if entry.type == md5 { offered = true }
            }
        } catch {
            return false
        }
        return offered
    }

    private static func base64Digit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
