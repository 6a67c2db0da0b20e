/// Delivery-rate estimation (draft-ietf-ccwg-bbr §4.1.1, after
/// draft-cheng-iccrg-delivery-rate-estimation): each DATA chunk remembers,
/// when it is (re)sent, how much had been delivered by then and when; the
/// SACK that acknowledges it turns the difference into a sample of the rate
/// the path delivered at over that chunk's flight.
///
/// The retransmission queue keeps one `DeliveryRateSendState` per
/// outstanding chunk and feeds the acknowledged ones to the sampler; the
/// congestion controller gets one `DeliveryRateSample` per SACK.

/// What the connection had delivered when a chunk left.
public struct DeliveryRateSendState: Sendable, Equatable {
    /// Bytes delivered (acknowledged) before this chunk was sent.
    public var delivered: Int
    /// When `delivered` last grew, as seen when this chunk was sent.
    public var deliveredTime: Duration
    /// When the first chunk of the flight this one belongs to was sent.
    public var firstSentTime: Duration
    /// Sent while the application, not the network, limited the rate.
    public var isAppLimited: Bool
    /// Bytes in flight when this chunk was sent (itself included).
    public var inFlight: Int
    /// Bytes the connection had marked lost before this chunk was sent.
    public var lost: Int
}

/// One SACK's rate sample.
public struct DeliveryRateSample: Sendable, Equatable {
    /// Bytes delivered over `interval` (from the newest acknowledged chunk's send).
    public var delivered: Int
    /// Max(send elapsed, ack elapsed): the longer of the two, so a burst of
    /// acknowledgements does not read as a higher rate than the sends had.
    public var interval: Duration
    /// The connection's delivered count when the newest acknowledged chunk was sent.
    public var priorDelivered: Int
    /// The newest acknowledged chunk was sent while app-limited: a low rate
    /// says nothing about the path.
    public var isAppLimited: Bool
    /// Round trip of the newest acknowledged chunk (sent once or more:
    /// measured from its last send, as BBR does).
    public var roundTrip: Duration
    /// Bytes in flight when the newest acknowledged chunk was sent.
    public var inFlightAtSend: Int
    /// Bytes marked lost between that chunk's send and now.
    public var lostSinceSend: Int
    /// Bytes this SACK acknowledged for the first time.
    public var newlyAcknowledged: Int
    /// Bytes this SACK marked lost.
    public var newlyLost: Int

    /// Bytes per second; nil when the interval is too short to mean anything.
    public var rate: Double? {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) * 1e-18
        guard seconds > 0 else { return nil }
        return Double(delivered) / seconds
    }
}

/// The connection-wide counters of delivery-rate estimation.
public struct DeliveryRateSampler: Sendable {
    /// Bytes acknowledged so far (cumulatively or by gap blocks).
    public private(set) var delivered = 0
    /// When `delivered` last grew.
    public private(set) var deliveredTime: Duration = .zero
    /// The send time of the newest chunk acknowledged so far.
    private var firstSentTime: Duration = .zero
    /// While non-zero, chunks are sent app-limited; cleared once `delivered` passes it.
    private var appLimitedUntil = 0
    /// Bytes marked lost so far.
    public private(set) var lost = 0

    // The sample being built from one SACK.
    private var best: (state: DeliveryRateSendState, sentAt: Duration)?
    private var newlyAcknowledged = 0
    private var newlyLost = 0

    public init() {}

    public var isAppLimited: Bool { appLimitedUntil != 0 }

    /// A chunk goes out (first time or again) with `inFlight` bytes in
    /// flight before it.
    public mutating func sending(size: Int, inFlight: Int, now: Duration) -> DeliveryRateSendState {
        // Nothing in flight: a new flight starts, and the time without
        // traffic does not count against the rate.
        if inFlight == 0 {
            firstSentTime = now
            deliveredTime = now
        }
        return DeliveryRateSendState(
            delivered: delivered, deliveredTime: deliveredTime, firstSentTime: firstSentTime, isAppLimited: appLimitedUntil != 0,
            inFlight: inFlight + size, lost: lost)
    }

    /// The sender ran out of data with room in the window: what is sent
    /// until the data in flight now is delivered is app-limited.
    public mutating func applicationLimited(inFlight: Int) {
        appLimitedUntil = max(delivered + inFlight, 1)
    }

    /// Chunks were marked lost (fast retransmit).
    public mutating func markLost(_ bytes: Int) {
        lost += bytes
        newlyLost += bytes
    }

    /// The connection's packets now take another path: chunks sent before
    /// `now` still count as delivered but give no sample (their rate and
    /// round trip are the old path's).
    public mutating func pathChanged(now: Duration) {
        samplesSince = now
    }

    /// Chunks sent before this give no samples (`pathChanged`).
    private var samplesSince: Duration = .zero

    /// A chunk of `size` bytes, sent at `sentAt` with `state`, is acknowledged for the first time.
    public mutating func acknowledged(size: Int, state: DeliveryRateSendState, sentAt: Duration, now: Duration) {
        delivered += size
        deliveredTime = now
        newlyAcknowledged += size
        if sentAt < samplesSince { return }
        // The most recently sent chunk (the largest delivered count at its
        // send, the latest send among equals) gives the sample.
        if let current = best, state.delivered < current.state.delivered
            || (state.delivered == current.state.delivered && sentAt < current.sentAt) {
            return
        }
        best = (state, sentAt)
        firstSentTime = sentAt
    }

    /// The sample of the SACK just processed, if it acknowledged anything;
    /// starts the next one.
    public mutating func finishSACK(now: Duration) -> DeliveryRateSample? {
        defer {
            best = nil
            newlyAcknowledged = 0
            newlyLost = 0
        }
        if appLimitedUntil != 0 && delivered > appLimitedUntil { appLimitedUntil = 0 }
        guard let (state, sentAt) = best else {
            guard newlyLost > 0 else { return nil }
            return DeliveryRateSample(
                delivered: 0, interval: .zero, priorDelivered: delivered, isAppLimited: true, roundTrip: .zero, inFlightAtSend: 0,
                lostSinceSend: 0, newlyAcknowledged: 0, newlyLost: newlyLost)
        }
        let sendElapsed = sentAt - state.firstSentTime
        let ackElapsed = deliveredTime - state.deliveredTime
        return DeliveryRateSample(
            delivered: delivered - state.delivered, interval: max(sendElapsed, ackElapsed), priorDelivered: state.delivered,
            isAppLimited: state.isAppLimited, roundTrip: now - sentAt, inFlightAtSend: state.inFlight, lostSinceSend: lost - state.lost,
            newlyAcknowledged: newlyAcknowledged, newlyLost: newlyLost)
    }
}
