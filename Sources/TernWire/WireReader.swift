/// A bounded reader over bytes from the network: every read checks what is
/// left first and throws a `WireError` (where, what, how much was left)
/// instead of reading past the end, and nothing is read by index
/// arithmetic outside it. Integers are big-endian (network order). Models:
/// SwiftNIO's `ByteBuffer.readInteger`, dcSCTP's `BoundedByteReader`.
///
/// Slices it returns share the storage of the bytes it reads: no copies.
/// Offsets (in errors, in `offset`) count from the start of those bytes.
///
/// Built for the packet-rate data path: the struct is frozen and every read
/// is inlinable, so a read compiles to one bounds comparison and one
/// unaligned load in the caller (docs/architecture.md has the SCTP pump's
/// instruction counts before and after).
@frozen
public struct WireReader {
    /// The bytes being read, all of them (read or not).
    public let bytes: ArraySlice<UInt8>
    /// The index in `bytes` of the next byte to read.
    @usableFromInline
    internal var readerIndex: Int

    @inlinable
    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.readerIndex = bytes.startIndex
    }

    @inlinable
    public init(_ bytes: [UInt8]) {
        self.init(bytes[...])
    }

    /// Bytes read so far.
    @inlinable
    public var offset: Int { readerIndex &- bytes.startIndex }

    /// Bytes left to read.
    @inlinable
    public var remaining: Int { bytes.endIndex &- readerIndex }

    @inlinable
    public var isAtEnd: Bool { readerIndex >= bytes.endIndex }

    /// What is left to read, without reading it.
    @inlinable
    public var remainingBytes: ArraySlice<UInt8> { bytes[readerIndex...] }

    @inlinable
    @inline(__always)
    internal func shortOf(_ count: Int) -> WireError {
        WireError(offset: offset, expected: .bytes(count), available: remaining)
    }

    // MARK: - Integers

    /// Reads a big-endian integer of `T`'s width.
    @inlinable
    @inline(__always)
    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.endIndex &- readerIndex >= size else { throw shortOf(size) }
        let start = readerIndex &- bytes.startIndex
        let raw = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start, as: T.self) }
        readerIndex &+= size
        return T(bigEndian: raw)
    }

    @inlinable
    @inline(__always)
    public mutating func readUInt8() throws(WireError) -> UInt8 { try readInteger() }

    @inlinable
    @inline(__always)
    public mutating func readUInt16() throws(WireError) -> UInt16 { try readInteger() }

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
        guard ahead >= 0, bytes.endIndex &- readerIndex &- ahead >= MemoryLayout<T>.size else { return nil }
        let start = readerIndex &- bytes.startIndex &+ ahead
        return T(bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: start, as: T.self) })
    }

    // MARK: - Bytes

    /// The next `count` bytes, as a slice of the read bytes.
    @inlinable
    @inline(__always)
    public mutating func readSlice(count: Int) throws(WireError) -> ArraySlice<UInt8> {
        guard count >= 0, bytes.endIndex &- readerIndex >= count else { throw shortOf(count) }
        let start = readerIndex
        readerIndex &+= count
        return bytes[start..<readerIndex]
    }

    /// A reader over the next `count` bytes (a length-delimited part); its
    /// offsets count from the start of that part.
    @inlinable
    @inline(__always)
    public mutating func readReader(count: Int) throws(WireError) -> WireReader {
        WireReader(try readSlice(count: count))
    }

    /// Everything left; the reader is then at the end.
    @inlinable
    public mutating func readRemaining() -> ArraySlice<UInt8> {
        let start = readerIndex
        readerIndex = bytes.endIndex
        return bytes[start...]
    }

    /// Moves past `count` bytes.
    @inlinable
    @inline(__always)
    public mutating func skip(_ count: Int) throws(WireError) {
        guard count >= 0, bytes.endIndex &- readerIndex >= count else { throw shortOf(count) }
        readerIndex &+= count
    }

    /// Throws unless every byte has been read (no trailing garbage).
    @inlinable
    public func expectEnd() throws(WireError) {
        guard isAtEnd else { throw WireError(offset: offset, expected: .end, available: remaining) }
    }
}
