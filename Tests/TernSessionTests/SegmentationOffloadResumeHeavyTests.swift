import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TernPairing
import TernSDP
@testable import TernSession

/// After a send error refused the selected direct pair and no other pair
/// was left to move to, the data path's fast path (and with it GSO) stopped.
/// With a peer that does not restart ICE (a browser or aiortc: no
/// `tern-ice-restart` in its description) the pair stays selected; once
/// the destination takes datagrams again the fast path and GSO must come
/// back, not stay off for the rest of the session.
///
/// Two drivers with real sockets on loopback, whose only path is a UDP
/// forwarder in the test (PathFailoverEndToEndTests.Forwarder). The send
/// error is the driver's own handling of SwiftNIO closing its socket; the
/// kernel's verdict on the destination (a route or firewall that refuses
/// it, then lets it through) is stood in for through `setRouteChecks`, as
/// no unprivileged test can take a route away from loopback.
@Suite(.serialized) struct SegmentationOffloadResumeHeavyTests {
    typealias Forwarder = PathFailoverEndToEndTests.Forwarder
    typealias Wire = PathFailoverEndToEndTests.Wire

    /// The description without `tern-ice-restart`, as a browser's.
    static func withoutRestarts(_ message: PeerMessage) -> PeerMessage {
        guard case .sessionDescription(let kind, let sdp) = message else { return message }
        return .sessionDescription(kind: kind, sdp: sdp.replacingOccurrences(of: " " + MediaDescription.ternICERestartOption, with: ""))
    }

    @Test func gsoComesBackWhenTheRefusedSelectedPairTakesDatagramsAgain() async throws {
        let forwarder = try await Forwarder()
        let toB = Wire(side: 0, forwarder: forwarder), toA = Wire(side: 1, forwarder: forwarder)
        let drivers = try await PathTestTraffic.connectedDrivers(
            signalFromA: { toB.signal(Self.withoutRestarts($0)) }, signalFromB: { toA.signal(Self.withoutRestarts($0)) },
            attach: { a, b in toB.connect(b); toA.connect(a) })
        let (a, b, offererPath) = (drivers.a, drivers.b, drivers.pathA)
        #expect(!offererPath.isRelayed)
        let before = await a.dataPath()
        try #require(before.direct && before.segmentationOffload, "loopback takes segmented writes: \(before)")

        // The kernel refuses every datagram to b's address (its stand-in in
        // the forwarder), and SwiftNIO closes the socket on that send error.
        let refused = try #require(offererPath.pair.remote.address.ipBytes.count == 4 ? offererPath.pair.remote.address : nil)
        let refusing = RefusalSwitch(port: Int(refused.port))
        await a.setRouteChecks(route: { refusing.refuses($0) }, send: { refusing.refuses($0) })
        refusing.set(true)
        await a.closeSocket()
        let cut = ContinuousClock.now
        try await waitUntil(within: .seconds(5)) { await a.dataPath().direct == false }
        let during = await a.dataPath()
        #expect(!during.direct && !during.segmentationOffload, "\(during)")

        // The route comes back; the refusal is checked again after 5 s.
        refusing.set(false)
        try await waitUntil(within: .seconds(12)) { await a.dataPath().segmentationOffload }
        let after = await a.dataPath()
        print("GSO after a refused selected pair: back \(ContinuousClock.now - cut) after the send error: \(after)")
        #expect(after.direct && after.segmentationOffload, "\(after)")
        // Nothing moved: the same pair, no restart (the peer takes none).
        let follow = Task {
            var changes: [ConnectedPath] = []
            for await change in a.pathChanges { changes.append(change) }
            return changes
        }
        await a.close()
        await b.close()
        await forwarder.close()
        #expect(await follow.value.isEmpty)
    }

    /// Polls `condition` every 50 ms until it holds or `limit` passes.
    func waitUntil(within limit: Duration, _ condition: () async -> Bool) async throws {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A destination refused while on: the kernel's answer for the one port the test takes away.
final class RefusalSwitch: Sendable {
    let port: Int
    let on = NIOLockedValueBox(false)
    init(port: Int) { self.port = port }
    func set(_ value: Bool) { on.withLockedValue { $0 = value } }
    func refuses(_ address: SocketAddress) -> String? {
        on.withLockedValue { $0 } && address.port == port ? "Operation not permitted" : nil
    }
}
