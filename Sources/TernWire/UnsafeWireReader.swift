/// `WireReader`'s reads over bytes that are only valid during a call
/// (`UnsafeRawBufferPointer`): the datagrams SwiftNIO's buffers hand to the
/// DTLS record layer, and the records OpenSSL writes, which are framed
/// without copying them into an array first. The same rules as
/// `WireReader`: every read checks what is left and throws the same
/// `WireError`; slices are views of the same bytes, so neither the reader
/// nor a slice may outlive them (hence "unsafe", as for the pointer itself).
@frozen
public struct UnsafeWireReader {
    /// The bytes being read, all of them (read or not).
    public let bytes: UnsafeRawBufferPointer
    /// The offset in `bytes` of the next byte to read.
    @usableFromInline
    internal var readerIndex: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.readerIndex = 0
    }

    /// Bytes read so far.
    @inlinable
    public var offset: Int { readerIndex }

    /// Bytes left to read.
    @inlinable
    public var remaining: Int { bytes.count &- readerIndex }

    @inlinable
    public var isAtEnd: Bool { readerIndex >= bytes.count }

    @inlinable
    @inline(__always)
    internal func shortOf(_ count: Int) -> WireError {
        WireError(offset: readerIndex, expected: .bytes(count), available: remaining)
    }

    // MARK: - Integers

    /// Reads a big-endian integer of `T`'s width.
    @inlinable
    @inline(__always)
    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count &- readerIndex >= size else { throw shortOf(size) }
        let raw = bytes.loadUnaligned(fromByteOffset: readerIndex, as: T.self)
        readerIndex &+= size
        return T(bigEndian: raw)
    }

    @inlinable
    @inline(__always)
    public mutating func readUInt8() throws(WireError) -> UInt8 { try readInteger() }

    @inlinable
    @inline(__always)
    public mutating func readUInt16() throws(WireError) -> UInt16 { try readInteger() }

    /// A 24-bit big-endian integer (DTLS handshake lengths and offsets).
    @inlinable
    @inline(__always)
    public mutating func readUInt24() throws(WireError) -> UInt32 {
        guard bytes.count &- readerIndex >= 3 else { throw shortOf(3) }
        let high = UInt32(bytes[readerIndex])
        let low = UInt32(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: readerIndex &+ 1, as: UInt16.self)))
        readerIndex &+= 3
        return high << 16 | low
    }

    @inlinable
    @inline(__always)
    public mutating func readUInt32() throws(WireError) -> UInt32 { try readInteger() }

    @inlinable
    @inline(__always)
    public mutating func readUInt64() throws(WireError) -> UInt64 { try readInteger() }

    /// The big-endian integer `ahead` bytes past the read position, without
    /// moving it; nil if it does not fit in what is left.
    @inlinable
    @inline(__always)
    public func peekInteger<T: FixedWidthInteger>(ahead: Int = 0, as: T.Type = T.self) -> T? {
        guard ahead >= 0, bytes.count &- readerIndex &- ahead >= MemoryLayout<T>.size else { return nil }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: readerIndex &+ ahead, as: T.self))
    }

    // MARK: - Bytes

    /// The next `count` bytes, as a view of the read bytes.
    @inlinable
    @inline(__always)
    public mutating func readSlice(count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, bytes.count &- readerIndex >= count else { throw shortOf(count) }
        let start = readerIndex
        readerIndex &+= count
        return UnsafeRawBufferPointer(rebasing: bytes[start..<readerIndex])
    }

    /// A reader over the next `count` bytes (a length-delimited part); its
    /// offsets count from the start of that part.
    @inlinable
    @inline(__always)
    public mutating func readReader(count: Int) throws(WireError) -> UnsafeWireReader {
        UnsafeWireReader(try readSlice(count: count))
    }

    /// Everything left; the reader is then at the end.
    @inlinable
    public mutating func readRemaining() -> UnsafeRawBufferPointer {
        let start = readerIndex
        readerIndex = bytes.count
        return UnsafeRawBufferPointer(rebasing: bytes[start...])
    }

    /// Moves past `count` bytes.
    @inlinable
    @inline(__always)
    public mutating func skip(_ count: Int) throws(WireError) {
        guard count >= 0, bytes.count &- readerIndex >= count else { throw shortOf(count) }
        readerIndex &+= count
    }

    /// Throws unless every byte has been read (no trailing garbage).
    @inlinable
    public func expectEnd() throws(WireError) {
        guard isAtEnd else { throw WireError(offset: readerIndex, expected: .end, available: remaining) }
    }
}
