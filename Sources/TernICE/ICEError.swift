import TernSTUN

/// Everything that can go wrong in TernICE: a malformed SDP attribute, an
/// input the agent refuses, a datagram it drops, or the end of connectivity.
///
/// One error type for the module. The cases are the stable code a caller
/// switches on (a driver counts drops by case, the CLI maps failures to a
/// sentence); `reason` is one human sentence. Values taken from the network
/// are shown escaped and shortened, and a password is never shown at all.
public enum ICEError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: SDP attributes (RFC 8839 §5)

    /// The line is longer than the parser accepts.
    case lineTooLong(length: Int, limit: Int)
    /// A byte that is not printable ASCII (SDP attribute values are VCHAR and SP).
    case invalidCharacter(offset: Int)
    /// The line ends before this field.
    case missingField(String)
    /// A field is present but its value does not have the form the RFC gives.
    case invalidField(name: String, value: String)
    /// More space-separated fields than the parser accepts.
    case tooManyFields(limit: Int)
    /// A transport other than UDP or TCP (RFC 8839 §5.1: such candidates are ignored).
    case unsupportedTransport(String)
    /// A candidate type other than host, srflx, prflx, relay.
    case unsupportedCandidateType(String)
    /// An `a=` line that is not one of the ICE attributes this module parses.
    case unsupportedAttribute(String)
    /// An ice-ufrag that breaks RFC 8839 §5.4 (4-256 ice-chars).
    case invalidUfrag(String)
    /// An ice-pwd that breaks RFC 8839 §5.4 (22-256 ice-chars); the value is never shown.
    case invalidPassword(length: Int)

    // MARK: Agent inputs

    /// A candidate the agent cannot use: not UDP, not component 1, unresolved, port 0...
    case unusableCandidate(String)
    /// A base (local transport address) the agent does not know.
    case unknownBase(STUNAddress)
    /// A bounded table is full (remote candidates, pairs, gatherings).
    case limitReached(what: String, limit: Int)
    /// The configuration is inconsistent.
    case invalidConfiguration(String)

    // MARK: Datagrams the agent drops (counted in `ICEStatistics`)

    /// Not a STUN message (first byte, length or magic cookie, RFC 7983 / RFC 8489 §5).
    case notSTUN
    /// A STUN message that fails to decode, or whose FINGERPRINT is wrong or missing.
    case malformedSTUN(STUNError)
    /// A request or response whose credentials do not check out (RFC 8489 §9.1).
    case unauthenticated(String)
    /// A response to no transaction the agent has in flight.
    case unknownTransaction
    /// A datagram the agent has no use for in its current state.
    case ignored(String)

    // MARK: Outcomes

    /// No candidate pair worked (RFC 8445 §8.1.2 / §6.1.2.1 checklist Failed).
    case connectivityFailed(ICEFailureReport)
    /// RFC 7675 §5.1: no authenticated answer on the selected pair for the
    /// consent timeout; the driver must stop sending on it.
    case consentLost(silentFor: Duration)
    /// A server-reflexive gathering transaction failed.
    case gatheringFailed(server: STUNAddress, reason: String)

    public var reason: String {
        switch self {
        case .lineTooLong(let length, let limit):
            return "SDP line of \(length) bytes is longer than the \(limit) accepted"
        case .invalidCharacter(let offset):
            return "SDP line has a byte that is not printable ASCII at offset \(offset)"
        case .missingField(let name):
            return "SDP candidate line ends before its \(name)"
        case .invalidField(let name, let value):
            return "SDP candidate \(name) \"\(value)\" is not valid"
        case .tooManyFields(let limit):
            return "SDP candidate line has more than \(limit) fields"
        case .unsupportedTransport(let transport):
            return "candidate transport \"\(transport)\" is not supported"
        case .unsupportedCandidateType(let type):
            return "candidate type \"\(type)\" is not supported"
        case .unsupportedAttribute(let name):
            return "SDP attribute \"\(name)\" is not an ICE attribute"
        case .invalidUfrag(let ufrag):
            return "ice-ufrag \"\(ufrag)\" must be 4 to 256 characters of A-Z a-z 0-9 + /"
        case .invalidPassword(let length):
            return "ice-pwd of \(length) characters must be 22 to 256 characters of A-Z a-z 0-9 + /"
        case .unusableCandidate(let why):
            return "candidate not usable: \(why)"
        case .unknownBase(let address):
            return "\(address) is not a local base of this agent"
        case .limitReached(let what, let limit):
            return "too many \(what) (limit \(limit))"
        case .invalidConfiguration(let why):
            return "invalid ICE configuration: \(why)"
        case .notSTUN:
            return "datagram is not a STUN message"
        case .malformedSTUN(let error):
            return "malformed STUN message: \(error.reason)"
        case .unauthenticated(let why):
            return "STUN message not authenticated: \(why)"
        case .unknownTransaction:
            return "STUN response to no transaction in flight"
        case .ignored(let why):
            return "datagram ignored: \(why)"
        case .connectivityFailed(let report):
            return "no network path to the peer: \(report.description)"
        case .consentLost(let silence):
            return "the peer stopped answering consent checks (silent for \(ICEError.seconds(silence)))"
        case .gatheringFailed(let server, let why):
            return "STUN server \(server) gave no reflexive address: \(why)"
        }
    }

    public var description: String { reason }

    /// A value from the network, safe to print: at most 40 characters, with
    /// anything outside printable ASCII shown as `\xNN`.
    static func shown(_ value: some StringProtocol) -> String {
        var out = ""
        var count = 0
        for byte in value.utf8 {
            if count == 40 {
                out += "…"
                break
            }
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\"") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
            count += 1
        }
        return out
    }

    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = attoseconds / 100_000_000_000_000_000
        return "\(seconds).\(tenths) s"
    }
}

/// Why the checks found no path: which candidates and pairs were tried and
/// how they ended, for the one sentence a user sees and for logs.
public struct ICEFailureReport: Hashable, Sendable, CustomStringConvertible {
    /// The local candidate types the agent had (host, srflx, relay, prflx).
    public var localTypes: [ICECandidateType]
    /// The remote candidate types it learned (signalled or peer-reflexive).
    public var remoteTypes: [ICECandidateType]
    /// "host→srflx" for each pair on which at least one check was sent.
    public var triedPairs: [String]
    /// Pairs whose checks got no answer.
    public var timedOut: Int
    /// Error codes of error responses (other than 487, which is handled).
    public var rejectedWith: [Int]
    /// Responses dropped because their MESSAGE-INTEGRITY did not match the
    /// remote password, or error responses without integrity (400/401).
    public var unauthenticatedResponses: Int
    /// Requests from the peer refused because their credentials did not match ours.
    public var unauthenticatedRequests: Int
    /// True if the remote ufrag and password were known.
    public var remoteCredentialsKnown: Bool
    /// True if some pair worked but the controlling agent never nominated one.
    public var awaitingNomination: Bool
    /// True if a relay candidate was among the local or remote ones.
    public var relayTried: Bool

    public var description: String {
        var parts: [String] = []
        if !remoteCredentialsKnown {
            parts.append("the peer's ICE credentials never arrived")
        }
        let local = localTypes.isEmpty ? "none" : localTypes.map(\.rawValue).joined(separator: ", ")
        let remote = remoteTypes.isEmpty ? "none" : remoteTypes.map(\.rawValue).joined(separator: ", ")
        parts.append("local candidates: \(local); remote candidates: \(remote)")
        if triedPairs.isEmpty {
            parts.append("no candidate pair could be checked")
        } else {
            parts.append("checked \(triedPairs.count) pair(s) (\(triedPairs.joined(separator: ", ")))")
        }
        if timedOut > 0 { parts.append("\(timedOut) got no answer") }
        if !rejectedWith.isEmpty { parts.append("rejected with \(rejectedWith.map(String.init).joined(separator: ", "))") }
        if unauthenticatedResponses > 0 {
            parts.append("\(unauthenticatedResponses) answer(s) failed authentication (wrong remote ice-pwd?)")
        }
        if unauthenticatedRequests > 0 {
            parts.append("\(unauthenticatedRequests) check(s) from the peer used wrong credentials")
        }
        if awaitingNomination { parts.append("a path worked but the controlling side never nominated it") }
        if !relayTried { parts.append("no relay (TURN) candidate was available") }
        return parts.joined(separator: "; ")
    }
}
