import COpenSSL

// Each OpenSSL object this module creates lives in exactly one of these
// classes, which frees it in `deinit`. OpenSSL reference-counts keys,
// certificates and contexts internally, so handing one to another object
// (SSL_CTX_use_certificate, SSL_new) takes a reference of its own and the
// order in which Swift releases the wrappers does not matter.

/// An `EVP_PKEY`: the certificate's private key. EVP_PKEY_free clears the
/// private scalar before releasing it.
final class PrivateKeyHandle {
    let pointer: OpaquePointer
    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }
}

/// An `EVP_PKEY_CTX`, used once to generate a key.
final class KeyContextHandle {
    let pointer: OpaquePointer
    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_CTX_free(pointer) }
}

/// An `X509` certificate.
final class CertificateHandle {
    let pointer: OpaquePointer
    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_free(pointer) }
}

/// An `SSL_CTX`: one per association, because it carries that association's
/// certificate and its fingerprint check.
final class ContextHandle {
    let pointer: OpaquePointer
    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_CTX_free(pointer) }
}

/// An `SSL` connection. It owns its BIO (SSL_set_bio hands the reference
/// over), so freeing it frees the BIO too.
final class ConnectionHandle {
    let pointer: OpaquePointer
    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_free(pointer) }
}

/// Option bits from ssl.h. They are `SSL_OP_BIT(n)` macros, which Swift does
/// not import; the bit numbers are OpenSSL's ABI and do not change.
enum SSLOption {
    /// Use the MTU we set (DTLS_set_link_mtu) instead of asking the BIO.
    static let noQueryMTU: UInt64 = 1 << 12
    /// No session tickets: every association is a full handshake with
    /// fresh certificates, so there is nothing to resume.
    static let noTicket: UInt64 = 1 << 14
    /// No TLS-level compression (CRIME); OpenSSL 3 sets it by default.
    static let noCompression: UInt64 = 1 << 17
    /// Refuse renegotiation (the peer gets a no_renegotiation warning).
    static let noRenegotiation: UInt64 = 1 << 30
}
