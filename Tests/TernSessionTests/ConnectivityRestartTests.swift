import Testing
import TernICE
import TernPairing
import TernSTUN
@testable import TernSession

/// ICE restart through the mailbox, driven on the virtual network of
/// `VirtualConnectivity`: both sides start on network 0 only (A's Wi-Fi),
/// and nothing relays. Then network 0 goes silent and both have an address
/// on network 1 instead (A's Ethernet, B reachable there): no valid pair is
/// left, and no old candidate reaches the new network, so only a restart
/// through the signalling channel finds the new pair; what the layer above
/// sends after the move arrives.
@Suite struct ConnectivityRestartTests {
    static let wifiA: [UInt8] = [10, 0, 0, 1], ethernetA: [UInt8] = [10, 1, 0, 1]
    static let oldB: [UInt8] = [10, 0, 0, 2], newB: [UInt8] = [10, 1, 0, 2]

    static func laptop() throws -> VirtualConnectivity {
        var net = try VirtualConnectivity()
        net.sides[0].addresses = [wifiA]
        net.sides[1].addresses = [oldB]
        net.sides[0].core.restart.currentAddresses = { [ConnectivityRestartTests.ethernetA] }
        net.sides[1].core.restart.currentAddresses = { [ConnectivityRestartTests.oldB, ConnectivityRestartTests.newB] }
        return net
    }

    static func move(_ net: inout VirtualConnectivity) {
        net.networks[0]?.up = false
        net.sides[0].addresses = [ethernetA]
        net.sides[1].addresses = [oldB, newB]
    }

    @Test func whenTheOnlyPathDiesBothSidesRestartAndMoveToTheNewAddress() throws {
        var net = try Self.laptop()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        #expect(net.bothConnected)
        net.run(until: net.now + .seconds(3))
        #expect(net.sides[0].connected?.path.pair.localBase.ipBytes == Self.wifiA)

        // The laptop leaves its Wi-Fi for Ethernet.
        Self.move(&net)
        let cut = net.now
        let sent = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart && !change.path.replacedLostPath)
            // 2.5 s of silence, a mailbox round trip (30 ms each way), a few checks.
            #expect(change.at > cut && change.at - cut < .seconds(4), "\(change.at - cut)")
            #expect(side.failed == nil)
            // One restart each: both noticed, the generations made it one.
            #expect(side.core.agent.restarts == 1 && side.core.restart.generations.local == 1)
            #expect(side.pathChanges.count == 1, "\(side.pathChanges.map(\.path.pair))")
        }
        #expect(net.sides[0].pathChanges.last?.path.pair.localBase.ipBytes == Self.ethernetA)
        #expect(net.sides[1].pathChanges.last?.path.pair.remote.address.ipBytes == Self.ethernetA)
        #expect(net.sides[1].pathChanges.last?.path.pair.localBase.ipBytes == Self.newB)
        // Everything sent once both sides moved arrived (the layer above,
        // SCTP, retransmits what the dead path swallowed before).
        let moves = net.sides.compactMap { $0.pathChanges.last?.at }
        let moved = try #require(moves.max())
        let firstAfter = Int((moved - cut) / .milliseconds(20)) + 2
        let received = Set(net.sides[1].application)
        for n in firstAfter...sent {
            #expect(received.contains(ConnectivityCoreTests.record(n)), "message \(n) of \(sent) lost after the move")
        }
    }

    @Test func aSendErrorWithNoOtherPairRestartsAtOnce() throws {
        var net = try Self.laptop()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + .seconds(3))
        let selected = try #require(net.sides[0].connected?.path.pair)
        Self.move(&net)
        let cut = net.now
        // The kernel refuses the next send on the selected pair (the Wi-Fi address is gone).
        let moved = net.sides[0].core.sendFailed(to: selected.remote.address, now: net.now)
        #expect(!moved, "no backup pair to move to")
        #expect(net.sides[0].core.agent.isRestarting && net.sides[0].core.restart.generations.local == 1)
        net.drain(0)
        net.run(until: net.now + .seconds(2))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart)
            // Without the 2.5 s of silence: a mailbox round trip and a few checks.
            #expect(change.at - cut < .milliseconds(500), "\(change.at - cut)")
            #expect(side.core.agent.restarts == 1)
        }
        #expect(net.sides[0].pathChanges.last?.path.pair.localBase.ipBytes == Self.ethernetA)
    }

    @Test func aPeerThatDidNotAnnounceRestartsIsNeverRestarted() throws {
        var net = try Self.laptop()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + .seconds(3))
        // As with a browser or aiortc: no tern-ice-restart in its description.
        #expect(net.sides[0].core.restart.peerRestarts && net.sides[1].core.restart.peerRestarts)
        net.sides[0].core.restart.peerRestarts = false
        net.sides[1].core.restart.peerRestarts = false
        Self.move(&net)
        net.run(until: net.now + .seconds(10))
        for side in net.sides {
            #expect(side.pathChanges.isEmpty && side.core.agent.restarts == 0)
            #expect(side.core.restart.generations.local == 0)
        }
    }
}
