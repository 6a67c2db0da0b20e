#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 9260's congestion control, except that a loss does not shrink the
/// window while the recent loss rate stays at or below 2%.
///
/// RFC 9260 §7.2.3 halves the window for every loss episode, so its rate on a
/// path that loses packets at random, whatever the load, is about
/// MTU / RTT × 1.22 / √p (the TCP Reno bound): on a 40 ms path losing 1%,
/// 0.4 MB/s, however fast the path is. A queue that overflows loses far more
/// than that once a sender pushes past it, so a low loss rate says little
/// about congestion, and a high one says a lot. This controller reads it that
/// way, as BBRv2 does with its 2% threshold: below the threshold a loss is
/// only repaired (fast retransmit still happens, the window is not cut and
/// keeps growing through the recovery); above it, the reaction is RFC 9260's
/// (the window halves, and does not grow until the recovery is over).
/// Slow start, congestion avoidance, the collapse on a T3-rtx timeout and the
/// decay while idle are RFC 9260's, unchanged.
///
/// The loss rate is a moving average over packets (each packet a sample, 1
/// if lost, 0 if delivered), reaching back about 512 packets: long enough
/// that 1% of random loss reads as 1% ± 0.5%, not as 10% whenever one of a
/// small window's packets goes, short enough that a queue overflowing (tens
/// of packets lost in a round trip) crosses the threshold within that round
/// trip. Over the first 512 packets it is the plain average of those seen;
/// before 100 there is no telling, and every loss episode cuts the window
/// as RFC 9260 would. Such early cuts end slow start on the evidence of a
/// loss or two; when the first 512 packets show the loss rate within the
/// threshold, slow start resumes (up to the peer's window, where it began),
/// rather than leaving the window to grow by one MTU per round trip from a
/// few packets.
public struct LossTolerantCongestionControl: SCTPCongestionControl {
    /// A loss rate up to this (the moving average below) is not congestion.
    public static let tolerableLossRate = 0.02

    public private(set) var standard: RFC9260CongestionControl
    /// Weight of one packet in the moving average (about 512 packets back).
    static let sampleWeight = 1.0 / 512
    /// Packets to count before the average is trusted.
    static let minimumSamples = 100
    /// Packets over which the rate is the plain average, before the moving one.
    static let averagedSamples = 512
    private var lostSamples = 0
    /// Set once the first 512 packets are counted and early cuts reviewed.
    private var earlyCutsReviewed = false
    /// The moving average of the loss indicator per packet.
    public private(set) var recentLossRate = 0.0
    private var samples = 0
    /// True from a loss episode the controller answered with a cut until the
    /// association leaves that fast recovery: the window stays put meanwhile.
    private var recoveringFromCongestion = false
    /// Loss episodes seen, and those that cut the window (for diagnostics).
    public private(set) var lossEpisodes = 0
    public private(set) var windowCuts = 0

    /// Where slow start first ended (the peer's window), to resume it there.
    private let initialThreshold: Int

    public init(mtu: Int, peerReceiveWindow: Int) {
        standard = RFC9260CongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow)
        initialThreshold = standard.slowStartThreshold
    }

    public var congestionWindow: Int { standard.congestionWindow }
    public var slowStartThreshold: Int { standard.slowStartThreshold }
    public var pacingRate: Int? { nil }

    public mutating func acknowledged(_ ack: SCTPAcknowledgement) {
        guard ack.bytes > 0 else { return }
        let mtu = standard.mtu
        count((ack.bytes + mtu - 1) / mtu, lost: false)
        if !earlyCutsReviewed && samples >= Self.averagedSamples {
            // The estimate is trusted from here: cuts made on too little
            // evidence are undone if it shows random loss only.
            earlyCutsReviewed = true
            if windowCuts > 0 && recentLossRate <= Self.tolerableLossRate {
                standard.raiseSlowStartThreshold(to: initialThreshold)
            }
        }
        if !ack.inFastRecovery { recoveringFromCongestion = false }
        // A recovery from a tolerated loss is no reason to stop growing.
        var adjusted = ack
        if !recoveringFromCongestion { adjusted.inFastRecovery = false }
        standard.acknowledged(adjusted)
    }

    public mutating func packetsLost(_ count: Int) {
        guard count > 0 else { return }
        self.count(count, lost: true)
    }

    /// Adds `packets` samples of 1 (lost) or 0 (delivered) to the rate: the
    /// plain average over the first 512, the moving one after.
    private mutating func count(_ packets: Int, lost: Bool) {
        if samples + packets <= Self.averagedSamples {
            samples += packets
            if lost { lostSamples += packets }
            recentLossRate = Double(lostSamples) / Double(samples)
            return
        }
        samples += packets
        // r <- r (1 - w) + w·sample, once per packet.
        let kept = pow(1 - Self.sampleWeight, Double(min(packets, 1 << 16)))
        recentLossRate = recentLossRate * kept + (lost ? 1 - kept : 0)
    }

    public mutating func lossDetected(flightSize: Int, now: Duration) {
        lossEpisodes += 1
        guard samples < Self.minimumSamples || recentLossRate > Self.tolerableLossRate else { return }
        windowCuts += 1
        recoveringFromCongestion = true
        standard.lossDetected(flightSize: flightSize, now: now)
    }

    /// A CE mark is congestion, whatever the random loss rate: the window
    /// halves as RFC 9260's does (once per window).
    public mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration) {
        if reduceWindow { standard.lossDetected(flightSize: flightSize, now: now) }
    }

    public mutating func retransmissionTimeout(now: Duration) {
        standard.retransmissionTimeout(now: now)
    }

    public mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {
        standard.roundTripMeasured(rtt, now: now)
    }

    public mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {
        standard.wasIdle(for: idle, retransmissionTimeout: rto)
    }

    public mutating func pathMTUChanged(to mtu: Int) {
        standard.pathMTUChanged(to: mtu)
    }
}
