import COpenSSL
import TernCrypto

/// A server certificate named by the SHA-256 digest of its DER encoding,
/// written as an SDP fingerprint is (RFC 8122 §5): `sha-256 AB:CD:…`. A
/// client that holds a pin accepts the one certificate it names, whatever
/// signed it: the relay hands one out for a TURN server whose certificate
/// no public authority signed.
public struct TLSCertificatePin: Sendable, Hashable, CustomStringConvertible {
    public static let byteCount = 32
    /// The longest text a pin can be: "sha-256 " and 32 bytes as hex pairs.
    public static let maximumTextLength = 8 + byteCount * 3 - 1

    public let digest: [UInt8]

    public var description: String {
        let digits = Array("0123456789ABCDEF".utf8)
        let pairs = digest.map { String(decoding: [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]], as: UTF8.self) }
        return "sha-256 " + pairs.joined(separator: ":")
    }

    /// - Throws: unless `text` is "sha-256 " and 32 colon-separated hex
    ///   pairs (either case).
    public init(parsing text: String) throws(TLSError) {
        guard text.utf8.count <= Self.maximumTextLength else { throw TLSError("the certificate pin is too long") }
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].lowercased() == "sha-256" else {
            throw TLSError("a certificate pin must start with \"sha-256 \"")
        }
        var digest: [UInt8] = []
        for pair in parts[1].split(separator: ":", omittingEmptySubsequences: false) {
            // Two hex digits: UInt8(_:radix:) alone would take "+7".
            guard pair.utf8.count == 2, pair.utf8.allSatisfy({ UInt8(ascii: "0") <= $0 && $0 <= UInt8(ascii: "9") || Self.isHexLetter($0) }),
                  let byte = UInt8(pair, radix: 16)
            else { throw TLSError("the certificate pin is not hex pairs") }
            digest.append(byte)
        }
        guard digest.count == Self.byteCount else { throw TLSError("a certificate pin has 32 bytes, not \(digest.count)") }
        self.digest = digest
    }

    private static func isHexLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }

    init(digest: [UInt8]) {
        self.digest = digest
    }

    /// The pin of the first certificate in a PEM file (a server's chain
    /// starts with its own).
    public static func ofCertificate(pemFile path: String) throws(TLSError) -> TLSCertificatePin {
        guard let file = BIO_new_file(path, "r") else { throw TLSError.fromQueue("cannot read \(path)") }
        defer { BIO_free(file) }
        guard let certificate = PEM_read_bio_X509(file, nil, nil, nil) else {
            throw TLSError.fromQueue("no PEM certificate in \(path)")
        }
        defer { X509_free(certificate) }
        guard let pin = of(certificate: certificate) else { throw TLSError.fromQueue("cannot digest the certificate in \(path)") }
        return pin
    }

    /// The SHA-256 digest of an X509's DER encoding. A certificate is a few
    /// KiB; the bound keeps a server's from making us allocate more.
    static func of(certificate: OpaquePointer) -> TLSCertificatePin? {
        CertificateDigest.digest(.sha256, of: certificate, maximumLength: 64 * 1024).map(TLSCertificatePin.init(digest:))
    }

    /// Whether `other` is this pin, in time that does not depend on where
    /// they differ.
    func matches(_ other: TLSCertificatePin) -> Bool {
        Memory.constantTimeEqual(digest, other.digest)
    }
}
