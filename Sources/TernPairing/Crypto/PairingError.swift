import TernCrypto

/// Everything that can go wrong while pairing two sides.
///
/// The cryptographic cases live here; the pairing state machine adds its own.
/// Every case carries enough to say what happened, and `reason` turns it into
/// one sentence for logs and the CLI.
public enum PairingError: Error, Equatable, Sendable {
    /// The peer's CPace share is unusable: wrong length, not a canonical
    /// ristretto255 encoding, or it leads to the identity element. The
    /// string says which. The session must be aborted
    /// (draft-irtf-cfrg-cpace-21 §7.2, "MUST abort if K=G.I").
    case invalidPeerShare(String)
    /// A confirmation tag of the wrong length or one that does not verify:
    /// the peer did not derive the same key (most likely a wrong code).
    case confirmationFailed
    /// A sealed message that cannot be opened: too short to hold a sequence
    /// number and a tag, or its authentication failed (tampered, truncated,
    /// reflected, or sealed under another key). The string says which.
    case badSeal(String)
    /// A sealed message whose sequence number is not the one expected next:
    /// a replay, a reordering, or a skipped message.
    case replayedOrReordered(expected: UInt64, received: UInt64)
    /// A plaintext (or a sealed message) over the size limit.
    case messageTooLarge(size: Int, limit: Int)
    /// The sequence numbers of one direction are used up; the channel must be
    /// re-keyed (in practice never: 2^64 - 1 messages).
    case sequenceExhausted
    /// A parameter that the caller, not the peer, got wrong.
    case invalidParameter(String)
    /// libsodium failed where it should not (initialisation, an unexpected
    /// return code). The string names the call.
    case libsodiumFailure(String)
    /// A mailbox message of an unknown kind, a wrong size, or out of order.
    case unexpectedMessage(String)
    /// The peer speaks a pairing protocol version this side does not.
    case unsupportedVersion(UInt8)
    /// Sealing was asked for before key confirmation.
    case notPaired
    /// A sealed message opened but is not a valid peer message.
    case malformedPeerMessage(String)

    public var reason: String {
        switch self {
        case .invalidPeerShare(let why):
            return "the peer's key-exchange share is invalid: \(why)"
        case .confirmationFailed:
            return "key confirmation failed: the other side did not derive the same key (wrong code?)"
        case .badSeal(let why):
            return "a sealed message could not be opened: \(why)"
        case .replayedOrReordered(let expected, let received):
            return "sealed message number \(received) arrived where number \(expected) was expected"
        case .messageTooLarge(let size, let limit):
            return "message of \(size) bytes is over the limit of \(limit)"
        case .sequenceExhausted:
            return "the sealed channel ran out of sequence numbers"
        case .invalidParameter(let why):
            return "invalid parameter: \(why)"
        case .libsodiumFailure(let call):
            return "libsodium failed in \(call)"
        case .unexpectedMessage(let why):
            return "the peer broke the pairing protocol: \(why)"
        case .unsupportedVersion(let version):
            return "the peer speaks pairing protocol version \(version); this tern speaks 1"
        case .notPaired:
            return "nothing can be sealed before the key is confirmed"
        case .malformedPeerMessage(let why):
            return "the peer sent a bad message: \(why)"
        }
    }
}

extension PairingError {
    /// Runs a TernCrypto call, its failure becoming `.libsodiumFailure`
    /// (pairing's primitives are libsodium's).
    static func crypto<R>(_ body: () throws(CryptoError) -> R) throws(PairingError) -> R {
        do {
            return try body()
        } catch {
            throw .libsodiumFailure(error.reason)
        }
    }
}
