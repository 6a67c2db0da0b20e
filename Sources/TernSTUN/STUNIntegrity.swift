import COpenSSL

/// A MESSAGE-INTEGRITY key (RFC 8489 §9).
///
/// A class so that the bytes live in one place and are wiped with
/// `OPENSSL_cleanse` when the last reference goes. Immutable after init, hence
/// safe to share across threads.
public final class STUNKey: @unchecked Sendable {
    // Allocated once in init, never written again until deinit wipes it.
    private let storage: UnsafeMutableRawBufferPointer
    private let count: Int

    /// A key from raw bytes (for instance, a long-term key computed elsewhere).
    public init(bytes: some Collection<UInt8>) {
        count = bytes.count
        // At least one byte, so the pointer is never null for OpenSSL even for an empty key.
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 1)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        // Bounded by `count` even for a collection whose count and contents disagree.
        for (index, byte) in bytes.enumerated() where index < count { storage[index] = byte }
    }

    deinit {
        if let base = storage.baseAddress {
            OPENSSL_cleanse(base, storage.count)
        }
        storage.deallocate()
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
        defer { input.withUnsafeMutableBytes { if let base = $0.baseAddress { OPENSSL_cleanse(base, $0.count) } } }
        return STUNKey(bytes: try STUNCrypto.md5(input))
    }

    /// The key's length in bytes.
    public var byteCount: Int { count }

    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }
}

/// The OpenSSL calls, each wrapped to return bytes or a typed error.
enum STUNCrypto {
    /// HMAC-SHA1 (RFC 2104) of `message` with `key`: 20 bytes.
    static func hmacSHA1(key: STUNKey, _ message: ArraySlice<UInt8>) throws(STUNError) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: 20)
        var macLength: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { data in
                mac.withUnsafeMutableBytes { out in
                    // An empty key or message still gets valid pointers: STUNKey
                    // allocates at least one byte, and an empty slice is given a
                    // one-byte stand-in below.
                    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { empty in
                        let dataPointer = data.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(empty.baseAddress)
                        return HMAC(
                            EVP_sha1(), keyBytes.baseAddress ?? UnsafeRawPointer(empty.baseAddress), Int32(keyBytes.count),
                            dataPointer, data.count,
                            out.baseAddress?.assumingMemoryBound(to: UInt8.self), &macLength
                        ) != nil
                    }
                }
            }
        }
        guard ok, macLength == 20 else { throw .cryptoFailure("HMAC-SHA1") }
        return mac
    }

    /// MD5 (for the long-term credential key only, as RFC 8489 §9.2.2 requires).
    static func md5(_ input: [UInt8]) throws(STUNError) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 16)
        var digestLength: UInt32 = 0
        let ok = input.withUnsafeBytes { data in
            digest.withUnsafeMutableBytes { out in
                EVP_Digest(
                    data.baseAddress, data.count,
                    out.baseAddress?.assumingMemoryBound(to: UInt8.self), &digestLength,
                    EVP_md5(), nil
                ) == 1
            }
        }
        guard ok, digestLength == 16 else { throw .cryptoFailure("MD5") }
        return digest
    }

    /// Constant-time comparison (CRYPTO_memcmp) of two equal-length byte strings.
    static func constantTimeEqual(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !b.isEmpty else { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0
            }
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
            guard STUNCrypto.constantTimeEqual(raw.value, expected) else { throw .integrityMismatch }
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
        let actual = found.value.u32(at: 0)
        guard expected == actual else { throw .fingerprintMismatch(expected: expected, actual: actual) }
    }

    public static func checkFingerprint(of datagram: [UInt8]) throws(STUNError) {
        try checkFingerprint(of: datagram[...])
    }
}
