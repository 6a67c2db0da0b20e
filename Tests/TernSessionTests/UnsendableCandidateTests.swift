import Foundation
import Testing
import TernPairing
@testable import TernSession

/// A remote candidate this host cannot send to must cost only its own pair.
/// Fails without the route check in ConnectivityDriver.sendDatagram.
/// SwiftNIO closes a UDP channel on any send error but EMSGSIZE,
/// EHOSTUNREACH, ECONNREFUSED and ENOMEM: one check to a link-local address
/// without a zone (EINVAL), to the broadcast address (EACCES) or to a
/// network with no route (ENETUNREACH) would close the session's only socket
/// and end ICE for every pair. The peer chooses these addresses: hostile
/// input.
@Suite(.serialized) struct UnsendableCandidateTests {
    static let unsendable = [
        // Before the real candidates, at the highest priority, so they are
        // checked first. Loopback's broadcast address (lo is 127.0.0.0/8):
        // the kernel refuses the send with EACCES, and only the driver's
        // route check can know (a LAN's directed broadcast is the same case).
        "candidate:90 1 udp 2130706431 127.255.255.255 9 typ host",
        // These the agent refuses when they are added.
        "candidate:92 1 udp 2130706431 255.255.255.255 9 typ host",
        "candidate:93 1 udp 2130706431 224.0.0.1 9 typ host",
        "candidate:94 1 udp 2130706431 0.0.0.0 9 typ host",
        "candidate:95 1 udp 2130706431 ff02::1 9 typ host",
    ]

    @Test func checksToAddressesTheHostCannotSendToCostOnlyTheirPairs() async throws {
        let toAnswerer = ConnectivityDriverTests.Wire()
        let toOfferer = ConnectivityDriverTests.Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil), signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlled, stun: [], turn: nil), signal: { toOfferer.signal($0) })
        let forwardA = toAnswerer.deliver(to: b)
        // b's description reaches a, then the unsendable candidates, then b's own.
        let forwardB = Task {
            var injected = false
            for await message in toOfferer.stream {
                await a.handle(message)
                if !injected, case .sessionDescription = message {
                    injected = true
                    for line in Self.unsendable { await a.handle(.candidate(mid: "0", candidate: line)) }
                }
            }
        }
        defer {
            toAnswerer.input.finish()
            toOfferer.input.finish()
            forwardA.cancel()
            forwardB.cancel()
        }
        async let pathA = a.connected()
        async let pathB = b.connected()
        let (connectedA, connectedB) = try await (pathA, pathB)
        #expect(!connectedA.isRelayed && !connectedB.isRelayed)
        #expect(connectedA.pair.remote.address.port == connectedB.pair.local.address.port)
        await a.close()
        await b.close()
    }
}
