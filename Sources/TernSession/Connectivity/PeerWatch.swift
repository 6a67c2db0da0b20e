/// How long the layers above ICE wait for the peer, as a sans-IO rule the
/// channels' loop consults: every stage of bringing the data channels up
/// has a bounded wait, and once they are up a peer that sends nothing at
/// all while a transfer is under way is taken for gone well before RFC
/// 7675's 30 s consent expiry, which still governs an idle path. While an
/// ICE restart looks for a new path (the old one is silent by definition),
/// silence is no verdict: the restart's own deadline ends the session if it
/// finds nothing, and the silence is counted afresh from its new pair.
///
/// Time is the caller's clock (a duration since the session started).
public struct PeerWatch: Sendable {
    public struct Limits: Sendable, Equatable {
        /// From the start of DTLS to the handshake's end.
        public var handshake: Duration = .seconds(10)
        /// From the handshake's end to the SCTP association's (RFC 9260
        /// §5.1 would retry its INIT for minutes).
        public var association: Duration = .seconds(10)
        /// From sending a channel's DATA_CHANNEL_OPEN to its acknowledgement.
        public var channelOpen: Duration = .seconds(10)
        /// Nothing at all from the peer (no data, no SACK, no heartbeat
        /// acknowledgement) for this long while busy: the peer is gone. An
        /// idle association sends a HEARTBEAT after a second without
        /// sending (`heartbeatInterval`), so a live peer is never this quiet.
        public var silence: Duration = .seconds(5)

        public init() {}
    }

    enum Stage: Sendable, Equatable {
        case handshake, association, up
    }

    let limits: Limits
    private(set) var stage: Stage = .handshake
    private var stageStarted: Duration
    private(set) var lastHeard: Duration
    /// An ICE restart is under way.
    private(set) var restarting = false
    /// ICE was recovering a failing path when silence came due: look again then.
    private var silenceDeferred: Duration?

    init(limits: Limits, now: Duration) {
        self.limits = limits
        stageStarted = now
        lastHeard = now
    }

    /// Anything arrived from the peer.
    mutating func heard(now: Duration) {
        lastHeard = now
        silenceDeferred = nil
    }

    /// Silence came due while ICE was recovering the path (it fails over,
    /// or will restart): no verdict on silence before `until`.
    mutating func deferSilence(until: Duration) {
        silenceDeferred = until
    }

    /// The verdict `verdict` gives is the busy association's silence.
    func isSilenceVerdict(now: Duration, busy: Bool) -> Bool {
        stage == .up && busy && !restarting && now - lastHeard >= limits.silence
    }

    private var silenceDeadline: Duration {
        max(lastHeard + limits.silence, silenceDeferred ?? .zero)
    }

    mutating func enter(_ stage: Stage, now: Duration) {
        self.stage = stage
        stageStarted = now
    }

    /// An ICE restart began (`underway`) or selected a new pair: from then
    /// the new pair has the whole silence limit.
    mutating func restart(underway: Bool, now: Duration) {
        if !underway && restarting { lastHeard = max(lastHeard, now) }
        restarting = underway
    }

    /// When `verdict` may next have something to say. `busy`: a channel is
    /// open or data waits for acknowledgement.
    func nextDeadline(busy: Bool) -> Duration? {
        switch stage {
        case .handshake: return stageStarted + limits.handshake
        case .association: return stageStarted + limits.association
        case .up: return busy && !restarting ? silenceDeadline : nil
        }
    }

    /// Why to give up on the peer at `now`, if it is time to.
    func verdict(now: Duration, busy: Bool) -> String? {
        switch stage {
        case .handshake where now - stageStarted >= limits.handshake:
            return "the other side did not complete the secure handshake (DTLS) within \(Self.words(limits.handshake))"
        case .association where now - stageStarted >= limits.association:
            return "the other side did not set up the data channels (SCTP) within \(Self.words(limits.association))"
        case .up where busy && !restarting && now >= silenceDeadline:
            return "the other side stopped responding (nothing received for \(Self.words(limits.silence)))"
        default:
            return nil
        }
    }

    static func words(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds) s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }
}
