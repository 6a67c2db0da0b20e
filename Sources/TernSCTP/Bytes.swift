// Big-endian helpers for the codec. Reads take offsets relative to the start
// of a slice and are only called after the caller has checked the bounds; a
// missed check traps on ArraySlice's own bounds check rather than reading
// memory it should not.

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    /// Overwrites two bytes at `offset` with `value`, big-endian.
    @inline(__always)
    mutating func setBigEndian(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// Appends zero bytes until `count - origin` is a multiple of four.
    @inline(__always)
    mutating func padToFour(from origin: Int) {
        let length = count - origin
        for _ in length..<paddedToFour(length) { append(0) }
    }
}

extension ArraySlice where Element == UInt8 {
    @inline(__always)
    func u8(at offset: Int) -> UInt8 {
        self[startIndex + offset]
    }

    @inline(__always)
    func u16(at offset: Int) -> UInt16 {
        UInt16(self[startIndex + offset]) << 8 | UInt16(self[startIndex + offset + 1])
    }

    @inline(__always)
    func u32(at offset: Int) -> UInt32 {
        UInt32(u16(at: offset)) << 16 | UInt32(u16(at: offset + 2))
    }

    @inline(__always)
    func u64(at offset: Int) -> UInt64 {
        UInt64(u32(at: offset)) << 32 | UInt64(u32(at: offset + 4))
    }

    /// The sub-slice `[offset, offset + count)` relative to the start.
    @inline(__always)
    func bytes(at offset: Int, count: Int) -> ArraySlice<UInt8> {
        self[(startIndex + offset)..<(startIndex + offset + count)]
    }

    /// The sub-slice from `offset` (relative to the start) to the end.
    @inline(__always)
    func bytes(from offset: Int) -> ArraySlice<UInt8> {
        self[(startIndex + offset)...]
    }
}

/// Rounds up to the next multiple of four: chunks, parameters and error
/// causes are padded to 32-bit boundaries (RFC 9260 §3.2, §3.2.1).
@inline(__always)
func paddedToFour(_ length: Int) -> Int {
    (length + 3) & ~3
}
