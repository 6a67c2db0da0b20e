import COpenSSL

/// Cryptographically secure random bytes: OpenSSL's DRBG (RAND_bytes),
/// seeded from the operating system.
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        // RAND_bytes takes an Int32 count.
        while offset < buffer.count {
            let count = min(buffer.count - offset, Int(Int32.max))
            OpenSSLErrorQueue.clear()
            guard RAND_bytes((base + offset).assumingMemoryBound(to: UInt8.self), Int32(count)) == 1 else {
                throw .openSSL(.randomFailed, "RAND_bytes failed")
            }
            offset += count
        }
    }

    /// `count` random bytes.
    public static func bytes(count: Int) throws(CryptoError) -> [UInt8] {
        guard count >= 0 else { throw CryptoError(.invalidArgument, "\(count) random bytes") }
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: CryptoError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(CryptoError) { try fill(buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    /// A random value of a fixed-width integer type.
    public static func value<T: FixedWidthInteger>(_: T.Type = T.self) throws(CryptoError) -> T {
        var value: T = 0
        try withUnsafeMutableBytes(of: &value) { (buffer) throws(CryptoError) in try fill(buffer) }
        return value
    }
}

/// A `RandomNumberGenerator` over `SecureRandom`, for the standard library's
/// `random(in:using:)`. RAND_bytes fails only when OpenSSL's DRBG cannot be
/// seeded, where nothing random can be had at all; the generator then stops
/// the process (a protocol must never go on with predictable values).
public struct SecureRandomNumberGenerator: RandomNumberGenerator, Sendable {
    public init() {}

    public mutating func next() -> UInt64 {
        do {
            return try SecureRandom.value(UInt64.self)
        } catch {
            fatalError("no secure random numbers: \(error.reason)")
        }
    }
}
