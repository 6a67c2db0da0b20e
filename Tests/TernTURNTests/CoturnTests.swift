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

    /// Sends `bytes` to a fresh peer socket and to `known` through the relay,
    /// pumping until both arrive; returns the relayed port they came from.
    static func relay(_ client: inout TURNClient, socket: UDPTestSocket, server: UInt16, clock: ContinuousClock.Instant,
                      _ bytes: [UInt8], to peers: [UDPTestSocket]) throws -> Set<UInt16> {
        for peer in peers {
            try client.send(bytes, to: .ipv4(127, 0, 0, 1, port: peer.localPort), now: ContinuousClock.now - clock)
        }
        var from: [UInt16: UInt16] = [:]
        for _ in 0..<60 where from.count < peers.count {
            _ = try pump(&client, socket: socket, server: server, clock: clock, seconds: 0.05) { _ in false }
            for peer in peers where from[peer.localPort] == nil {
                if let (payload, port) = try peer.receive(timeoutMilliseconds: 5), payload == bytes {
                    from[peer.localPort] = port
                }
            }
        }
        #expect(from.count == peers.count, "relayed to \(from.count) of \(peers.count) peers")
        return Set(from.values)
    }

    /// coturn with --stale-nonce=2 replaces the session's nonce on the first
    /// request after it is 2 s old (ns_turn_server.c: check_stun_auth) and
    /// answers it 438 "Stale nonce". Over several rotations the client keeps
    /// one allocation: each new peer's ChannelBind (loopback peers share one
    /// permission) goes through a 438 and a retry, and data flows both ways
    /// with every peer after each.
    @Test func keepsItsAllocationAcrossNonceRotations() async throws {
        let coturn = try await Coturn(secret: Self.secret, extraArguments: ["--stale-nonce=2"])
        let socket = try UDPTestSocket()
        let origin = ContinuousClock.now
        var client = Self.client(server: coturn.port, expiry: Int(Date().timeIntervalSince1970) + 600)
        client.start(now: .zero)
        let allocation = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard case .allocated(let relayed, _, _)? = allocation.last else {
            Issue.record("no allocation: \(allocation) \(client.failure?.reason ?? "")")
            return
        }
        let first = try UDPTestSocket()
        #expect(try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [0], to: [first]) == [relayed.port])
        var peers = [first]
        var events: [TURNEvent] = []
        for round in 1...3 {
            let retriesBefore = client.counters.staleNonceRetries
            // Past the nonce's 2 s (coturn counts whole seconds).
            events += try Self.pump(&client, socket: socket, server: coturn.port, clock: origin, seconds: 3.2) { _ in false }
            let peer = try UDPTestSocket()
            peers.append(peer)
            let ports = try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [UInt8(round)], to: peers)
            #expect(ports == [relayed.port], "round \(round)")
            // The rotated nonce met with a 438 and a retry coturn takes: on the
            // new peer's ChannelBind, or on a request of the pump before it
            // when a loaded machine stretched the round (one per rotation).
            let retries = client.counters.staleNonceRetries - retriesBefore
            #expect(retries >= 1 && retries <= 2, "round \(round): \(retries) retries")
            // And back from every peer, through the permissions just kept.
            for peer in peers { try peer.send([UInt8(round), 0xBB], to: relayed.port) }
            var received = 0
            let back = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
                if case .received(let data, _) = $0, data == [UInt8(round), 0xBB] { received += 1 }
                return received == peers.count
            }
            events += back
            #expect(received == peers.count, "round \(round): \(received) of \(peers.count) came back")
        }
        #expect(client.relayedAddress == relayed)
        #expect(client.counters.reallocations == 0)
        #expect(!events.contains { if case .failed = $0 { true } else if case .allocationLost = $0 { true } else { false } }, "\(events)")
        #expect(!events.contains { if case .permissionFailed = $0 { true } else if case .channelBindFailed = $0 { true } else { false } })
    }

    /// The capture of issue 13 with a real coturn: the session that held the
    /// allocation is gone (here the test ends it with a Refresh of LIFETIME 0
    /// from the client's own 5-tuple; coturn shuts the session down about a
    /// second later). The client's next request reaches a new session: 438
    /// "Wrong nonce", then 400 Bad Request to the authenticated retry (the
    /// same answers as in turn-438-then-400.pcap). The client allocates
    /// afresh and the data flows through the new address.
    @Test func allocatesAfreshWhenCoturnLostTheSession() async throws {
        let coturn = try await Coturn(secret: Self.secret)
        let socket = try UDPTestSocket()
        let origin = ContinuousClock.now
        let expiry = Int(Date().timeIntervalSince1970) + 600
        var client = Self.client(server: coturn.port, expiry: expiry)
        client.start(now: .zero)
        let allocation = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard case .allocated(let relayed, _, _)? = allocation.last else {
            Issue.record("no allocation: \(allocation) \(client.failure?.reason ?? "")")
            return
        }
        let first = try UDPTestSocket()
        #expect(try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [1], to: [first]) == [relayed.port])

        // Let the client's ChannelBind finish, then, from its 5-tuple, ask
        // for the session's nonce (a 401 to an unsigned request) and end the
        // allocation with a signed Refresh of LIFETIME 0.
        _ = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin, seconds: 0.3) { _ in false }
        func ask(_ message: STUNMessage, key: STUNKey? = nil) throws -> STUNMessage? {
            try socket.send(try message.encode(integrity: key, fingerprint: true), to: coturn.port)
            for _ in 0..<20 {
                guard let (bytes, _) = try socket.receive(timeoutMilliseconds: 100) else { continue }
                if let answer = try? STUNMessage.decode(bytes[...]), answer.transactionID == message.transactionID { return answer }
            }
            return nil
        }
        let username = "\(expiry):tern"
        let password = TestCrypto.base64(TestCrypto.hmacSHA1(key: Array(Self.secret.utf8), message: Array(username.utf8)))
        let challenge = try #require(try ask(STUNMessage(.request, .refresh, transactionID: .random(), attributes: [.lifetime(0)])))
        let realm = try #require(challenge.realm)
        let release = STUNMessage(.request, .refresh, transactionID: .random(), attributes: [
            .lifetime(0), .username(username), .realm(realm), .nonce(try #require(challenge.nonce)),
        ])
        let released = try ask(release, key: STUNKey.longTerm(username: username, realm: realm, password: password))
        #expect(released?.messageClass == .successResponse)
        try await Task.sleep(for: .seconds(2))

        // A new peer: ChannelBind -> 438 Wrong nonce -> retry -> 400.
        let second = try UDPTestSocket()
        try client.send([2], to: .ipv4(127, 0, 0, 1, port: second.localPort), now: ContinuousClock.now - origin)
        let events = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard let lost = events.firstIndex(where: { if case .allocationLost = $0 { true } else { false } }),
              case .allocated(let fresh, _, _) = events.last
        else {
            Issue.record("no fresh allocation: \(events) \(client.failure?.reason ?? "")")
            return
        }
        // The request that met the new session names itself: a ChannelBind
        // here (loopback peers share the first one's permission).
        #expect(events[lost] == .allocationLost(
            relayed: relayed, error: .serverRefused(method: .channelBind, code: STUNErrorCode(code: 400, reason: "Bad Request"))),
            "\(events)")
        #expect(fresh != relayed)
        #expect(client.counters.reallocations == 1)
        // Both peers get data from the new relayed address and can answer.
        #expect(try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [3], to: [first, second]) == [fresh.port])
        try first.send([4], to: fresh.port)
        let back = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .received = $0 { true } else { false }
        }
        #expect(back.last == .received(data: [4], from: .ipv4(127, 0, 0, 1, port: first.localPort)))
    }

    /// What makes coturn 4.6.1 drop a session in a real network: a datagram
    /// it is asked to relay cannot be sent (a peer's private host candidate
    /// its host has no route to: ENETUNREACH; here port 0: EINVAL). It marks
    /// the relay socket to be closed (ns_ioalib_engine_impl.c,
    /// send_data_from_ioa_socket_nbh), and its session watchdog, every
    /// --max-allocate-timeout seconds (60 by default), closes the session
    /// ("allocation watchdog determined stale session state"). The client's
    /// next request meets a new session: 438 "Wrong nonce", then 400.
    @Test func allocatesAfreshWhenCoturnDropsTheSessionAfterARelayError() async throws {
        let coturn = try await Coturn(secret: Self.secret, extraArguments: ["--max-allocate-timeout=1"])
        let socket = try UDPTestSocket()
        let origin = ContinuousClock.now
        var client = Self.client(server: coturn.port, expiry: Int(Date().timeIntervalSince1970) + 600)
        client.start(now: .zero)
        let allocation = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard case .allocated(let relayed, _, _)? = allocation.last else {
            Issue.record("no allocation: \(allocation) \(client.failure?.reason ?? "")")
            return
        }
        let peer = try UDPTestSocket()
        #expect(try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [1], to: [peer]) == [relayed.port])
        try client.send([0xEE], to: .ipv4(127, 0, 0, 1, port: 0), now: ContinuousClock.now - origin)
        _ = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin, seconds: 2.5) { _ in false }

        let other = try UDPTestSocket()
        try client.send([2], to: .ipv4(127, 0, 0, 1, port: other.localPort), now: ContinuousClock.now - origin)
        let events = try Self.pump(&client, socket: socket, server: coturn.port, clock: origin) {
            if case .allocated = $0 { true } else { false }
        }
        guard events.contains(where: { if case .allocationLost(relayed, .serverRefused(_, let code)) = $0 { code.code == 400 } else { false } }),
              case .allocated(let fresh, _, _) = events.last
        else {
            Issue.record("no fresh allocation: \(events) \(client.failure?.reason ?? "")")
            return
        }
        #expect(fresh != relayed)
        #expect(try Self.relay(&client, socket: socket, server: coturn.port, clock: origin, [3], to: [peer, other]) == [fresh.port])
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
