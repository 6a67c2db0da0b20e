import Foundation
import NIOConcurrencyHelpers
import Testing
import TernICE
import TernPairing
import TernRelay
import TernRendezvous
import TernTestSupport
import TernTURN
@testable import TernSession

/// Two connectivity drivers in one process, each with its own real UDP
/// socket (and TCP connections to coturn), signalling to each other
/// directly instead of through a mailbox.
@Suite(.serialized) struct ConnectivityDriverTests {
    /// Delivers one driver's signals to the other, in order, and remembers them.
    final class Wire: Sendable {
        let sent = NIOLockedValueBox<[PeerMessage]>([])
        let target = NIOLockedValueBox<ConnectivityDriver?>(nil)
        let stream: AsyncStream<PeerMessage>
        let input: AsyncStream<PeerMessage>.Continuation

        init() {
            (stream, input) = AsyncStream<PeerMessage>.makeStream()
        }

        func signal(_ message: PeerMessage) {
            sent.withLockedValue { $0.append(message) }
            input.yield(message)
        }

        /// Forwards the signals to `driver` until the stream ends.
        func deliver(to driver: ConnectivityDriver) -> Task<Void, Never> {
            let stream = self.stream
            return Task {
                for await message in stream { await driver.handle(message) }
            }
        }
    }

    static func credentials(secret: String, uris: [String], expiresIn: TimeInterval = 600) -> TURNCredentials {
        let minter = TURNCredentialMinter(TURNConfiguration(uris: uris, secret: Array(secret.utf8), ttl: 600))
        return minter.mint(now: Date().addingTimeInterval(expiresIn - 600))
    }

    /// Starts both sides, wires their signals, waits for both paths.
    static func connect(
        offerer: ConnectivityOptions, answerer: ConnectivityOptions
    ) async throws -> (ConnectedPath, ConnectedPath, Wire, Wire) {
        let toAnswerer = Wire()
        let toOfferer = Wire()
        let a = try await ConnectivityDriver.start(options: offerer, signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(options: answerer, signal: { toOfferer.signal($0) })
        let forwardA = toAnswerer.deliver(to: b)
        let forwardB = toOfferer.deliver(to: a)
        defer {
            toAnswerer.input.finish()
            toOfferer.input.finish()
            forwardA.cancel()
            forwardB.cancel()
        }
        async let pathA = a.connected()
        async let pathB = b.connected()
        let paths = try await (pathA, pathB)
        await a.close()
        await b.close()
        return (paths.0, paths.1, toAnswerer, toOfferer)
    }

    static func candidateTypes(_ wire: Wire) -> [String] {
        wire.sent.withLockedValue { messages in
            messages.compactMap { message in
                guard case .candidate(_, let line) = message, case .candidate(let candidate)? = try? ICECandidate.parse(line) else { return nil }
                return candidate.type.rawValue
            }
        }
    }

    @Test func twoDriversConnectDirectlyOverHostCandidates() async throws {
        let (a, b, toAnswerer, toOfferer) = try await Self.connect(
            offerer: ConnectivityOptions(role: .controlling, stun: [], turn: nil),
            answerer: ConnectivityOptions(role: .controlled, stun: [], turn: nil))
        #expect(!a.isRelayed && !b.isRelayed)
        // b's host candidate, even when b's first check reached a before the
        // candidate did (a busy machine): it was peer reflexive until then.
        #expect(a.pair.local.type == .host && a.pair.remote.type == .host, "\(a.pair.remote)")
        // Each side's socket: with an IPv4 and an IPv6 address, a side may
        // return on the first pair that worked while the other already
        // moved to a better one of the other family (a `path` change
        // follows), so the ports are compared, not the addresses.
        #expect(a.pair.remote.address.port == b.pair.local.address.port)
        #expect(a.pair.local.address.port == b.pair.remote.address.port)
        #expect(a.roundTrip != nil && a.roundTrip! < .seconds(1))
        // Signalling order: the description first, then candidates, end-of-candidates, connected.
        for wire in [toAnswerer, toOfferer] {
            let messages = wire.sent.withLockedValue { $0 }
            guard case .sessionDescription? = messages.first else {
                Issue.record("the first signal is not the description: \(messages)")
                continue
            }
            #expect(messages.contains(.endOfCandidates))
            #expect(messages.contains(.connected))
        }
        let offer = toAnswerer.sent.withLockedValue { $0.first }
        if case .sessionDescription(let kind, let sdp)? = offer {
            #expect(kind == .offer)
            #expect(sdp.contains("a=ice-ufrag:") && sdp.contains("a=ice-pwd:") && sdp.contains("a=setup:actpass"))
        }
        #expect(Self.candidateTypes(toAnswerer).allSatisfy { $0 == "host" })
    }

    @Test func forceRelayConnectsThroughCoturnOverUDPAndSignalsNoOwnAddress() async throws {
        let coturn = try await CoturnProcess()
        let turn = Self.credentials(secret: coturn.secret, uris: [coturn.uri()])
        let (a, b, toAnswerer, toOfferer) = try await Self.connect(
            offerer: ConnectivityOptions(role: .controlling, stun: [], turn: turn, forceRelay: true),
            answerer: ConnectivityOptions(role: .controlled, stun: [], turn: turn, forceRelay: true))
        #expect(a.isRelayed && b.isRelayed)
        #expect(a.pair.local.type == .relayed && b.pair.local.type == .relayed)
        #expect(a.relayTransport == .udp && b.relayTransport == .udp)
        #expect(Self.candidateTypes(toAnswerer) == ["relay"])
        #expect(Self.candidateTypes(toOfferer) == ["relay"])
    }

    @Test func turnOverTCPCarriesThePathWhenItIsTheOnlyServer() async throws {
        let coturn = try await CoturnProcess()
        let turn = Self.credentials(secret: coturn.secret, uris: [coturn.uri(tcp: true)])
        let (a, b, _, _) = try await Self.connect(
            offerer: ConnectivityOptions(role: .controlling, stun: [], turn: turn, forceRelay: true),
            answerer: ConnectivityOptions(role: .controlled, stun: [], turn: turn, forceRelay: true))
        #expect(a.relayTransport == .tcp && b.relayTransport == .tcp)
        #expect(a.pair.local.type == .relayed && b.pair.local.type == .relayed)
    }

    @Test func refusedTURNCredentialsFailWithAReasonNamingThem() async throws {
        let coturn = try await CoturnProcess()
        let expired = Self.credentials(secret: coturn.secret, uris: [coturn.uri()], expiresIn: -60)
        let toAnswerer = Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: expired, forceRelay: true, failureTimeout: .seconds(1)),
            signal: { toAnswerer.signal($0) })
        // A peer that answers with credentials and nothing else.
        await a.handle(.sessionDescription(kind: .answer, sdp: Self.bareAnswer))
        await a.handle(.endOfCandidates)
        await #expect {
            _ = try await a.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why.contains("credentials were refused") && why.contains("local candidates: none")
        }
        await a.close()
    }

    @Test func aSilentPeerEndsInNoPathNamingTheCandidatesTried() async throws {
        let toAnswerer = Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil, failureTimeout: .seconds(1)),
            signal: { toAnswerer.signal($0) })
        await a.handle(.sessionDescription(kind: .answer, sdp: Self.bareAnswer))
        // Nobody listens on the discard port of loopback.
        await a.handle(.candidate(mid: "0", candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"))
        await a.handle(.endOfCandidates)
        let started = ContinuousClock.now
        await #expect {
            _ = try await a.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why.contains("local candidates: host") && why.contains("remote candidates: host")
                && why.contains("the relay offered no TURN server")
        }
        #expect(ContinuousClock.now - started < .seconds(15))
        await a.close()
    }

    @Test func forceRelayWithoutATURNServerIsRefusedAtOnce() async throws {
        await #expect {
            _ = try await ConnectivityDriver.start(
                options: ConnectivityOptions(role: .controlling, stun: [], turn: nil, forceRelay: true), signal: { _ in })
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why.contains("--force-relay")
        }
    }

    @Test func aMalformedPeerDescriptionFailsCleanly() async throws {
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil), signal: { _ in })
        await a.handle(.sessionDescription(kind: .answer, sdp: "v=0\r\nthis is not sdp\r\n"))
        await #expect {
            _ = try await a.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why.contains("session description")
        }
        await a.close()
    }

    @Test func aDescriptionOfTheWrongKindFailsCleanly() async throws {
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil), signal: { _ in })
        // The controlling side made the offer: another offer back is a protocol error.
        await a.handle(.sessionDescription(kind: .offer, sdp: Self.bareAnswer))
        await #expect {
            _ = try await a.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why.contains("wrong kind")
        }
        await a.close()
    }

    static let bareAnswer = [
        "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
        "a=mid:0", "a=ice-ufrag:peer", "a=ice-pwd:peerpasswordpeerpassword", "a=setup:active", "a=sctp-port:5000", "",
    ].joined(separator: "\r\n")
}

@Suite struct ServerURITests {
    @Test func parsesTheFormsRelaysAnnounce() throws {
        let stun = try ServerURI(parsing: "stun:198.18.0.10:3479")
        #expect(stun.scheme == .stun && stun.host == "198.18.0.10" && stun.port == 3479 && stun.transport == .udp)
        let turn = try ServerURI(parsing: "turn:turn.example?transport=tcp")
        #expect(turn.scheme == .turn && turn.host == "turn.example" && turn.port == 3478 && turn.transport == .tcp)
        let v6 = try ServerURI(parsing: "TURN:[2001:db8::1]:5349?transport=UDP")
        #expect(v6.host == "2001:db8::1" && v6.port == 5349 && v6.transport == .udp)
        #expect(v6.description == "turn:[2001:db8::1]:5349?transport=udp")
        #expect(try ServerURI(parsing: "stun:127.0.0.1:3478").resolve() == .ipv4(127, 0, 0, 1, port: 3478))
        // RFC 7065 §3: turns: is TLS over TCP, port 5349 unless given.
        let secure = try ServerURI(parsing: "turns:turn.example")
        #expect(secure.scheme == .turns && secure.isSecure && secure.port == 5349 && secure.transport == .tcp)
        #expect(secure.description == "turns:turn.example:5349?transport=tcp")
        let port443 = try ServerURI(parsing: "TURNS:198.18.0.10:443?transport=tcp")
        #expect(port443.isSecure && port443.port == 443 && port443.transport == .tcp && !turn.isSecure)
    }

    @Test(arguments: [
        "", "stun", "http://x:1", "stun:", "stun:host:0", "stun:host:70000", "stun:host:port", "stun:host?transport=tcp",
        "turn:host?transport=sctp", "turn:[::1", "turn:[::1]x", "turn:user@host", "stun:ho st", "turns:host:5349?transport=udp",
        "turns:host?transport=tls", "stuns:host", String(repeating: "a", count: 600),
    ])
    func refusesMalformedOrUnsupportedForms(text: String) {
        #expect(throws: SessionError.self) { try ServerURI(parsing: text) }
    }

    @Test func mapsIPv4MappedAddressesBackToIPv4() {
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 1, 2]
        #expect(SocketAddressConversion.stunAddress(ip: mapped, port: 9) == .ipv4(10, 77, 1, 2, port: 9))
        let v4 = SocketAddressConversion.socketAddress(.ipv4(10, 77, 1, 2, port: 9), dualStack: true)
        #expect(v4?.description.contains("::ffff:10.77.1.2") == true)
        #expect(SocketAddressConversion.socketAddress(.ipv4(10, 77, 1, 2, port: 9), dualStack: false)?.port == 9)
    }
}

/// A peer that stops halfway through signalling.
extension ConnectivityDriverTests {
    @Test func aPeerThatNeverSendsItsDescriptionEndsTheChecksAtTheSignallingLimit() async throws {
        var options = ConnectivityOptions(role: .controlling, stun: [], turn: nil)
        options.signallingTimeout = .milliseconds(400)
        let driver = try await ConnectivityDriver.start(options: options, signal: { _ in })
        let started = ContinuousClock.now
        await #expect {
            _ = try await driver.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why == "the other side sent no connection details within 400 ms"
        }
        #expect(ContinuousClock.now - started < .seconds(3))
        await driver.close()
    }

    @Test func aPeerThatNeverConfirmsItsSelectionEndsAtTheSignallingLimit() async throws {
        var offerer = ConnectivityOptions(role: .controlling, stun: [], turn: nil)
        offerer.signallingTimeout = .milliseconds(800)
        let answerer = ConnectivityOptions(role: .controlled, stun: [], turn: nil)
        let toAnswerer = ConnectivityDriverTests.Wire()
        let toOfferer = ConnectivityDriverTests.Wire()
        let a = try await ConnectivityDriver.start(options: offerer, signal: { toAnswerer.signal($0) })
        // The answerer's `connected` never reaches the offerer.
        let b = try await ConnectivityDriver.start(options: answerer, signal: { message in
            if case .connected = message { return }
            toOfferer.signal(message)
        })
        let forwardA = toAnswerer.deliver(to: b)
        let forwardB = toOfferer.deliver(to: a)
        defer {
            toAnswerer.input.finish()
            toOfferer.input.finish()
            forwardA.cancel()
            forwardB.cancel()
        }
        await #expect {
            _ = try await a.connected()
        } throws: { error in
            guard case SessionError.noPath(let why) = error else { return false }
            return why == "the other side did not confirm the connection within 800 ms"
        }
        // The other side did select a pair and heard our `connected`.
        _ = try await b.connected()
        await a.close()
        await b.close()
    }
}
