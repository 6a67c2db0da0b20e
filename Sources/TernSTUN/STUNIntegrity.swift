import TernCrypto
import TernWire

/// A MESSAGE-INTEGRITY key (RFC 8489 §9).
///
/// The bytes live in one place (`SecretBytes`) and are wiped when the last
/// reference goes. Immutable after init, hence safe to share across threads.
public final class STUNKey: Sendable {
    private let secret: SecretBytes

    /// A key from raw bytes (for instance, a long-term key computed elsewhere).
    public init(bytes: some Collection<UInt8>) {
        secret = SecretBytes(copying: bytes)
    }

    /// RFC 8489 §9.1.1: the short-term key is the password. ICE uses the
    /// peer's ice-pwd as it appears in SDP (RFC 8445 §7.2.2), so no SASLprep
    /// or OpaqueString processing is applied: the UTF-8 bytes are the key.
    public static func shortTerm(password: String) -> STUNKey {
        STUNKey(bytes: password.utf8)
    }

    /// RFC 8489 §9.2.2: key = MD5(username ":" realm ":" password), over the
    /// UTF-8 bytes as given. RFC 8489 asks for OpaqueString (RFC 8265) on realm
    /// and password first; this does not apply it, so a caller with non-ASCII
    /// credentials passes them already prepared (TURN REST credentials are ASCII).
    public static func longTerm(username: String, realm: String, password: String) throws(STUNError) -> STUNKey {
        var input: [UInt8] = []
        input.reserveCapacity(username.utf8.count + realm.utf8.count + password.utf8.count + 2)
        input.append(contentsOf: username.utf8)
        input.append(UInt8(ascii: ":"))
        input.append(contentsOf: realm.utf8)
        input.append(UInt8(ascii: ":"))
        input.append(contentsOf: password.utf8)
        defer { Memory.cleanse(&input) }
        do {
            var digest = try HashFunction.md5.hash(input)
            defer { Memory.cleanse(&digest) }
            return STUNKey(bytes: digest)
        } catch {
            throw .cryptoFailure(error.reason)
        }
    }

    /// The key's length in bytes.
    public var byteCount: Int { secret.count }

    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try secret.withUnsafeBytes(body)
    }
}

/// MESSAGE-INTEGRITY's MAC, with TernCrypto's failures as STUN errors.
enum STUNCrypto {
    /// HMAC-SHA1 (RFC 2104) of `message` with `key`: 20 bytes.
    static func hmacSHA1(key: STUNKey, _ message: ArraySlice<UInt8>) throws(STUNError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError> = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { data in
                Result { () throws(CryptoError) in try HashFunction.sha1.authenticationCode(key: keyBytes, message: data) }
            }
        }
        switch result {
        case .success(let mac): return mac
        case .failure(let error): throw .cryptoFailure(error.reason)
        }
    }
}

extension STUNMessage {
    /// Verifies MESSAGE-INTEGRITY (RFC 8489 §14.5) of a received datagram with
    /// `key`, in constant time. The HMAC is computed over the received bytes up
    /// to the attribute, with the length field adjusted to end just after it.
    ///
    /// Throws `.integrityMissing` when there is no MESSAGE-INTEGRITY (or it
    /// only follows MESSAGE-INTEGRITY-SHA256, where RFC 8489 §14.6 says to
    /// ignore it), `.integrityMismatch` when the HMAC differs, or a decoding
    /// error for a malformed message.
    public static func checkIntegrity(of datagram: ArraySlice<UInt8>, key: STUNKey) throws(STUNError) {
        _ = try STUNHeader.decode(datagram)
        var walker = AttributeWalker(datagram)
        var phase = TrailerPhase.open
        while let raw = try walker.next() {
            let wasOpen = if case .open = phase { true } else { false }
            phase = try phase.admit(raw.type).next
            guard wasOpen, raw.type == STUNAttributeType.messageIntegrity.rawValue else { continue }
            guard raw.value.count == 20 else {
                throw .malformedAttribute(type: raw.type, reason: "length \(raw.value.count), expected 20")
            }
            var covered = Array(datagram.prefix(raw.offset))
            covered.setBigEndian(UInt16(raw.offset - STUN.headerLength + 24), at: 2)
            let expected = try STUNCrypto.hmacSHA1(key: key, covered[...])
            guard Memory.constantTimeEqual(raw.value, expected) else { throw .integrityMismatch }
            return
        }
        throw .integrityMissing
    }

    public static func checkIntegrity(of datagram: [UInt8], key: STUNKey) throws(STUNError) {
        try checkIntegrity(of: datagram[...], key: key)
    }

    /// Verifies FINGERPRINT (RFC 8489 §14.7): it must be the last attribute and
    /// equal the CRC-32 of everything before it XOR 0x5354554e.
    public static func checkFingerprint(of datagram: ArraySlice<UInt8>) throws(STUNError) {
        _ = try STUNHeader.decode(datagram)
        var walker = AttributeWalker(datagram)
        var phase = TrailerPhase.open
        var found: RawAttribute?
        while let raw = try walker.next() {
            phase = try phase.admit(raw.type).next
            if case .afterFingerprint = phase { found = raw }
        }
        guard let found else { throw .fingerprintMissing }
        guard found.value.count == 4 else {
            throw .malformedAttribute(type: found.type, reason: "length \(found.value.count), expected 4")
        }
        let expected = CRC32.checksum(datagram.prefix(found.offset)) ^ fingerprintXOR
        let actual = WireReader(found.value).peekInteger(as: UInt32.self) ?? 0  // four bytes: checked above
        guard expected == actual else { throw .fingerprintMismatch(expected: expected, actual: actual) }
    }

    public static func checkFingerprint(of datagram: [UInt8]) throws(STUNError) {
        try checkFingerprint(of: datagram[...])
    }
}
