import NIOConcurrencyHelpers
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
/// sends after the move arrives. Each side's machine reports its
/// addresses of the moment (`currentAddresses`), as LocalAddresses does.
@Suite struct ConnectivityRestartTests {
    static let wifiA: [UInt8] = [10, 0, 0, 1], ethernetA: [UInt8] = [10, 1, 0, 1]
    static let oldB: [UInt8] = [10, 0, 0, 2], newB: [UInt8] = [10, 1, 0, 2]

    /// What each side's machine has now, for its `currentAddresses`.
    struct Machines {
        let boxes = [NIOLockedValueBox<[[UInt8]]>([]), NIOLockedValueBox<[[UInt8]]>([])]

        /// Gives side `index` `addresses`, on the network and in its machine's list.
        func set(_ net: inout VirtualConnectivity, _ index: Int, _ addresses: [[UInt8]]) {
            net.sides[index].addresses = addresses
            boxes[index].withLockedValue { $0 = addresses }
        }
    }

    /// The laptop's network, both sides connected and 3 s settled on their path.
    static func laptopSettled(turn: Bool = false, for settle: Duration = .seconds(3)) throws -> (VirtualConnectivity, Machines) {
        var (net, machines) = try laptop(turn: turn)
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + settle)
        return (net, machines)
    }

    static func laptop(turn: Bool = false) throws -> (VirtualConnectivity, Machines) {
        var net = try VirtualConnectivity(turn: turn)
        let machines = Machines()
        machines.set(&net, 0, [wifiA])
        machines.set(&net, 1, [oldB])
        for index in 0..<2 {
            let box = machines.boxes[index]
            net.sides[index].core.restart.currentAddresses = { box.withLockedValue { $0 } }
        }
        return (net, machines)
    }

    /// A leaves its Wi-Fi (network 0, which goes silent) for Ethernet;
    /// B gains an address there.
    static func move(_ net: inout VirtualConnectivity, _ machines: Machines) {
        net.networks[0]?.up = false
        machines.set(&net, 0, [ethernetA])
        machines.set(&net, 1, [oldB, newB])
    }

    /// A's Wi-Fi stays associated (its address stays) but carries nothing;
    /// Ethernet comes up beside it, and B gains an address there.
    static func silenceWiFiBesideEthernet(_ net: inout VirtualConnectivity, _ machines: Machines) {
        net.networks[0]?.up = false
        machines.set(&net, 0, [wifiA, ethernetA])
        machines.set(&net, 1, [oldB, newB])
    }

    /// Every record `sendRecords` sent from the cut on arrived at B once
    /// both sides had moved.
    static func expectRecordsAfterTheMove(_ net: VirtualConnectivity, cut: Duration, sent: Int) throws {
        let moves = net.sides.compactMap { $0.pathChanges.last?.at }
        let moved = try #require(moves.max())
        let firstAfter = Int((moved - cut) / .milliseconds(20)) + 2
        let received = Set(net.sides[1].application)
        for n in firstAfter...sent {
            #expect(received.contains(ConnectivityCoreTests.record(n)), "message \(n) of \(sent) lost after the move")
        }
    }

    @Test func whenTheOnlyPathDiesBothSidesRestartAndMoveToTheNewAddress() throws {
        var (net, machines) = try Self.laptop()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        #expect(net.bothConnected)
        net.run(until: net.now + .seconds(3))
        #expect(net.sides[0].connected?.path.pair.localBase.ipBytes == Self.wifiA)

        // The laptop leaves its Wi-Fi for Ethernet.
        Self.move(&net, machines)
        let cut = net.now
        let sent = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart && !change.path.replacedLostPath)
            // A's look at its addresses (every second) finds the Wi-Fi
            // address gone: a restart without waiting for 2.5 s of silence,
            // a mailbox round trip (30 ms each way), a few checks.
            #expect(change.at > cut && change.at - cut < .milliseconds(1500), "\(change.at - cut)")
            #expect(side.failed == nil)
            // One restart each: B answered A's.
            #expect(side.core.agent.restarts == 1 && side.core.restart.generations.local == 1)
            #expect(side.pathChanges.count == 1, "\(side.pathChanges.map(\.path.pair))")
        }
        #expect(net.sides[0].pathChanges.last?.path.pair.localBase.ipBytes == Self.ethernetA)
        #expect(net.sides[1].pathChanges.last?.path.pair.remote.address.ipBytes == Self.ethernetA)
        #expect(net.sides[1].pathChanges.last?.path.pair.localBase.ipBytes == Self.newB)
        // Everything sent once both sides moved arrived (the layer above,
        // SCTP, retransmits what the dead path swallowed before).
        try Self.expectRecordsAfterTheMove(net, cut: cut, sent: sent)
    }

    @Test func aSendErrorWithNoOtherPairRestartsAtOnce() throws {
        var (net, machines) = try Self.laptopSettled()
        let selected = try #require(net.sides[0].connected?.path.pair)
        Self.move(&net, machines)
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
        var (net, machines) = try Self.laptopSettled()
        // As with a browser or aiortc: no tern-ice-restart in its description.
        #expect(net.sides[0].core.restart.peerRestarts && net.sides[1].core.restart.peerRestarts)
        net.sides[0].core.restart.peerRestarts = false
        net.sides[1].core.restart.peerRestarts = false
        Self.move(&net, machines)
        net.run(until: net.now + .seconds(10))
        for side in net.sides {
            #expect(side.pathChanges.isEmpty && side.core.agent.restarts == 0)
            #expect(side.core.restart.generations.local == 0)
        }
    }

    @Test func whenTheOnlyPathGoesSilentWithItsAddressStillThereBothRestartAfterTheFailoverTimeout() throws {
        var (net, machines) = try Self.laptopSettled()
        Self.silenceWiFiBesideEthernet(&net, machines)
        let cut = net.now
        _ = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart)
            // 2.5 s of silence since the last answer (checks go every
            // second), a mailbox round trip (30 ms each way), a few checks.
            #expect(change.at > cut && change.at - cut < .seconds(4), "\(change.at - cut)")
            #expect(side.core.agent.restarts == 1 && side.failed == nil)
        }
        #expect(net.sides[0].pathChanges.last?.path.pair.localBase.ipBytes == Self.ethernetA)
    }

    /// A's only path after the move is its own TURN allocation (B has no
    /// address on A's new network and no TURN server). The allocation A
    /// made from its Wi-Fi address is useless once that address is gone
    /// (the server keys it by the old 5-tuple), so the restart must not
    /// offer it but allocate afresh and offer the new relayed candidate.
    @Test func aRestartAfterTheAddressWentAwayAllocatesAfreshAndConnectsThroughIt() throws {
        var (net, machines) = try Self.laptopSettled(turn: true, for: .seconds(8))
        let oldRelayed = try #require(net.sides[0].core.turns.first?.relayed)
        #expect(net.turn?.allocated == 1)
        #expect(net.sides[0].connected?.path.isRelayed == false)

        net.networks[0]?.up = false
        machines.set(&net, 0, [Self.ethernetA])
        let cut = net.now
        let sent = net.sendRecords(until: cut + .seconds(8))
        try Self.expectRestartThroughAFreshAllocation(net, cut: cut, replacing: oldRelayed)
        try Self.expectRecordsAfterTheMove(net, cut: cut, sent: sent)
    }

    /// A session that runs through A's TURN allocation (no direct path:
    /// A on network 0, B on network 1) when A's address goes away: the
    /// allocation was made from that address, so the address check
    /// restarts at once here too, not after 2.5 s of silence.
    @Test func aSessionOnTheRelayRestartsAtOnceWhenAnAddressWentAway() throws {
        var (net, machines) = try Self.laptop(turn: true)
        machines.set(&net, 1, [Self.newB])
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + .seconds(3))
        #expect(net.sides[0].core.selected?.isRelayed == true)
        let oldRelayed = try #require(net.sides[0].core.turns.first?.relayed)
        // A moves to network 1, where B is: a direct pair after the restart.
        machines.set(&net, 0, [Self.ethernetA])
        let cut = net.now
        let sent = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart && !change.path.isRelayed)
            // The next address check (at most 1 s), the mailbox, a few
            // checks; 2.5 s of silence since the last answer without it.
            #expect(change.at - cut < .milliseconds(1200), "\(change.at - cut)")
            #expect(side.failed == nil && side.core.agent.restarts == 1)
        }
        #expect(net.turn?.allocated == 2)
        #expect(net.sides[0].core.turns.first?.relayed != oldRelayed)
        try Self.expectRecordsAfterTheMove(net, cut: cut, sent: sent)
    }

    /// B moves; A keeps its address, but its TURN server lost A's
    /// allocation meanwhile (restarted, say). A answers B's restart by
    /// asking the server about its allocation (a Refresh), gets 437 and
    /// allocates afresh at once, rather than offering the dead relayed
    /// candidate and waiting for ICE to give up on it.
    @Test func aRestartReplacesAnAllocationTheServerNoLongerHas() throws {
        var (net, machines) = try Self.laptopSettled(turn: true, for: .seconds(8))
        let oldRelayed = try #require(net.sides[0].core.turns.first?.relayed)
        // B leaves network 0 for network 1, where A has no address: only
        // A's relay reaches B now.
        net.networks[0]?.up = false
        net.turn?.loseAllocations()
        machines.set(&net, 1, [Self.newB])
        let cut = net.now
        let sent = net.sendRecords(until: cut + .seconds(8))
        #expect((net.turn?.mismatches ?? 0) >= 1)
        try Self.expectRestartThroughAFreshAllocation(net, cut: cut, replacing: oldRelayed)
        try Self.expectRecordsAfterTheMove(net, cut: cut, sent: sent)
    }

    /// Both sides restarted once and moved within 1.5 s of the cut (the
    /// address check, at most 1 s, the mailbox, the Allocate, the checks)
    /// onto A's second allocation, which replaced `oldRelayed`.
    static func expectRestartThroughAFreshAllocation(_ net: VirtualConnectivity, cut: Duration, replacing oldRelayed: STUNAddress) throws {
        #expect(net.turn?.allocated == 2)
        let newRelayed = try #require(net.sides[0].core.turns.first?.relayed)
        #expect(newRelayed != oldRelayed)
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart && change.path.isRelayed)
            #expect(change.at - cut < .milliseconds(1500), "\(change.at - cut)")
            #expect(side.failed == nil && side.core.agent.restarts == 1)
        }
        #expect(net.sides[0].pathChanges.last?.path.pair.localBase == newRelayed)
        #expect(net.sides[1].pathChanges.last?.path.pair.remote.address == newRelayed)
    }

    /// The layer above learns when a restart begins and when it found a pair
    /// (`Output.restarting`), so that its silence limit holds meanwhile.
    @Test func theCoreSaysWhenARestartBeginsAndWhenItFoundAPair() throws {
        var (net, machines) = try Self.laptopSettled()
        #expect(net.sides.allSatisfy { $0.restarting.isEmpty })
        Self.move(&net, machines)
        _ = net.sendRecords(until: net.now + .seconds(8))
        for side in net.sides {
            #expect(side.restarting.map(\.underway) == [true, false], "\(side.restarting)")
            let change = try #require(side.pathChanges.last)
            // It ends with the selection the path change reports.
            #expect(side.restarting.last?.at == change.at)
            #expect(side.pathLost.isEmpty)
        }
    }

    /// Nothing reaches the peer after the cut, on any network: the restart
    /// begins (within a second, A's address went away) and its checks find
    /// nothing; the agent's
    /// 10 s end it with the restart's sentence as a lost path, the session's
    /// only end (no other failure, no second restart).
    @Test func aRestartThatFindsNothingEndsAsALostPathWithItsSentence() throws {
        var (net, machines) = try Self.laptopSettled()
        Self.move(&net, machines)
        net.networks[1]?.up = false
        let cut = net.now
        net.run(until: cut + .seconds(20))
        for side in net.sides {
            #expect(side.restarting.map(\.underway) == [true], "\(side.restarting)")
            #expect(side.pathLost.map(\.reason) == [ConnectivityCore.restartFoundNothing])
            let lost = try #require(side.pathLost.first).at - cut
            // The address check (every second), then the agent's 10 s.
            #expect(lost > .seconds(10) && lost <= .milliseconds(12_600), "\(lost)")
            #expect(side.core.agent.restarts == 1 && side.pathChanges.isEmpty)
        }
    }
}

/// A peer that is gone (killed, or lost its network and its relay
/// connection with it) while the session has two pairs (networks 0 and 1,
/// as IPv4 and IPv6 on one machine): the backup pair is checked at once when
/// the selected one fails and does not answer, so nothing fails over to
/// it; the restart's `ice-restart` gets no answer through the mailbox, and
/// the session ends 3 s after the restart rather than at the checks' 10 s.
@Suite struct DeadPeerRestartTests {
    static func killB(_ net: inout VirtualConnectivity) {
        net.networks[0]?.up = false
        net.networks[1]?.up = false
        net.signallingCut = [1]
    }

    @Test func aPeerThatIsGoneEndsTheSessionWhenItsRestartAnswerDoesNotCome() throws {
        var net = try VirtualConnectivity()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        // Both pairs valid and recently answered (a backup check every 4-6 s).
        net.run(until: net.now + .seconds(8))
        Self.killB(&net)
        let cut = net.now
        net.run(until: cut + .seconds(20))
        let a = net.sides[0]
        // No failover to the dead backup pair, one restart, one end.
        #expect(a.pathChanges.isEmpty, "\(a.pathChanges.map(\.at))")
        #expect(a.restarting.map(\.underway) == [true], "\(a.restarting)")
        #expect(a.pathLost.map(\.reason) == [ConnectivityCore.peerDidNotAnswerRestart], "\(a.pathLost)")
        let begun = try #require(a.restarting.first).at
        let lost = try #require(a.pathLost.first).at
        // The restart 2.5 s after the last answer (checks go every 0.8-1.2 s).
        #expect(begun - cut > .milliseconds(1_200) && begun - cut <= .milliseconds(2_500), "\(begun - cut)")
        #expect(lost - begun == ConnectivityCore.peerAnswerTimeout, "\(lost - begun)")
        #expect(a.core.agent.restarts == 1)
    }

    /// The same with one backup that still answers: the probe finds it
    /// and the session moves there at the failover timeout, no restart.
    @Test func aLiveBackupFoundByTheProbeIsMovedToWithoutARestart() throws {
        var net = try VirtualConnectivity()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + .seconds(8))
        let selected = try #require(net.sides[0].connected?.path.pair.remote.address.ipBytes[1])
        net.networks[selected]?.up = false
        let cut = net.now
        _ = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.pair.remote.address.ipBytes[1] != selected)
            #expect(change.at - cut <= .milliseconds(2_600), "\(change.at - cut)")
            #expect(side.restarting.isEmpty && side.pathLost.isEmpty && side.core.agent.restarts == 0)
        }
    }

    /// A live peer whose mailbox round trip is slow (1.2 s each way) still
    /// answers within the 3 s: the restart keeps its checks' deadline and
    /// the session moves.
    @Test func aSlowRelayAnswerWithinTheBoundKeepsTheRestart() throws {
        var (net, machines) = try ConnectivityRestartTests.laptopSettled()
        net.signallingDelay = .milliseconds(1_200)
        ConnectivityRestartTests.silenceWiFiBesideEthernet(&net, machines)
        let cut = net.now
        _ = net.sendRecords(until: cut + .seconds(10))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.afterRestart)
            #expect(side.pathLost.isEmpty && side.failed == nil, "\(side.pathLost)")
        }
    }
}
