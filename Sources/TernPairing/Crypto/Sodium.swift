import CSodium

/// The few libsodium calls the pairing crypto shares, behind Swift types.
enum Sodium {
    /// `sodium_init()` runs exactly once, on first use: Swift initialises
    /// static stored properties lazily and thread-safely. It returns 0 on the
    /// first call, 1 when already initialised and -1 on failure.
    private static let initialised: Bool = sodium_init() >= 0

    /// Call before any other libsodium function.
    static func ready() throws(PairingError) {
        guard initialised else { throw .libsodiumFailure("sodium_init") }
    }

    /// SHA-512 of `message` (64 bytes). libsodium's crypto_hash_sha512 cannot
    /// fail for in-memory input; its return value is always 0.
    static func sha512(_ message: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha512_BYTES))
        _ = crypto_hash_sha512(&digest, message, UInt64(message.count))
        return digest
    }

    /// Keyed BLAKE2b with a 32-byte output, written to `output`.
    /// The key must be 16...64 bytes (crypto_generichash_KEYBYTES_MIN/MAX).
    static func blake2b(
        key: UnsafePointer<UInt8>,
        keyCount: Int,
        message: [UInt8],
        into output: UnsafeMutablePointer<UInt8>
    ) throws(PairingError) {
        guard keyCount >= Int(crypto_generichash_KEYBYTES_MIN),
              keyCount <= Int(crypto_generichash_KEYBYTES_MAX)
        else { throw .libsodiumFailure("crypto_generichash (key size \(keyCount))") }
        let rc = crypto_generichash(output, 32, message, UInt64(message.count), key, keyCount)
        guard rc == 0 else { throw .libsodiumFailure("crypto_generichash") }
    }

    /// Zeroes an array's storage in place (best effort: copies the array made
    /// earlier are not reached).
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) }
    }

    /// Constant-time equality of two byte strings (sodium_memcmp); strings of
    /// different lengths are unequal (lengths are not secret here).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { aBytes in
            b.withUnsafeBytes { bBytes in
                sodium_memcmp(aBytes.baseAddress, bBytes.baseAddress, a.count) == 0
            }
        }
    }
}

/// Key material on the heap that is zeroed (sodium_memzero) when the last
/// reference goes away.
///
/// `@unchecked Sendable`: the bytes are written only while `init` runs and are
/// read-only afterwards; `deinit` runs when no other reference exists.
final class SecretBytes: @unchecked Sendable {
    /// Never null; at least one byte is allocated so that even an empty
    /// secret has a valid address for the C calls.
    private let base: UnsafeMutablePointer<UInt8>
    let count: Int

    /// Allocates `count` zero bytes and lets `fill` write them.
    init(
        count: Int,
        fill: (UnsafeMutablePointer<UInt8>) throws(PairingError) -> Void
    ) throws(PairingError) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        // If `fill` throws, the object is fully initialised, so `deinit`
        // still runs and wipes whatever was written.
        try fill(base)
    }

    /// Copies `bytes` (the caller remains responsible for its own copy).
    init(copying bytes: [UInt8]) {
        count = bytes.count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        bytes.withUnsafeBufferPointer { source in
            if let start = source.baseAddress {
                base.update(from: start, count: source.count)
            }
        }
    }

    func withPointer<R, E: Error>(_ body: (UnsafePointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafePointer(base))
    }

    /// A copy as an array, for values that leave this type (the session
    /// secret, tests).
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    deinit {
        sodium_memzero(base, max(count, 1))
        base.deallocate()
    }
}
