/// The subset of SDP (RFC 8866) that a data-channel-only WebRTC session
/// needs (JSEP, RFC 9429): one `m=application` section over
/// UDP/DTLS/SCTP with its ICE, DTLS and SCTP attributes. The parser takes
/// what browsers produce: it ignores attributes it does not use and keeps
/// other media sections (audio, video) so an answer can reject them.
public struct SessionDescription: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case offer, answer
    }

    /// `o=` session id and version.
    public var sessionID: UInt64
    public var sessionVersion: UInt64
    public var media: [MediaDescription]

    public init(sessionID: UInt64, sessionVersion: UInt64 = 2, media: [MediaDescription]) {
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.media = media
    }

    /// The data channel section, if the description has one that is not rejected.
    public var dataChannel: MediaDescription? {
        media.first { $0.isDataChannel && $0.port != 0 }
    }
}

/// How the two DTLS ends are chosen (RFC 8842 §5.1 / RFC 4145).
public enum DTLSSetup: String, Sendable, Equatable {
    case actpass, active, passive
}

/// A certificate fingerprint (RFC 8122): hash function name and digest.
public struct Fingerprint: Sendable, Equatable, CustomStringConvertible {
    public var algorithm: String
    public var digest: [UInt8]

    public init(algorithm: String, digest: [UInt8]) {
        self.algorithm = algorithm.lowercased()
        self.digest = digest
    }

    /// `sha-256 AB:CD:…`
    public var description: String {
        algorithm + " " + digest.map { byte in
            let digits = Array("0123456789ABCDEF".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]], as: UTF8.self)
        }.joined(separator: ":")
    }
}

/// One `m=` section.
public struct MediaDescription: Sendable, Equatable {
    /// `audio`, `video`, `application`, …
    public var kind: String
    public var port: UInt16
    /// `UDP/DTLS/SCTP` for data channels.
    public var proto: String
    /// `webrtc-datachannel` for data channels; payload types for others.
    public var formats: [String]
    public var mid: String?
    public var iceUfrag: String?
    public var icePwd: String?
    public var iceOptions: [String] = []
    public var fingerprints: [Fingerprint] = []
    public var setup: DTLSSetup?
    public var sctpPort: UInt16?
    public var maxMessageSize: UInt64?
    /// `a=candidate:` values (without the `a=`), in order; TernICE parses them.
    public var candidates: [String] = []
    public var endOfCandidates = false

    public init(kind: String, port: UInt16, proto: String, formats: [String]) {
        self.kind = kind
        self.port = port
        self.proto = proto
        self.formats = formats
    }

    public var isDataChannel: Bool {
        kind == "application" && proto.uppercased().hasSuffix("DTLS/SCTP") && formats.contains("webrtc-datachannel")
    }

    /// The `a=ice-options` token of a tern peer that restarts ICE through
    /// the mailbox (`ice-restart` peer messages, docs/protocol.md §7.3).
    /// Browsers and other agents ignore an option they do not know (RFC 8839
    /// §5.6) and never get such a message.
    public static let ternICERestartOption = "tern-ice-restart"

    /// The peer announced `ternICERestartOption`.
    public var restartsICEThroughMailbox: Bool { iceOptions.contains(Self.ternICERestartOption) }

    /// A data channel section as tern offers or answers it.
    public static func dataChannel(
        mid: String = "0", iceUfrag: String, icePwd: String, fingerprint: Fingerprint?, setup: DTLSSetup,
        sctpPort: UInt16 = 5000, maxMessageSize: UInt64 = 262_144, candidates: [String] = [], endOfCandidates: Bool = false
    ) -> MediaDescription {
        var media = MediaDescription(kind: "application", port: 9, proto: "UDP/DTLS/SCTP", formats: ["webrtc-datachannel"])
        media.mid = mid
        media.iceUfrag = iceUfrag
        media.icePwd = icePwd
        media.iceOptions = ["trickle"]
        media.fingerprints = fingerprint.map { [$0] } ?? []
        media.setup = setup
        media.sctpPort = sctpPort
        media.maxMessageSize = maxMessageSize
        media.candidates = candidates
        media.endOfCandidates = endOfCandidates
        return media
    }
}

/// Why a session description was refused.
public struct SDPError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int?
    public var reason: String
    public var description: String { line.map { "SDP line \($0): \(reason)" } ?? "SDP: \(reason)" }

    init(_ reason: String, line: Int? = nil) {
        self.reason = reason
        self.line = line
    }
}
