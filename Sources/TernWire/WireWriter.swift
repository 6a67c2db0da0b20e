/// The writer for the encoders: big-endian appends to a byte array, length
/// fields set once the value is in place, and padded TLV items in the
/// layouts `PaddedTLVReader` reads. The encoders append to one `[UInt8]`
/// that the data path reuses, so the writer works on the array itself; its
/// names are the ones the codecs' own helpers had, so encoders outside the
/// codecs (cookies, heartbeat information) read as before.
extension Array where Element == UInt8 {
    /// Appends `value` big-endian.
    @inlinable
    @inline(__always)
    public mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    /// Overwrites the bytes at `index` with `value` big-endian (a length
    /// field written as zero before the value it counts). `index` is the
    /// encoder's own, never from the network; out of range traps.
    @inlinable
    @inline(__always)
    public mutating func setBigEndian<T: FixedWidthInteger>(_ value: T, at index: Int) {
        precondition(index >= 0 && index <= count - MemoryLayout<T>.size, "setBigEndian outside the written bytes")
        withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: index, as: T.self) }
    }

    /// Appends `byte` until `count - start` is a multiple of four.
    @inlinable
    @inline(__always)
    public mutating func padToFour(from start: Int, byte: UInt8 = 0) {
        let length = count &- start
        for _ in length..<paddedToFour(length) { append(byte) }
    }

    /// Starts a TLV item: its type and a zero length. Returns where it
    /// starts, for `finishTLV`.
    @inlinable
    public mutating func startTLV(type: UInt16) -> Int {
        let start = count
        appendBigEndian(type)
        appendBigEndian(UInt16(0))
        return start
    }

    /// Finishes the TLV item started at `start`: sets its length in
    /// `format`'s way, then pads it to four bytes with `padding`. Returns
    /// the offset just past the value and before the padding (the end of an
    /// enclosing SCTP chunk whose last item this is, RFC 9260 §3.2). A value
    /// too long for the 16-bit length is removed and throws.
    @inlinable
    @discardableResult
    public mutating func finishTLV(startingAt start: Int, format: TLVFormat, padding: UInt8 = 0) throws(WireError) -> Int {
        let length = format.lengthCountsHeader ? count &- start : count &- start &- 4
        guard length <= Int(UInt16.max) else {
            removeSubrange(start...)
            throw WireError(offset: start, expected: .lengthAtMost(Int(UInt16.max)), available: length)
        }
        setBigEndian(UInt16(length), at: start &+ 2)
        let end = count
        padToFour(from: start, byte: padding)
        return end
    }
}
