#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import TernSCTP

/// CUBIC (RFC 9438) over SCTP, for the simulation only: the loss-based
/// controller most TCP flows run, as a competitor for BBR's fairness
/// tests. Windows count in packets of the path MTU (RFC 9438's segments).
///
/// Slow start grows by the bytes acknowledged, as tern's RFC 9260
/// controller does (no HyStart++); a loss episode (the association's fast
/// recovery, one per window) is one congestion event; nothing grows while
/// in fast recovery. Not paced.
struct CubicCongestionControl: SCTPCongestionControl {
    /// RFC 9438 §5: C and β_cubic.
    static let c = 0.4
    static let beta = 0.7
    /// §4.3: the Reno-friendly region's additive increase, 3(1 − β)/(1 + β).
    static let alpha = 3 * (1 - beta) / (1 + beta)

    private(set) var mtu: Int
    /// In packets.
    private var window: Double
    private var slowStartThreshold: Double
    /// §4.2: the window before the last reduction, and its predecessor for fast convergence (§4.7).
    private var windowMaximum = 0.0
    private var previousWindowMaximum = 0.0
    /// When the current congestion-avoidance epoch began, its window then, and K (§4.2).
    private var epochStart: Duration?
    private var epochWindow = 0.0
    private var k = 0.0
    /// §4.3: the Reno-friendly estimate, in packets.
    private var renoEstimate = 0.0
    private var smoothedRoundTrip: Duration = .milliseconds(100)
    private(set) var congestionEvents = 0

    init(mtu: Int, peerReceiveWindow: Int) {
        self.mtu = max(mtu, 512)
        // RFC 9260 §7.2.1's initial window, and ssthresh at the peer's window.
        window = Double(min(4 * self.mtu, max(2 * self.mtu, 4404))) / Double(self.mtu)
        slowStartThreshold = Double(max(peerReceiveWindow, 4 * self.mtu)) / Double(self.mtu)
    }

    var congestionWindow: Int { Int(window * Double(mtu)) }
    var pacingRate: Int? { nil }

    mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {
        smoothedRoundTrip = smoothedRoundTrip * 7 / 8 + rtt / 8
    }

    mutating func acknowledged(_ ack: SCTPAcknowledgement) {
        guard ack.bytes > 0, !ack.inFastRecovery else { return }
        // Only a window that was used shows the path carries it (RFC 9438 §5.8, RFC 7661).
        guard ack.flightSizeBefore + mtu >= congestionWindow else { return }
        let acked = Double(ack.bytes) / Double(mtu)
        if window < slowStartThreshold {
            window += min(acked, Double(RFC9260CongestionControl.slowStartPacketsPerSACK))
            return
        }
        if epochStart == nil {
            // §4.2: a new epoch; K from the distance to the last maximum.
            epochStart = ack.now
            epochWindow = window
            renoEstimate = window
            if windowMaximum > window {
                k = cbrt((windowMaximum - window) / Self.c)
            } else {
                k = 0
                windowMaximum = window
            }
        }
        let t = BBRCongestionControl.seconds(ack.now - (epochStart ?? ack.now))
        let rtt = BBRCongestionControl.seconds(smoothedRoundTrip)
        // §4.2 eq. 1 at t + RTT, the target clamped to [cwnd, 1.5 cwnd] (§4.4).
        let cubic = Self.c * pow(t + rtt - k, 3) + windowMaximum
        let target = min(max(cubic, window), 1.5 * window)
        // §4.3: the Reno-friendly estimate; α becomes 1 past the old maximum.
        let alpha = renoEstimate >= windowMaximum ? 1 : Self.alpha
        renoEstimate += alpha * acked / window
        if cubic < renoEstimate {
            window = max(window, renoEstimate)
        } else {
            window += (target - window) / window * acked
        }
    }

    mutating func lossDetected(flightSize: Int, now: Duration) {
        congestionEvents += 1
        // §4.7 fast convergence, §4.6 the multiplicative decrease.
        if window < previousWindowMaximum {
            windowMaximum = window * (1 + Self.beta) / 2
        } else {
            windowMaximum = window
        }
        previousWindowMaximum = windowMaximum
        slowStartThreshold = max(window * Self.beta, 2)
        window = slowStartThreshold
        epochStart = nil
    }

    mutating func retransmissionTimeout(now: Duration) {
        // §4.8: a timeout is a congestion event; the window restarts from one packet.
        lossDetected(flightSize: 0, now: now)
        window = 1
    }

    mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {}
}

/// The controllers of the fairness simulation: tern's BBR, or CUBIC
/// standing for a TCP flow (asked for with `.rfc9260`, the loss-based kind;
/// RFC 9260's own Reno is what `BBRPathHeavyTests` compares with).
enum CompetingCongestionControl: SCTPCongestionControl {
    case tern(SelectableCongestionControl)
    case cubic(CubicCongestionControl)

    init(mtu: Int, peerReceiveWindow: Int) {
        self.init(mtu: mtu, peerReceiveWindow: peerReceiveWindow, kind: .default)
    }

    init(mtu: Int, peerReceiveWindow: Int, kind: SCTPCongestionControlKind) {
        if kind == .rfc9260 {
            self = .cubic(CubicCongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow))
        } else {
            self = .tern(SelectableCongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow, kind: kind))
        }
    }

    var congestionWindow: Int {
        switch self {
        case .tern(let c): return c.congestionWindow
        case .cubic(let c): return c.congestionWindow
        }
    }

    var pacingRate: Int? {
        switch self {
        case .tern(let c): return c.pacingRate
        case .cubic(let c): return c.pacingRate
        }
    }

    private mutating func update(_ tern: (inout SelectableCongestionControl) -> Void, _ cubic: (inout CubicCongestionControl) -> Void) {
        switch self {
        case .tern(var c):
            tern(&c)
            self = .tern(c)
        case .cubic(var c):
            cubic(&c)
            self = .cubic(c)
        }
    }

    mutating func acknowledged(_ a: SCTPAcknowledgement) { update({ $0.acknowledged(a) }, { $0.acknowledged(a) }) }
    mutating func packetsLost(_ count: Int) { update({ $0.packetsLost(count) }, { $0.packetsLost(count) }) }
    mutating func lossDetected(flightSize: Int, now: Duration) {
        update({ $0.lossDetected(flightSize: flightSize, now: now) }, { $0.lossDetected(flightSize: flightSize, now: now) })
    }
    mutating func retransmissionTimeout(now: Duration) { update({ $0.retransmissionTimeout(now: now) }, { $0.retransmissionTimeout(now: now) }) }
    mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {
        update({ $0.roundTripMeasured(rtt, now: now) }, { $0.roundTripMeasured(rtt, now: now) })
    }
    mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {
        update({ $0.wasIdle(for: idle, retransmissionTimeout: rto) }, { $0.wasIdle(for: idle, retransmissionTimeout: rto) })
    }
    mutating func pathMTUChanged(to mtu: Int) { update({ $0.pathMTUChanged(to: mtu) }, { $0.pathMTUChanged(to: mtu) }) }
    mutating func seedRandomness(_ seed: UInt64) { update({ $0.seedRandomness(seed) }, { _ in }) }
    mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration) {
        update(
            { $0.congestionExperienced(markedPackets: markedPackets, reduceWindow: reduceWindow, flightSize: flightSize, now: now) },
            { $0.congestionExperienced(markedPackets: markedPackets, reduceWindow: reduceWindow, flightSize: flightSize, now: now) })
    }
}
