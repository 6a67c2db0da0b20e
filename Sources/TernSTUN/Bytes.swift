// Big-endian helpers for the codec. Reads take offsets relative to the start
// of a slice and are only called after the caller has checked the bounds; a
// missed check traps on Array's own bounds check rather than reading memory.

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            append(UInt8(truncatingIfNeeded: value >> T(shift)))
            shift -= 8
        }
    }

    /// Overwrites two bytes at `offset` with `value`, big-endian.
    @inline(__always)
    mutating func setBigEndian(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// Appends `count` copies of `byte`.
    @inline(__always)
    mutating func appendPadding(_ count: Int, byte: UInt8) {
        for _ in 0..<count { append(byte) }
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
}

/// Rounds up to the next multiple of four: STUN attributes and stream-framed
/// ChannelData are padded to 32-bit boundaries (RFC 8489 §14, RFC 8656 §12.5).
@inline(__always)
func paddedToFour(_ length: Int) -> Int {
    (length + 3) & ~3
}
