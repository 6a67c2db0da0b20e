import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TernDTLS
import TernICE
import TernPairing
import TernSTUN
import TernTestSupport
@testable import TernSession

/// The selected path dies mid-stream while another valid pair remains, end
/// to end: two drivers with real sockets and real coturn, whose host
/// candidates reach each other only through a small UDP forwarder in the
/// test. The session runs direct through it, the forwarder stops (silently,
/// as a dead Wi-Fi does), and both sides move to a relayed pair that kept
/// passing its checks, without a new handshake and without a lost or
/// repeated message.
@Suite(.serialized) struct PathFailoverEndToEndTests {
    /// Two sockets on 127.0.0.1, one standing for each side: what side A's
    /// real socket sends to B's stand-in goes out to B from A's stand-in, and
    /// back the same way, so each side sees the other at the address it
    /// was told (no peer-reflexive surprise). Anything else is dropped.
    final class Forwarder: Sendable {
        struct State {
            var channels: [Channel] = []  // [standing for A, standing for B]
            var real: [SocketAddress?] = [nil, nil]  // A's and B's host addresses
            var open = true
        }
        let state = NIOLockedValueBox(State())

        init() async throws {
            for side in 0..<2 {
                let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(Handler(forwarder: self, standsFor: side))
                        }
                    }
                    .bind(host: "127.0.0.1", port: 0).get()
                state.withLockedValue { $0.channels.append(channel) }
            }
        }

        /// The stand-in's address for `side`, and remembers the side's real one.
        func standIn(for side: Int, real: STUNAddress) -> STUNAddress? {
            guard let socket = SocketAddressConversion.socketAddress(real, dualStack: false) else { return nil }
            return state.withLockedValue { state in
                state.real[side] = socket
                return state.channels[side].localAddress.flatMap(SocketAddressConversion.stunAddress)
            }
        }

        func stop() { state.withLockedValue { $0.open = false } }

        func close() async {
            for channel in state.withLockedValue({ $0.channels }) { try? await channel.close() }
        }

        /// A datagram arrived at the stand-in for `side` (from the other side).
        func arrived(_ envelope: AddressedEnvelope<ByteBuffer>, atStandInFor side: Int) {
            let (out, target) = state.withLockedValue { state -> (Channel?, SocketAddress?) in
                let sender = 1 - side
                // Matched by port: a socket bound to the wildcard address
                // sends to 127.0.0.1 from 127.0.0.1, whatever its candidate says.
                guard state.open, let real = state.real[sender], let target = state.real[side],
                      envelope.remoteAddress.port == real.port
                else { return (nil, nil) }
                return (state.channels[sender], target)
            }
            guard let out, let target else { return }
            out.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: envelope.data), promise: nil)
        }

        final class Handler: ChannelInboundHandler {
            typealias InboundIn = AddressedEnvelope<ByteBuffer>
            let forwarder: Forwarder
            let side: Int
            init(forwarder: Forwarder, standsFor side: Int) {
                self.forwarder = forwarder
                self.side = side
            }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                forwarder.arrived(unwrapInboundIn(data), atStandInFor: side)
            }
        }
    }

    /// One side's signals to the other: its IPv4 host candidate replaced by
    /// its stand-in in the forwarder, other host candidates left out (the
    /// forwarder is the only direct path).
    final class Wire: Sendable {
        let side: Int
        let forwarder: Forwarder
        let target = NIOLockedValueBox<(driver: ConnectivityDriver?, early: [PeerMessage])>((nil, []))
        init(side: Int, forwarder: Forwarder) {
            self.side = side
            self.forwarder = forwarder
        }

        func signal(_ message: PeerMessage) {
            var message = message
            if case .candidate(let mid, let line) = message, case .candidate(var candidate)? = try? ICECandidate.parse(line),
               candidate.type == .host {
                guard candidate.address.ipBytes.count == 4, let standIn = forwarder.standIn(for: side, real: candidate.address) else { return }
                candidate.address = standIn
                message = .candidate(mid: mid, candidate: candidate.sdpAttribute)
            }
            let driver = target.withLockedValue { state -> ConnectivityDriver? in
                if state.driver == nil { state.early.append(message) }
                return state.driver
            }
            if let driver { Task { await driver.handle(message) } }
        }

        func connect(_ driver: ConnectivityDriver) {
            let early = target.withLockedValue { state -> [PeerMessage] in
                state.driver = driver
                defer { state.early = [] }
                return state.early
            }
            Task { for message in early { await driver.handle(message) } }
        }
    }

    /// Every path a driver reports after `connected()`, with when.
    final class PathLog: Sendable {
        let entries = NIOLockedValueBox<[(ContinuousClock.Instant, ConnectedPath)]>([])
        var last: ConnectedPath? { entries.withLockedValue { $0.last?.1 } }
        func follow(_ driver: ConnectivityDriver) -> Task<Void, Never> {
            Task { for await path in driver.pathChanges { entries.withLockedValue { $0.append((.now, path)) } } }
        }
    }

    @Test func aDirectSessionMovesToTheRelayedPairWhenTheDirectPathDiesMidStream() async throws {
        let coturn = try await CoturnProcess()
        let forwarder = try await Forwarder()
        let turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.uri()])
        let offererCertificate = try DTLSCertificate.generate()
        let answererCertificate = try DTLSCertificate.generate()
        let toB = Wire(side: 0, forwarder: forwarder), toA = Wire(side: 1, forwarder: forwarder)
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: .controlling, stun: [], turn: turn, fingerprint: SecureChannelsTests.fingerprint(offererCertificate)),
            signal: { toB.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: .controlled, stun: [], turn: turn, fingerprint: SecureChannelsTests.fingerprint(answererCertificate)),
            signal: { toA.signal($0) })
        toB.connect(b)
        toA.connect(a)

        async let pathA = a.connected()
        async let pathB = b.connected()
        let (offererPath, answererPath) = try await (pathA, pathB)
        let logA = PathLog(), logB = PathLog()
        let followA = logA.follow(a), followB = logB.follow(b)
        // Direct through the forwarder, at once or after a relayed start.
        let deadline = ContinuousClock.now + .seconds(10)
        while (logA.last ?? offererPath).isRelayed || (logB.last ?? answererPath).isRelayed, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(!(logA.last ?? offererPath).isRelayed && !(logB.last ?? answererPath).isRelayed, "never direct")

        let (offerer, answerer) = try await PathTestTraffic.secure(
            offerer: a, path: offererPath, certificate: offererCertificate,
            answerer: b, path: answererPath, certificate: answererCertificate)
        let stream = try await offerer.open(label: "failover")

        let count = 400
        let receiver = PathTestTraffic.receive(count, on: answerer)
        var stoppedAt: ContinuousClock.Instant?
        for index in 0..<count {
            try await offerer.send(PathTestTraffic.message(index), on: stream)
            if index == count / 4 {
                forwarder.stop()
                stoppedAt = .now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seen = try await receiver.value
        #expect(seen.map(\.0) == Array(0..<count), "lost, repeated or out of order: \(seen.count) messages")
        // The same DTLS association and SCTP association throughout.
        let offererEnd = await offerer.endReason(), answererEnd = await answerer.endReason()
        #expect(offererEnd == nil && answererEnd == nil)
        let statistics = try #require(await offerer.statistics())

        // The outage as the receiver saw it: the longest time between two
        // messages (a message is sent every 5 ms or so).
        let stopped = try #require(stoppedAt)
        let gap = PathTestTraffic.longestGap(seen)
        print("path failover: longest gap between messages \(gap); \(statistics)")
        #expect(statistics.retransmittedChunks < 200, "\(statistics)")

        await offerer.close()
        await answerer.close()
        await a.close()
        await b.close()
        await followA.value
        await followB.value
        await forwarder.close()
        // Both sides moved to a relayed pair because the direct one died.
        let movedA = logA.entries.withLockedValue { $0 }.filter { $0.0 > stopped }.map(\.1)
        let movedB = logB.entries.withLockedValue { $0 }.filter { $0.0 > stopped }.map(\.1)
        #expect(movedA.first?.replacedLostPath == true && movedA.first?.isRelayed == true, "\(movedA.map(\.pair))")
        #expect(movedB.first?.replacedLostPath == true && movedB.first?.isRelayed == true, "\(movedB.map(\.pair))")
    }
}
