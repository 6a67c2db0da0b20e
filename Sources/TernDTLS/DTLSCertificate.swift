import COpenSSL
import TernCrypto

/// A self-signed ECDSA P-256 certificate and its private key, made in memory
/// for one session. Nobody checks it against a CA: the peer accepts it because
/// its fingerprint is the one in our sealed session description (RFC 8122 §5,
/// RFC 8827 §6.5). Generate it when the description is written, so the
/// fingerprint can go in it, and give it to the association later.
///
/// Immutable once made. OpenSSL allows a certificate and key to be used from
/// several threads for reading, which is all that happens to them after
/// generation; hence `@unchecked Sendable`.
public final class DTLSCertificate: @unchecked Sendable {
    /// The SHA-256 fingerprint of the certificate's DER encoding.
    public let fingerprint: DTLSFingerprint
    /// The certificate as DER, for inspection and tests.
    public let derEncoded: [UInt8]

    let certificate: CertificateHandle
    let privateKey: PrivateKeyHandle

    /// How long before "now" the certificate becomes valid, for peers whose
    /// clock is behind ours. The peer does not check the dates of a
    /// fingerprint-pinned certificate in practice, but a strict one could.
    public static let clockSkewAllowance: Duration = .seconds(24 * 3600)

    /// Generates a fresh key pair and certificate.
    ///
    /// - Parameters:
    ///   - lifetime: how long after now the certificate stays valid. Short:
    ///     the certificate only has to outlive the handshake of one session.
    ///   - commonName: the subject and issuer CN.
    public static func generate(lifetime: Duration = .seconds(24 * 3600), commonName: String = "tern") throws(DTLSError) -> DTLSCertificate {
        let seconds = lifetime.components.seconds
        guard seconds >= 60, seconds <= 366 * 24 * 3600 else {
            throw .invalidConfiguration("certificate lifetime \(lifetime) is outside one minute to one year")
        }
        guard !commonName.isEmpty, commonName.utf8.count <= 64, commonName.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw .invalidConfiguration("certificate common name must be 1 to 64 printable ASCII characters")
        }
        ERR_clear_error()
        let key = try generateKey()
        let certificate = try makeCertificate(key: key, lifetimeSeconds: Int(seconds), commonName: commonName)
        let der = try encode(certificate)
        let digest: [UInt8]
        do {
            digest = try HashFunction.sha256.hash(der)
        } catch {
            throw .certificateGenerationFailed(error.reason)
        }
        return DTLSCertificate(
            certificate: certificate,
            privateKey: key,
            fingerprint: try DTLSFingerprint(bytes: digest),
            derEncoded: der
        )
    }

    init(certificate: CertificateHandle, privateKey: PrivateKeyHandle, fingerprint: DTLSFingerprint, derEncoded: [UInt8]) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.fingerprint = fingerprint
        self.derEncoded = derEncoded
    }

    /// An EC key on P-256 (secp256r1): what browsers generate for WebRTC, and
    /// the curve RFC 8827 §6.5 makes mandatory to implement.
    private static func generateKey() throws(DTLSError) -> PrivateKeyHandle {
        guard let raw = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw OpenSSLErrorQueue.certificateError("EVP_PKEY_CTX_new_from_name(EC) failed")
        }
        let context = KeyContextHandle(taking: raw)
        guard EVP_PKEY_keygen_init(context.pointer) == 1,
              EVP_PKEY_CTX_set_group_name(context.pointer, "prime256v1") == 1
        else { throw OpenSSLErrorQueue.certificateError("cannot set up P-256 key generation") }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context.pointer, &key) == 1, let key else {
            throw OpenSSLErrorQueue.certificateError("EVP_PKEY_generate failed")
        }
        return PrivateKeyHandle(taking: key)
    }

    private static func makeCertificate(key: PrivateKeyHandle, lifetimeSeconds: Int, commonName: String) throws(DTLSError) -> CertificateHandle {
        guard let raw = X509_new() else { throw OpenSSLErrorQueue.certificateError("X509_new failed") }
        let certificate = CertificateHandle(taking: raw)
        let x509 = certificate.pointer

        // RFC 5280 §4.1.2.1: version 3 (encoded as 2). Some parsers refuse v1.
        guard X509_set_version(x509, 2) == 1 else { throw OpenSSLErrorQueue.certificateError("X509_set_version failed") }

        // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; random,
        // so that two certificates never share issuer and serial.
        var serial: UInt64
        do {
            serial = try SecureRandom.value(UInt64.self) & 0x7FFF_FFFF_FFFF_FFFF
        } catch {
            throw .certificateGenerationFailed(error.reason)
        }
        if serial == 0 { serial = 1 }
        guard ASN1_INTEGER_set_uint64(X509_get_serialNumber(x509), serial) == 1 else {
            throw OpenSSLErrorQueue.certificateError("cannot set the serial number")
        }

        // RFC 5280 §4.1.2.5: a short validity window around now.
        let skew = Int(clockSkewAllowance.components.seconds)
        guard X509_gmtime_adj(X509_getm_notBefore(x509), -skew) != nil,
              X509_gmtime_adj(X509_getm_notAfter(x509), lifetimeSeconds) != nil
        else { throw OpenSSLErrorQueue.certificateError("cannot set the validity period") }

        // Self-signed: subject and issuer are the same name.
        guard let name = X509_get_subject_name(x509),
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1,
              X509_set_issuer_name(x509, name) == 1
        else { throw OpenSSLErrorQueue.certificateError("cannot set the certificate name") }

        guard X509_set_pubkey(x509, key.pointer) == 1 else {
            throw OpenSSLErrorQueue.certificateError("X509_set_pubkey failed")
        }
        // ecdsa-with-SHA256. X509_sign returns the signature size, 0 on failure.
        guard let sha256 = EVP_sha256(), X509_sign(x509, key.pointer, sha256) > 0 else {
            throw OpenSSLErrorQueue.certificateError("X509_sign failed")
        }
        return certificate
    }

    private static func encode(_ certificate: CertificateHandle) throws(DTLSError) -> [UInt8] {
        guard let der = CertificateDigest.der(of: certificate.pointer, maximumLength: DTLSFingerprint.maximumCertificateLength) else {
            throw OpenSSLErrorQueue.certificateError("i2d_X509 failed")
        }
        return der
    }
}
