import COpenSSL

/// The message digests tern uses, all OpenSSL's (EVP).
///
/// MD5 and SHA-1 are here only where a protocol requires them: MD5 for the
/// STUN long-term credential key (RFC 8489 §9.2.2), SHA-1 inside HMAC for
/// STUN MESSAGE-INTEGRITY (RFC 8489 §14.5) and coturn's REST credentials.
/// SHA-384 is the TLS 1.2 PRF's hash under the AES-256-GCM-SHA384 suites
/// (RFC 5289 §3.2).
public enum HashFunction: Hashable, Sendable, CaseIterable {
    case md5
    case sha1
    case sha256
    case sha384

    /// Bytes in a digest.
    public var byteCount: Int {
        switch self {
        case .md5: return 16
        case .sha1: return 20
        case .sha256: return 32
        case .sha384: return 48
        }
    }

    /// The implementation, fetched from the default provider once per
    /// process rather than on every call (what EVP_sha256() and friends
    /// would make OpenSSL 3 do).
    var algorithm: OpaquePointer? {
        switch self {
        case .md5: return FetchedDigests.shared.md5
        case .sha1: return FetchedDigests.shared.sha1
        case .sha256: return FetchedDigests.shared.sha256
        case .sha384: return FetchedDigests.shared.sha384
        }
    }
}

/// `EVP_MD_fetch` results, kept for the life of the process (never freed:
/// one each, and fetched digests are safe to share between threads).
private final class FetchedDigests: @unchecked Sendable {
    static let shared = FetchedDigests()

    let md5: OpaquePointer?
    let sha1: OpaquePointer?
    let sha256: OpaquePointer?
    let sha384: OpaquePointer?

    private init() {
        // A provider that lacks one (MD5 under a FIPS-only configuration)
        // leaves nil, and using it fails with a CryptoError.
        md5 = EVP_MD_fetch(nil, "MD5", nil)
        sha1 = EVP_MD_fetch(nil, "SHA1", nil)
        sha256 = EVP_MD_fetch(nil, "SHA256", nil)
        sha384 = EVP_MD_fetch(nil, "SHA384", nil)
        ERR_clear_error()
    }
}

extension HashFunction {
    /// The digest of `message`, written to `output`, which must hold exactly
    /// `byteCount` bytes. Allocates nothing (the data path's form).
    public func hash(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard output.count == byteCount, let out = output.baseAddress else {
            throw CryptoError(.invalidArgument, "a \(self) digest is \(byteCount) bytes, not \(output.count)")
        }
        guard let algorithm else { throw .openSSL(.digestFailed, "\(self) is not available") }
        var length: UInt32 = 0
        OpenSSLErrorQueue.clear()
        // EVP_Digest takes a null pointer for an empty message.
        let ok = EVP_Digest(
            message.baseAddress, message.count, out.assumingMemoryBound(to: UInt8.self), &length, algorithm, nil)
        guard ok == 1, Int(length) == byteCount else { throw .openSSL(.digestFailed, "\(self) failed") }
    }

    /// The digest of `message`.
    public func hash(_ message: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: byteCount)
        var failure: CryptoError?
        digest.withUnsafeMutableBytes { out in
            do throws(CryptoError) { try hash(message, into: out) } catch { failure = error }
        }
        if let failure { throw failure }
        return digest
    }

    /// The digest of `message`.
    public func hash(_ message: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        try withContiguousBytes(of: message) { (bytes) throws(CryptoError) in try hash(bytes) }
    }

    /// HMAC (RFC 2104) of `message` under `key` with this hash, written to
    /// `output`, which must hold exactly `byteCount` bytes.
    public func authenticationCode(
        key: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard output.count == byteCount, let out = output.baseAddress else {
            throw CryptoError(.invalidArgument, "an HMAC-\(self) is \(byteCount) bytes, not \(output.count)")
        }
        guard key.count <= Int(Int32.max) else { throw CryptoError(.invalidArgument, "an HMAC key of \(key.count) bytes") }
        guard let algorithm else { throw .openSSL(.macFailed, "\(self) is not available") }
        var length: UInt32 = 0
        OpenSSLErrorQueue.clear()
        // OpenSSL wants valid pointers even for an empty key or message.
        let done = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { empty -> Bool in
            guard let stand = empty.baseAddress else { return false }
            return HMAC(
                algorithm,
                key.baseAddress ?? UnsafeRawPointer(stand), Int32(key.count),
                message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(stand), message.count,
                out.assumingMemoryBound(to: UInt8.self), &length
            ) != nil
        }
        guard done, Int(length) == byteCount else { throw .openSSL(.macFailed, "HMAC-\(self) failed") }
    }

    /// HMAC (RFC 2104) of `message` under `key` with this hash.
    public func authenticationCode(key: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: byteCount)
        var failure: CryptoError?
        mac.withUnsafeMutableBytes { out in
            do throws(CryptoError) { try authenticationCode(key: key, message: message, into: out) } catch { failure = error }
        }
        if let failure { throw failure }
        return mac
    }

    /// HMAC (RFC 2104) of `message` under `key` with this hash.
    public func authenticationCode(key: some Collection<UInt8>, message: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        try withContiguousBytes(of: key) { (keyBytes) throws(CryptoError) in
            try withContiguousBytes(of: message) { (messageBytes) throws(CryptoError) in
                try authenticationCode(key: keyBytes, message: messageBytes)
            }
        }
    }
}

extension HashFunction {
    /// The function an OpenSSL `EVP_MD` (a suite's PRF digest, say) stands
    /// for, by its NID; nil for one tern does not use.
    public init?(openSSLDigest digest: OpaquePointer) {
        switch EVP_MD_get_type(digest) {
        case NID_md5: self = .md5
        case NID_sha1: self = .sha1
        case NID_sha256: self = .sha256
        case NID_sha384: self = .sha384
        default: return nil
        }
    }
}

extension HashFunction: CustomStringConvertible {
    public var description: String {
        switch self {
        case .md5: return "MD5"
        case .sha1: return "SHA-1"
        case .sha256: return "SHA-256"
        case .sha384: return "SHA-384"
        }
    }
}

/// `body` over the bytes of `collection`, without a copy when they are
/// contiguous already (arrays, slices); a copy made otherwise is wiped.
func withContiguousBytes<R, E: Error>(
    of collection: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let direct: Result<R, E>? = collection.withContiguousStorageIfAvailable { buffer in
        Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(buffer)) }
    }
    if let direct { return try direct.get() }
    var copy = Array(collection)
    defer { Memory.cleanse(&copy) }
    let copied: Result<R, E> = copy.withUnsafeBytes { bytes in Result { () throws(E) -> R in try body(bytes) } }
    return try copied.get()
}
