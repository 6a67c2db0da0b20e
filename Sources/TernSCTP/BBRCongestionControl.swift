/// A model-based congestion controller in the BBR family (after
/// draft-ietf-ccwg-bbr, BBRv3): the sender paces at the bottleneck
/// bandwidth it measured and keeps about one bandwidth-delay product in
/// flight, instead of filling the path's queue until it overflows.
///
/// The model: the largest delivery rate seen over the last two probing
/// cycles (`maximumBandwidth`), the smallest round trip of the last ten
/// seconds (`minimumRoundTrip`), and bounds on what may be in flight learnt
/// from congestion (`inflightHigh` for the long term, `inflightLow` and
/// `bandwidthLow` for the last round trips).
///
/// States (draft §4.3): Startup doubles the rate each round trip until the
/// bandwidth stops growing; Drain empties the queue Startup made; ProbeBW
/// cycles through Down (drain what probing queued), Cruise (send at the
/// estimate for 2-3 s, draining again after 12 round trips of another
/// flow's queue), Refill (a round at the estimate, bounds reset) and
/// Up (25% more, until the queue or loss says the extra is not delivered,
/// but on, growing `inflightHigh`, while that bound is what holds it);
/// ProbeRTT holds in flight at half a BDP for 200 ms when the minimum round
/// trip was not seen again for 10 s.
///
/// Loss is a bound, never a halving: a round trip whose loss rate is above
/// 2% lowers the bounds (by a factor of 0.7) only when the same round trip
/// shows a queue (its smallest round trip a quarter above the minimum), or
/// when it loses more than 15%. Random loss on an uncongested path comes
/// without a queue, since BBR keeps none, and so does not reduce the rate;
/// a drop-tail queue overflowing comes with a full queue, and does.
///
/// ECN marks (CE, echoed by the peer's SCTP) are a signal of a queue, so
/// they need no second sign of one; like loss they bound in flight rather
/// than halve it (after BBRv3's ECN handling). While probing (Startup, Up), a
/// round trip whose packets came back more than half marked ends the probe
/// and sets `inflightHigh` from what was in flight; outside probing, every
/// round trip with marks lowers `inflightLow` below a BDP by a third of the
/// moving average of the marked share (`ecnAlpha`), until the queue is
/// under the marking threshold again. A few marks in a round trip (random
/// ones, or an AQM's first) barely move the average: they cost the rate
/// next to nothing.
public struct BBRCongestionControl: SCTPCongestionControl {
    public enum State: Sendable, Equatable {
        case startup, drain, probeBandwidthDown, probeBandwidthCruise, probeBandwidthRefill, probeBandwidthUp, probeRoundTrip
    }

    // Draft §2.1 and §4.6 constants.
    /// 2/ln 2: doubles the sending rate each round trip.
    static let startupPacingGain = 2.77
    static let startupWindowGain = 2.0
    static let drainPacingGain = 0.35
    static let windowGain = 2.0
    static let probeUpWindowGain = 2.25
    static let probeUpPacingGain = 1.25
    static let probeDownPacingGain = 0.9
    /// Pacing a little below the estimate, so a queue does not build from it.
    static let pacingMargin = 0.01
    /// The loss rate per round trip above which loss may mean congestion.
    static let lossThreshold = 0.02
    /// A loss rate per round trip that is congestion with or without a queue.
    static let heavyLossThreshold = 0.2
    /// Lost packets a round trip needs before its loss rate counts.
    static let minimumLostPackets = 3
    /// How much the bounds shrink on a congested round trip.
    static let beta = 0.7
    /// In Cruise, in flight stays this far below `inflightHigh`.
    static let headroom = 0.15
    static let minimumRoundTripWindow: Duration = .seconds(10)
    static let probeRoundTripDuration: Duration = .milliseconds(200)
    static let probeRoundTripWindowGain = 0.5
    /// Round trips in a row of Cruise that all showed a queue (one this
    /// flow's last Down did not drain: another flow's) after which it
    /// drains again (`drainAgain`).
    static let standingQueueRounds = 12
    /// Startup ends when the bandwidth grew less than 25% in three round trips.
    static let fullBandwidthGrowth = 1.25
    static let fullBandwidthRounds = 3
    /// Packets the window never goes below.
    static let minimumWindowPackets = 4
    /// Packets of the initial window (RFC 6928's ten, as dcSCTP uses).
    static let initialWindowPackets = 10
    /// The share of a round trip's packets marked CE above which the probe
    /// put too much in flight (BBRv3's ecn_thresh).
    static let ecnThreshold = 0.5
    /// Marks a round trip needs before its marked share counts.
    static let minimumMarkedPackets = 2
    /// Up ends once this many packets of its round trip came back marked,
    /// and more than this share of it: the queue its extra built passed
    /// the marking threshold. (The round trip starts unmarked, so half of
    /// it, Startup's test, waits until the queue is far past it.)
    static let probeUpMarkedPackets = 4
    static let probeUpMarkedShare = 0.1
    /// How far the moving average of the marked share moves per round trip
    /// (BBRv3's ecn_alpha_gain), and how much of it comes off in flight
    /// (ecn_factor).
    static let ecnAlphaGain = 1.0 / 16
    static let ecnFactor = 1.0 / 3
    /// Draft §4.5.5: the aggregation estimate is the largest of the last
    /// 5-10 round trips (two slots of five, as Linux keeps it), and never
    /// more than 100 ms at the estimated rate.
    static let aggregationRoundsPerSlot = 5
    static let aggregationMaximum: Duration = .milliseconds(100)

    public private(set) var mtu: Int
    public private(set) var state: State = .startup
    public private(set) var congestionWindow: Int
    private var pacing: Double
    public var pacingRate: Int? { Int(pacing) }

    // Model.
    /// Bytes per second: the larger of the two probing cycles' maxima.
    public private(set) var maximumBandwidth = 0.0
    private var bandwidthSlots: (Double, Double) = (0, 0)
    private var cycleCount = 0
    public private(set) var minimumRoundTrip: Duration?
    private var minimumRoundTripStamp: Duration = .zero
    public private(set) var inflightHigh = Int.max
    public private(set) var inflightLow = Int.max
    public private(set) var bandwidthLow = Double.infinity
    private var probeUpIncrement = 1
    private var probeUpAcknowledged = 0
    /// In Up: the long-term bound held the window in this round trip, and in the last.
    private var boundHeldRound = false
    private var boundHeldLastRound = false

    // Round trips, counted by delivered bytes (draft §4.5.1).
    public private(set) var rounds = 0
    private var nextRoundDelivered = 0
    private var roundStart = false
    private var roundLost = 0
    private var roundDelivered = 0
    private var roundMinimumTrip: Duration?
    private var roundMaximumInflight = 0
    /// Congested round trips seen (for diagnostics and tests).
    public private(set) var congestedRounds = 0
    /// The loss rate of recent round trips that showed no queue (a moving
    /// average, an eighth per round trip): random loss on the path.
    public private(set) var randomLossRate = 0.0
    /// CE marks the peer echoed in this round trip, and the moving average
    /// of the marked share of round trips (ECN).
    private var roundMarked = 0
    public private(set) var ecnAlpha = 0.0
    /// Round trips whose marks bounded in flight (for diagnostics and tests).
    public private(set) var markedRounds = 0
    /// What was in flight when the latest acknowledged chunk was sent.
    private var latestInflightAtSend = 0

    // Acknowledgement aggregation (draft §4.5.5).
    /// Bytes acknowledged beyond what the estimated rate would have
    /// delivered since the current aggregation epoch began: the window
    /// keeps that much more room, so a receiver that acknowledges in
    /// batches (tern's receiver SACKs once per read batch of up to 32
    /// datagrams; a loaded loop reads late) does not leave the sender
    /// waiting with an empty pipe between batches.
    public private(set) var aggregation = 0
    private var aggregationSlots: (Int, Int) = (0, 0)
    private var aggregationSlotRounds = 0
    private var aggregationEpochStart: Duration?
    private var aggregationEpochAcknowledged = 0

    // Startup.
    public private(set) var filledPipe = false
    private var fullBandwidth = 0.0
    private var fullBandwidthCount = 0

    // ProbeBW and ProbeRTT.
    private var cycleStamp: Duration = .zero
    private var roundsInPhase = 0
    /// Round trips since the last probe ended (draft §4.3.3.5's rounds_since_bw_probe).
    private var roundsSinceProbe = 0
    private var cruiseFor: Duration = .seconds(2)
    /// Round trips of this Cruise in a row whose smallest round trip showed a queue.
    private var queuedCruiseRounds = 0
    private var probeRoundTripDone: Duration?
    private var probeRoundTripRoundDone = false
    /// The smallest round trip seen in this ProbeRTT.
    private var probeRoundTripMinimum: Duration?
    private var priorWindow = 0
    private var afterTimeout = false
    /// The state of the generator that picks how long Cruise lasts (a
    /// 64-bit LCG: spreading probes apart needs no stronger randomness);
    /// the association seeds it (`seedRandomness`).
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var now: Duration = .zero

    public init(mtu: Int, peerReceiveWindow: Int) {
        self.mtu = max(mtu, 512)
        congestionWindow = Self.initialWindowPackets * self.mtu
        // No round trip measured yet: the initial window per millisecond (draft §4.6.2).
        pacing = Self.startupPacingGain * Double(congestionWindow) / 0.001
    }

    public mutating func pathMTUChanged(to mtu: Int) {
        self.mtu = max(mtu, 512)
    }

    /// Two tern transfers sharing a path used to start from the same
    /// constant: their ProbeRTTs line up (each one's drained queue renews
    /// the other's minimum), and from there they drew the same Cruise
    /// lengths and probed in step, so neither ever drained while the other
    /// measured, and the split their Startups made stayed (in the
    /// simulation 12 of one flow's 14 probes began within 50 ms of the
    /// other's; in the lab two transfers split the link 37/63 to 64/36).
    public mutating func seedRandomness(_ seed: UInt64) {
        random = seed
    }

    /// The bandwidth the model sends at: the maximum, within the short-term bound.
    public var bandwidth: Double { min(maximumBandwidth, bandwidthLow) }

    /// Bytes `gain` bandwidth-delay products make (the initial window before any measurement).
    func bdp(_ gain: Double) -> Int {
        guard let rtt = minimumRoundTrip, maximumBandwidth > 0 else { return Self.initialWindowPackets * mtu }
        return Int(gain * bandwidth * Self.seconds(rtt))
    }

    // MARK: - Inputs

    public mutating func roundTripMeasured(_ rtt: Duration, now: Duration) {
        self.now = now
        roundMinimumTrip = min(roundMinimumTrip ?? rtt, rtt)
        if state == .probeRoundTrip { probeRoundTripMinimum = min(probeRoundTripMinimum ?? rtt, rtt) }
        // An estimate 10 s old is renewed only by ProbeRTT (draft §4.3.4), which
        // drains this flow's queue first: taking whatever round trip comes
        // when it expires would keep a queue that flows sharing the path
        // never drain in the estimate, and with it every later "queue" test.
        if minimumRoundTrip == nil || rtt <= (minimumRoundTrip ?? rtt) {
            minimumRoundTrip = rtt
            minimumRoundTripStamp = now
        }
    }

    public mutating func acknowledged(_ ack: SCTPAcknowledgement) {
        now = ack.now
        guard let sample = ack.sample else { return }
        if afterTimeout, sample.newlyAcknowledged > 0 {
            afterTimeout = false
            congestionWindow = max(congestionWindow, priorWindow)
        }
        roundLost += sample.newlyLost
        roundDelivered += sample.newlyAcknowledged
        roundMaximumInflight = max(roundMaximumInflight, sample.inFlightAtSend)
        if sample.newlyAcknowledged > 0 { latestInflightAtSend = sample.inFlightAtSend }
        // Draft §4.5.1: a round trip ends when a chunk sent after it began is delivered.
        roundStart = false
        if sample.newlyAcknowledged > 0, sample.priorDelivered >= nextRoundDelivered {
            nextRoundDelivered = sample.priorDelivered + sample.delivered
            rounds += 1
            roundsInPhase += 1
            roundsSinceProbe += 1
            roundStart = true
        }
        updateBandwidth(sample)
        updateAggregation(ack)
        if roundStart { endOfRound(ack, appLimited: sample.isAppLimited) }
        updateStateMachine(ack)
        updateProbeRoundTrip(ack)
        setPacingRate()
        setWindow(ack, sample: sample)
    }

    public mutating func lossDetected(flightSize: Int, now: Duration) {}

    /// CE marks echoed by the peer: counted for the round trip. In Up, a
    /// round trip with a tenth of its packets marked so far (at least four)
    /// ends the probe at once
    /// (BBRv3: inflight too high), without waiting for its end. Startup
    /// judges whole round trips (`endOfRound`), and ends on marks only
    /// once the bandwidth also stopped growing: sending at 2.77 times the
    /// estimate, it queues past a marking threshold of a few milliseconds
    /// while its estimate still lags the path's rate (in the simulation,
    /// ending at the first marked round trip left the estimate at 60% and
    /// ProbeBW took seconds to recover). The once-per-window reduction
    /// RFC 9260 makes is not BBR's.
    public mutating func congestionExperienced(markedPackets: Int, reduceWindow: Bool, flightSize: Int, now: Duration) {
        self.now = now
        roundMarked += markedPackets
        guard state == .probeBandwidthUp, roundMarked >= Self.probeUpMarkedPackets,
              Double(roundMarked) * Double(mtu) > Self.probeUpMarkedShare * Double(max(roundDelivered, mtu)) else { return }
        markedTooHigh()
        startProbeDown()
        roundMarked = 0
    }

    /// BBRv3's inflight too high, from marks: the long-term bound from what
    /// was in flight when the marked packets left, but never so low that
    /// Cruise's headroom below it holds in flight under a BDP (a step
    /// marking queue marks at a few milliseconds above the BDP; pacing,
    /// not this bound, keeps the queue empty).
    private mutating func markedTooHigh() {
        markedRounds += 1
        let target = max(bdp(1), Self.minimumWindowPackets * mtu)
        inflightHigh = max(latestInflightAtSend, Int(Double(target) / (1 - Self.headroom)) + mtu)
    }

    private func markedShareTooHigh(_ marked: Int, delivered: Int) -> Bool {
        guard marked >= Self.minimumMarkedPackets else { return false }
        return Double(marked) > Self.ecnThreshold * Double(max(delivered, mtu)) / Double(mtu)
    }

    public mutating func retransmissionTimeout(now: Duration) {
        // Draft §4.6.4.4: the window keeps what is in flight (nothing, after
        // SCTP marks it all for retransmission) and comes back with the
        // first acknowledgement of progress.
        self.now = now
        if !afterTimeout { priorWindow = congestionWindow }
        afterTimeout = true
        congestionWindow = Self.minimumWindowPackets * mtu
    }

    public mutating func wasIdle(for idle: Duration, retransmissionTimeout rto: Duration) {
        // Draft §4.4.3: after idle, sending resumes at the estimated rate
        // (pacing keeps that from being a burst); the window stays.
    }

    // MARK: - The model

    private mutating func updateBandwidth(_ sample: DeliveryRateSample) {
        guard sample.delivered > 0, let rate = sample.rate else { return }
        // A sample over less than a round trip is an acknowledgement burst (draft §4.5.2.2).
        if let rtt = minimumRoundTrip, sample.interval < rtt { return }
        guard !sample.isAppLimited || rate >= maximumBandwidth else { return }
        if cycleCount % 2 == 0 { bandwidthSlots.0 = max(bandwidthSlots.0, rate) } else { bandwidthSlots.1 = max(bandwidthSlots.1, rate) }
        maximumBandwidth = max(bandwidthSlots.0, bandwidthSlots.1)
    }

    /// Draft §4.5.5 (BBRUpdateACKAggregation): how far acknowledgements
    /// ran ahead of the estimated rate in the current epoch; an epoch ends
    /// when they fall back to it. A windowed maximum over round trips.
    private mutating func updateAggregation(_ ack: SCTPAcknowledgement) {
        if roundStart {
            aggregationSlotRounds += 1
            if aggregationSlotRounds >= Self.aggregationRoundsPerSlot {
                aggregationSlotRounds = 0
                swap(&aggregationSlots.0, &aggregationSlots.1)
                aggregationSlots.0 = 0
            }
        }
        // Measured against the maximum, not the short-term bound: after a
        // congested round lowered the bound, a path delivering at its
        // usual rate would read as aggregation and widen the window again.
        guard ack.bytes > 0, maximumBandwidth > 0 else { return }
        let start = aggregationEpochStart ?? now
        var expected = Int(maximumBandwidth * Self.seconds(now - start))
        if aggregationEpochStart == nil || aggregationEpochAcknowledged <= expected {
            aggregationEpochStart = now
            aggregationEpochAcknowledged = 0
            expected = 0
        }
        aggregationEpochAcknowledged += ack.bytes
        let extra = min(aggregationEpochAcknowledged - expected, congestionWindow)
        aggregationSlots.0 = max(aggregationSlots.0, extra)
        aggregation = min(max(aggregationSlots.0, aggregationSlots.1), Int(maximumBandwidth * Self.seconds(Self.aggregationMaximum)))
    }

    /// A new probing cycle: the older slot of the bandwidth filter starts over.
    private mutating func advanceBandwidthFilter() {
        cycleCount += 1
        if cycleCount % 2 == 0 { bandwidthSlots.0 = 0 } else { bandwidthSlots.1 = 0 }
    }

    /// The round trip that just ended: full-pipe detection and the loss response.
    /// `appLimited`: the sample that ended it was sent while the sender had run out of data.
    private mutating func endOfRound(_ ack: SCTPAcknowledgement, appLimited: Bool) {
        let lost = roundLost, delivered = roundDelivered, minimumTrip = roundMinimumTrip, maximumInflight = roundMaximumInflight
        roundLost = 0
        roundDelivered = 0
        roundMinimumTrip = nil
        roundMaximumInflight = 0
        let marked = roundMarked
        roundMarked = 0
        if !filledPipe, !appLimited { checkFullPipe() }
        if state == .startup, fullBandwidthCount > 0, markedShareTooHigh(marked, delivered: delivered) {
            markedTooHigh()
            filledPipe = true
            enter(.drain)
        }
        updateECN(marked: marked, delivered: delivered)
        let queued = showsQueue(minimumTrip)
        if state == .probeBandwidthCruise { queuedCruiseRounds = queued ? queuedCruiseRounds + 1 : 0 }
        let lossRate = lost + delivered > 0 ? Double(lost) / Double(lost + delivered) : 0
        if !queued && delivered > 0 { randomLossRate += (min(lossRate, Self.heavyLossThreshold) - randomLossRate) / 8 }
        guard lost >= Self.minimumLostPackets * mtu, lossRate > Self.lossThreshold else { return }
        // Startup ends on loss only with a queue: early round trips carry
        // few packets, and a few random losses among them read as a high rate.
        guard queued || (lossRate > Self.heavyLossThreshold && state != .startup) else { return }
        congestedRounds += 1
        // Draft §4.5.10: the long-term bound is what was in flight when the
        // loss showed (BBRHandleInflightTooHigh: the level that lost, not a
        // share of it; Cruise keeps its headroom below it), the short-term
        // ones come from this round trip and shrink by β.
        let target = max(bdp(1), Self.minimumWindowPackets * mtu)
        if state == .startup || state == .probeBandwidthUp || inflightHigh == .max {
            inflightHigh = max(maximumInflight, target)
        }
        let roundRate = minimumRoundTrip.map { Double(delivered) / max(Self.seconds($0), 0.001) } ?? maximumBandwidth
        bandwidthLow = max(roundRate, Self.beta * (bandwidthLow.isFinite ? bandwidthLow : maximumBandwidth))
        inflightLow = max(delivered, Int(Self.beta * Double(inflightLow == .max ? congestionWindow : inflightLow)))
        switch state {
        case .startup:
            filledPipe = true
            enter(.drain)
        case .probeBandwidthUp:
            startProbeDown()
        default:
            break
        }
    }

    /// The end of a round trip with ECN: the marked share's moving average,
    /// and outside probing (BBRv3's lower bounds) in flight held below a
    /// BDP by a third of that average while more than half of the round
    /// trips' packets come back marked: a standing queue. A smaller share
    /// comes from bursts (a pacer catching up after a late wake-up on a
    /// loaded machine sends 10 ms at once), which holding in flight lower
    /// does not prevent: in the lab (100 Mbit/s, 50 ms, marking above
    /// 5 ms, load 20) cutting for every round trip with marks had 13% of
    /// the packets marked and halved the rate.
    private mutating func updateECN(marked: Int, delivered: Int) {
        guard marked > 0 || ecnAlpha > 0 else { return }
        let share = min(Double(marked) * Double(mtu) / Double(max(delivered, mtu)), 1)
        ecnAlpha += (share - ecnAlpha) * Self.ecnAlphaGain
        if ecnAlpha < 0.001 { ecnAlpha = 0 }
        guard marked >= Self.minimumMarkedPackets, share > Self.ecnThreshold else { return }
        switch state {
        case .startup, .probeBandwidthRefill, .probeBandwidthUp: return
        default: break
        }
        let latest = max(delivered, bdp(1))
        let bound = max(Int(Double(latest) * (1 - ecnAlpha * Self.ecnFactor)), Self.minimumWindowPackets * mtu)
        inflightLow = min(inflightLow == .max ? congestionWindow : inflightLow, bound)
    }

    /// Draft §4.3.1.2: Startup ends once three round trips grew the bandwidth
    /// less than 25%. Only round trips whose sample is not app-limited count
    /// (BBRCheckStartupFullBandwidth): a round in which the application
    /// left the send queue empty measured the application, not the pipe. An
    /// application that fell behind for a few round trips early in Startup
    /// ended it at half the link's rate (BBRPathHeavyTests), for ProbeBW's
    /// probes to find the rest 25% at a time.
    private mutating func checkFullPipe() {
        guard maximumBandwidth > 0 else { return }
        if maximumBandwidth >= fullBandwidth * Self.fullBandwidthGrowth {
            fullBandwidth = maximumBandwidth
            fullBandwidthCount = 0
            return
        }
        fullBandwidthCount += 1
        if fullBandwidthCount >= Self.fullBandwidthRounds { filledPipe = true }
    }

    /// `newCycle`: false for a Down that does not start a probing cycle (`drainAgain`).
    private mutating func enter(_ next: State, newCycle: Bool = true) {
        state = next
        roundsInPhase = 0
        queuedCruiseRounds = 0
        // Draft §4.3.3.5: Cruise's wait for the next probe counts from Down's start.
        if newCycle, next != .probeBandwidthCruise { cycleStamp = now }
    }

    private mutating func updateStateMachine(_ ack: SCTPAcknowledgement) {
        let inFlight = ack.flightSize
        switch state {
        case .startup:
            if filledPipe { enter(.drain) }
        case .drain:
            if inFlight <= bdp(1) { startProbeDown() }
        case .probeBandwidthDown:
            // Two round trips at most: in the first the window brings in
            // flight down to the target, and the second's packets were all
            // sent under it, so this flow's part of the queue is gone. A
            // queue still there is another flow's, and holding in flight to
            // a BDP beside it until the next probe (2-3 s) only gave way: beside
            // the kernel's TCP BBR tern spent most of its time in Down and got
            // a third of the link.
            if timeToProbe() {
                startRefill()
            } else if inFlight <= min(drainTarget, headroomBound) || roundsInPhase >= 2 {
                enter(.probeBandwidthCruise)
            }
        case .probeBandwidthCruise:
            if timeToProbe() {
                startRefill()
            } else if queuedCruiseRounds >= Self.standingQueueRounds {
                drainAgain()
            }
        case .probeBandwidthRefill:
            // One round trip at the estimate, so the probe's extra starts from an empty queue.
            if roundStart && roundsInPhase >= 1 {
                probeUpIncrement = 1
                probeUpAcknowledged = 0
                boundHeldRound = false
                boundHeldLastRound = false
                enter(.probeBandwidthUp)
            }
        case .probeBandwidthUp:
            // While the long-term bound is what holds the window, the probe
            // goes on and the bound grows (BBRv3): a queue or a full BDP in
            // flight then say only that another flow holds the queue, and
            // ending there left the bound where that flow's last overflow put
            // it. Loss (`endOfRound`) or the window's own target end it.
            if growInflightHigh(ack) { break }
            if roundsInPhase >= 1 && (inFlight >= bdp(Self.probeUpPacingGain) || showsQueue(roundMinimumTrip)) { startProbeDown() }
        case .probeRoundTrip:
            break
        }
    }

    /// Whether a round trip's smallest sample shows a queue: a quarter (and
    /// a millisecond) above the minimum.
    private func showsQueue(_ trip: Duration?) -> Bool {
        guard let trip, let base = minimumRoundTrip else { return false }
        return trip > base + base / 4 + .milliseconds(1)
    }

    /// In flight allowed outside Up: some headroom below the long-term bound.
    private var headroomBound: Int {
        inflightHigh == .max ? .max : max(Int(Double(inflightHigh) * (1 - Self.headroom)), Self.minimumWindowPackets * mtu)
    }

    /// Draft §4.3.3.5: 2-3 s of Cruise (or about one Reno sawtooth of round trips on a short path).
    private func timeToProbe() -> Bool {
        if now - cycleStamp >= cruiseFor { return true }
        return roundsSinceProbe >= min(max(bdp(1) / mtu, 1), 63)
    }

    private mutating func startProbeDown() {
        advanceBandwidthFilter()
        // 2 s and a pseudo-random part up to 1 s, so flows sharing a path do not probe in step.
        random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        cruiseFor = .seconds(2) + .milliseconds(Int64(random >> 33) % 1000)
        roundsSinceProbe = 0
        enter(.probeBandwidthDown)
    }

    /// Down again, without a probe: the bandwidth filter, the wait for the
    /// next probe and Cruise's length stay as they were. Two flows held by
    /// their windows behind a queue neither drains keep whatever split they
    /// have, each measuring its own share; a flow's drain raises the other's
    /// rate, relatively more the smaller that flow is, and its maximum
    /// filter keeps the step. Started first beside the kernel's TCP BBR
    /// (BBRv1, whose filter keeps ten round trips, about 1.2 s here) tern
    /// drained only every 2-3 s and kept 0.69-0.75 of the lab's link
    /// (docs/architecture.md); draining after 12 round trips of another's
    /// queue, 0.52-0.54 (after 8, 0.38-0.41; after 4, 0.27-0.30).
    private mutating func drainAgain() {
        enter(.probeBandwidthDown, newCycle: false)
    }

    private mutating func startRefill() {
        // Draft §4.3.3.6: the short-term bounds are forgotten before probing again.
        inflightLow = .max
        bandwidthLow = .infinity
        enter(.probeBandwidthRefill)
    }

    /// Draft §4.3.3.6: in Up, the long-term bound grows 1, 2, 4... packets per round trip.
    /// Returns whether the bound held the window in this round trip or the
    /// last: an acknowledgement found the window full at the bound, with the
    /// model asking for more. (Two round trips, since one acknowledgement
    /// that comes between two send batches finds the window not quite full;
    /// an application that leaves it unfilled for two round trips ends it.)
    private mutating func growInflightHigh(_ ack: SCTPAcknowledgement) -> Bool {
        if roundStart {
            boundHeldLastRound = boundHeldRound
            boundHeldRound = false
        }
        guard inflightHigh != .max else { return false }
        guard ack.flightSizeBefore + mtu >= congestionWindow else { return boundHeldRound || boundHeldLastRound }
        if congestionWindow >= inflightHigh && windowTarget > inflightHigh { boundHeldRound = true }
        probeUpAcknowledged += ack.bytes
        let step = max(congestionWindow / max(probeUpIncrement, 1), mtu)
        if probeUpAcknowledged >= step {
            let increments = probeUpAcknowledged / step
            probeUpAcknowledged -= increments * step
            inflightHigh += increments * mtu
        }
        if roundStart { probeUpIncrement = min(probeUpIncrement * 2, 1 << 20) }
        return boundHeldRound || boundHeldLastRound
    }

    /// Draft §4.3.4: ProbeRTT when the minimum round trip is 10 s old.
    private mutating func updateProbeRoundTrip(_ ack: SCTPAcknowledgement) {
        if state != .probeRoundTrip, minimumRoundTrip != nil, now - minimumRoundTripStamp > Self.minimumRoundTripWindow {
            priorWindow = max(priorWindow, congestionWindow)
            probeRoundTripDone = nil
            probeRoundTripMinimum = nil
            enter(.probeRoundTrip)
        }
        guard state == .probeRoundTrip else { return }
        if probeRoundTripDone == nil, ack.flightSize <= probeRoundTripWindow {
            probeRoundTripDone = now + Self.probeRoundTripDuration
            probeRoundTripRoundDone = false
            roundsInPhase = 0
        }
        if let done = probeRoundTripDone {
            if roundStart { probeRoundTripRoundDone = true }
            if probeRoundTripRoundDone, now >= done {
                // The smallest round trip with this flow's queue drained replaces the expired one.
                if let drained = probeRoundTripMinimum { minimumRoundTrip = drained }
                minimumRoundTripStamp = now
                congestionWindow = max(congestionWindow, priorWindow)
                priorWindow = 0
                if filledPipe { startProbeDown() } else { enter(.startup) }
            }
        }
    }

    /// Down drains to a BDP (draft §4.3.3.2), and holds in flight to it with
    /// the window too, not with its pacing gain alone: where flows sharing a
    /// path overestimate it together, each one's 2 BDP window kept a queue
    /// that none drained, and a flow that came later stayed smaller (see
    /// docs/architecture.md, fairness). Random loss keeps more in flight for
    /// the same rate (the pacing rate's raise, and lost packets until they
    /// are declared lost), which the target allows for.
    private var drainTarget: Int {
        Int(Double(bdp(1)) * (1 + 2 * randomLossRate) / (1 - randomLossRate))
    }

    private var probeRoundTripWindow: Int { max(bdp(Self.probeRoundTripWindowGain), Self.minimumWindowPackets * mtu) }

    private var pacingGain: Double {
        switch state {
        case .startup: return Self.startupPacingGain
        case .drain: return Self.drainPacingGain
        case .probeBandwidthDown: return Self.probeDownPacingGain
        case .probeBandwidthUp: return Self.probeUpPacingGain
        case .probeBandwidthCruise, .probeBandwidthRefill, .probeRoundTrip: return 1
        }
    }

    private var windowGain: Double {
        switch state {
        case .startup, .drain: return Self.startupWindowGain
        case .probeBandwidthUp: return Self.probeUpWindowGain
        default: return Self.windowGain
        }
    }

    /// Draft §4.6.2: pacing gain times the bandwidth; in Startup it only rises.
    ///
    /// The bandwidth is what was delivered; a path that loses packets at
    /// random before its bottleneck delivers that share less than it was
    /// sent, so sending at the delivery rate would leave the bottleneck idle
    /// that share of the time (5% at 5% loss). The rate is raised by the
    /// random loss rate (of round trips without a queue). Were the loss
    /// after the bottleneck, the extra builds a queue, which ends the
    /// raise (the loss rate is then not updated) and ProbeBW's Down drains it.
    private mutating func setPacingRate() {
        guard bandwidth > 0 else { return }
        let rate = pacingGain * bandwidth * (1 - Self.pacingMargin) / (1 - randomLossRate)
        if filledPipe || rate > pacing { pacing = rate }
    }

    /// Draft §4.6.4.2: the window the model asks for, before the bounds:
    /// its gain of BDPs, room for what the receiver acknowledges at once
    /// (the aggregation estimate) and for a batch of sends. (Aggregation
    /// not in Startup, as Linux's BBR: a window wider than Startup's own
    /// queues with it, and random loss then reads as congestion.)
    private var windowTarget: Int {
        bdp(windowGain) + (filledPipe ? aggregation : 0) + 4 * mtu
    }

    /// Draft §4.6.4: the window from the model and the bounds.
    private mutating func setWindow(_ ack: SCTPAcknowledgement, sample: DeliveryRateSample) {
        let floor = Self.minimumWindowPackets * mtu
        let target = windowTarget
        if !filledPipe {
            // Draft §4.6.4.5: Startup grows the window by what is delivered, up to its target.
            if congestionWindow < target { congestionWindow += sample.newlyAcknowledged }
        } else if congestionWindow < target {
            congestionWindow = min(congestionWindow + sample.newlyAcknowledged, target)
        } else {
            congestionWindow = target
        }
        var bound = inflightLow
        switch state {
        case .probeBandwidthUp, .startup, .drain: bound = min(bound, inflightHigh)
        case .probeRoundTrip: bound = min(bound, probeRoundTripWindow)
        case .probeBandwidthDown: bound = min(bound, headroomBound, drainTarget + 4 * mtu)
        default: bound = min(bound, headroomBound)
        }
        congestionWindow = max(min(congestionWindow, bound), floor)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
