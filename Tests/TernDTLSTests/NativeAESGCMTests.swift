import COpenSSL
import CTernCrypto
import Testing
@testable import TernDTLS

/// CTernCrypto's AES-GCM, held to the published GCM test vectors and to
/// OpenSSL's EVP AES-GCM on every length that matters for records: each
/// remainder of the eight-block main loop, each partial final block, AAD
/// of every length up to 40, both key sizes.
@Suite("Native AES-GCM: test vectors, OpenSSL agreement, tampering", .enabled(if: DTLSRecordCipher.nativeAvailable))
struct NativeAESGCMTests {
    /// A key ready for the C functions, destroyed when the value goes.
    final class Key {
        let pointer: OpaquePointer
        init(_ bytes: [UInt8]) throws {
            pointer = try #require(bytes.withUnsafeBufferPointer { ctern_aesgcm_create($0.baseAddress, $0.count) })
        }
        deinit { ctern_aesgcm_destroy(pointer) }
    }

    static func seal(_ key: Key, nonce: [UInt8], aad: [UInt8], _ plaintext: [UInt8]) -> (ciphertext: [UInt8], tag: [UInt8]) {
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
        var tag = [UInt8](repeating: 0, count: 16)
        ciphertext.withUnsafeMutableBufferPointer { out in
            tag.withUnsafeMutableBufferPointer { tagOut in
                ctern_aesgcm_seal(
                    key.pointer, nonce, aad, aad.count, plaintext, plaintext.count,
                    out.baseAddress ?? tagOut.baseAddress, tagOut.baseAddress)
            }
        }
        return (ciphertext, tag)
    }

    /// The plaintext, or nil when the tag does not match (the output buffer
    /// is then checked to hold only zeroes).
    static func open(_ key: Key, nonce: [UInt8], aad: [UInt8], _ ciphertext: [UInt8], tag: [UInt8]) -> [UInt8]? {
        var plaintext = [UInt8](repeating: 0xAA, count: ciphertext.count)
        var scratch: UInt8 = 0
        let result = plaintext.withUnsafeMutableBufferPointer { out in
            ctern_aesgcm_open(key.pointer, nonce, aad, aad.count, ciphertext, ciphertext.count, tag, out.baseAddress ?? withUnsafeMutablePointer(to: &scratch) { $0 })
        }
        if result != 0 {
            #expect(plaintext.allSatisfy { $0 == 0 }, "a failed open leaves no plaintext")
            return nil
        }
        return plaintext
    }

    /// OpenSSL's AES-GCM through EVP, the reference.
    static func openSSLSeal(key: [UInt8], nonce: [UInt8], aad: [UInt8], _ plaintext: [UInt8]) throws -> (ciphertext: [UInt8], tag: [UInt8]) {
        let context = try #require(EVP_CIPHER_CTX_new())
        defer { EVP_CIPHER_CTX_free(context) }
        let algorithm = key.count == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm()
        try #require(EVP_EncryptInit_ex(context, algorithm, nil, key, nonce) == 1)
        var written: Int32 = 0
        if !aad.isEmpty { try #require(EVP_EncryptUpdate(context, nil, &written, aad, Int32(aad.count)) == 1) }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        if !plaintext.isEmpty {
            try #require(EVP_EncryptUpdate(context, &ciphertext, &written, plaintext, Int32(plaintext.count)) == 1)
        }
        try #require(EVP_EncryptFinal_ex(context, &ciphertext, &written) == 1)
        var tag = [UInt8](repeating: 0, count: 16)
        try #require(EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, 16, &tag) == 1)
        return (Array(ciphertext.prefix(plaintext.count)), tag)
    }

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    struct Vector: Sendable, CustomStringConvertible {
        let name: String
        let key: String, nonce: String, aad: String, plaintext: String, ciphertext: String, tag: String
        var description: String { name }
    }

    /// Test cases 1, 2, 4, 13, 14 and 16 of the GCM specification (McGrew
    /// and Viega, "The Galois/Counter Mode of Operation", appendix B).
    static let vectors: [Vector] = [
        Vector(
            name: "case 1: AES-128, nothing to encrypt", key: String(repeating: "00", count: 16), nonce: String(repeating: "00", count: 12),
            aad: "", plaintext: "", ciphertext: "", tag: "58e2fccefa7e3061367f1d57a4e7455a"),
        Vector(
            name: "case 2: AES-128, one zero block", key: String(repeating: "00", count: 16), nonce: String(repeating: "00", count: 12),
            aad: "", plaintext: String(repeating: "00", count: 16), ciphertext: "0388dace60b6a392f328c2b971b2fe78",
            tag: "ab6e47d42cec13bdf53a67b21257bddf"),
        Vector(
            name: "case 4: AES-128, AAD and a partial block", key: "feffe9928665731c6d6a8f9467308308", nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            ciphertext: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            tag: "5bc94fbc3221a5db94fae95ae7121a47"),
        Vector(
            name: "case 13: AES-256, nothing to encrypt", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            aad: "", plaintext: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        Vector(
            name: "case 14: AES-256, one zero block", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            aad: "", plaintext: String(repeating: "00", count: 16), ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        Vector(
            name: "case 16: AES-256, AAD and a partial block",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("the GCM specification's test vectors", arguments: vectors)
    func publishedVectors(_ vector: Vector) throws {
        let key = try Key(Self.hex(vector.key))
        let nonce = Self.hex(vector.nonce), aad = Self.hex(vector.aad)
        let sealed = Self.seal(key, nonce: nonce, aad: aad, Self.hex(vector.plaintext))
        #expect(sealed.ciphertext == Self.hex(vector.ciphertext))
        #expect(sealed.tag == Self.hex(vector.tag))
        #expect(Self.open(key, nonce: nonce, aad: aad, sealed.ciphertext, tag: sealed.tag) == Self.hex(vector.plaintext))
    }

    @Test("agrees with OpenSSL on every length up to 2,100 bytes and AAD up to 40", arguments: [16, 32])
    func agreesWithOpenSSL(keyLength: Int) throws {
        var generator = SeededGenerator(seed: UInt64(keyLength))
        for length in Array(0...2_100) + [4_096, 16_383, 16_384] {
            // A fresh key every so often; the AAD length cycles through 0...40.
            let keyBytes = generator.bytes(keyLength)
            let key = try Key(keyBytes)
            let nonce = generator.bytes(12)
            let aad = generator.bytes(length % 41)
            let plaintext = generator.bytes(length)
            let ours = Self.seal(key, nonce: nonce, aad: aad, plaintext)
            let theirs = try Self.openSSLSeal(key: keyBytes, nonce: nonce, aad: aad, plaintext)
            #expect(ours.ciphertext == theirs.ciphertext, "\(length) bytes")
            #expect(ours.tag == theirs.tag, "\(length) bytes")
            #expect(Self.open(key, nonce: nonce, aad: aad, theirs.ciphertext, tag: theirs.tag) == plaintext, "\(length) bytes")
        }
    }

    @Test func theCounterWrapsInThirtyTwoBitsOnly() throws {
        // SP 800-38D's inc32: a nonce is 12 bytes, the counter starts at 2
        // for data, so no record reaches a wrap; still, a nonce of all ones
        // must leave the nonce bytes alone (they are the counter's neighbours).
        var generator = SeededGenerator(seed: 99)
        let keyBytes = generator.bytes(16)
        let key = try Key(keyBytes)
        let nonce = [UInt8](repeating: 0xFF, count: 12)
        let plaintext = generator.bytes(1_500)
        let ours = Self.seal(key, nonce: nonce, aad: [], plaintext)
        let theirs = try Self.openSSLSeal(key: keyBytes, nonce: nonce, aad: [], plaintext)
        #expect(ours.ciphertext == theirs.ciphertext)
        #expect(ours.tag == theirs.tag)
    }

    @Test("every flipped bit of ciphertext, AAD or tag is refused", arguments: [16, 32])
    func everyFlippedBitIsRefused(keyLength: Int) throws {
        var generator = SeededGenerator(seed: 7)
        let key = try Key(generator.bytes(keyLength))
        let nonce = generator.bytes(12)
        let aad = generator.bytes(13)
        // 150 bytes: one pass of the main loop and a partial block.
        let plaintext = generator.bytes(150)
        let sealed = Self.seal(key, nonce: nonce, aad: aad, plaintext)
        for bit in 0..<((plaintext.count + aad.count + 16 + nonce.count) * 8) {
            var ciphertext = sealed.ciphertext, forgedAAD = aad, tag = sealed.tag, forgedNonce = nonce
            var index = bit / 8
            let mask = UInt8(1) << (bit % 8)
            if index < ciphertext.count {
                ciphertext[index] ^= mask
            } else if (index - ciphertext.count) < aad.count {
                index -= ciphertext.count
                forgedAAD[index] ^= mask
            } else if (index - ciphertext.count - aad.count) < 16 {
                index -= ciphertext.count + aad.count
                tag[index] ^= mask
            } else {
                index -= ciphertext.count + aad.count + 16
                forgedNonce[index] ^= mask
            }
            #expect(Self.open(key, nonce: forgedNonce, aad: forgedAAD, ciphertext, tag: tag) == nil, "bit \(bit)")
        }
        #expect(Self.open(key, nonce: nonce, aad: aad, sealed.ciphertext, tag: sealed.tag) == plaintext)
    }

    @Test func sealingAndOpeningInPlaceGiveTheSameBytes() throws {
        var generator = SeededGenerator(seed: 11)
        let key = try Key(generator.bytes(16))
        let nonce = generator.bytes(12)
        let aad = generator.bytes(13)
        let plaintext = generator.bytes(1_469)
        let apart = Self.seal(key, nonce: nonce, aad: aad, plaintext)
        var buffer = plaintext
        var tag = [UInt8](repeating: 0, count: 16)
        buffer.withUnsafeMutableBufferPointer { bytes in
            ctern_aesgcm_seal(key.pointer, nonce, aad, aad.count, bytes.baseAddress, bytes.count, bytes.baseAddress, &tag)
        }
        #expect(buffer == apart.ciphertext)
        #expect(tag == apart.tag)
        let result = buffer.withUnsafeMutableBufferPointer { bytes in
            ctern_aesgcm_open(key.pointer, nonce, aad, aad.count, bytes.baseAddress, bytes.count, tag, bytes.baseAddress)
        }
        #expect(result == 0)
        #expect(buffer == plaintext)
    }

    @Test func onlyAESKeyLengthsAreTaken() {
        for length in [0, 1, 15, 17, 24, 31, 33, 64] {
            let bytes = [UInt8](repeating: 1, count: length)
            #expect(bytes.withUnsafeBufferPointer { ctern_aesgcm_create($0.baseAddress, $0.count) } == nil, "\(length) bytes")
        }
    }

    @Test("records sealed by either engine are identical and open with the other", arguments: [16, 32])
    func theEnginesMakeTheSameRecords(keyLength: Int) throws {
        var generator = SeededGenerator(seed: 31 + UInt64(keyLength))
        let key = generator.bytes(keyLength), salt = generator.bytes(4)
        let native = try DTLSRecordCipher(key: key, salt: salt, engine: .fastest)
        let openSSL = try DTLSRecordCipher(key: key, salt: salt, engine: .openSSL)
        #expect(native.isNative)
        #expect(!openSSL.isNative)
        for (sequence, length) in [0, 1, 13, 16, 127, 128, 129, 1_188, 1_469, 16_384].enumerated() {
            let plaintext = generator.bytes(length)
            let fromNative = try RecordProtectionTests.seal(native, plaintext, sequence: UInt64(sequence))
            let fromOpenSSL = try RecordProtectionTests.seal(openSSL, plaintext, sequence: UInt64(sequence))
            #expect(fromNative == fromOpenSSL, "\(length) bytes")
            #expect(RecordProtectionTests.open(openSSL, fromNative).plaintext == plaintext)
            #expect(RecordProtectionTests.open(native, fromOpenSSL).plaintext == plaintext)
        }
    }
}
