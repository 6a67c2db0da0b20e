/// What an SCTP association tells its congestion controller, and what the
/// controller decides: how many bytes may be in flight, and optionally how
/// fast to pace them. The association keeps the TSN bookkeeping (what is
/// outstanding, what a SACK newly acknowledged, when fast recovery starts and
/// ends); the controller only turns those signals into a window. Swapping
/// RFC 9260's controller for a loss-tolerant one (LossTolerantCongestionControl)
/// changes nothing else.
///
/// The association is generic over its controller, so these calls are
/// static, not existential, on the data path.
public protocol SCTPCongestionControl: Sendable {
    /// A controller for a path with this MTU, towards a peer that advertised
    /// this receive window.
    init(mtu: Int, peerReceiveWindow: Int)
    /// The same, for an association configured with `kind`: a controller
    /// that can be several kinds (`SelectableCongestionControl`) picks one;
    /// the others ignore it.
    init(mtu: Int, peerReceiveWindow: Int, kind: SCTPCongestionControlKind)
    /// Bytes that may be outstanding now (RFC 9260 §6.1 rule B: a sender
    /// with `flightSize >= congestionWindow` sends no new data, except one
    /// packet when nothing is outstanding).
    var congestionWindow: Int { get }
    /// Bytes per second to pace new data at; nil to send as the window allows.
    var pacingRate: Int? { get }
    /// Data that was outstanding is now acknowledged (by the cumulative TSN
    /// ack or by gap blocks).
    mutating func acknowledged(_ acknowledgement: SCTPAcknowledgement)
    /// `count` DATA chunks were just marked lost by a SACK's miss indications
    /// (RFC 9260 §7.2.4), whether or not a recovery episode starts with them.
    mutating func packetsLost(_ count: Int)
    /// A packet loss was detected by fast retransmit and the association
    /// entered fast recovery (called once per recovery episode, RFC 9260 §7.2.4).
    mutating func lossDetected(flightSize: Int, now: Duration)
    /// The T3-rtx timer expired (RFC 9260 §6.3.3, §7.2.3).
    mutating func retransmissionTimeout(now: Duration)
    /// A round-trip measurement (RFC 9260 §6.3.1, taken by Karn's rule).
    mutating func roundTripMeasured(_ rtt: Duration, now: Duration)
    /// Nothing was sent on the path for `idle` (RFC 9260 §7.2.1: the window
    /// decays while it is not used).
    mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration)
    /// A path MTU probe found that packets of `mtu` bytes get through (or a
    /// black hole sent the association back to its base MTU).
    mutating func pathMTUChanged(to mtu: Int)
    /// The peer echoed CE marks (ECN, RFC 9260 Appendix A): `markedPackets`
    /// more of our packets arrived marked; `reduceWindow` once per window of
    /// data, for marks on data sent after the last reduction. The default
    /// treats a reduction as a loss detected by fast retransmit (RFC 9260
    /// Appendix A; RFC 3168 §6.1.2).
    mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration)
    /// A seed for what the controller draws at random (when to probe next),
    /// different for every association: controllers seeded alike make the
    /// same choices and, once a shared event lines them up, stay in step.
    mutating func seedRandomness(_ seed: UInt64)
}

extension SCTPCongestionControl {
    public init(mtu: Int, peerReceiveWindow: Int, kind: SCTPCongestionControlKind) {
        self.init(mtu: mtu, peerReceiveWindow: peerReceiveWindow)
    }
    public mutating func pathMTUChanged(to mtu: Int) {}
    public mutating func seedRandomness(_ seed: UInt64) {}
    public mutating func packetsLost(_ count: Int) {}
    public mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration) {
        if reduceWindow { lossDetected(flightSize: flightSize, now: now) }
    }
}

/// One SACK's worth of newly acknowledged data, for the controller.
public struct SCTPAcknowledgement: Sendable, Equatable {
    /// Bytes of DATA chunks acknowledged for the first time by this SACK.
    public var bytes: Int
    /// The flight size before this SACK was processed.
    public var flightSizeBefore: Int
    /// True if the cumulative TSN ack point advanced (RFC 9260 §7.2.1 and
    /// §7.2.2 grow the window only then).
    public var cumulativeAdvanced: Bool
    /// True while the association is in fast recovery (RFC 9260 §7.2.4: the
    /// window does not grow then).
    public var inFastRecovery: Bool
    public var now: Duration
    /// The delivery-rate sample of this SACK (model-based controllers);
    /// nil if it acknowledged and lost nothing.
    public var sample: DeliveryRateSample?
    /// Bytes in flight after this SACK was processed.
    public var flightSize: Int

    public init(
        bytes: Int, flightSizeBefore: Int, cumulativeAdvanced: Bool, inFastRecovery: Bool, now: Duration,
        sample: DeliveryRateSample? = nil, flightSize: Int? = nil
    ) {
        self.bytes = bytes
        self.flightSizeBefore = flightSizeBefore
        self.cumulativeAdvanced = cumulativeAdvanced
        self.inFastRecovery = inFastRecovery
        self.now = now
        self.sample = sample
        self.flightSize = flightSize ?? max(0, flightSizeBefore - bytes)
    }
}

/// RFC 9260 §7.2: slow start, congestion avoidance, fast recovery and the
/// collapse to one MTU on a retransmission timeout. Not paced.
public struct RFC9260CongestionControl: SCTPCongestionControl {
    /// The path MTU in bytes of SCTP packet (what one full packet counts for).
    public private(set) var mtu: Int
    public private(set) var congestionWindow: Int
    public private(set) var slowStartThreshold: Int
    /// RFC 9260 §7.2.2: bytes acknowledged during congestion avoidance not yet turned into window.
    public private(set) var partialBytesAcked = 0
    public var pacingRate: Int? { nil }

    /// RFC 9260 §7.2.1: the initial window is min(4 MTU, max(2 MTU, 4404)),
    /// and ssthresh starts at the peer's advertised receive window.
    public init(mtu: Int, peerReceiveWindow: Int) {
        self.mtu = max(mtu, 512)
        congestionWindow = min(4 * self.mtu, max(2 * self.mtu, 4404))
        slowStartThreshold = max(peerReceiveWindow, 4 * self.mtu)
    }

    public var inSlowStart: Bool { congestionWindow <= slowStartThreshold }

    /// RFC 9260 §7.2.1's L: how many MTUs one SACK may add in slow start.
    /// L = 1 assumes a SACK for every second packet (§6.2). tern's receivers
    /// answer once per read batch instead, up to 32 datagrams (a SACK per
    /// two packets costs CPU at full speed), and with L = 1 such stretch
    /// SACKs turn slow start's doubling per round trip into a crawl
    /// (docs/architecture.md, "Measurements behind constants", has both
    /// numbers). Counting the bytes acknowledged, up to 32
    /// MTUs a SACK, restores the doubling (RFC 3465 §2.3 discusses the same
    /// choice for TCP's delayed and stretch ACKs). A peer that SACKs every
    /// second packet acknowledges two MTUs at a time, so nothing changes
    /// for it.
    public static let slowStartPacketsPerSACK = 32

    /// Growth steps and floors count in packets of the new size; the window
    /// itself (bytes the path was shown to carry) stays.
    public mutating func pathMTUChanged(to mtu: Int) {
        self.mtu = max(mtu, 512)
    }

    public mutating func acknowledged(_ ack: SCTPAcknowledgement) {
        guard ack.bytes > 0, !ack.inFastRecovery else { return }
        // RFC 9260 §7.2.1 / §7.2.2: only a full window grows: a sender that
        // did not use its window has not shown the path can carry more.
        let windowWasFull = ack.flightSizeBefore >= congestionWindow - mtu
        if inSlowStart {
            // §7.2.1: grow by at most the bytes acknowledged and at most L
            // MTUs, when the cumulative ack point advanced.
            if ack.cumulativeAdvanced && windowWasFull {
                congestionWindow += min(ack.bytes, Self.slowStartPacketsPerSACK * mtu)
            }
            return
        }
        // §7.2.2: congestion avoidance, one MTU per window of acknowledged
        // data, counting bytes acknowledged by gap blocks too.
        partialBytesAcked += ack.bytes
        if partialBytesAcked >= congestionWindow {
            if ack.flightSizeBefore >= congestionWindow {
                partialBytesAcked -= congestionWindow
                congestionWindow += mtu
            } else {
                // The window was not full: no growth, and no credit beyond one window.
                partialBytesAcked = congestionWindow
            }
        }
        // "When all of the data transmitted by the sender has been acknowledged
        // by the receiver, partial_bytes_acked is initialized to 0."
        if ack.flightSizeBefore <= ack.bytes { partialBytesAcked = 0 }
    }

    /// Lets slow start run again up to `threshold` (LossTolerantCongestionControl
    /// undoing cuts it made before it could tell random loss from congestion).
    mutating func raiseSlowStartThreshold(to threshold: Int) {
        slowStartThreshold = max(slowStartThreshold, threshold)
    }

    public mutating func lossDetected(flightSize: Int, now: Duration) {
        // §7.2.3 (and §7.2.4 step 5): halve, but not below 4 MTU.
        slowStartThreshold = max(congestionWindow / 2, 4 * mtu)
        congestionWindow = slowStartThreshold
        partialBytesAcked = 0
    }

    public mutating func retransmissionTimeout(now: Duration) {
        // §7.2.3: after a T3-rtx expiry, back to one MTU and slow start.
        slowStartThreshold = max(congestionWindow / 2, 4 * mtu)
        congestionWindow = mtu
        partialBytesAcked = 0
    }

    public mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {}

    public mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {
        // §7.2.1: "the cwnd of the transport address SHOULD be adjusted to
        // max(cwnd/2, 4*MTU) per RTO" of idle time.
        guard rto > .zero else { return }
        var remaining = idle
        while remaining >= rto && congestionWindow > 4 * mtu {
            congestionWindow = max(congestionWindow / 2, 4 * mtu)
            remaining -= rto
        }
    }
}

/// RFC 9260 §6.3.1: the retransmission timeout from smoothed round-trip
/// measurements, with §6.3.3's doubling on expiry.
public struct SCTPRetransmissionTimeout: Sendable, Equatable {
    public struct Configuration: Sendable, Equatable {
        public var initial: Duration
        public var minimum: Duration
        public var maximum: Duration

        /// RFC 9260 §16 gives 1 s / 1 s / 60 s; WebRTC stacks use lower
        /// values on the data path (dcsctp: 500 ms initial, 400 ms minimum),
        /// which this follows: a data channel is interactive.
        public init(initial: Duration = .milliseconds(500), minimum: Duration = .milliseconds(400), maximum: Duration = .seconds(60)) {
            self.initial = initial
            self.minimum = minimum
            self.maximum = max(maximum, minimum)
        }
    }

    public let configuration: Configuration
    public private(set) var value: Duration
    public private(set) var smoothedRoundTrip: Duration?
    public private(set) var roundTripVariation: Duration = .zero

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        value = Self.clamp(configuration.initial, configuration)
    }

    /// C2/C3: RTTVAR = (1 - 1/4) RTTVAR + 1/4 |SRTT - R'|,
    /// SRTT = (1 - 1/8) SRTT + 1/8 R', RTO = SRTT + 4 RTTVAR; C1 for the first.
    public mutating func measured(_ rtt: Duration) {
        let sample = max(rtt, .zero)
        if let smoothed = smoothedRoundTrip {
            let difference = smoothed > sample ? smoothed - sample : sample - smoothed
            roundTripVariation = roundTripVariation * 3 / 4 + difference / 4
            smoothedRoundTrip = smoothed * 7 / 8 + sample / 8
        } else {
            smoothedRoundTrip = sample
            roundTripVariation = sample / 2
        }
        // C3: "G" (clock granularity) is nanoseconds here, so it does not matter.
        value = Self.clamp((smoothedRoundTrip ?? sample) + roundTripVariation * 4, configuration)
    }

    /// §6.3.3 E2: on expiry RTO = RTO * 2, up to the maximum.
    public mutating func backOff() {
        value = Self.clamp(value * 2, configuration)
    }

    /// Undoes `backOff`: RTO from the estimate again (C3), or RTO.Initial
    /// without one.
    public mutating func endBackOff() {
        guard let smoothed = smoothedRoundTrip else {
            value = Self.clamp(configuration.initial, configuration)
            return
        }
        value = Self.clamp(smoothed + roundTripVariation * 4, configuration)
    }

    static func clamp(_ value: Duration, _ configuration: Configuration) -> Duration {
        min(max(value, configuration.minimum), configuration.maximum)
    }
}
