import COpenSSL

/// Wiping secrets and comparing them without leaking where they differ.
public enum Memory {
    /// Zeroes `count` bytes at `pointer` in a way the compiler cannot drop
    /// as a dead store (OPENSSL_cleanse).
    public static func cleanse(_ pointer: UnsafeMutableRawPointer, count: Int) {
        guard count > 0 else { return }
        OPENSSL_cleanse(pointer, count)
    }

    /// Zeroes `buffer`.
    public static func cleanse(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        cleanse(base, count: buffer.count)
    }

    /// Zeroes an array's storage in place. Best effort: copies of the array
    /// made earlier (copy on write) are separate buffers, not reached.
    public static func cleanse(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { cleanse($0) }
    }

    /// Whether two byte strings are equal, in time that depends only on
    /// their length, never on where they differ (CRYPTO_memcmp). Strings of
    /// different lengths are unequal at once: lengths are not secret here.
    public static func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard let x = a.baseAddress, let y = b.baseAddress else { return a.isEmpty }
        return CRYPTO_memcmp(x, y, a.count) == 0
    }

    /// `constantTimeEqual` over any two byte collections (arrays, slices).
    public static func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        return withContiguousBytes(of: a) { x in
            withContiguousBytes(of: b) { y in constantTimeEqual(x, y) }
        }
    }
}
