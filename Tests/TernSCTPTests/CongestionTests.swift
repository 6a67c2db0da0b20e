import Testing
@testable import TernSCTP

struct CongestionControlTests {
    static let mtu = 1200

    func ack(_ bytes: Int, flight: Int, advanced: Bool = true, recovery: Bool = false) -> SCTPAcknowledgement {
        SCTPAcknowledgement(bytes: bytes, flightSizeBefore: flight, cumulativeAdvanced: advanced, inFastRecovery: recovery, now: .zero)
    }

    @Test func theInitialWindowIsFourMTUsAndSsthreshThePeerWindow() {
        let cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        #expect(cc.congestionWindow == 4404)  // min(4 MTU = 4800, max(2 MTU = 2400, 4404))
        #expect(cc.slowStartThreshold == 1 << 20)
        #expect(cc.inSlowStart)
        // RFC 9260 §7.2.1 with a small MTU: max(2 MTU, 4404) wins.
        #expect(RFC9260CongestionControl(mtu: 1000, peerReceiveWindow: 1 << 20).congestionWindow == 4000)
        #expect(RFC9260CongestionControl(mtu: 1500, peerReceiveWindow: 1 << 20).congestionWindow == 4404)
    }

    @Test func slowStartGrowsByTheBytesAcknowledgedUpToLMTUsPerAck() {
        let limit = RFC9260CongestionControl.slowStartPacketsPerSACK
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        let start = cc.congestionWindow
        cc.acknowledged(ack(2 * Self.mtu, flight: start))
        #expect(cc.congestionWindow == start + 2 * Self.mtu, "two packets acknowledged, two MTUs")
        cc.acknowledged(ack(500, flight: cc.congestionWindow))
        #expect(cc.congestionWindow == start + 2 * Self.mtu + 500, "by the bytes acknowledged when less than an MTU")
        // A stretch SACK (tern's receivers answer once per read batch):
        // counted in full up to L MTUs, no further.
        let before = cc.congestionWindow
        cc.acknowledged(ack(limit * Self.mtu, flight: before))
        #expect(cc.congestionWindow == before + limit * Self.mtu)
        let capped = cc.congestionWindow
        cc.acknowledged(ack((limit + 20) * Self.mtu, flight: capped))
        #expect(cc.congestionWindow == capped + limit * Self.mtu, "capped at L MTUs")
        // A SACK per batch of 32 packets doubles the window per round trip,
        // as one per two packets does.
        var stretched = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        var grown = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        for round in 0..<3 {
            let window = stretched.congestionWindow
            var acknowledged = 0
            while acknowledged + 32 * Self.mtu <= window {
                stretched.acknowledged(ack(32 * Self.mtu, flight: stretched.congestionWindow))  // refilled as it grows
                acknowledged += 32 * Self.mtu
            }
            if acknowledged < window { stretched.acknowledged(ack(window - acknowledged, flight: stretched.congestionWindow)) }
            #expect(stretched.congestionWindow == 2 * window, "round \(round)")
            let other = grown.congestionWindow
            var pairs = 0
            while pairs * 2 * Self.mtu < other {
                grown.acknowledged(ack(min(2 * Self.mtu, other - pairs * 2 * Self.mtu), flight: grown.congestionWindow))
                pairs += 1
            }
            #expect(grown.congestionWindow == 2 * other, "round \(round)")
        }
    }

    @Test func anUnderusedWindowDoesNotGrow() {
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        let start = cc.congestionWindow
        cc.acknowledged(ack(Self.mtu, flight: Self.mtu))
        #expect(cc.congestionWindow == start)
        cc.acknowledged(ack(Self.mtu, flight: start, advanced: false))
        #expect(cc.congestionWindow == start, "gap-block-only acks do not grow the window in slow start")
    }

    @Test func congestionAvoidanceAddsOneMTUPerWindowAcknowledged() {
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 10 * Self.mtu)
        // Grow past ssthresh first.
        while cc.inSlowStart { cc.acknowledged(ack(Self.mtu, flight: cc.congestionWindow)) }
        let window = cc.congestionWindow
        var acked = 0
        while acked + Self.mtu < window {
            cc.acknowledged(ack(Self.mtu, flight: window))
            acked += Self.mtu
        }
        #expect(cc.congestionWindow == window, "no growth before a full window is acknowledged")
        cc.acknowledged(ack(Self.mtu, flight: window))
        #expect(cc.congestionWindow == window + Self.mtu)
        #expect(cc.partialBytesAcked == acked + Self.mtu - window)
    }

    @Test func lossHalvesTheWindowButNotBelowFourMTUs() {
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        for _ in 0..<40 { cc.acknowledged(ack(Self.mtu, flight: cc.congestionWindow)) }
        let window = cc.congestionWindow
        cc.lossDetected(flightSize: window, now: .zero)
        #expect(cc.congestionWindow == window / 2 && cc.slowStartThreshold == window / 2)
        #expect(!cc.inSlowStart || cc.congestionWindow == cc.slowStartThreshold)
        // Acks during fast recovery do not grow it.
        cc.acknowledged(ack(Self.mtu, flight: cc.congestionWindow, recovery: true))
        #expect(cc.congestionWindow == window / 2)
        var small = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        small.lossDetected(flightSize: small.congestionWindow, now: .zero)
        #expect(small.congestionWindow == 4 * Self.mtu)
    }

    @Test func aTimeoutCollapsesTheWindowToOneMTU() {
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        for _ in 0..<40 { cc.acknowledged(ack(Self.mtu, flight: cc.congestionWindow)) }
        let window = cc.congestionWindow
        cc.retransmissionTimeout(now: .zero)
        #expect(cc.congestionWindow == Self.mtu)
        #expect(cc.slowStartThreshold == window / 2)
        #expect(cc.inSlowStart)
    }

    @Test func anIdleWindowDecaysByHalfPerRTO() {
        var cc = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        for _ in 0..<60 { cc.acknowledged(ack(Self.mtu, flight: cc.congestionWindow)) }
        let window = cc.congestionWindow
        cc.wasIdle(for: .seconds(2), retransmissionTimeout: .seconds(1))
        #expect(cc.congestionWindow == max(window / 4, 4 * Self.mtu))
    }

    @Test func theRTOFollowsRFC9260Section631() {
        var rto = SCTPRetransmissionTimeout(configuration: .init(initial: .seconds(1), minimum: .seconds(1), maximum: .seconds(60)))
        #expect(rto.value == .seconds(1))
        rto.measured(.milliseconds(200))
        // C2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR = 600 ms, raised to the 1 s minimum.
        #expect(rto.smoothedRoundTrip == .milliseconds(200))
        #expect(rto.roundTripVariation == .milliseconds(100))
        #expect(rto.value == .seconds(1))
        var fast = SCTPRetransmissionTimeout(configuration: .init(initial: .seconds(1), minimum: .milliseconds(10), maximum: .seconds(60)))
        fast.measured(.milliseconds(200))
        #expect(fast.value == .milliseconds(600))
        fast.measured(.milliseconds(100))
        // C3: RTTVAR = 3/4 * 100 + 1/4 * |200 - 100| = 100; SRTT = 7/8 * 200 + 1/8 * 100 = 187.5.
        #expect(fast.roundTripVariation == .milliseconds(100))
        #expect(fast.smoothedRoundTrip == .microseconds(187_500))
        #expect(fast.value == .microseconds(587_500))
        fast.backOff()
        #expect(fast.value == .microseconds(1_175_000))
        for _ in 0..<10 { fast.backOff() }
        #expect(fast.value == .seconds(60))
    }
}
