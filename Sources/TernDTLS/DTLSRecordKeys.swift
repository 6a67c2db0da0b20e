import COpenSSL
import TernCrypto

// Protection of DTLS 1.2 records under the AES-GCM suites without OpenSSL's
// record layer: once the handshake is over, the record keys are derived here
// from the session (RFC 5246 §6.3), and each direction keeps one cipher
// context keyed once (DTLSRecordCipher). docs/architecture.md ("DTLS") has
// the measurements that made this worth doing.
//
// The AEAD itself is OpenSSL's (EVP): tern writes no cipher of its own.
//
// Only AES-GCM (RFC 5288) is done here. ChaCha20-Poly1305 (RFC 7905) builds
// its nonce differently (no explicit part, sequence number XORed in) and
// stays with OpenSSL.

/// The write keys and implicit nonce parts ("salts") of one DTLS 1.2
/// association under an AES-GCM suite, for both directions.
///
/// RFC 5246 §6.3 cuts the key block into client_write_MAC_key,
/// server_write_MAC_key, client_write_key, server_write_key,
/// client_write_IV and server_write_IV, in that order. For an AEAD suite
/// the MAC keys are empty and the IVs are the 4-byte salts of
/// RFC 5288 §3 (SecurityParameters.fixed_iv_length = 4).
///
/// The arrays are key material. `wipe()` zeroes them; copies of the value
/// made before (a `var` passed along, an array that was copied on write)
/// are separate buffers and must be wiped by whoever holds them.
struct DTLSRecordKeys: CustomStringConvertible, CustomDebugStringConvertible {
    var clientWriteKey: [UInt8]
    var serverWriteKey: [UInt8]
    var clientWriteSalt: [UInt8]
    var serverWriteSalt: [UInt8]

    /// RFC 5288 §3: the implicit part of the GCM nonce.
    static let saltLength = 4
    /// RFC 5246 §8.1: the master secret is always 48 bytes.
    static let masterSecretLength = 48
    /// RFC 5246 §7.4.1.2: ClientHello.random and ServerHello.random.
    static let randomLength = 32
    /// Far beyond what TLS 1.2 asks of its PRF (the longest key block, for
    /// a CBC suite with SHA-384 MACs, is 160 bytes). It keeps a wrong
    /// argument from allocating without bound.
    static let maximumPRFLength = 1 << 16

    /// The key and salt with which `role` protects what it sends (and the
    /// other side checks what it receives).
    func writeKey(of role: DTLSRole) -> (key: [UInt8], salt: [UInt8]) {
        switch role {
        case .client: return (clientWriteKey, clientWriteSalt)
        case .server: return (serverWriteKey, serverWriteSalt)
        }
    }

    /// A cipher for the records `role` sends: the sealing side on that end,
    /// the opening side on the other.
    func cipher(sentBy role: DTLSRole) throws(DTLSError) -> DTLSRecordCipher {
        let (key, salt) = writeKey(of: role)
        return try DTLSRecordCipher(key: key, salt: salt)
    }

    /// Says which suite the keys are for, never the bytes: a key that
    /// reaches a log line is a key that has leaked.
    var description: String {
        "DTLSRecordKeys(AES-\(clientWriteKey.count * 8)-GCM, redacted)"
    }

    var debugDescription: String { description }

    /// Zeroes the four arrays in place (OPENSSL_cleanse, which the compiler
    /// cannot drop as a dead store).
    mutating func wipe() {
        Self.wipe(&clientWriteKey)
        Self.wipe(&serverWriteKey)
        Self.wipe(&clientWriteSalt)
        Self.wipe(&serverWriteSalt)
    }

    // MARK: Key schedule

    /// The record keys of a finished DTLS 1.2 handshake on `ssl`, or nil when
    /// the suite is not AES-128-GCM or AES-256-GCM (ChaCha20-Poly1305 stays
    /// with OpenSSL).
    ///
    /// The master secret is the session's: with the extended master secret
    /// (RFC 7627, which OpenSSL negotiates by default) it is already the one
    /// bound to the handshake transcript. The PRF hash is the suite's
    /// handshake digest (RFC 5246 §5: SHA-256 unless the suite names another,
    /// SHA-384 for the AES-256-GCM-SHA384 suites, RFC 5289 §3.2).
    static func derive(from ssl: OpaquePointer) throws(DTLSError) -> DTLSRecordKeys? {
        guard SSL_is_init_finished(ssl) == 1 else { throw .notConnected }
        guard SSL_version(ssl) == DTLS1_2_VERSION, let cipher = SSL_get_current_cipher(ssl) else { return nil }
        let keyLength: Int
        switch SSL_CIPHER_get_cipher_nid(cipher) {
        case NID_aes_128_gcm: keyLength = 16
        case NID_aes_256_gcm: keyLength = 32
        default: return nil
        }
        guard let digest = SSL_CIPHER_get_handshake_digest(cipher) else {
            throw .internalFailure("the negotiated suite has no PRF digest")
        }
        guard let session = SSL_get_session(ssl) else {
            throw .internalFailure("the finished handshake has no session")
        }

        var masterSecret = [UInt8](repeating: 0, count: masterSecretLength)
        defer { wipe(&masterSecret) }
        let secretLength = masterSecret.withUnsafeMutableBytes { buffer in
            SSL_SESSION_get_master_key(session, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count)
        }
        var clientRandom = [UInt8](repeating: 0, count: randomLength)
        let clientRandomLength = clientRandom.withUnsafeMutableBytes { buffer in
            SSL_get_client_random(ssl, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count)
        }
        var serverRandom = [UInt8](repeating: 0, count: randomLength)
        let serverRandomLength = serverRandom.withUnsafeMutableBytes { buffer in
            SSL_get_server_random(ssl, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count)
        }
        guard secretLength == masterSecretLength,
              clientRandomLength == randomLength,
              serverRandomLength == randomLength
        else {
            throw .internalFailure("OpenSSL gave a \(secretLength)-byte master secret and \(clientRandomLength)- and \(serverRandomLength)-byte randoms")
        }
        return try expand(
            masterSecret: masterSecret, clientRandom: clientRandom, serverRandom: serverRandom,
            digest: digest, keyLength: keyLength
        )
    }

    /// RFC 5246 §6.3: key_block = PRF(master_secret, "key expansion",
    /// server_random + client_random), cut into the keys and salts of an
    /// AES-GCM suite (RFC 5288 §3: no MAC keys, 4-byte IVs).
    ///
    /// - Parameters:
    ///   - digest: the PRF hash, a `const EVP_MD *`.
    ///   - keyLength: 16 (AES-128) or 32 (AES-256).
    static func expand(
        masterSecret: [UInt8],
        clientRandom: [UInt8],
        serverRandom: [UInt8],
        digest: OpaquePointer,
        keyLength: Int
    ) throws(DTLSError) -> DTLSRecordKeys {
        guard keyLength == 16 || keyLength == 32 else {
            throw .internalFailure("AES-GCM takes a 16- or 32-byte key, not \(keyLength)")
        }
        guard masterSecret.count == masterSecretLength,
              clientRandom.count == randomLength,
              serverRandom.count == randomLength
        else {
            throw .internalFailure("a key expansion needs a 48-byte master secret and 32-byte randoms")
        }
        var block = try prf(
            secret: masterSecret, label: "key expansion", seed: serverRandom + clientRandom,
            digest: digest, length: 2 * keyLength + 2 * saltLength
        )
        defer { wipe(&block) }
        // Each piece goes into an array of its own capacity, so no piece of
        // the block is left behind in a buffer that outgrew it.
        var cursor = 0
        func take(_ count: Int) -> [UInt8] {
            defer { cursor += count }
            return [UInt8](unsafeUninitializedCapacity: count) { piece, initialized in
                for index in 0..<count { piece[index] = block[cursor + index] }
                initialized = count
            }
        }
        // client_write_MAC_key and server_write_MAC_key: 0 bytes.
        let clientWriteKey = take(keyLength)
        let serverWriteKey = take(keyLength)
        let clientWriteSalt = take(saltLength)
        let serverWriteSalt = take(saltLength)
        return DTLSRecordKeys(
            clientWriteKey: clientWriteKey, serverWriteKey: serverWriteKey,
            clientWriteSalt: clientWriteSalt, serverWriteSalt: serverWriteSalt
        )
    }

    /// The TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed) with
    /// HMAC over `digest` (a `const EVP_MD *`), cut to `length` bytes.
    ///
    ///     A(0) = label + seed,  A(i) = HMAC(secret, A(i-1))
    ///     P_hash = HMAC(secret, A(1) + label + seed) + HMAC(secret, A(2) + label + seed) + ...
    ///
    /// The label is ASCII without a terminating zero. Intermediate values
    /// are zeroed before returning.
    static func prf(
        secret: [UInt8],
        label: String,
        seed: [UInt8],
        digest: OpaquePointer,
        length: Int
    ) throws(DTLSError) -> [UInt8] {
        guard (0...maximumPRFLength).contains(length) else {
            throw .internalFailure("a PRF output of \(length) bytes was asked for")
        }
        guard let function = HashFunction(openSSLDigest: digest) else {
            throw .internalFailure("the PRF digest is not one TernCrypto has")
        }
        let hashLength = function.byteCount
        var labelAndSeed = Array(label.utf8)
        labelAndSeed.append(contentsOf: seed)

        // `chained` is A(i) followed by label + seed. Every buffer is
        // allocated once, written in place (never copied on write, which
        // would leave an unwiped copy behind) and wiped once.
        var chained = [UInt8](repeating: 0, count: hashLength + labelAndSeed.count)
        var a = [UInt8](repeating: 0, count: hashLength)
        var next = [UInt8](repeating: 0, count: hashLength)
        var block = [UInt8](repeating: 0, count: hashLength)
        var output: [UInt8] = []
        output.reserveCapacity(length)
        defer {
            wipe(&chained)
            wipe(&a)
            wipe(&next)
            wipe(&block)
        }
        for index in 0..<labelAndSeed.count { chained[hashLength + index] = labelAndSeed[index] }

        try hmac(function, key: secret, message: labelAndSeed, into: &a)
        while output.count < length {
            for index in 0..<hashLength { chained[index] = a[index] }
            try hmac(function, key: secret, message: chained, into: &block)
            try hmac(function, key: secret, message: a, into: &next)
            for index in 0..<hashLength { a[index] = next[index] }
            let take = min(hashLength, length - output.count)
            for index in 0..<take { output.append(block[index]) }
        }
        return output
    }

    /// HMAC of `message` under `key` into `out`, which is the digest's
    /// size (TernCrypto, OpenSSL's HMAC).
    private static func hmac(_ function: HashFunction, key: [UInt8], message: [UInt8], into out: inout [UInt8]) throws(DTLSError) {
        var failure: CryptoError?
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { data in
                out.withUnsafeMutableBytes { result in
                    do throws(CryptoError) {
                        try function.authenticationCode(key: keyBytes, message: data, into: result)
                    } catch {
                        failure = error
                    }
                }
            }
        }
        if let failure { throw .internalFailure("HMAC failed in the TLS PRF: \(failure.reason)") }
    }

    private static func wipe(_ bytes: inout [UInt8]) {
        Memory.cleanse(&bytes)
    }
}
