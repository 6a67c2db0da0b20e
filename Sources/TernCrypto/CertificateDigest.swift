import COpenSSL

/// An OpenSSL certificate's DER encoding and its digest: what a DTLS
/// fingerprint (RFC 8122 §5) and a TLS certificate pin name.
public enum CertificateDigest {
    /// The DER encoding of `certificate` (an `X509 *`, i2d_X509), or nil if
    /// it has none or it is longer than `maximumLength`, which bounds what a
    /// peer's certificate can make us allocate.
    public static func der(of certificate: OpaquePointer, maximumLength: Int) -> [UInt8]? {
        let length = i2d_X509(certificate, nil)
        guard length > 0, Int(length) <= maximumLength else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_X509(certificate, &cursor)
        }
        return written == length ? der : nil
    }

    /// `function`'s digest of the DER encoding of `certificate`, or nil
    /// (see `der(of:maximumLength:)`).
    public static func digest(_ function: HashFunction, of certificate: OpaquePointer, maximumLength: Int) -> [UInt8]? {
        guard let der = der(of: certificate, maximumLength: maximumLength) else { return nil }
        return try? function.hash(der)
    }
}
