import Foundation
import Testing
import TernSTUN
import TernTestSupport
@testable import TernTURN

/// The TURN client against a real coturn (Debian's turnserver) on loopback,
/// through real UDP sockets, with coturn's shared-secret REST credentials.
@Suite(.serialized) struct CoturnTests {
    static let secret = "coturn-test-secret"

    typealias Coturn = CoturnProcess

    /// Pumps a TURN client over a UDP socket until `done` says so or time runs out.
    static func pump(_ client: inout TURNClient, socket: UDPTestSocket, server: UInt16, clock: ContinuousClock.Instant,
                     seconds: Double = 5, until done: (TURNEvent) -> Bool) throws -> [TURNEvent] {
        var events: [TURNEvent] = []
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let now = ContinuousClock.now - clock
            client.advanceTime(now: now)
            while let datagram = client.pollTransmit() { try socket.send(datagram, to: server) }
            while let event = client.pollEvent() {
                events.append(event)
                if done(event) { return events }
            }
            let wait = client.nextDeadline.map { max(0, min(50, Int32(($0 - now) / .milliseconds(1)))) } ?? 50
            if let (bytes, port) = try socket.receive(timeoutMilliseconds: wait), port == server {
                client.handleDatagram(bytes, now: ContinuousClock.now - clock)
            }
        }
        return events
    }

    static func client(server: UInt16, expiry: Int) -> TURNClient {
        let username = "\(expiry):tern"
        let password = TestCrypto.base64(TestCrypto.hmacSHA1(key: Array(secret.utf8), message: Array(username.utf8)))
        return TURNClient(configuration: .init(server: .ipv4(127, 0, 0, 1, port: server), username: username, password: password))
    }

    @Test func allocatesAndRelaysDataBothWaysThroughCoturn() async throws {
        let coturn = try await Coturn(secret: Self.secret)
        let socket = try UDPTestSocket()
        let peer = try UDPTestSocket()
        let origin = ContinuousClock.now
        var client = Self.client(server: coturn.port, expiry: Int(Date().timeIntervalSince1970) + 600)
        client.start(now: .zero)
        let events = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard case .allocated(let relayed, let mapped, let lifetime)? = events.last else {
            Issue.record("no allocation: \(events) \(client.failure?.reason ?? "")")
            return
        }
        #expect(mapped == .ipv4(127, 0, 0, 1, port: socket.localPort))
        #expect(relayed.description.hasPrefix("127.0.0.1:"))
        #expect(lifetime > .seconds(60))

        // Client -> peer through the relay (permission, then a Send indication or ChannelData).
        let peerAddress = STUNAddress.ipv4(127, 0, 0, 1, port: peer.localPort)
        try client.send(Array("hello peer".utf8), to: peerAddress, now: ContinuousClock.now - origin)
        var fromRelay: ([UInt8], UInt16)?
        for _ in 0..<40 where fromRelay == nil {
            _ = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin, seconds: 0.05) { _ in false }
            fromRelay = try peer.receive(timeoutMilliseconds: 10)
        }
        let (payload, relayPort) = try #require(fromRelay)
        #expect(payload == Array("hello peer".utf8))
        #expect(relayPort == relayed.port)

        // Peer -> client: the relay wraps it in a Data indication or ChannelData.
        try peer.send(Array("hello client".utf8), to: relayed.port)
        let back = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .received = $0 { true } else { false }
        }
        guard case .received(let data, let from)? = back.last else { Issue.record("nothing relayed back: \(back)"); return }
        #expect(data == Array("hello client".utf8))
        #expect(from == peerAddress)
    }

    @Test func expiredCredentialsAreRefusedWithAClearReason() async throws {
        let coturn = try await Coturn(secret: Self.secret)
        let socket = try UDPTestSocket()
        var client = Self.client(server: coturn.port, expiry: Int(Date().timeIntervalSince1970) - 60)
        client.start(now: .zero)
        let events = try Self.pump(&client, socket: socket, server: coturn.port, clock: ContinuousClock.now) {
            if case .failed = $0 { true } else { false }
        }
        guard case .failed(let error)? = events.last else { Issue.record("no failure: \(events)"); return }
        #expect(error.reason.contains("refused"), "\(error.reason)")
        #expect(!client.isAllocated)
    }

    /// TURN over TCP (for networks that block outbound UDP): the same
    /// allocation and relaying, the client's stream framing against coturn's.
    @Test func allocatesAndRelaysOverTCP() async throws {
        let coturn = try await Coturn(secret: Self.secret)
        let connection = try TCPTestSocket(port: coturn.port)
        let peer = try UDPTestSocket()
        let origin = ContinuousClock.now
        let username = "\(Int(Date().timeIntervalSince1970) + 600):tern"
        let password = TestCrypto.base64(TestCrypto.hmacSHA1(key: Array(Self.secret.utf8), message: Array(username.utf8)))
        var client = TURNClient(configuration: .init(
            server: .ipv4(127, 0, 0, 1, port: coturn.port), transport: .tcp, username: username, password: password))
        client.start(now: .zero)

        func pump(seconds: Double, until done: (TURNEvent) -> Bool) throws -> [TURNEvent] {
            var events: [TURNEvent] = []
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                client.advanceTime(now: ContinuousClock.now - origin)
                while let bytes = client.pollTransmit() { try connection.send(bytes) }
                while let event = client.pollEvent() {
                    events.append(event)
                    if done(event) { return events }
                }
                guard let bytes = try connection.receive(timeoutMilliseconds: 20) else { break }
                if !bytes.isEmpty { client.handleStreamBytes(bytes, now: ContinuousClock.now - origin) }
            }
            return events
        }

        let allocation = try pump(seconds: 5) { if case .allocated = $0 { true } else { false } }
        guard case .allocated(let relayed, _, _)? = allocation.last else {
            Issue.record("no allocation over TCP: \(allocation) \(client.failure?.reason ?? "")")
            return
        }
        let peerAddress = STUNAddress.ipv4(127, 0, 0, 1, port: peer.localPort)
        try client.send(Array("over tcp".utf8), to: peerAddress, now: ContinuousClock.now - origin)
        var fromRelay: ([UInt8], UInt16)?
        for _ in 0..<40 where fromRelay == nil {
            _ = try pump(seconds: 0.05) { _ in false }
            fromRelay = try peer.receive(timeoutMilliseconds: 10)
        }
        #expect(fromRelay?.0 == Array("over tcp".utf8))
        // Several datagrams back, so ChannelData or Data indications arrive
        // back to back in the stream.
        for index in 0..<5 { try peer.send(Array("back \(index)".utf8), to: relayed.port) }
        var received: [String] = []
        _ = try pump(seconds: 5) { event in
            if case .received(let data, _) = event { received.append(String(decoding: data, as: UTF8.self)) }
            return received.count == 5
        }
        #expect(received == (0..<5).map { "back \($0)" })
    }
}
