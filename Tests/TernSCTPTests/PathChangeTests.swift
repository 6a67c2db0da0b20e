import Testing
import TernTestSupport
@testable import TernSCTP

/// `SCTPAssociation.pathChanged`: ICE moved the association's packets to
/// another pair, and what was in flight on the old one goes out again at
/// once instead of at the backed-off T3-rtx timer (RFC 9000 §9.4, RFC 9260 §6.4).
struct PathChangeTests {
    /// Distinct messages, so a message delivered twice or out of order shows.
    static func messages(_ count: Int) -> [[UInt8]] {
        (0..<count).map { index in [UInt8(index & 0xFF), UInt8(index >> 8)] + [UInt8](repeating: UInt8(index % 251), count: 3000) }
    }

    /// Two established sides, side 0 streaming `messages` until its old path
    /// stops carrying anything: everything sent after `blackout` is lost for
    /// `silence`, long enough for two T3-rtx expiries to back the RTO off.
    /// Then the link carries again, with a longer delay (the new path).
    static func pairAfterSilence(
        seed: UInt64, messages: [[UInt8]], silence: Duration = .milliseconds(1500)
    ) -> Pair {
        var pair = Pair(seed: seed)
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        pair.sendFromFirst(messages)
        let start = pair.now
        pair.run(until: start + .milliseconds(100)) { $0.received[1].count >= 4 }
        pair.link.loss = 1
        pair.run(until: pair.now + silence)
        pair.link.loss = 0
        pair.link.delay = .milliseconds(50)
        return pair
    }

    /// The data packets side 0 sends now, without advancing time.
    static func dataSentNow(_ pair: inout Pair) -> Int {
        var count = 0
        while let packet = pair.sides[0].pollTransmit(now: pair.now) {
            if packet.chunks.contains(where: { if case .data = $0 { return true } else { return false } }) { count += 1 }
            pair.link.send(packet, to: 1, now: pair.now)
        }
        return count
    }

    @Test func onANewPathOutstandingDataGoesOutAtOnceWithFreshEstimates() throws {
        let messages = Self.messages(40)
        var pair = Self.pairAfterSilence(seed: 41, messages: messages)
        let before = pair.sides[0]
        #expect(before.statistics.timeouts >= 2, "the old path's silence backed the timer off")
        #expect(before.rto.value >= .milliseconds(1600), "backed off: \(before.rto.value)")
        #expect(!before.retransmissions.isEmpty)
        // Without the call nothing would go before the backed-off T3 expiry.
        let timerDue = try #require(before.nextDeadline)
        #expect(timerDue - pair.now > .milliseconds(200))
        let delivered = pair.received[1].count
        let moved = pair.now

        for index in 0..<2 { pair.sides[index].pathChanged(now: moved) }
        let after = pair.sides[0]
        #expect(after.rto.value == .milliseconds(500), "RTO.Initial (RFC 9260 §6.3.1 C1)")
        #expect(after.rto.smoothedRoundTrip == nil)
        #expect(after.congestion?.congestionWindow == 4404, "the initial window (RFC 9260 §7.2.1)")
        #expect(after.retransmissions.flightSize == 0 && after.retransmissions.hasRetransmissions)
        #expect(Self.dataSentNow(&pair) >= 1, "the outstanding chunks leave at the moment of the move")
        #expect(pair.sides[0].statistics.timeouts == before.statistics.timeouts)

        // They arrive one new-path delay later, not at the old timer.
        pair.run(until: moved + .seconds(1)) { $0.received[1].count > delivered }
        #expect(pair.received[1].count > delivered)
        #expect(pair.now <= moved + .milliseconds(60), "first message after the move at \(pair.now - moved)")

        // Every message exactly once, in order, and the estimate is the new path's.
        pair.run(until: pair.now + .seconds(60)) { $0.received[1].count == messages.count && $0.sides[0].retransmissions.isEmpty }
        #expect(pair.received[1].map(\.payload) == messages)
        #expect(pair.sides[0].statistics.timeouts == before.statistics.timeouts, "no T3 expiry after the move")
        let smoothed = try #require(pair.sides[0].rto.smoothedRoundTrip)
        #expect(smoothed >= .milliseconds(100), "a round trip of the 50 ms path, none of the 20 ms one: \(smoothed)")
    }

    @Test func aRebindingKeepsTheEstimateAndTheWindowButEndsTheBackOff() throws {
        let messages = Self.messages(40)
        var pair = Self.pairAfterSilence(seed: 42, messages: messages)
        let before = pair.sides[0]
        let smoothed = try #require(before.rto.smoothedRoundTrip)
        let window = before.congestion?.congestionWindow
        let moved = pair.now

        pair.sides[0].pathChanged(sameNetworkPath: true, now: moved)
        let after = pair.sides[0]
        #expect(after.rto.smoothedRoundTrip == smoothed)
        #expect(after.rto.value == SCTPRetransmissionTimeout.clamp(
            smoothed + before.rto.roundTripVariation * 4, before.rto.configuration), "back-off undone")
        #expect(after.rto.value < before.rto.value)
        #expect(after.congestion?.congestionWindow == window)
        #expect(Self.dataSentNow(&pair) >= 1)

        pair.run(until: pair.now + .seconds(60)) { $0.received[1].count == messages.count && $0.sides[0].retransmissions.isEmpty }
        #expect(pair.received[1].map(\.payload) == messages)
    }

    @Test func aPathChangeBeforeTheHandshakeChangesNothing() {
        var pair = Pair(seed: 43)
        pair.sides[0].connect(now: .zero)
        let rto = pair.sides[0].rto
        pair.sides[0].pathChanged(now: .zero)
        #expect(pair.sides[0].rto == rto)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
    }
}

struct PathChangeRetransmissionQueueTests {
    @Test func chunksInFlightAreMarkedForRetransmissionNotLost() throws {
        var send = SCTPSendQueue()
        var q = SCTPRetransmissionQueue(initialTSN: TSN(1))
        for _ in 0..<3 { send.enqueue(stream: 0, ppid: 53, payload: [UInt8](repeating: 0, count: 100), now: .zero) }
        while let fragment = send.nextFragment(tsn: q.nextTSN, maximumPayload: 1000) { q.sent(fragment, now: .zero) }

        q.pathChanged(now: .milliseconds(100))
        #expect(q.flightSize == 0 && q.hasRetransmissions)
        #expect(q.deliveryRate.lost == 0, "a path change is no loss")
        // TSN 1 resent on the new path; TSN 2 and 3 still wait.
        let resent = q.nextRetransmission(now: .milliseconds(100))
        #expect(resent?.fragment.tsn == TSN(1))

        // A late SACK from the old path for TSN 2 (sent once, before the
        // change): no round-trip sample and no rate sample from it.
        let lateSACK = q.handleSACK(cumulative: TSN(0), gapBlocks: [(start: 2, end: 2)], now: .milliseconds(110))
        let late = try #require(lateSACK)
        #expect(late.newlyAcknowledgedBytes == 100)
        #expect(late.roundTrip == nil)
        #expect(late.rateSample == nil)

        // TSN 1's resend and a new chunk sent on the new path give samples of it.
        send.enqueue(stream: 0, ppid: 53, payload: [UInt8](repeating: 0, count: 100), now: .milliseconds(120))
        let nextFragment = send.nextFragment(tsn: q.nextTSN, maximumPayload: 1000)
        let next = try #require(nextFragment)
        q.sent(next, now: .milliseconds(120))
        _ = q.nextRetransmission(now: .milliseconds(120))
        let freshSACK = q.handleSACK(cumulative: TSN(4), gapBlocks: [], now: .milliseconds(170))
        let fresh = try #require(freshSACK)
        #expect(fresh.roundTrip == .milliseconds(50), "from the new chunk (Karn skips the resent ones)")
        #expect(fresh.rateSample?.roundTrip == .milliseconds(50))
        #expect(fresh.newlyLostBytes == 0 && q.isEmpty)
    }
}

/// BBR (the default controller) through a path change in virtual time
/// (BottleneckSimulation): a transfer on a 20 Mbit/s path with a 40 ms
/// round trip moves, mid-stream, to a 4 Mbit/s path with a 100 ms round
/// trip (a relayed one, say), everything in transit on the old path lost.
/// And an upgrade the other way, the old path still delivering what it
/// carries. Seconds of simulated transfer: the serial phase (Heavy).
struct PathChangeBBRHeavyTests {
    typealias Simulation = BBRPathTests.Simulation

    static func run(tellSCTP: Bool) throws -> Simulation {
        var simulation = Simulation(path: Simulation.Path(), seed: 5)
        simulation.addFlow(bytes: 6 << 20, configuration: BBRPathTests.configuration(.bbr))
        try simulation.run(until: .seconds(2))
        // The old path goes silent for a second before ICE moves (its
        // failover timeout, or an ICE restart): SCTP's timer backs off.
        simulation.path.lossEachWay = 1
        try simulation.run(until: .seconds(3))
        var slower = Simulation.Path()
        slower.rate = 4e6 / 8
        slower.oneWayDelay = .milliseconds(50)
        slower.queue = .milliseconds(200)
        simulation.move(to: slower, tellSCTP: tellSCTP)
        return simulation
    }

    @Test func theModelStartsAfreshAndDataFlowsOneDelayAfterTheMove() throws {
        var told = try Self.run(tellSCTP: true)
        guard case .bbr(let bbr)? = told.flows[0].sides[0].congestion else {
            Issue.record("not BBR")
            return
        }
        #expect(bbr.state == .startup)
        #expect(bbr.congestionWindow == BBRCongestionControl.initialWindowPackets * told.flows[0].sides[0].pathMTU)
        #expect(bbr.minimumRoundTrip == nil && bbr.maximumBandwidth == 0)
        let moved = try #require(told.movedAt)
        let timeoutsBefore = told.flows[0].sides[0].statistics.timeouts
        try told.run(until: .seconds(60))
        var untold = try Self.run(tellSCTP: false)
        try untold.run(until: .seconds(60))

        let toldGap = try #require(told.firstDataAfterMove) - moved
        let untoldGap = try #require(untold.firstDataAfterMove) - moved
        print("BBR path change: first data after the move \(toldGap) (told), \(untoldGap) (not told); "
            + "finished at \(told.flows[0].finished.map { "\($0)" } ?? "-") / \(untold.flows[0].finished.map { "\($0)" } ?? "-"); "
            + "timeouts \(told.flows[0].sides[0].statistics.timeouts) / \(untold.flows[0].sides[0].statistics.timeouts)")
        #expect(toldGap <= .milliseconds(60), "one 50 ms delay and a packet's time at 4 Mbit/s: \(toldGap)")
        #expect(untoldGap >= toldGap + .milliseconds(200), "the backed-off T3 timer: \(untoldGap)")
        #expect(told.flows[0].intact && told.flows[0].finished != nil)
        #expect(told.flows[0].sides[0].statistics.timeouts == timeoutsBefore, "no T3 expiry after the move")
        guard case .bbr(let after)? = told.flows[0].sides[0].congestion else { return }
        let rtt = try #require(after.minimumRoundTrip)
        #expect(rtt >= .milliseconds(100), "the new path's round trip, not the old one's 40 ms: \(rtt)")
        guard case .bbr(let stale)? = untold.flows[0].sides[0].congestion else { return }
        #expect((stale.minimumRoundTrip ?? .zero) < .milliseconds(50), "not told, the old path's estimate stays (10 s filter)")
    }
}

extension PathChangeBBRHeavyTests {
    @Test func anUpgradeWhileTheOldPathStillDeliversLosesAndRepeatsNothing() throws {
        func run(tellSCTP: Bool) throws -> Simulation {
            var relayed = Simulation.Path()
            relayed.rate = 4e6 / 8
            relayed.oneWayDelay = .milliseconds(50)
            var simulation = Simulation(path: relayed, seed: 6)
            simulation.addFlow(bytes: 16 << 20, configuration: BBRPathTests.configuration(.bbr))
            try simulation.run(until: .seconds(3))
            simulation.move(to: Simulation.Path(), tellSCTP: tellSCTP, oldPathDelivers: true)
            try simulation.run(until: .seconds(60))
            return simulation
        }
        let told = try run(tellSCTP: true), untold = try run(tellSCTP: false)
        print("BBR upgrade: finished at \(told.flows[0].finished.map { "\($0)" } ?? "-") told, \(untold.flows[0].finished.map { "\($0)" } ?? "-") not; "
            + "retransmitted \(told.flows[0].sides[0].statistics.retransmittedChunks) / \(untold.flows[0].sides[0].statistics.retransmittedChunks); "
            + "queue \(told.medianQueueDelay(skippingFirst: told.queueDelays.count / 2)) / \(untold.medianQueueDelay(skippingFirst: untold.queueDelays.count / 2)); "
            + "drops \(told.dropsAtQueue) / \(untold.dropsAtQueue)")
        // Each message checked for order and content: nothing lost, none twice.
        #expect(told.flows[0].intact && untold.flows[0].intact)
        let toldEnd = try #require(told.flows[0].finished), untoldEnd = try #require(untold.flows[0].finished)
        // What the old path still carried is sent again (one flight, not
        // more), and the fresh model costs the transfer nothing to speak of.
        #expect(told.flows[0].sides[0].statistics.retransmittedChunks < untold.flows[0].sides[0].statistics.retransmittedChunks + 100)
        #expect(toldEnd <= untoldEnd + .milliseconds(250), "\(toldEnd) against \(untoldEnd)")
    }
}
