/// Bytes from hex digits (test vectors are printed that way).
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8).filter { $0 != UInt8(ascii: " ") }
    var bytes: [UInt8] = []
    var index = 0
    while index + 1 < digits.count {
        bytes.append(nibble(digits[index]) << 4 | nibble(digits[index + 1]))
        index += 2
    }
    return bytes
}

private func nibble(_ digit: UInt8) -> UInt8 {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
    default: return digit - UInt8(ascii: "A") + 10
    }
}

/// One published MAC vector: key, data, the expected MAC (or its first
/// bytes, for the truncation cases).
struct MACVector: Sendable, CustomTestStringConvertible {
    var name: String
    var key: [UInt8]
    var data: [UInt8]
    var mac: [UInt8]
    var testDescription: String { name }

    init(_ name: String, key: [UInt8], data: [UInt8], mac: String) {
        self.name = name
        self.key = key
        self.data = data
        self.mac = hex(mac)
    }
}

/// One published digest vector.
struct DigestVector: Sendable, CustomTestStringConvertible {
    var name: String
    var message: [UInt8]
    var digest: [UInt8]
    var testDescription: String { name }

    init(_ name: String, _ message: [UInt8], _ digest: String) {
        self.name = name
        self.message = message
        self.digest = hex(digest)
    }

    init(_ text: String, _ digest: String) {
        self.init("\"\(text.prefix(24))\"", Array(text.utf8), digest)
    }
}

import Testing
