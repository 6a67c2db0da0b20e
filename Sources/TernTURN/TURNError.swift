import TernCollections
import TernSTUN

/// Everything that can go wrong in TernTURN: the server refused or never
/// answered, the allocation was lost, the stream from the server is corrupt,
/// or a `send` cannot be honoured.
///
/// One error type for the module. The cases are the stable code a caller
/// switches on; `reason` is one sentence for a log line or a user and never
/// contains the password or a key.
public enum TURNError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: Authentication (RFC 8489 §9.2, RFC 8656 §7)

    /// The server answered 401 to a request that carried credentials: wrong or
    /// expired (coturn REST credentials carry their expiry in the username).
    /// Also 441 Wrong Credentials (RFC 8656 §18).
    case credentialsRejected(STUNErrorCode)
    /// A 401 or 438 without the REALM or NONCE needed to retry (RFC 8489 §9.2.4).
    case challengeWithoutRealmOrNonce(STUNErrorCode)
    /// The server's nonce cookie asks for a security feature (RFC 8489 §9.2)
    /// this client cannot meet; the request is not retried (§9.2.5).
    case securityFeatureUnmet(String)
    /// The server kept answering this request with 438 Stale Nonce past the retry bound.
    case staleNonceLoop(method: STUNMethod, retries: Int)

    // MARK: Server refusals (RFC 8656 §7.4, §18)

    /// 437 Allocation Mismatch to this request: the server has no (or
    /// another) allocation for this 5-tuple.
    case allocationMismatch(STUNMethod)
    /// 486 Allocation Quota Reached.
    case allocationQuotaReached
    /// 508 Insufficient Capacity.
    case insufficientCapacity
    /// 403 Forbidden (for instance a peer address the server's policy refuses).
    case forbidden
    /// 440/443: the address family of the allocation or peer is not served.
    case addressFamilyNotSupported(STUNErrorCode)
    /// 442 Unsupported Transport Protocol.
    case unsupportedTransport
    /// 300 Try Alternate: this client does not follow redirects.
    case redirected(to: STUNAddress?)
    /// Any other error response.
    case serverRefused(method: STUNMethod, code: STUNErrorCode)

    // MARK: Transport

    /// No response to a request: all UDP retransmissions (RFC 8489 §6.2.1) or
    /// the single TCP timeout (RFC 8489 §6.2.2) ran out.
    case timedOut(STUNMethod)
    /// A success response without an attribute RFC 8656 requires in it.
    case malformedResponse(method: STUNMethod, missing: String)
    /// The allocation expired before a Refresh succeeded (RFC 8656 §8).
    case allocationExpired
    /// The local address the allocation was made from went away
    /// (`TURNClient.allocateAfresh`): its 5-tuple is gone.
    case localAddressGone
    /// The driver reported that the TCP connection to the server closed; over
    /// TCP that ends the allocation (RFC 8656 §3.1).
    case connectionClosed
    /// The byte stream from the server cannot be framed any more (RFC 8656
    /// §12.5): the connection must be closed.
    case streamCorrupted(String)

    // MARK: Sending

    /// `send` with no allocation to send through (failed, deallocated or never started).
    case notAllocated
    /// The bounded queue for a peer waiting for its permission is full.
    case peerQueueFull(STUNAddress)
    /// The peer's address family differs from the relayed address's (RFC 8656 §9.1, 443).
    case peerFamilyMismatch(STUNAddress)
    /// More peers than `Configuration.maximumPeers`.
    case tooManyPeers
    /// Application data too large for a Send indication or ChannelData.
    case payloadTooLarge(Int)
    /// TernSTUN refused to encode a message (should not happen for well-formed input).
    case codec(STUNError)

    public var reason: String {
        switch self {
        case .credentialsRejected(let code):
            return "the relay's TURN credentials were refused (expired or wrong): \(code)"
        case .challengeWithoutRealmOrNonce(let code):
            return "the TURN server's \(code) challenge had no REALM or NONCE to answer"
        case .securityFeatureUnmet(let why):
            return "the TURN server's challenge cannot be answered (RFC 8489 security features): \(why)"
        case .staleNonceLoop(let method, let retries):
            return "the TURN server answered \(method) with 438 Stale Nonce \(retries) times in a row"
        case .allocationMismatch(let method):
            return "the TURN server refused \(method): it has no matching allocation for this client (437 Allocation Mismatch)"
        case .allocationQuotaReached:
            return "the TURN server refused: this user has too many allocations (486 Allocation Quota Reached)"
        case .insufficientCapacity:
            return "the TURN server is out of relay capacity (508 Insufficient Capacity)"
        case .forbidden:
            return "the TURN server forbade the request (403 Forbidden)"
        case .addressFamilyNotSupported(let code):
            return "the TURN server does not relay this address family: \(code)"
        case .unsupportedTransport:
            return "the TURN server does not relay UDP (442 Unsupported Transport Protocol)"
        case .redirected(let address):
            return "the TURN server redirected to \(address.map(String.init(describing:)) ?? "another server"), which is not followed"
        case .serverRefused(let method, let code):
            return "the TURN server refused \(method): \(code)"
        case .timedOut(let method):
            return "the TURN server did not answer the \(method) request"
        case .malformedResponse(let method, let missing):
            return "the TURN server's \(method) response lacks \(missing)"
        case .allocationExpired:
            return "the TURN allocation expired before it could be refreshed"
        case .localAddressGone:
            return "the local address the TURN allocation was made from went away"
        case .connectionClosed:
            return "the TCP connection to the TURN server closed"
        case .streamCorrupted(let why):
            return "the byte stream from the TURN server is corrupt: \(why)"
        case .notAllocated:
            return "there is no TURN allocation to send through"
        case .peerQueueFull(let peer):
            return "too much data is waiting for the TURN permission to \(peer)"
        case .peerFamilyMismatch(let peer):
            return "peer \(peer) is not in the relayed address's family"
        case .tooManyPeers:
            return "too many TURN peers for one allocation"
        case .payloadTooLarge(let count):
            return "\(count) bytes do not fit in one TURN Send indication or ChannelData message"
        case .codec(let error):
            return "could not encode a TURN message: \(error.reason)"
        }
    }

    public var description: String { reason }

    /// An ERROR-CODE as it may be shown: the reason phrase from the wire with
    /// the NULs and padding some servers count in its length removed (coturn
    /// 4.6.1 sends "Bad Request\0", its C string's terminator included),
    /// control characters escaped and the length bounded (RFC 8489 §14.8:
    /// at most 127 characters). The reason is hostile input like any byte
    /// from the network.
    static func displayable(_ code: STUNErrorCode) -> STUNErrorCode {
        var scalars = Array(code.reason.unicodeScalars)
        while let last = scalars.last, last == "\0" || last.properties.isWhitespace { scalars.removeLast() }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars)
        return STUNErrorCode(code: code.code, reason: DisplayText.escaped(String(text), limit: 127))
    }

    /// The error an error response stands for, once 401 and 438 have been
    /// handled by a retry (RFC 8656 §7.4 lists the codes for Allocate).
    static func from(_ code: STUNErrorCode, method: STUNMethod, alternate: STUNAddress?) -> TURNError {
        switch code.code {
        case 300: return .redirected(to: alternate)
        case 401, 441: return .credentialsRejected(code)
        case 403: return .forbidden
        case 437: return .allocationMismatch(method)
        case 440, 443: return .addressFamilyNotSupported(code)
        case 442: return .unsupportedTransport
        case 486: return .allocationQuotaReached
        case 508: return .insufficientCapacity
        default: return .serverRefused(method: method, code: code)
        }
    }
}
