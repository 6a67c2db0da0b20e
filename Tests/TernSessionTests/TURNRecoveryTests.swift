import Foundation
import NIOConcurrencyHelpers
import Testing
import TernICE
import TernPairing
import TernRelay
import TernTestSupport
@testable import TernSession

/// A relayed connection whose TURN allocation is lost before the checks
/// (issue 13): the driver must drop the dead relayed candidate, take the TURN
/// client's fresh allocation and connect through it, not wait for ICE to
/// give up.
@Suite(.serialized) struct TURNRecoveryTests {
    /// A UDP forwarder between one driver and coturn that moves its upstream
    /// to a new port once an Allocate succeeded, as a NAT that rebinds does:
    /// coturn then sees the client's next request from a new 5-tuple, a new
    /// session with no allocation (438 "Wrong nonce", then 400).
    final class RebindingForwarder: @unchecked Sendable {
        let listener: UDPTestSocket
        let coturnPort: UInt16
        /// Touched only by the forwarding thread once started.
        private var upstream: UDPTestSocket
        private let state = NIOLockedValueBox<(stop: Bool, rebinds: Int)>((false, 0))
        private var thread: Thread?

        var port: UInt16 { listener.localPort }
        var rebinds: Int { state.withLockedValue { $0.rebinds } }

        init(coturnPort: UInt16) throws {
            listener = try UDPTestSocket()
            upstream = try UDPTestSocket()
            self.coturnPort = coturnPort
        }

        func start() {
            let thread = Thread { [self] in
                var client: UInt16?
                var rebound = false
                while !state.withLockedValue({ $0.stop }) {
                    if let (bytes, from) = try? listener.receive(timeoutMilliseconds: 2) {
                        client = from
                        try? upstream.send(bytes, to: coturnPort)
                    }
                    while let (bytes, _) = try? upstream.receive(timeoutMilliseconds: 0) {
                        if let client { try? listener.send(bytes, to: client) }
                        // An Allocate success response (RFC 8489 §5: type 0x0103).
                        if !rebound, bytes.count >= 2, bytes[0] == 0x01, bytes[1] == 0x03, let fresh = try? UDPTestSocket() {
                            rebound = true
                            upstream = fresh
                            state.withLockedValue { $0.rebinds += 1 }
                            break
                        }
                    }
                }
            }
            self.thread = thread
            thread.start()
        }

        func stop() { state.withLockedValue { $0.stop = true } }
    }

    final class Wire: Sendable {
        let sent = NIOLockedValueBox<[PeerMessage]>([])
        let stream: AsyncStream<PeerMessage>
        let input: AsyncStream<PeerMessage>.Continuation
        init() { (stream, input) = AsyncStream<PeerMessage>.makeStream() }
        func signal(_ message: PeerMessage) {
            sent.withLockedValue { $0.append(message) }
            input.yield(message)
        }
        func deliver(to driver: ConnectivityDriver) -> Task<Void, Never> {
            let stream = self.stream
            return Task { for await message in stream { await driver.handle(message) } }
        }
        var relayedCandidates: [String] {
            sent.withLockedValue { messages in
                messages.compactMap { message in
                    guard case .candidate(_, let line) = message, case .candidate(let candidate)? = try? ICECandidate.parse(line),
                          candidate.type == .relayed
                    else { return nil }
                    return candidate.address.description
                }
            }
        }
    }

    @Test func aRelayedSideWhoseAllocationIsLostConnectsThroughAFreshOne() async throws {
        let coturn = try await CoturnProcess()
        let forwarder = try RebindingForwarder(coturnPort: coturn.port)
        forwarder.start()
        defer { forwarder.stop() }
        let minter = TURNCredentialMinter(TURNConfiguration(uris: [], secret: Array(coturn.secret.utf8), ttl: 600))
        var viaForwarder = minter.mint()
        viaForwarder.uris = ["turn:127.0.0.1:\(forwarder.port)?transport=udp"]
        var direct = minter.mint()
        direct.uris = [coturn.uri()]

        let toAnswerer = Wire()
        let toOfferer = Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: viaForwarder, forceRelay: true),
            signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlled, stun: [], turn: direct, forceRelay: true),
            signal: { toOfferer.signal($0) })
        let forwardA = toAnswerer.deliver(to: b)
        let forwardB = toOfferer.deliver(to: a)
        defer {
            toAnswerer.input.finish()
            toOfferer.input.finish()
            forwardA.cancel()
            forwardB.cancel()
        }
        let started = ContinuousClock.now
        async let pathA = a.connected()
        async let pathB = b.connected()
        let (left, right) = try await (pathA, pathB)
        let elapsed = ContinuousClock.now - started
        await a.close()
        await b.close()

        #expect(forwarder.rebinds == 1)
        // The first relayed candidate died with its allocation; the second
        // one was trickled and carries the path.
        let relayed = toAnswerer.relayedCandidates
        #expect(relayed.count == 2, "\(relayed)")
        #expect(left.pair.local.type == .relayed && right.pair.local.type == .relayed)
        #expect(left.pair.local.address.description == relayed.last)
        #expect(right.pair.remote.address.description == relayed.last)
        // Well within ICE's 10 s failure timeout.
        #expect(elapsed < .seconds(5), "\(elapsed)")
    }
}
