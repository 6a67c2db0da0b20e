/// The content of an `ice-restart` peer message (docs/protocol.md §7.3):
/// the sender's new ICE credentials for restart `generation`, the
/// candidates it has for them, and whether those are all (later ones
/// follow as `candidate` messages, then `end-of-candidates`). Only sent
/// between tern peers that both announced the `tern-ice-restart` option.
public struct ICERestartMessage: Sendable, Equatable {
    /// 1 for the first restart of a session, one more for each after it.
    public var generation: Int
    /// The new ice-ufrag and ice-pwd (RFC 8839 §5.4 rules; TernICE checks them).
    public var ufrag: String
    public var password: String
    /// `candidate:` attribute values, as the `candidate` message carries.
    public var candidates: [String]
    /// No candidate of this generation follows.
    public var complete: Bool

    /// Restarts one session may announce: each costs the mailbox at least
    /// one message of the relay's 64 per side (docs/protocol.md §5.8).
    public static let maximumGeneration = 16
    /// Candidates in one message (a side has a few per address).
    public static let maximumCandidates = 32

    public init(generation: Int, ufrag: String, password: String, candidates: [String], complete: Bool) {
        self.generation = generation
        self.ufrag = ufrag
        self.password = password
        self.candidates = candidates
        self.complete = complete
    }

    /// Decodes the wire fields, each bounded: the peer is hostile too.
    init(_ generation: Int?, ufrag: String?, password: String?, candidates: [String]?, complete: Bool?) throws(PairingError) {
        guard let generation, let ufrag, let password, let candidates, let complete else {
            throw .malformedPeerMessage("ice-restart without generation, ufrag, pwd, candidates or complete")
        }
        guard (1...Self.maximumGeneration).contains(generation) else {
            throw .malformedPeerMessage("ice-restart generation out of 1...\(Self.maximumGeneration)")
        }
        // RFC 8839 §5.4: 4 to 256 and 22 to 256 ice-chars.
        guard (4...256).contains(ufrag.utf8.count), (22...256).contains(password.utf8.count),
              Self.isICEChars(ufrag), Self.isICEChars(password)
        else { throw .malformedPeerMessage("ice-restart credentials are not ice-chars of the right length") }
        guard candidates.count <= Self.maximumCandidates, candidates.allSatisfy(PeerMessage.isCandidateLine) else {
            throw .malformedPeerMessage("ice-restart with more than \(Self.maximumCandidates) candidates or a bad one")
        }
        self.init(generation: generation, ufrag: ufrag, password: password, candidates: candidates, complete: complete)
    }

    /// RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/".
    static func isICEChars(_ text: String) -> Bool {
        text.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2b || $0 == 0x2f }
    }
}
