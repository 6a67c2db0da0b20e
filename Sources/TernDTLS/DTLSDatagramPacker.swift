/// Cuts the records written to the outbound stream (by OpenSSL through the
/// datagram BIO, or sealed by the own record layer) into datagrams of at
/// most the MTU, and hands them to the driver (RFC 6347 §4.1.1: whole
/// records, several to a datagram when they fit).
///
/// The datagrams waiting for the driver are the first `packedBytes` of the
/// stream, records as written, cut at datagram boundaries without moving
/// them, with their lengths from `head` on: reused storage, no copy or
/// allocation per datagram. A record not yet complete at the end of the
/// stream stays for the next `pack`.
///
/// The stream itself belongs to the `DatagramPipe` (the BIO appends to it);
/// every method takes it as an argument.
struct DTLSDatagramPacker {
    /// Bytes at the front of the stream already cut into datagrams.
    private(set) var packedBytes = 0
    /// The length of each datagram cut, in order.
    private var lengths: [Int] = []
    /// The next datagram to hand out, and where it starts in the stream.
    private var head = 0
    private var offset = 0

    /// Whether a datagram waits for the driver.
    var hasDatagrams: Bool { head < lengths.count }

    /// How many datagrams wait for the driver.
    var waitingDatagrams: Int { lengths.count - head }

    /// Cuts what was written since the last call into datagrams of at most
    /// `mtu` bytes. Returns how many records were longer than `mtu` and went
    /// alone in a datagram of their own (see `DTLSRecordFraming.packDatagrams`).
    mutating func pack(_ stream: [UInt8], mtu: Int) -> Int {
        guard stream.count > packedBytes else { return 0 }
        let start = packedBytes
        var oversized = 0
        let used = stream.withUnsafeBytes { bytes in
            DTLSRecordFraming.packDatagrams(UnsafeRawBufferPointer(rebasing: bytes[start...]), mtu: mtu, oversized: &oversized) { datagram in
                lengths.append(datagram.count)
            }
        }
        packedBytes += used
        return oversized
    }

    /// The next datagram, as a copy; the stream is trimmed once all are out.
    mutating func poll(_ stream: inout [UInt8]) -> [UInt8]? {
        guard head < lengths.count else { return nil }
        let length = lengths[head]
        let datagram = Array(stream[offset..<(offset + length)])
        head += 1
        offset += length
        if head == lengths.count { clear(&stream) }
        return datagram
    }

    /// Every waiting datagram at once: their bytes back to back and the
    /// length of each, valid only during the call. Does not call `body`
    /// when there is nothing to send. Returns how many were handed over.
    @discardableResult
    mutating func drain(_ stream: inout [UInt8], _ body: (_ datagrams: UnsafeRawBufferPointer, _ lengths: ArraySlice<Int>) -> Void) -> Int {
        guard head < lengths.count else { return 0 }
        let count = lengths.count - head
        stream.withUnsafeBytes { bytes in
            body(UnsafeRawBufferPointer(rebasing: bytes[offset..<packedBytes]), lengths[head...])
        }
        clear(&stream)
        return count
    }

    /// Drops the datagrams handed out from the stream; a record OpenSSL has
    /// not finished writing stays.
    private mutating func clear(_ stream: inout [UInt8]) {
        if packedBytes == stream.count {
            stream.removeAll(keepingCapacity: true)
        } else {
            stream.removeFirst(packedBytes)
        }
        packedBytes = 0
        lengths.removeAll(keepingCapacity: true)
        head = 0
        offset = 0
    }
}
