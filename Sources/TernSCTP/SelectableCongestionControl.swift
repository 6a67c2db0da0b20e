/// Which congestion controller an association runs.
public enum SCTPCongestionControlKind: String, Sendable, Equatable, CaseIterable {
    /// Model-based and paced (`BBRCongestionControl`).
    case bbr
    /// RFC 9260's, except that random loss up to 2% does not cut the window
    /// (`LossTolerantCongestionControl`).
    case lossTolerant = "loss-tolerant"
    /// RFC 9260 §7.2 as written (`RFC9260CongestionControl`).
    case rfc9260

    /// What runs when nothing is configured.
    public static let `default`: SCTPCongestionControlKind = .bbr
}

/// One of the controllers, chosen per association by its configuration
/// (`SCTPAssociation.Configuration.congestionControl`): lets a driver pick
/// at run time while the association stays generic over one concrete type.
/// Each call is a switch over three cases, not an existential call.
public enum SelectableCongestionControl: SCTPCongestionControl {
    case bbr(BBRCongestionControl)
    case lossTolerant(LossTolerantCongestionControl)
    case rfc9260(RFC9260CongestionControl)

    public init(mtu: Int, peerReceiveWindow: Int) {
        self.init(mtu: mtu, peerReceiveWindow: peerReceiveWindow, kind: .default)
    }

    public init(mtu: Int, peerReceiveWindow: Int, kind: SCTPCongestionControlKind) {
        switch kind {
        case .bbr: self = .bbr(BBRCongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow))
        case .lossTolerant: self = .lossTolerant(LossTolerantCongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow))
        case .rfc9260: self = .rfc9260(RFC9260CongestionControl(mtu: mtu, peerReceiveWindow: peerReceiveWindow))
        }
    }

    public var kind: SCTPCongestionControlKind {
        switch self {
        case .bbr: return .bbr
        case .lossTolerant: return .lossTolerant
        case .rfc9260: return .rfc9260
        }
    }

    public var congestionWindow: Int {
        switch self {
        case .bbr(let c): return c.congestionWindow
        case .lossTolerant(let c): return c.congestionWindow
        case .rfc9260(let c): return c.congestionWindow
        }
    }

    public var pacingRate: Int? {
        switch self {
        case .bbr(let c): return c.pacingRate
        case .lossTolerant(let c): return c.pacingRate
        case .rfc9260(let c): return c.pacingRate
        }
    }

    /// Applies the closure for whichever controller this is (the
    /// controllers hold no references, so the copy out and back is plain memory).
    private mutating func update(
        _ bbr: (inout BBRCongestionControl) -> Void, _ tolerant: (inout LossTolerantCongestionControl) -> Void,
        _ standard: (inout RFC9260CongestionControl) -> Void
    ) {
        switch self {
        case .bbr(var c):
            bbr(&c)
            self = .bbr(c)
        case .lossTolerant(var c):
            tolerant(&c)
            self = .lossTolerant(c)
        case .rfc9260(var c):
            standard(&c)
            self = .rfc9260(c)
        }
    }

    public mutating func acknowledged(_ acknowledgement: SCTPAcknowledgement) {
        update({ $0.acknowledged(acknowledgement) }, { $0.acknowledged(acknowledgement) }, { $0.acknowledged(acknowledgement) })
    }

    public mutating func packetsLost(_ count: Int) {
        update({ $0.packetsLost(count) }, { $0.packetsLost(count) }, { $0.packetsLost(count) })
    }

    public mutating func lossDetected(flightSize: Int, now: Duration) {
        update({ $0.lossDetected(flightSize: flightSize, now: now) }, { $0.lossDetected(flightSize: flightSize, now: now) }, {
            $0.lossDetected(flightSize: flightSize, now: now)
        })
    }

    public mutating func retransmissionTimeout(now: Duration) {
        update({ $0.retransmissionTimeout(now: now) }, { $0.retransmissionTimeout(now: now) }, { $0.retransmissionTimeout(now: now) })
    }

    public mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {
        update({ $0.roundTripMeasured(rtt, now: now) }, { $0.roundTripMeasured(rtt, now: now) }, { $0.roundTripMeasured(rtt, now: now) })
    }

    public mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {
        update(
            { $0.wasIdle(for: idle, retransmissionTimeout: rto) }, { $0.wasIdle(for: idle, retransmissionTimeout: rto) },
            { $0.wasIdle(for: idle, retransmissionTimeout: rto) })
    }

    public mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration) {
        update(
            { $0.congestionExperienced(markedPackets: markedPackets, reduceWindow: reduceWindow, flightSize: flightSize, now: now) },
            { $0.congestionExperienced(markedPackets: markedPackets, reduceWindow: reduceWindow, flightSize: flightSize, now: now) },
            { $0.congestionExperienced(markedPackets: markedPackets, reduceWindow: reduceWindow, flightSize: flightSize, now: now) })
    }

    public mutating func seedRandomness(_ seed: UInt64) {
        update({ $0.seedRandomness(seed) }, { $0.seedRandomness(seed) }, { $0.seedRandomness(seed) })
    }

    public mutating func pathMTUChanged(to mtu: Int) {
        update({ $0.pathMTUChanged(to: mtu) }, { $0.pathMTUChanged(to: mtu) }, { $0.pathMTUChanged(to: mtu) })
    }
}
