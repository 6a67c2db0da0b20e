import Testing
import TernTestSupport
@testable import TernSCTP

/// LossTolerantCongestionControl: RFC 9260's reaction to loss only when the
/// loss rate says congestion; unchanged behaviour otherwise.
struct LossTolerantCongestionTests {
    static let mtu = 1200

    func ack(_ bytes: Int, flight: Int, recovery: Bool = false) -> SCTPAcknowledgement {
        SCTPAcknowledgement(bytes: bytes, flightSizeBefore: flight, cumulativeAdvanced: true, inFastRecovery: recovery, now: .zero)
    }

    /// Acknowledges `packets` full packets one SACK per two, the window full.
    func deliver(_ packets: Int, to cc: inout LossTolerantCongestionControl, recovery: Bool = false) {
        for _ in 0..<(packets / 2) { cc.acknowledged(ack(2 * Self.mtu, flight: cc.congestionWindow, recovery: recovery)) }
    }

    @Test func withoutLossItGrowsAsRFC9260Does() {
        var tolerant = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        var standard = RFC9260CongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        for _ in 0..<2_000 {
            tolerant.acknowledged(ack(2 * Self.mtu, flight: tolerant.congestionWindow))
            standard.acknowledged(ack(2 * Self.mtu, flight: standard.congestionWindow))
            #expect(tolerant.congestionWindow == standard.congestionWindow)
        }
        #expect(tolerant.recentLossRate == 0)
    }

    @Test func aLossWithNoHistoryCutsTheWindow() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        deliver(20, to: &cc)
        let before = cc.congestionWindow
        cc.packetsLost(1)
        cc.lossDetected(flightSize: before, now: .zero)
        #expect(cc.congestionWindow == before / 2, "RFC 9260 §7.2.3: halved")
        #expect(cc.windowCuts == 1)
    }

    @Test func randomLossAtOnePercentLeavesTheWindowAlone() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        // Enough packets for the rate to be trusted, then one loss every 100
        // packets for 20,000 packets; the window stays in slow start.
        deliver(200, to: &cc)
        for _ in 0..<200 {
            deliver(99, to: &cc)
            let before = cc.congestionWindow
            cc.packetsLost(1)
            cc.lossDetected(flightSize: before, now: .zero)
            #expect(cc.congestionWindow == before)
            // The recovery that follows does not stop growth (RFC 9260 §7.2.4
            // would hold the window until it ends).
            let during = cc.congestionWindow
            cc.acknowledged(ack(2 * Self.mtu, flight: during, recovery: true))
            #expect(cc.congestionWindow > during)
        }
        #expect(cc.windowCuts == 0)
        #expect(abs(cc.recentLossRate - 0.01) < 0.005)
    }

    @Test func lossAboveTwoPercentIsCongestion() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        deliver(1_000, to: &cc)
        // A queue overflowing: 30 packets of the next 300 lost.
        deliver(270, to: &cc)
        cc.packetsLost(30)
        #expect(cc.recentLossRate > LossTolerantCongestionControl.tolerableLossRate)
        let before = cc.congestionWindow
        cc.lossDetected(flightSize: before, now: .zero)
        #expect(cc.congestionWindow == before / 2)
        // And the window holds until that recovery is over.
        cc.acknowledged(ack(2 * Self.mtu, flight: cc.congestionWindow, recovery: true))
        #expect(cc.congestionWindow == before / 2)
        cc.acknowledged(ack(2 * Self.mtu, flight: cc.congestionWindow, recovery: false))
        #expect(cc.congestionWindow > before / 2)
    }

    @Test func theRateForgetsOldLossWithinAboutFiveHundredPackets() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        deliver(1_000, to: &cc)
        cc.packetsLost(40)
        #expect(cc.recentLossRate > 0.05)
        deliver(2_000, to: &cc)
        #expect(cc.recentLossRate < 0.005)
    }

    @Test func earlyCutsAreUndoneWhenTheRateProvesLow() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        deliver(30, to: &cc)
        cc.packetsLost(1)
        cc.lossDetected(flightSize: cc.congestionWindow, now: .zero)
        #expect(cc.windowCuts == 1)
        #expect(cc.slowStartThreshold < 1 << 20, "slow start ended")
        // 600 more packets with no loss: 1 in 631 is random loss.
        deliver(600, to: &cc)
        #expect(cc.slowStartThreshold == 1 << 30, "slow start resumes towards the peer's window")
    }

    @Test func earlyCutsAreReviewedEvenWhenALossCompletesTheFirst512Packets() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 30)
        deliver(30, to: &cc)
        cc.packetsLost(1)
        cc.lossDetected(flightSize: cc.congestionWindow, now: .zero)
        deliver(480, to: &cc)  // 511 packets counted
        cc.packetsLost(2)      // the 512th and 513th, lost
        #expect(cc.slowStartThreshold < 1 << 20)
        deliver(2, to: &cc)
        #expect(cc.slowStartThreshold == 1 << 30, "3 lost in 515 is random loss: slow start resumes")
    }

    @Test func aTimeoutStillCollapsesTheWindow() {
        var cc = LossTolerantCongestionControl(mtu: Self.mtu, peerReceiveWindow: 1 << 20)
        deliver(1_000, to: &cc)
        cc.retransmissionTimeout(now: .zero)
        #expect(cc.congestionWindow == Self.mtu, "RFC 9260 §7.2.3")
    }
}
