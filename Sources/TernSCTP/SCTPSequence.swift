/// A 32-bit TSN compared with serial number arithmetic (RFC 1982, as RFC
/// 9260 §1.6 requires): `a < b` when b is ahead of a by less than 2^31.
public struct TSN: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) {
        self.value = value
    }

    public static func < (lhs: TSN, rhs: TSN) -> Bool {
        lhs.value != rhs.value && rhs.value &- lhs.value < 0x8000_0000
    }

    public func advanced(by n: UInt32) -> TSN { TSN(value &+ n) }
    public var next: TSN { advanced(by: 1) }
    public var previous: TSN { TSN(value &- 1) }

    /// How far `other` is ahead of self (0 when equal); only meaningful when `other >= self`.
    public func distance(to other: TSN) -> UInt32 { other.value &- value }

    public var description: String { String(value) }
}

/// A 16-bit stream sequence number (RFC 9260 §3.3.1), with the same
/// serial arithmetic.
public struct SSN: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt16

    public init(_ value: UInt16) {
        self.value = value
    }

    public static func < (lhs: SSN, rhs: SSN) -> Bool {
        lhs.value != rhs.value && rhs.value &- lhs.value < 0x8000
    }

    public var next: SSN { SSN(value &+ 1) }
    public var description: String { String(value) }
}
