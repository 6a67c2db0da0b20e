import COpenSSL
import TernCrypto

/// The SHA-256 fingerprint of a certificate: the digest of its DER encoding
/// (RFC 8122 §5). Each side puts its own in the SDP (`a=fingerprint:`), and
/// accepts the peer's certificate only if it has the fingerprint the peer's
/// description announced (RFC 8842 §5.1).
///
/// Fingerprints are public; they are compared in constant time anyway when a
/// certificate is checked, so that the check leaks nothing about the expected
/// value to the party presenting the certificate.
public struct DTLSFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// The SDP name of the only hash function this module uses (RFC 8122 §5
    /// names it `sha-256`; the IANA "Hash Function Textual Names" registry).
    public static let algorithm = "sha-256"
    /// Bytes in a SHA-256 digest.
    public static let byteCount = 32

    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// A fingerprint from its 32 digest bytes.
    public init(bytes: [UInt8]) throws(DTLSError) {
        guard bytes.count == Self.byteCount else {
            throw .malformedFingerprint("\(bytes.count) bytes")
        }
        self.bytes = bytes
    }

    /// Parses the value of an SDP fingerprint attribute, `sha-256 AB:CD:…`
    /// (RFC 8122 §5: `hash-func SP fingerprint`, with `fingerprint = 2UHEX
    /// *(":" 2UHEX)`). The hash function name is compared without regard to
    /// case, as SDP tokens are; lower-case hex is accepted too, because some
    /// stacks emit it although the grammar says upper case.
    public init(sdp value: String) throws(DTLSError) {
        // Bounded before anything else: a valid value is 7 + 1 + 95 bytes
        // (longer hash names exist, but we refuse those anyway).
        guard value.utf8.count <= 200 else { throw .malformedFingerprint(String(value.prefix(40)) + "…") }
        let utf8 = Array(value.utf8)
        guard let space = utf8.firstIndex(of: UInt8(ascii: " ")) else { throw .malformedFingerprint(value) }
        let name = String(decoding: utf8[..<space], as: UTF8.self)
        guard name.lowercased() == Self.algorithm else {
            // RFC 8122 §5 hash-func = token: anything else with a name is
            // a hash we do not compute; without one it is garbage.
            if name.isEmpty { throw .malformedFingerprint(value) }
            throw .unsupportedFingerprintAlgorithm(name)
        }
        let hex = Array(utf8[(space + 1)...])
        // 32 pairs and 31 colons: exactly 95 characters.
        guard hex.count == Self.byteCount * 3 - 1 else { throw .malformedFingerprint(value) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.byteCount)
        for index in 0..<Self.byteCount {
            let offset = index * 3
            if index > 0, hex[offset - 1] != UInt8(ascii: ":") { throw .malformedFingerprint(value) }
            guard let high = Self.nibble(hex[offset]), let low = Self.nibble(hex[offset + 1]) else {
                throw .malformedFingerprint(value)
            }
            bytes.append(high << 4 | low)
        }
        self.bytes = bytes
    }

    /// `AB:CD:…`: upper-case hex pairs joined by colons (RFC 8122 §5).
    public var hexString: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 3)
        for (index, byte) in bytes.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ":")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The SDP attribute value, `sha-256 AB:CD:…` (RFC 8122 §5).
    public var sdpValue: String { Self.algorithm + " " + hexString }

    public var description: String { sdpValue }

    /// Whether `digest` is this fingerprint, in time that does not depend on
    /// where they differ.
    func matches(digest: [UInt8]) -> Bool {
        Memory.constantTimeEqual(bytes, digest)
    }

    /// The SHA-256 digest of a certificate's DER encoding (RFC 8122 §5).
    static func digest(of certificate: OpaquePointer) -> [UInt8]? {
        CertificateDigest.digest(.sha256, of: certificate, maximumLength: maximumCertificateLength)
    }

    /// The largest certificate encoding accepted (`DTLSLimits`).
    static let maximumCertificateLength = DTLSLimits.maximumCertificateLength

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
