import CSodium
import TernCrypto

/// tern's key schedule: five 32-byte keys derived from CPace's 64-byte ISK.
///
/// draft-irtf-cfrg-cpace-21 §7.2 and §10.3 RECOMMEND running the ISK through a
/// KDF before use. Each key here is BLAKE2b-256 keyed with the full ISK over a
/// distinct ASCII label (no terminator, no length prefix: the labels are fixed
/// and all different):
///
///     key(label) = BLAKE2b(key: ISK, message: label, outputLength: 32)
///
/// The ISK itself is not kept. The keys live in zero-on-deinit storage.
public final class SessionKeys: Sendable {
    /// The labels, one per key (ASCII).
    enum Label {
        static let confirmInitiator = "tern v1 confirm initiator"
        static let confirmResponder = "tern v1 confirm responder"
        static let sealInitiatorToResponder = "tern v1 seal initiator->responder"
        static let sealResponderToInitiator = "tern v1 seal responder->initiator"
        static let sessionSecret = "tern v1 session secret"
    }

    /// Length of every derived key and of a confirmation tag.
    public static let keyBytes = 32

    let confirmInitiator: SecretBytes
    let confirmResponder: SecretBytes
    let sealInitiatorToResponder: SecretBytes
    let sealResponderToInitiator: SecretBytes
    private let secret: SecretBytes

    /// Derives the keys from the ISK that `CPace.finish` returned.
    public init(intermediateSessionKey isk: [UInt8]) throws(PairingError) {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        guard isk.count == CPace.keyBytes else {
            throw .invalidParameter("the ISK is \(CPace.keyBytes) bytes, not \(isk.count)")
        }
        let master = SecretBytes(copying: isk)
        func derive(_ label: String) throws(PairingError) -> SecretBytes {
            try SecretBytes(count: Self.keyBytes) { output throws(PairingError) in
                try master.withPointer { key throws(PairingError) in
                    try PairingError.crypto { () throws(CryptoError) in
                        try Sodium.blake2b(key: key, keyCount: master.count, message: Array(label.utf8), into: output)
                    }
                }
            }
        }
        confirmInitiator = try derive(Label.confirmInitiator)
        confirmResponder = try derive(Label.confirmResponder)
        sealInitiatorToResponder = try derive(Label.sealInitiatorToResponder)
        sealResponderToInitiator = try derive(Label.sealResponderToInitiator)
        secret = try derive(Label.sessionSecret)
    }

    /// A 32-byte secret both sides share, for the layers above (e.g. to bind
    /// the DTLS fingerprints exchanged later). Returned as a copy.
    public var sessionSecret: [UInt8] { secret.bytes }

    /// The key-confirmation tag `role` sends: BLAKE2b-256 keyed with that
    /// role's confirmation key over `transcript`, which the pairing layer
    /// chooses (both sides must pass the same bytes, e.g. the two shares,
    /// initiator's first).
    /// Explicit key confirmation as draft-irtf-cfrg-cpace-21 §10.4 advises;
    /// the role-specific keys keep a reflected tag from verifying.
    public func confirmationTag(for role: CPace.Role, transcript: [UInt8]) -> [UInt8] {
        var tag = [UInt8](repeating: 0, count: Self.keyBytes)
        let key = role == .initiator ? confirmInitiator : confirmResponder
        // The key (32 bytes) and the output size are always within
        // crypto_generichash's limits, so this cannot fail; a failure would
        // leave an all-zero tag, which `verifyConfirmation` never accepts.
        do {
            try tag.withUnsafeMutableBufferPointer { output throws(PairingError) in
                guard let out = output.baseAddress else { throw .libsodiumFailure("confirmation tag buffer") }
                try key.withPointer { k throws(PairingError) in
                    try PairingError.crypto { () throws(CryptoError) in
                        try Sodium.blake2b(key: k, keyCount: key.count, message: transcript, into: out)
                    }
                }
            }
        } catch {
            return [UInt8](repeating: 0, count: Self.keyBytes)
        }
        return tag
    }

    /// Whether `tag` is the confirmation tag `role` must send for
    /// `transcript`. Compared in constant time (CRYPTO_memcmp).
    public func verifyConfirmation(_ tag: [UInt8], from role: CPace.Role, transcript: [UInt8]) -> Bool {
        guard tag.count == Self.keyBytes else { return false }
        let expected = confirmationTag(for: role, transcript: transcript)
        // Constant time too (sodium_is_zero): the all-zero failure tag never verifies.
        guard sodium_is_zero(expected, expected.count) == 0 else { return false }
        return Memory.constantTimeEqual(tag, expected)
    }

    /// Like `verifyConfirmation`, but throws `.confirmationFailed`, for
    /// callers that abort on a bad tag.
    public func checkConfirmation(_ tag: [UInt8], from role: CPace.Role, transcript: [UInt8]) throws(PairingError) {
        guard verifyConfirmation(tag, from: role, transcript: transcript) else {
            throw .confirmationFailed
        }
    }
}
