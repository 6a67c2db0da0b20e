import Testing
@testable import TernDTLS

/// The replay window the own record layer starts with (RFC 6347 §4.1.2.6):
/// exactly the application data records OpenSSL delivered before the
/// hand-over, however they were packed into datagrams.
@Suite("Replay window at the hand-over")
struct HandOverWindowTests {
    /// One record from `side`, as the datagram it sends alone.
    static func record(_ bytes: [UInt8], from side: Pair.Side, in pair: Pair) throws -> [UInt8] {
        try pair.association(side).write(bytes)
        let datagram = try #require(pair.association(side).pollTransmit())
        #expect(RecordHeader.all(in: datagram).count == 1)
        return datagram
    }

    @Test("two records in one datagram before the server's hand-over: both replays refused, an unseen one delivered")
    func serverWindowIsExact() throws {
        let pair = try Pair()
        pair.handshake()
        #expect(!pair.server.ownsRecordLayer)
        _ = pair.takeEvents(.server)
        let first = try Self.record([1], from: .client, in: pair)
        let skipped = try Self.record([2], from: .client, in: pair)
        let third = try Self.record([3], from: .client, in: pair)
        // The server's first application data, two records in one datagram:
        // OpenSSL delivers both, then the server hands over.
        pair.server.handleDatagram(first + third, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([1]), .data([3])])
        #expect(pair.server.ownsRecordLayer)
        // Replays of each: refused by the own layer's window.
        pair.server.handleDatagram(first, now: pair.now)
        pair.server.handleDatagram(third, now: pair.now)
        #expect(pair.takeEvents(.server).isEmpty)
        #expect(pair.server.counters.discardedRecords == 2)
        // The record between them was never seen: it is fresh, once.
        pair.server.handleDatagram(skipped, now: pair.now)
        pair.server.handleDatagram(skipped, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([2])])
        #expect(pair.server.counters.discardedRecords == 3)
        try pair.client.write([4])
        pair.pump()
        #expect(pair.takeEvents(.server) == [.data([4])])
    }

    @Test("data behind the server's Finished in one datagram: the client hands over with it seen")
    func clientWindowHoldsDataBehindTheFinished() throws {
        let pair = try Pair()
        var finalFlight: [UInt8]?
        pair.filter = { from, _, bytes in
            guard from == .server, RecordHeader.all(in: bytes).contains(where: { $0.type == DTLSContentType.changeCipherSpec }) else {
                return true
            }
            finalFlight = bytes
            return false
        }
        pair.handshake()
        let flight = try #require(finalFlight)
        #expect(pair.server.isConnected && !pair.client.isConnected)
        let data = try Self.record([5], from: .server, in: pair)
        pair.client.handleDatagram(flight + data, now: pair.now)
        #expect(pair.client.isConnected)
        #expect(pair.client.ownsRecordLayer)
        #expect(pair.takeEvents(.client).filter(\.isData) == [.data([5])])
        pair.client.handleDatagram(data, now: pair.now)
        #expect(pair.takeEvents(.client).isEmpty, "the replay was refused")
        #expect(pair.client.counters.discardedRecords == 1)
    }

    @Test("data that overtook the server's Finished: delivered once, and the records stay with OpenSSL")
    func clientKeepsOpenSSLWhenARecordIsNotKnown() throws {
        let pair = try Pair()
        var finalFlight: [UInt8]?
        pair.filter = { from, _, bytes in
            guard from == .server, RecordHeader.all(in: bytes).contains(where: { $0.type == DTLSContentType.changeCipherSpec }) else {
                return true
            }
            finalFlight = bytes
            return false
        }
        pair.handshake()
        let flight = try #require(finalFlight)
        let data = try Self.record([6], from: .server, in: pair)
        // OpenSSL holds the early record back and delivers it once the
        // Finished is in: which record that was, it does not say.
        pair.client.handleDatagram(data, now: pair.now)
        pair.client.handleDatagram(flight, now: pair.now)
        #expect(pair.client.isConnected)
        #expect(pair.takeEvents(.client).filter(\.isData) == [.data([6])])
        #expect(!pair.client.ownsRecordLayer)
        pair.client.handleDatagram(data, now: pair.now)
        #expect(pair.takeEvents(.client).isEmpty, "OpenSSL's window refused the replay")
        // Data flows both ways as before.
        try pair.client.write([7])
        try pair.server.write([8])
        pair.pump()
        #expect(pair.received(.server).last == [7])
        #expect(pair.takeEvents(.client).filter(\.isData) == [.data([8])])
    }
}
