import Testing
@testable import TernDTLS

/// `DTLSRecordFraming.forEachRecord`, which hands OpenSSL one record at a
/// time before the hand-over.
@Suite("Record walk")
struct RecordWalkTests {
    static func walk(_ datagram: [UInt8], stopAfter limit: Int = .max) -> [(type: UInt8, length: Int, bytes: [UInt8])] {
        var seen: [(type: UInt8, length: Int, bytes: [UInt8])] = []
        datagram.withUnsafeBytes { raw in
            DTLSRecordFraming.forEachRecord(in: raw) { header, record in
                seen.append((header.type, header.length, Array(record)))
                return seen.count < limit
            }
        }
        return seen
    }

    @Test func visitsEachWholeRecordInOrderWithItsHeader() {
        let records = [
            RecordFramingTests.record(type: 22, epoch: 0, length: 5, fill: 1),
            RecordFramingTests.record(type: 23, length: 40, fill: 2),
            RecordFramingTests.record(type: 21, length: 30, fill: 3),
        ]
        let seen = Self.walk(records.flatMap { $0 })
        #expect(seen.map(\.type) == [22, 23, 21])
        #expect(seen.map(\.length) == [5, 40, 30])
        #expect(seen.map(\.bytes) == records)
    }

    @Test func stopsWhenTheBodySaysSoAndAtAPartialRecord() {
        let records = (0..<3).map { RecordFramingTests.record(length: 30, fill: UInt8($0)) }
        #expect(Self.walk(records.flatMap { $0 }, stopAfter: 2).map(\.bytes) == Array(records.prefix(2)))
        let cut = Array(records.flatMap { $0 }.dropLast(1))
        #expect(Self.walk(cut).map(\.bytes) == Array(records.prefix(2)))
        #expect(Self.walk(Array(cut.prefix(12))).isEmpty)
    }
}
