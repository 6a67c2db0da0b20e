import Foundation
// An offer's items are TernCollections' `OfferEntry`, which the transfer
// holds the manifest to; whoever imports the pairing sees it too.
@_exported import TernCollections

/// What the sender offers: sent sealed, only after key confirmation.
public struct Offer: Sendable, Equatable, Codable {
    public var entries: [OfferEntry]
    /// For a text offer: the text itself.
    public var text: String?

    public init(entries: [OfferEntry], text: String? = nil) {
        self.entries = entries
        self.text = text
    }

    /// The offered files together. A decoded offer's sum is at most
    /// `PeerMessage.maxOfferedTotal`; a larger one (an offer built here)
    /// reads as `UInt64.max`, never as a sum that wrapped.
    public var totalFiles: UInt64 { Self.saturatingSum(entries.map(\.files)) }
    /// Nil when a stream's length is unknown, and only then: a sum past the
    /// range reads as `UInt64.max`, so a free-space check fails rather than
    /// being skipped.
    public var totalBytes: UInt64? {
        var sizes: [UInt64] = []
        for entry in entries {
            guard let size = entry.size else { return nil }
            sizes.append(size)
        }
        return Self.saturatingSum(sizes)
    }

    static func saturatingSum(_ values: [UInt64]) -> UInt64 {
        var sum: UInt64 = 0
        for value in values {
            let (next, overflow) = sum.addingReportingOverflow(value)
            if overflow { return UInt64.max }
            sum = next
        }
        return sum
    }
}

/// The messages the two sides exchange sealed through the mailbox, as JSON.
/// docs/protocol.md, "Peer messages".
public enum PeerMessage: Sendable, Equatable {
    case offer(Offer)
    /// The receiver's decision; `reason` is shown to the sender when declined.
    case answer(accept: Bool, reason: String?)
    /// A JSEP session description for the data path: the sender's `offer`,
    /// the receiver's `answer` (SDP text; TernSDP parses it).
    case sessionDescription(kind: SessionDescriptionKind, sdp: String)
    /// One trickled ICE candidate (an SDP `candidate:` attribute value) for
    /// the media section `mid`.
    case candidate(mid: String, candidate: String)
    /// The sender of this message has trickled all its candidates.
    case endOfCandidates
    /// The sender of this message selected a candidate pair (ICE connected).
    case connected
    /// The sender's first connectivity check to one of our server-reflexive
    /// addresses has left: its router now has a mapping towards us, so our
    /// own checks to it can no longer clash (docs/protocol.md). Sent only to
    /// a peer whose description has the `tern-mapping-opened` ICE option.
    case mappingOpened
    /// An ICE restart between tern peers (both announced the
    /// `tern-ice-restart` ICE option): the sender's new credentials and
    /// candidates for a restart generation. docs/protocol.md §7.3.
    case iceRestart(ICERestartMessage)

    public enum SessionDescriptionKind: String, Sendable, Codable {
        case offer, answer
    }

    /// Offered top-level items. With the sealing limit on the whole
    /// plaintext (64 KiB), about 1,400 entries of one-letter names fit, so
    /// 4096 could never be reached; 1024 fits names of up to 18 bytes.
    public static let maxEntries = 1024
    static let maxNameBytes = 4096
    static let maxTextBytes = 32 * 1024
    static let maxReasonBytes = 1024
    static let maxSDPBytes = 32 * 1024
    static let maxCandidateBytes = 1024
    /// The most an offer's sizes, or its files, directories and links, may
    /// add up to (each entry's and all entries' together): 2^63 - 1, the
    /// bound a manifest's sizes are held to too (docs/protocol.md §11.6).
    /// A decoded offer's totals are therefore exact, and any sum of them
    /// with a manifest's fits in 64 bits.
    public static let maxOfferedTotal = UInt64(Int64.max)

    private struct Wire: Codable {
        var type: String
        var offer: Offer?
        var accept: Bool?
        var reason: String?
        var kind: SessionDescriptionKind?
        var sdp: String?
        var mid: String?
        var candidate: String?
        var generation: Int?
        var ufrag: String?
        var pwd: String?
        var candidates: [String]?
        var complete: Bool?
    }

    public func encoded() -> [UInt8] {
        var wire: Wire
        switch self {
        case .offer(let offer):
            wire = Wire(type: "offer", offer: offer)
        case .answer(let accept, let reason):
            wire = Wire(type: "answer", accept: accept, reason: reason)
        case .sessionDescription(let kind, let sdp):
            wire = Wire(type: "description", kind: kind, sdp: sdp)
        case .candidate(let mid, let candidate):
            wire = Wire(type: "candidate", mid: mid, candidate: candidate)
        case .endOfCandidates:
            wire = Wire(type: "end-of-candidates")
        case .connected:
            wire = Wire(type: "connected")
        case .mappingOpened:
            wire = Wire(type: "mapping-opened")
        case .iceRestart(let restart):
            wire = Wire(type: "ice-restart")
            wire.generation = restart.generation
            wire.ufrag = restart.ufrag
            wire.pwd = restart.password
            wire.candidates = restart.candidates
            wire.complete = restart.complete
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A struct of strings, numbers and booleans always encodes.
        return (try? Array(encoder.encode(wire))) ?? []
    }

    /// Decodes a peer message: the peer is hostile too, so every field is bounded.
    public init(decoding bytes: [UInt8]) throws(PairingError) {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(bytes))
        } catch {
            throw .malformedPeerMessage("not a valid peer message")
        }
        switch wire.type {
        case "offer":
            guard let offer = wire.offer else { throw .malformedPeerMessage("offer without content") }
            guard !offer.entries.isEmpty, offer.entries.count <= Self.maxEntries else {
                throw .malformedPeerMessage("an offer has 1 to \(Self.maxEntries) entries")
            }
            for entry in offer.entries {
                guard !entry.name.isEmpty, entry.name.utf8.count <= Self.maxNameBytes else {
                    throw .malformedPeerMessage("an offered name is empty or too long")
                }
            }
            try Self.checkTotals(offer)
            if let text = offer.text, text.utf8.count > Self.maxTextBytes {
                throw .malformedPeerMessage("offered text is too long")
            }
            self = .offer(offer)
        case "answer":
            guard let accept = wire.accept else { throw .malformedPeerMessage("answer without a decision") }
            if let reason = wire.reason, reason.utf8.count > Self.maxReasonBytes {
                throw .malformedPeerMessage("answer reason is too long")
            }
            self = .answer(accept: accept, reason: wire.reason)
        case "description":
            guard let kind = wire.kind, let sdp = wire.sdp else { throw .malformedPeerMessage("description without kind or sdp") }
            guard !sdp.isEmpty, sdp.utf8.count <= Self.maxSDPBytes else { throw .malformedPeerMessage("session description is empty or too long") }
            self = .sessionDescription(kind: kind, sdp: sdp)
        case "candidate":
            guard let mid = wire.mid, let candidate = wire.candidate else { throw .malformedPeerMessage("candidate without mid or value") }
            guard (1...64).contains(mid.utf8.count), Self.isCandidateLine(candidate) else { throw .malformedPeerMessage("bad candidate") }
            self = .candidate(mid: mid, candidate: candidate)
        case "end-of-candidates":
            self = .endOfCandidates
        case "connected":
            self = .connected
        case "mapping-opened":
            self = .mappingOpened
        case "ice-restart":
            self = .iceRestart(try ICERestartMessage(wire.generation, ufrag: wire.ufrag, password: wire.pwd, candidates: wire.candidates, complete: wire.complete))
        default:
            throw .malformedPeerMessage("unknown peer message type")
        }
    }

    /// A candidate attribute value as the peer may send it: `candidate:`,
    /// bounded, no control characters (TernICE parses the rest).
    static func isCandidateLine(_ candidate: String) -> Bool {
        candidate.hasPrefix("candidate:") && candidate.utf8.count <= maxCandidateBytes
            && !candidate.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
    }

    /// Every sum of the offer's numbers within `maxOfferedTotal`, added
    /// with overflow checked.
    private static func checkTotals(_ offer: Offer) throws(PairingError) {
        var bytes: UInt64 = 0
        var items: UInt64 = 0
        for entry in offer.entries {
            let (nextBytes, bytesOverflow) = bytes.addingReportingOverflow(entry.size ?? 0)
            guard !bytesOverflow, nextBytes <= maxOfferedTotal else {
                throw .malformedPeerMessage("the offered sizes add up to more than 2^63 - 1 bytes")
            }
            bytes = nextBytes
            for count in [entry.files, entry.directories ?? 0, entry.links ?? 0] {
                let (next, overflow) = items.addingReportingOverflow(count)
                guard !overflow, next <= maxOfferedTotal else {
                    throw .malformedPeerMessage("the offered files, directories and links add up to more than 2^63 - 1")
                }
                items = next
            }
        }
    }
}
