import Testing
@testable import TernDTLS

/// `DTLSDatagramPacker`: the records written cut into datagrams of at most
/// the MTU (RFC 6347 §4.1.1), handed out one by one or all at once, with a
/// record not yet complete kept for later.
@Suite("Datagram packer")
struct DatagramPackerTests {
    static func record(_ length: Int, fill: UInt8) -> [UInt8] {
        RecordFramingTests.record(length: length, fill: fill)
    }

    @Test("records are packed whole, several to a datagram while they fit the MTU")
    func packsWholeRecordsUpToTheMTU() {
        // 13 + 487 = 500 bytes a record: two fit 1200, a third does not.
        let records = (0..<5).map { Self.record(487, fill: UInt8($0)) }
        var stream = records.flatMap { $0 }
        var packer = DTLSDatagramPacker()
        #expect(packer.pack(stream, mtu: 1200) == 0)
        #expect(packer.waitingDatagrams == 3)
        var datagrams: [[UInt8]] = []
        while let datagram = packer.poll(&stream) { datagrams.append(datagram) }
        #expect(datagrams == [records[0] + records[1], records[2] + records[3], records[4]])
        #expect(stream.isEmpty, "the stream is emptied once every datagram is out")
        #expect(!packer.hasDatagrams)
    }

    @Test("drain hands every datagram over at once, back to back, with their lengths")
    func drainHandsEverythingOverAtOnce() {
        let records = (0..<3).map { Self.record(587, fill: UInt8($0)) }
        var stream = records.flatMap { $0 }
        var packer = DTLSDatagramPacker()
        _ = packer.pack(stream, mtu: 1200)
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        let count = packer.drain(&stream) { datagrams, each in
            bytes = Array(datagrams)
            lengths = Array(each)
        }
        #expect(count == 2)
        #expect(lengths == [1200, 600])
        #expect(bytes == records.flatMap { $0 })
        #expect(stream.isEmpty)
        #expect(packer.drain(&stream) { _, _ in Issue.record("nothing is left to drain") } == 0)
    }

    @Test("a record not yet complete stays in the stream for the next pack")
    func partialRecordStays() {
        let whole = Self.record(100, fill: 1)
        let next = Self.record(100, fill: 2)
        var stream = whole + next.prefix(50)
        var packer = DTLSDatagramPacker()
        _ = packer.pack(stream, mtu: 1200)
        #expect(packer.packedBytes == whole.count)
        #expect(packer.poll(&stream) == whole)
        #expect(stream == Array(next.prefix(50)), "the partial record is moved to the front")
        stream += next.dropFirst(50)
        _ = packer.pack(stream, mtu: 1200)
        #expect(packer.poll(&stream) == next)
        #expect(stream.isEmpty)
    }

    @Test("records written after a pack join the datagrams of the next one")
    func laterRecordsArePackedLater() {
        var stream = Self.record(100, fill: 1)
        var packer = DTLSDatagramPacker()
        _ = packer.pack(stream, mtu: 1200)
        stream += Self.record(100, fill: 2)
        _ = packer.pack(stream, mtu: 1200)
        #expect(packer.waitingDatagrams == 2, "a datagram once cut is not reopened")
        #expect(packer.poll(&stream) == Self.record(100, fill: 1))
        #expect(packer.poll(&stream) == Self.record(100, fill: 2))
        #expect(packer.poll(&stream) == nil)
    }

    @Test("a record longer than the MTU goes alone and is counted")
    func oversizedRecordGoesAlone() {
        let small = Self.record(100, fill: 1)
        let large = Self.record(1300, fill: 2)
        var stream = small + large + small
        var packer = DTLSDatagramPacker()
        #expect(packer.pack(stream, mtu: 1200) == 1)
        #expect(packer.poll(&stream) == small)
        #expect(packer.poll(&stream) == large)
        #expect(packer.poll(&stream) == small)
    }
}
