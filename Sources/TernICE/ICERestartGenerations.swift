/// Which ICE restart each side's credentials belong to, and what to do when
/// the peer announces one (docs/protocol.md, `ice-restart`). Both sides
/// may notice a dead path at the same moment and restart together; the
/// generation number settles it without an offerer and an answerer: each
/// side announces every generation once, with its own new credentials, and
/// a side that gets a generation newer than its own restarts too and
/// answers with it.
public struct ICERestartGenerations: Hashable, Sendable {
    /// The generation of this side's credentials (0: those of the session description).
    public private(set) var local = 0
    /// The generation of the peer's credentials in use.
    public private(set) var remote = 0

    /// What to do with the peer's announcement.
    public enum Action: Hashable, Sendable {
        /// Restart this side's agent too, take the peer's credentials and
        /// candidates, and announce this side's with the same generation.
        case restartAndAnswer
        /// This side restarted for this generation already (it started it,
        /// or both did at once): take the peer's credentials and candidates.
        case adopt
        /// Older than what this side has moved on to (or a repeat): ignore it.
        case ignore
    }

    public init() {}

    /// This side starts a restart: the generation to announce.
    public mutating func begin() -> Int {
        local += 1
        return local
    }

    /// The peer announced `generation`.
    public mutating func peerAnnounced(_ generation: Int) -> Action {
        guard generation > remote, generation >= local else { return .ignore }
        remote = generation
        if generation > local {
            local = generation
            return .restartAndAnswer
        }
        return .adopt
    }

    /// The peer's trickled candidates (and end-of-candidates) belong to this
    /// side's current generation: true unless this side restarted and the
    /// peer's answer has not come yet (what it sends meanwhile is of the old one).
    public var peerIsCurrent: Bool { remote == local }
}
