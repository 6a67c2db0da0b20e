import COpenSSL
import Testing
import TernDTLS

@Suite("Certificates and fingerprints (RFC 8122 §5)")
struct FingerprintTests {
    @Test func fingerprintIsSHA256OfTheDEREncodedCertificate() throws {
        let certificate = try DTLSCertificate.generate()
        var digest = [UInt8](repeating: 0, count: 32)
        _ = certificate.derEncoded.withUnsafeBufferPointer { der in
            SHA256(der.baseAddress, der.count, &digest)
        }
        #expect(certificate.fingerprint.bytes == digest)
    }

    @Test func sdpFormIsSha256AndUpperCaseHexPairsWithColons() throws {
        let fingerprint = try DTLSFingerprint(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 * 8 + 0x0A) })
        #expect(fingerprint.sdpValue == "sha-256 0A:12:1A:22:2A:32:3A:42:4A:52:5A:62:6A:72:7A:82:8A:92:9A:A2:AA:B2:BA:C2:CA:D2:DA:E2:EA:F2:FA:02")
        #expect(fingerprint.hexString.count == 95)
        #expect(fingerprint.description == fingerprint.sdpValue)

        let generated = try DTLSCertificate.generate().fingerprint.sdpValue
        #expect(generated.hasPrefix("sha-256 "))
        let hex = generated.dropFirst("sha-256 ".count)
        #expect(hex.split(separator: ":").count == 32)
        #expect(hex.split(separator: ":").allSatisfy { $0.count == 2 && $0.allSatisfy { "0123456789ABCDEF".contains($0) } })
    }

    @Test func sdpFormParsesBackToTheSameBytes() throws {
        let fingerprint = try DTLSCertificate.generate().fingerprint
        #expect(try DTLSFingerprint(sdp: fingerprint.sdpValue) == fingerprint)
        // Hash names are case-insensitive tokens; lower-case hex is tolerated.
        #expect(try DTLSFingerprint(sdp: "SHA-256 " + fingerprint.hexString.lowercased()) == fingerprint)
    }

    @Test("malformed fingerprints are refused", arguments: [
        "",
        "sha-256",
        "sha-256 ",
        " AB:CD",
        "sha-256 AB:CD",
        "sha-256 " + String(repeating: "AB:", count: 32), // trailing colon
        "sha-256 " + String(repeating: "AB:", count: 31) + "A", // short last byte
        "sha-256 " + String(repeating: "AB-", count: 31) + "AB", // wrong separator
        "sha-256 " + String(repeating: "AB:", count: 31) + "AG", // not hex
        "sha-256 " + String(repeating: "AB:", count: 32) + "AB", // 33 bytes
        "sha-256  " + String(repeating: "AB:", count: 31) + "AB", // two spaces
        "sha-256 " + String(repeating: "AB:", count: 500), // long
    ])
    func refusesMalformed(text: String) {
        #expect {
            _ = try DTLSFingerprint(sdp: text)
        } throws: { error in
            guard case DTLSError.malformedFingerprint = error else { return false }
            return true
        }
    }

    @Test func refusesOtherHashFunctions() {
        let sha1 = "sha-1 " + String(repeating: "AB:", count: 19) + "AB"
        #expect(throws: DTLSError.unsupportedFingerprintAlgorithm("sha-1")) { try DTLSFingerprint(sdp: sha1) }
        #expect(throws: DTLSError.malformedFingerprint("3 bytes")) { try DTLSFingerprint(bytes: [1, 2, 3]) }
    }

    @Test func twoGeneratedCertificatesDiffer() throws {
        let first = try DTLSCertificate.generate()
        let second = try DTLSCertificate.generate()
        #expect(first.fingerprint != second.fingerprint)
        #expect(first.derEncoded != second.derEncoded)
        let firstParsed = try Parsed(first.derEncoded)
        let secondParsed = try Parsed(second.derEncoded)
        #expect(firstParsed.serial != secondParsed.serial)
        #expect(firstParsed.publicKey != secondParsed.publicKey)
    }

    @Test func certificateIsSelfSignedP256WithAShortRandomSerialAndValidity() throws {
        let certificate = try DTLSCertificate.generate(lifetime: .seconds(3600))
        let parsed = try Parsed(certificate.derEncoded)
        #expect(parsed.isEllipticCurveP256)
        #expect(parsed.version == 2) // X.509 v3
        #expect(parsed.selfSigned)
        #expect(parsed.serial > 0)
        // Valid from a day ago (clock skew) to an hour from now.
        #expect(abs(parsed.secondsUntilNotAfter - 3600) <= 5)
        #expect(abs(parsed.secondsSinceNotBefore - 24 * 3600) <= 5)
    }

    @Test func refusesSillyLifetimesAndNames() {
        #expect(throws: DTLSError.self) { try DTLSCertificate.generate(lifetime: .seconds(1)) }
        #expect(throws: DTLSError.self) { try DTLSCertificate.generate(lifetime: .seconds(400 * 24 * 3600)) }
        #expect(throws: DTLSError.self) { try DTLSCertificate.generate(commonName: "") }
        #expect(throws: DTLSError.self) { try DTLSCertificate.generate(commonName: "a\u{1B}[31m") }
    }
}

/// A certificate parsed back with OpenSSL, to check what was generated.
private struct Parsed {
    struct Failure: Error {}
    var version: Int
    var serial: UInt64
    var publicKey: [UInt8]
    var isEllipticCurveP256: Bool
    var selfSigned: Bool
    var secondsUntilNotAfter: Int
    var secondsSinceNotBefore: Int

    init(_ der: [UInt8]) throws {
        let x509: OpaquePointer = try der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            guard let parsed = d2i_X509(nil, &cursor, buffer.count) else { throw Failure() }
            return parsed
        }
        defer { X509_free(x509) }
        version = X509_get_version(x509)
        var serialValue: UInt64 = 0
        guard ASN1_INTEGER_get_uint64(&serialValue, X509_get0_serialNumber(x509)) == 1 else { throw Failure() }
        serial = serialValue
        guard let key = X509_get0_pubkey(x509) else { throw Failure() }
        isEllipticCurveP256 = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 256
            && EVP_PKEY_is_a(key, "EC") == 1
        var encoded: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(key, &encoded)
        guard length > 0, let encoded else { throw Failure() }
        publicKey = Array(UnsafeBufferPointer(start: encoded, count: Int(length)))
        CRYPTO_free(encoded, #file, #line)
        // Issued by itself, and the signature verifies with its own key.
        selfSigned = X509_NAME_cmp(X509_get_subject_name(x509), X509_get_issuer_name(x509)) == 0
            && X509_verify(x509, key) == 1
        var days: Int32 = 0
        var seconds: Int32 = 0
        guard ASN1_TIME_diff(&days, &seconds, nil, X509_get0_notAfter(x509)) == 1 else { throw Failure() }
        secondsUntilNotAfter = Int(days) * 86400 + Int(seconds)
        guard ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(x509), nil) == 1 else { throw Failure() }
        secondsSinceNotBefore = Int(days) * 86400 + Int(seconds)
    }
}
