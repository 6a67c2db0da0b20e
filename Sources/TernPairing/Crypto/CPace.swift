import CSodium
import TernCrypto

/// CPace, the CFRG's balanced PAKE, as specified in draft-irtf-cfrg-cpace-21,
/// with the cipher suite CPACE-RISTR255-SHA512 (group ristretto255, RFC 9496;
/// hash SHA-512) in the initiator-responder setting.
///
/// Each side builds a `CPace` from the shared password (PRS), the channel
/// identifier (CI), the session identifier (sid), its role and its own
/// associated data; sends `share` and its associated data to the peer; and
/// calls `finish` with what the peer sent. Both sides get the same 64-byte
/// intermediate session key (ISK) if and only if PRS, CI, sid and both
/// messages match (draft §7.2).
///
/// A `CPace` value holds a secret scalar. It is meant for exactly one
/// `finish`: the pairing state machine discards it afterwards, since the same
/// scalar answering two different peer shares would give an attacker a second
/// password guess (draft §10.9, "Secret scalars ya and yb MUST NOT be reused").
/// The scalar is zeroed when the last copy of the value goes away.
public struct CPace: Sendable {
    /// Who speaks first. The initiator's share and associated data come first
    /// in the transcript (draft §6.3, transcript_ir).
    public enum Role: Sendable, Hashable {
        case initiator, responder

        /// The other side.
        public var peer: Role { self == .initiator ? .responder : .initiator }
    }

    /// G_Ristretto255.DSI (draft §8.3).
    static let domainSeparator: [UInt8] = Array("CPaceRistretto255".utf8)
    /// G.DSI || b"_ISK", the first field of the ISK hash input (draft §7.2).
    static let iskDomainSeparator: [UInt8] = domainSeparator + Array("_ISK".utf8)
    /// SHA-512 input block size H.s_in_bytes (draft §6.2).
    static let hashBlockBytes = 128
    /// Length of an encoded ristretto255 element and of a scalar.
    public static let shareBytes = 32
    static let scalarBytes = 32
    /// Length of the ISK: H.b_in_bytes of SHA-512.
    public static let keyBytes = 64

    public let role: Role
    /// This side's public share Y = y * g, 32 bytes: send it to the peer.
    public let share: [UInt8]
    /// This side's associated data (ADa for the initiator, ADb for the
    /// responder), sent in clear next to `share`.
    public let associatedData: [UInt8]
    let sessionID: [UInt8]
    private let scalar: SecretBytes

    /// Starts a CPace run with a fresh random scalar.
    ///
    /// - Parameters:
    ///   - password: PRS, the password-related string both sides share.
    ///   - channelIdentifier: CI, binds the run to a channel; both sides must
    ///     pass the same bytes. Never sent.
    ///   - sessionID: sid, a public string unique to this session (may be
    ///     empty, but a unique sid is RECOMMENDED, draft §10.9).
    ///   - role: initiator (ADa, Ya) or responder (ADb, Yb).
    ///   - associatedData: this side's AD, sent in clear and authenticated.
    public init(
        password: [UInt8],
        channelIdentifier: [UInt8],
        sessionID: [UInt8],
        role: Role,
        associatedData: [UInt8]
    ) throws(PairingError) {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        // draft §8.3 allows either the RECOMMENDED "random bytes with the bits
        // above 252 cleared" or uniform sampling in [1, order - 1]. libsodium's
        // scalar_random does the latter (rejection sampling, never zero).
        let scalar = try SecretBytes(count: Self.scalarBytes) { buffer throws(PairingError) in
            crypto_core_ristretto255_scalar_random(buffer)
        }
        try self.init(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            role: role, associatedData: associatedData, secretScalar: scalar
        )
    }

    /// Starts a CPace run with a given scalar (little-endian, 32 bytes), for
    /// the draft's test vectors. Never use it outside tests.
    init(
        password: [UInt8],
        channelIdentifier: [UInt8],
        sessionID: [UInt8],
        role: Role,
        associatedData: [UInt8],
        scalar: [UInt8]
    ) throws(PairingError) {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        guard scalar.count == Self.scalarBytes else {
            throw .invalidParameter("a CPace scalar is \(Self.scalarBytes) bytes, not \(scalar.count)")
        }
        try self.init(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            role: role, associatedData: associatedData, secretScalar: SecretBytes(copying: scalar)
        )
    }

    private init(
        password: [UInt8],
        channelIdentifier: [UInt8],
        sessionID: [UInt8],
        role: Role,
        associatedData: [UInt8],
        secretScalar: SecretBytes
    ) throws(PairingError) {
        let generator = try Self.calculateGenerator(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID
        )
        // draft §7.2: Y = G.scalar_mult(y, g). The generator is a valid
        // non-identity element and the scalar is non-zero modulo the group
        // order, so libsodium's "result is the identity" failure cannot occur
        // for honest inputs; it is still checked.
        var share = [UInt8](repeating: 0, count: Self.shareBytes)
        let rc = secretScalar.withPointer { scalar in
            generator.withPointer { g in crypto_scalarmult_ristretto255(&share, scalar, g) }
        }
        guard rc == 0 else { throw .libsodiumFailure("crypto_scalarmult_ristretto255 (own share)") }
        self.role = role
        self.share = share
        self.associatedData = associatedData
        self.sessionID = sessionID
        self.scalar = secretScalar
    }

    /// Derives the ISK from the peer's share and associated data.
    ///
    /// Throws `.invalidPeerShare` when the share is not 32 bytes, is not a
    /// canonical ristretto255 encoding, or makes K the identity; the run must
    /// then be aborted (draft §7.2, §8.3, §9).
    public func finish(peerShare: [UInt8], peerAssociatedData: [UInt8]) throws(PairingError) -> [UInt8] {
        var k = try sharedPoint(peerShare: peerShare)
        defer { Memory.cleanse(&k) }
        return Self.intermediateSessionKey(
            sessionID: sessionID,
            sharedPoint: k,
            transcript: transcript(peerShare: peerShare, peerAssociatedData: peerAssociatedData)
        )
    }

    /// transcript_ir(Ya, ADa, Yb, ADb) for this side and the given peer
    /// message, ordered by role (draft §6.3). Both sides compute the same
    /// bytes, so it can also serve as a key-confirmation transcript.
    public func transcript(peerShare: [UInt8], peerAssociatedData: [UInt8]) -> [UInt8] {
        switch role {
        case .initiator:
            return Self.transcript(
                initiatorShare: share, initiatorAssociatedData: associatedData,
                responderShare: peerShare, responderAssociatedData: peerAssociatedData
            )
        case .responder:
            return Self.transcript(
                initiatorShare: peerShare, initiatorAssociatedData: peerAssociatedData,
                responderShare: share, responderAssociatedData: associatedData
            )
        }
    }

    /// transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) || lv_cat(Yb, ADb)
    /// (draft §6.3 and Appendix A.3.4).
    public static func transcript(
        initiatorShare: [UInt8],
        initiatorAssociatedData: [UInt8],
        responderShare: [UInt8],
        responderAssociatedData: [UInt8]
    ) -> [UInt8] {
        lvCat(initiatorShare, initiatorAssociatedData) + lvCat(responderShare, responderAssociatedData)
    }

    // MARK: - Draft building blocks (internal, tested against the vectors)

    /// K = G.scalar_mult_vfy(y, X) for the peer's share X (draft §8.3): the
    /// peer share must decode, and the product must not be the identity
    /// (draft §7.2 "MUST abort if K=G.I"). K never leaves this type except
    /// to the tests (draft §10.3 "MUST NOT expose K").
    func sharedPoint(peerShare: [UInt8]) throws(PairingError) -> [UInt8] {
        guard peerShare.count == Self.shareBytes else {
            throw .invalidPeerShare("expected \(Self.shareBytes) bytes, got \(peerShare.count)")
        }
        // RFC 9496 §4.3.1: encodings are canonical, so the identity has the
        // single encoding of 32 zero bytes (G.I in the draft).
        guard peerShare.contains(where: { $0 != 0 }) else {
            throw .invalidPeerShare("it is the identity element")
        }
        guard crypto_core_ristretto255_is_valid_point(peerShare) == 1 else {
            throw .invalidPeerShare("it is not a valid ristretto255 encoding")
        }
        var k = [UInt8](repeating: 0, count: Self.shareBytes)
        // crypto_scalarmult_ristretto255 decodes the point again and returns
        // -1 when the product is the identity: that is scalar_mult_vfy's G.I.
        let rc = scalar.withPointer { y in crypto_scalarmult_ristretto255(&k, y, peerShare) }
        guard rc == 0 else {
            throw .invalidPeerShare("the shared point is the identity element")
        }
        return k
    }

    /// ISK = H.hash(lv_cat(G.DSI || b"_ISK", sid, K) || transcript) (draft §7.2).
    static func intermediateSessionKey(sessionID: [UInt8], sharedPoint: [UInt8], transcript: [UInt8]) -> [UInt8] {
        var input = lvCat(iskDomainSeparator, sessionID, sharedPoint) + transcript
        defer { Memory.cleanse(&input) }
        return Sodium.sha512(input)
    }

    /// G.calculate_generator for ristretto255 (draft §8.3): hash the
    /// generator string to 2 * 32 bytes with SHA-512, then map it with the
    /// element derivation of RFC 9496 §4.3.4 (libsodium's from_hash).
    /// Returns the encoded generator; it depends on the password, so it is
    /// kept as secret material.
    static func calculateGenerator(
        password: [UInt8], channelIdentifier: [UInt8], sessionID: [UInt8]
    ) throws(PairingError) -> SecretBytes {
        try PairingError.crypto { () throws(CryptoError) in try Sodium.ready() }
        var generatorString = generatorString(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID
        )
        var hash = Sodium.sha512(generatorString)
        defer {
            Memory.cleanse(&generatorString)
            Memory.cleanse(&hash)
        }
        return try SecretBytes(count: shareBytes) { buffer throws(PairingError) in
            // Always returns 0; the hash is exactly crypto_core_ristretto255_HASHBYTES (64).
            _ = crypto_core_ristretto255_from_hash(buffer, hash)
        }
    }

    /// generator_string(G.DSI, PRS, CI, sid, H.s_in_bytes) =
    /// lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid), where
    /// len_zpad = max(0, s_in_bytes - 1 - len(prepend_len(PRS)) - len(prepend_len(DSI)))
    /// so that DSI, PRS and the padding fill the first SHA-512 block (draft §8.1,
    /// Appendix A.2).
    static func generatorString(password: [UInt8], channelIdentifier: [UInt8], sessionID: [UInt8]) -> [UInt8] {
        let used = 1 + prependLen(password).count + prependLen(domainSeparator).count
        let zeroPadding = [UInt8](repeating: 0, count: max(0, hashBlockBytes - used))
        return lvCat(domainSeparator, password, zeroPadding, channelIdentifier, sessionID)
    }

    /// lv_cat(a0, a1, ...) = prepend_len(a0) || prepend_len(a1) || ...
    /// (draft §6.3, Appendix A.1.3).
    static func lvCat(_ fields: [UInt8]...) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(0) { $0 + $1.count + 10 })
        for field in fields {
            appendLength(field.count, to: &out)
            out += field
        }
        return out
    }

    /// prepend_len(data) = LEB128(len(data)) || data (draft §6.3, Appendix A.1.1).
    static func prependLen(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendLength(data.count, to: &out)
        return out + data
    }

    /// Unsigned LEB128: seven bits per byte, least significant group first,
    /// bit 7 set on every byte but the last (draft §6.3).
    private static func appendLength(_ length: Int, to out: inout [UInt8]) {
        var remaining = UInt(length)
        repeat {
            let low = UInt8(remaining & 0x7f)
            remaining >>= 7
            out.append(remaining == 0 ? low : low | 0x80)
        } while remaining != 0
    }
}
