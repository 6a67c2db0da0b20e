import CSodium

/// The libsodium calls tern shares beyond OpenSSL's: its initialisation,
/// SHA-512 and keyed BLAKE2b (the pairing's key schedule). Callers that use
/// other libsodium primitives (ristretto255, XChaCha20-Poly1305) call
/// `Sodium.ready()` first.
public enum Sodium {
    /// `sodium_init()` runs exactly once, on first use: Swift initialises
    /// static stored properties lazily and thread-safely. It returns 0 on the
    /// first call, 1 when already initialised and -1 on failure.
    private static let initialised: Bool = sodium_init() >= 0

    /// Call before any other libsodium function.
    public static func ready() throws(CryptoError) {
        guard initialised else { throw CryptoError(.libraryUnavailable, "sodium_init failed") }
    }

    /// SHA-512 of `message` (64 bytes). libsodium's crypto_hash_sha512 cannot
    /// fail for in-memory input; its return value is always 0.
    public static func sha512(_ message: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha512_BYTES))
        _ = crypto_hash_sha512(&digest, message, UInt64(message.count))
        return digest
    }

    /// Keyed BLAKE2b (RFC 7693) with a 32-byte output, written to `output`.
    /// The key must be 16...64 bytes (crypto_generichash_KEYBYTES_MIN/MAX).
    public static func blake2b(
        key: UnsafePointer<UInt8>,
        keyCount: Int,
        message: [UInt8],
        into output: UnsafeMutablePointer<UInt8>
    ) throws(CryptoError) {
        try ready()
        guard keyCount >= Int(crypto_generichash_KEYBYTES_MIN),
              keyCount <= Int(crypto_generichash_KEYBYTES_MAX)
        else { throw CryptoError(.invalidArgument, "crypto_generichash takes a 16- to 64-byte key, not \(keyCount)") }
        let rc = crypto_generichash(output, 32, message, UInt64(message.count), key, keyCount)
        guard rc == 0 else { throw CryptoError(.macFailed, "crypto_generichash failed") }
    }
}
