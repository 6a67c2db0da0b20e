import CSodium
import TernCrypto

/// Sealed messages between the two paired sides, after key confirmation:
/// XChaCha20-Poly1305-IETF (libsodium's crypto_aead_xchacha20poly1305_ietf,
/// draft-irtf-cfrg-xchacha) with one key per direction and strict ordering.
///
/// Wire format of one sealed message:
///
///     seq (8 bytes, big-endian) || ciphertext || tag (16 bytes)
///
/// with, for direction byte d (0x01 initiator->responder, 0x02
/// responder->initiator):
///
///     nonce (24 bytes) = d || 15 zero bytes || seq (8 bytes, big-endian)
///     AD    (23 bytes) = "tern v1 sealed" (ASCII) || d || seq (8 bytes, big-endian)
///
/// Each direction's sequence numbers start at 0 and go up by one per message.
/// The opener accepts only the next expected number; anything else, and any
/// message that fails authentication, is rejected without changing state, so
/// the right message still opens afterwards. A message a side sealed itself
/// never opens on that side: the other direction has another key, another
/// direction byte in the nonce and another AD.
public struct SealingChannel: Sendable {
    /// Direction bytes used in the nonce and the AD.
    enum Direction: UInt8, Sendable {
        case initiatorToResponder = 0x01
        case responderToInitiator = 0x02
    }

    /// Default bound on one plaintext: 64 KiB.
    public static let defaultMaxPlaintextSize = 64 * 1024
    /// Bytes of the sequence number prefix.
    public static let sequenceBytes = 8
    /// Bytes of the Poly1305 tag (crypto_aead_xchacha20poly1305_ietf_ABYTES).
    public static let tagBytes = 16
    /// Bytes a sealed message adds to its plaintext.
    public static let overhead = sequenceBytes + tagBytes

    static let nonceBytes = 24
    static let adPrefix: [UInt8] = Array("tern v1 sealed".utf8)

    public let role: CPace.Role
    /// Largest plaintext `seal` accepts and `open` returns.
    public let maxPlaintextSize: Int
    /// Sequence number the next `seal` will use.
    public internal(set) var nextSendSequence: UInt64 = 0
    /// Sequence number the next `open` expects.
    public internal(set) var nextReceiveSequence: UInt64 = 0

    private let sendKey: SecretBytes
    private let receiveKey: SecretBytes
    private let sendDirection: Direction
    private let receiveDirection: Direction

    /// A channel for the side playing `role`, keyed from `keys`.
    /// `maxPlaintextSize` must not be negative.
    public init(keys: SessionKeys, role: CPace.Role, maxPlaintextSize: Int = defaultMaxPlaintextSize) {
        precondition(maxPlaintextSize >= 0, "maxPlaintextSize must not be negative")
        self.role = role
        self.maxPlaintextSize = maxPlaintextSize
        switch role {
        case .initiator:
            sendKey = keys.sealInitiatorToResponder
            receiveKey = keys.sealResponderToInitiator
            sendDirection = .initiatorToResponder
            receiveDirection = .responderToInitiator
        case .responder:
            sendKey = keys.sealResponderToInitiator
            receiveKey = keys.sealInitiatorToResponder
            sendDirection = .responderToInitiator
            receiveDirection = .initiatorToResponder
        }
    }

    /// Seals `plaintext` as the next message of this side.
    public mutating func seal(_ plaintext: [UInt8]) throws(PairingError) -> [UInt8] {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        guard plaintext.count <= maxPlaintextSize else {
            throw .messageTooLarge(size: plaintext.count, limit: maxPlaintextSize)
        }
        // Never let the counter wrap: a repeated sequence number would repeat
        // a nonce under the same key. UInt64.max itself is never used.
        guard nextSendSequence < UInt64.max else { throw .sequenceExhausted }
        let seq = nextSendSequence
        let nonce = Self.nonce(direction: sendDirection, sequence: seq)
        let ad = Self.associatedData(direction: sendDirection, sequence: seq)

        var message = [UInt8](repeating: 0, count: Self.overhead + plaintext.count)
        Self.writeBigEndian(seq, into: &message)
        var sealedLength: UInt64 = 0
        let rc = message.withUnsafeMutableBufferPointer { out -> Int32 in
            // `message` holds at least `overhead` bytes, so it has an address.
            guard let start = out.baseAddress else { return -1 }
            return sendKey.withPointer { key in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    start + Self.sequenceBytes, &sealedLength,
                    plaintext, UInt64(plaintext.count),
                    ad, UInt64(ad.count),
                    nil, nonce, key
                )
            }
        }
        guard rc == 0, sealedLength == UInt64(plaintext.count + Self.tagBytes) else {
            throw .libsodiumFailure("crypto_aead_xchacha20poly1305_ietf_encrypt")
        }
        nextSendSequence = seq + 1
        return message
    }

    /// Opens the next message from the peer. On any error the channel's
    /// state is unchanged.
    public mutating func open(_ message: [UInt8]) throws(PairingError) -> [UInt8] {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        guard message.count >= Self.overhead else {
            throw .badSeal("\(message.count) bytes is shorter than the \(Self.overhead)-byte minimum")
        }
        let plaintextLength = message.count - Self.overhead
        guard plaintextLength <= maxPlaintextSize else {
            throw .messageTooLarge(size: plaintextLength, limit: maxPlaintextSize)
        }
        guard nextReceiveSequence < UInt64.max else { throw .sequenceExhausted }
        let seq = message[0..<Self.sequenceBytes].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
        guard seq == nextReceiveSequence else {
            throw .replayedOrReordered(expected: nextReceiveSequence, received: seq)
        }
        let nonce = Self.nonce(direction: receiveDirection, sequence: seq)
        let ad = Self.associatedData(direction: receiveDirection, sequence: seq)

        var plaintext = [UInt8](repeating: 0, count: plaintextLength)
        var openedLength: UInt64 = 0
        let rc = plaintext.withUnsafeMutableBufferPointer { out in
            message.withUnsafeBufferPointer { sealed -> Int32 in
                // `message` holds at least `overhead` bytes, so it has an address.
                guard let start = sealed.baseAddress else { return -1 }
                return receiveKey.withPointer { key in
                    crypto_aead_xchacha20poly1305_ietf_decrypt(
                        out.baseAddress, &openedLength,
                        nil,
                        start + Self.sequenceBytes, UInt64(sealed.count - Self.sequenceBytes),
                        ad, UInt64(ad.count),
                        nonce, key
                    )
                }
            }
        }
        guard rc == 0, openedLength == UInt64(plaintextLength) else {
            throw .badSeal("authentication failed")
        }
        nextReceiveSequence = seq + 1
        return plaintext
    }

    /// d || 15 zero bytes || seq (big-endian).
    static func nonce(direction: Direction, sequence: UInt64) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: nonceBytes)
        nonce[0] = direction.rawValue
        for i in 0..<8 {
            nonce[nonceBytes - 1 - i] = UInt8(truncatingIfNeeded: sequence >> (8 * UInt64(i)))
        }
        return nonce
    }

    /// "tern v1 sealed" || d || seq (big-endian).
    static func associatedData(direction: Direction, sequence: UInt64) -> [UInt8] {
        var ad = adPrefix
        ad.append(direction.rawValue)
        var seq = [UInt8](repeating: 0, count: sequenceBytes)
        writeBigEndian(sequence, into: &seq)
        return ad + seq
    }

    /// Writes `value` big-endian into the first 8 bytes of `bytes`.
    private static func writeBigEndian(_ value: UInt64, into bytes: inout [UInt8]) {
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(7 - i)))
        }
    }
}
