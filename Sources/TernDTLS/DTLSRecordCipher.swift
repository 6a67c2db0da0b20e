import COpenSSL
import TernCrypto
import TernWire

/// AES-GCM protection of DTLS 1.2 records under one write key: the sending
/// side seals with it, the receiving side opens with it (RFC 5288 §3,
/// RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1).
///
/// A protected record is the 13-byte header, the 8-byte explicit nonce, the
/// ciphertext and the 16-byte tag. The GCM nonce is salt (4 bytes, from the
/// key block) || explicit nonce (8 bytes, in the record). The additional
/// data is DTLS's seq_num (epoch || sequence number) followed by type,
/// version and the plaintext length, 13 bytes.
///
/// The key is set once, in `init`; each record only changes the IV
/// (EVP_CipherInit_ex with everything else nil), so the AES key schedule and
/// GHASH tables are built once per direction. The tag goes in and out through
/// an OSSL_PARAM array built once, pointed at the record's tag bytes each
/// time (what EVP_CIPHER_CTX_ctrl would build on every call).
///
/// **Nonces.** GCM's security rests on never using one nonce twice under a
/// key. The caller chooses the explicit nonce; the usual choice, which
/// RFC 5288 §3 suggests and which is unique as long as sequence numbers are,
/// is `UInt64(epoch) << 48 | sequence`. OpenSSL's own record layer, under the
/// same key, draws its explicit nonces from a counter it starts at a random
/// value, so records it writes (a close_notify) do not collide with those.
///
/// Not thread-safe: one direction of one association, driven by its event
/// loop.
final class DTLSRecordCipher {
    static let headerLength = DTLSRecordFraming.headerLength
    static let explicitNonceLength = 8
    static let tagLength = 16
    /// Explicit nonce and tag: what a record carries beyond its plaintext.
    static let overhead = explicitNonceLength + tagLength
    /// RFC 5246 §6.2.1 / RFC 6347 §4.1: a record carries at most 2^14 bytes
    /// of plaintext.
    static let maximumPlaintextLength = 1 << 14
    /// RFC 6347 §4.1: the sequence number is 48 bits and must not wrap.
    static let sequenceLimit: UInt64 = 1 << 48

    /// DTLS 1.2's record version, 0xFEFD (RFC 6347 §4.1).
    private static let version: (UInt8, UInt8) = (0xFE, 0xFD)

    // Layout of `scratch`: the 12-byte GCM nonce at 0 (salt then explicit
    // nonce), the 13-byte AAD at 16, a sealed record's header and explicit
    // nonce at 32, 16 zero bytes (the tag's place before it is computed) at
    // 56, the parameter name "tag" at 72.
    private static let nonceOffset = 0
    private static let aadOffset = 16
    private static let aadLength = 13
    private static let prefixOffset = 32
    private static let zeroTagOffset = 56
    private static let tagNameOffset = 72
    private static let scratchLength = 80

    private let context: OpaquePointer
    private let scratch: UnsafeMutableRawPointer
    /// { "tag" octet string, end }: `data` is pointed at the tag of the
    /// record at hand before each use.
    private let tagParameters: UnsafeMutablePointer<OSSL_PARAM>

    /// - Parameters:
    ///   - key: 16 bytes for AES-128-GCM, 32 for AES-256-GCM.
    ///   - salt: the 4-byte write IV from the key block.
    init(key: [UInt8], salt: [UInt8]) throws(DTLSError) {
        let algorithm: OpaquePointer?
        switch key.count {
        case 16: algorithm = EVP_aes_128_gcm()
        case 32: algorithm = EVP_aes_256_gcm()
        default: throw .internalFailure("AES-GCM takes a 16- or 32-byte key, not \(key.count)")
        }
        guard salt.count == DTLSRecordKeys.saltLength else {
            throw .internalFailure("the GCM salt is 4 bytes, not \(salt.count)")
        }
        ERR_clear_error()
        guard let algorithm, let context = EVP_CIPHER_CTX_new() else {
            throw .internalFailure(OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: "cannot create an AES-GCM context"))
        }
        let keyed = key.withUnsafeBytes { keyBytes in
            EVP_CipherInit_ex(context, algorithm, nil, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, 1) == 1
        }
        // RFC 5288 §3: a 12-byte nonce; OpenSSL's GCM default, checked
        // rather than assumed.
        guard keyed, EVP_CIPHER_CTX_get_iv_length(context) == 12 else {
            EVP_CIPHER_CTX_free(context)
            throw .internalFailure(OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: "cannot key AES-GCM"))
        }
        self.context = context

        scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchLength, alignment: 8)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: Self.scratchLength)
        for (index, byte) in salt.enumerated() {
            scratch.storeBytes(of: byte, toByteOffset: Self.nonceOffset + index, as: UInt8.self)
        }
        for (index, byte) in "tag".utf8.enumerated() {
            scratch.storeBytes(of: byte, toByteOffset: Self.tagNameOffset + index, as: UInt8.self)
        }
        // The name must outlive every use of the array, hence in `scratch`
        // rather than a temporary C string from a Swift literal.
        let tagName = UnsafePointer((scratch + Self.tagNameOffset).assumingMemoryBound(to: CChar.self))
        tagParameters = UnsafeMutablePointer<OSSL_PARAM>.allocate(capacity: 2)
        tagParameters.initialize(to: OSSL_PARAM_construct_octet_string(tagName, nil, Self.tagLength))
        (tagParameters + 1).initialize(to: OSSL_PARAM_construct_end())
    }

    deinit {
        // EVP_CIPHER_CTX_free clears the provider's key schedule.
        EVP_CIPHER_CTX_free(context)
        Memory.cleanse(scratch, count: Self.scratchLength)
        scratch.deallocate()
        tagParameters.deinitialize(count: 2)
        tagParameters.deallocate()
    }

    /// Appends one protected record to `output`: the header (RFC 6347 §4.1:
    /// type, version 0xFEFD, epoch, 48-bit sequence number, length), the
    /// explicit nonce, the ciphertext and the tag. The record is built in
    /// place at the end of `output`; nothing else is allocated, and the only
    /// growth is `output`'s own (geometric, so a reused array stops growing).
    /// `plaintext` must not point into `output`, which may move as it grows.
    ///
    /// Throws for a sequence number of 2^48 or more (RFC 6347 §4.1: it must
    /// not wrap; the association has to end first), a content type DTLS 1.2
    /// does not have, a plaintext over 2^14 bytes, or an OpenSSL failure;
    /// `output` is then as it was.
    func seal(
        type: UInt8,
        epoch: UInt16,
        sequence: UInt64,
        explicitNonce: UInt64,
        plaintext: UnsafeRawBufferPointer,
        appendingTo output: inout [UInt8]
    ) throws(DTLSError) {
        guard sequence < Self.sequenceLimit else {
            throw .internalFailure("the record sequence number is exhausted (2^48 records in epoch \(epoch))")
        }
        guard DTLSContentType.all.contains(type) else {
            throw .internalFailure("\(type) is not a DTLS 1.2 content type")
        }
        let count = plaintext.count
        guard count <= Self.maximumPlaintextLength else {
            throw .payloadTooLarge(size: count, maximum: Self.maximumPlaintextLength)
        }
        // The AAD and the record's first 21 bytes (header and explicit
        // nonce) are built in `scratch`; RFC 6347 §4.1.2.1: seq_num in the
        // AAD is epoch || sequence number.
        let sequenceNumber = UInt64(epoch) << 48 | sequence
        let aad = scratch + Self.aadOffset
        aad.storeBytes(of: sequenceNumber.bigEndian, as: UInt64.self)
        aad.storeBytes(of: type, toByteOffset: 8, as: UInt8.self)
        aad.storeBytes(of: Self.version.0, toByteOffset: 9, as: UInt8.self)
        aad.storeBytes(of: Self.version.1, toByteOffset: 10, as: UInt8.self)
        aad.storeBytes(of: UInt16(count).bigEndian, toByteOffset: 11, as: UInt16.self)
        // The header is the same fields in wire order, with the fragment's
        // length in place of the plaintext's.
        let prefix = scratch + Self.prefixOffset
        prefix.storeBytes(of: type, as: UInt8.self)
        prefix.storeBytes(of: Self.version.0, toByteOffset: 1, as: UInt8.self)
        prefix.storeBytes(of: Self.version.1, toByteOffset: 2, as: UInt8.self)
        prefix.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: 3, as: UInt64.self)
        prefix.storeBytes(of: UInt16(Self.overhead + count).bigEndian, toByteOffset: 11, as: UInt16.self)
        // RFC 5288 §3: GCMNonce = salt || nonce_explicit, and the explicit
        // part travels at the front of the fragment.
        prefix.storeBytes(of: explicitNonce.bigEndian, toByteOffset: Self.headerLength, as: UInt64.self)
        scratch.storeBytes(of: explicitNonce.bigEndian, toByteOffset: Self.nonceOffset + 4, as: UInt64.self)

        // Header and nonce, the plaintext, room for the tag: three copies
        // into `output` (memcpy), then encryption in place over the
        // plaintext. Growing the array by a run of zeroes instead costs a
        // byte-by-byte fill, measurably slower.
        let start = output.count
        output.append(contentsOf: UnsafeRawBufferPointer(start: prefix, count: Self.headerLength + Self.explicitNonceLength))
        output.append(contentsOf: plaintext)
        output.append(contentsOf: UnsafeRawBufferPointer(start: scratch + Self.zeroTagOffset, count: Self.tagLength))

        let sealed = output.withUnsafeMutableBytes { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            let fragment = base + start + Self.headerLength + Self.explicitNonceLength
            return crypt(encrypting: true, input: UnsafeRawPointer(fragment), count: count, output: fragment, tag: fragment + count)
        }
        guard sealed else {
            output.removeSubrange(start...)
            throw .internalFailure(OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: "AES-GCM encryption failed"))
        }
    }

    /// Checks and decrypts one protected record: `record` is the whole
    /// record, header included, as framed by `DTLSRecordFraming`. Returns the
    /// plaintext's length, written to the front of `plaintext`, or nil when
    /// the record is shorter than a header, nonce and tag, its length field
    /// disagrees with its size, it would carry more than 2^14 bytes of
    /// plaintext (RFC 5246 §6.2.3: record_overflow), the plaintext does not
    /// fit `plaintext`, or the record does not authenticate. What the record
    /// says (type, version, epoch, sequence number, length) is only trusted
    /// through the tag: all of it is in the AAD.
    ///
    /// Decryption runs before the tag is known good, so on nil the bytes it
    /// wrote to `plaintext` are zeroed before returning: unauthenticated
    /// plaintext is never left behind. `plaintext` must not overlap `record`.
    ///
    /// Replay is the caller's to check (`DTLSReplayWindow`), before (is the
    /// sequence number fresh?) and after (accept it once authenticated).
    func open(record: UnsafeRawBufferPointer, into plaintext: UnsafeMutableRawBufferPointer) -> Int? {
        var reader = UnsafeWireReader(record)
        guard let base = record.baseAddress,
              let header = try? DTLSRecordFraming.Header(reading: &reader),
              header.length == reader.remaining,
              let explicitNonce = try? reader.readUInt64(),
              reader.remaining >= Self.tagLength
        else { return nil }
        let count = reader.remaining - Self.tagLength
        guard count <= Self.maximumPlaintextLength, count <= plaintext.count else { return nil }

        let aad = scratch + Self.aadOffset
        // epoch || sequence number, type, version, in AAD order, then the
        // plaintext length (RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1).
        aad.storeBytes(of: (UInt64(header.epoch) << 48 | header.sequence).bigEndian, as: UInt64.self)
        aad.storeBytes(of: header.type, toByteOffset: 8, as: UInt8.self)
        aad.storeBytes(of: header.version.bigEndian, toByteOffset: 9, as: UInt16.self)
        aad.storeBytes(of: UInt16(count).bigEndian, toByteOffset: 11, as: UInt16.self)
        scratch.storeBytes(of: explicitNonce.bigEndian, toByteOffset: Self.nonceOffset + 4, as: UInt64.self)

        let ciphertext = base + reader.offset
        // An empty plaintext buffer may have no address; nothing is written
        // to it then, but EVP wants a pointer.
        let destination = plaintext.baseAddress ?? scratch
        let opened = crypt(
            encrypting: false, input: ciphertext, count: count,
            output: destination, tag: UnsafeMutableRawPointer(mutating: ciphertext + count)
        )
        guard opened else {
            Memory.cleanse(destination, count: count)
            // A forged record is not an error of ours: leave nothing in the
            // thread's queue for the next OpenSSL caller to trip over.
            if ERR_peek_error() != 0 { ERR_clear_error() }
            return nil
        }
        return count
    }

    /// One GCM pass over a record, with the nonce and AAD already in
    /// `scratch`. Sealing writes the tag to `tag`; opening reads it from
    /// there (OpenSSL compares it in constant time).
    @inline(__always)
    private func crypt(
        encrypting: Bool,
        input: UnsafeRawPointer?,
        count: Int,
        output: UnsafeMutableRawPointer,
        tag: UnsafeMutableRawPointer
    ) -> Bool {
        let context = self.context
        let nonce = (scratch + Self.nonceOffset).assumingMemoryBound(to: UInt8.self)
        let aad = UnsafePointer((scratch + Self.aadOffset).assumingMemoryBound(to: UInt8.self))
        let out = output.assumingMemoryBound(to: UInt8.self)
        var written: Int32 = 0
        // Key and cipher nil: only the IV and the direction change.
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonce, encrypting ? 1 : 0) == 1,
              EVP_CipherUpdate(context, nil, &written, aad, Int32(Self.aadLength)) == 1
        else { return false }
        if count > 0 {
            guard let input,
                  EVP_CipherUpdate(context, out, &written, input.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1,
                  Int(written) == count
            else { return false }
        }
        tagParameters.pointee.data = tag
        tagParameters.pointee.data_size = Self.tagLength
        if !encrypting {
            guard EVP_CIPHER_CTX_set_params(context, tagParameters) == 1 else { return false }
        }
        // GCM writes nothing at the end; the pointer only has to be valid.
        guard EVP_CipherFinal_ex(context, out, &written) == 1, written == 0 else { return false }
        if encrypting {
            // Reset, so that a tag OpenSSL did not write is noticed.
            tagParameters.pointee.return_size = 0
            guard EVP_CIPHER_CTX_get_params(context, tagParameters) == 1,
                  tagParameters.pointee.return_size == Self.tagLength
            else { return false }
        }
        return true
    }
}
