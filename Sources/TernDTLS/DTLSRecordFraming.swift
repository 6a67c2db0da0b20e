/// The DTLS 1.2 record layer framing, as far as this module needs it: to
/// check what arrives before OpenSSL sees it, and to cut what OpenSSL writes
/// into datagrams that fit the MTU.
///
/// RFC 6347 §4.1: each record is a 13-byte header (type 1, version 2, epoch 2,
/// sequence number 6, length 2, big-endian) followed by `length` bytes.
/// Several records may share a datagram; a record never spans two
/// (RFC 6347 §4.1.1).
enum DTLSRecordFraming {
    static let headerLength = 13
    /// RFC 6347 §4.1 keeps TLS 1.2's bound on a protected record: at most
    /// 2^14 + 2048 bytes of fragment (RFC 5246 §6.2.3).
    static let maximumFragmentLength = (1 << 14) + 2048
    /// Largest datagram handed to OpenSSL. Its DTLS read buffer holds a bit
    /// more than 2^14 bytes plus overhead; a longer datagram could be cut
    /// short by it, and no peer sends one (browsers stay near 1200 bytes).
    static let maximumDatagramLength = 1 << 14

    /// The header of the record at `offset` in `bytes`, which must hold
    /// at least `headerLength` bytes from there (callers check first).
    struct Header {
        var type: UInt8
        var version: UInt16
        var epoch: UInt16
        /// The 48-bit sequence number.
        var sequence: UInt64
        /// The fragment's length, as the header declares it.
        var length: Int

        init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
            type = bytes[offset]
            version = UInt16(bytes[offset + 1]) << 8 | UInt16(bytes[offset + 2])
            epoch = UInt16(bytes[offset + 3]) << 8 | UInt16(bytes[offset + 4])
            var sequence: UInt64 = 0
            for index in (offset + 5)..<(offset + 11) { sequence = sequence << 8 | UInt64(bytes[index]) }
            self.sequence = sequence
            length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
        }
    }

    /// Calls `body` with each whole record of `datagram` in order (its
    /// header, and its bytes with the header), while `body` returns true.
    /// `datagram` is a valid prefix (`validPrefix`); a partial record at
    /// its end, which that rules out, would not be visited.
    @inline(__always)
    static func forEachRecord(in datagram: UnsafeRawBufferPointer, _ body: (Header, UnsafeRawBufferPointer) -> Bool) {
        var offset = 0
        while datagram.count - offset >= headerLength {
            let header = Header(datagram, at: offset)
            let end = offset + headerLength + header.length
            guard end <= datagram.count else { return }
            guard body(header, UnsafeRawBufferPointer(rebasing: datagram[offset..<end])) else { return }
            offset = end
        }
    }

    /// Why (part of) a datagram was not handed to OpenSSL.
    enum Defect: Equatable, Sendable {
        case empty
        case tooLong(Int)
        case truncatedHeader(offset: Int)
        /// RFC 7983 §7 gives DTLS the first bytes 20...63; DTLS 1.2 as
        /// OpenSSL speaks it uses 20...23 (change_cipher_spec, alert,
        /// handshake, application_data).
        case unknownContentType(UInt8, offset: Int)
        /// DTLS versions are 0xFEFF (1.0, in early ClientHellos) and 0xFEFD
        /// (1.2): the major byte is 0xFE (RFC 6347 §4.1).
        case notDTLSVersion(UInt16, offset: Int)
        case fragmentTooLong(Int, offset: Int)
        case truncatedFragment(declared: Int, available: Int, offset: Int)
        /// A protected record too short to hold its cipher's nonce and tag.
        case shorterThanProtection(Int, offset: Int)
        /// An unprotected record whose content has the wrong shape.
        case malformedPlaintext(type: UInt8, offset: Int)
    }

    /// Largest handshake message length accepted in a plaintext fragment
    /// header. OpenSSL treats a larger one as fatal (its limit is about
    /// 100 KiB); a WebRTC peer's largest message, its Certificate, is a few
    /// hundred bytes to a few KiB.
    static let maximumHandshakeMessageLength = 1 << 16

    /// The least a protected record can hold, whatever the cipher suite
    /// negotiated: AES-GCM's 8-byte explicit nonce and 16-byte tag
    /// (RFC 5288 §3). ChaCha20-Poly1305 needs only its tag (RFC 7905 §2).
    static let largestProtectionOverhead = 24

    /// How much of `datagram` is well-formed records, from the start.
    ///
    /// RFC 6347 §4.1.2.7: invalid records are discarded, the association
    /// lives on. Records before the first bad one are kept (they are what
    /// OpenSSL would have processed too); from the bad one on nothing can be
    /// trusted, because its length field is what says where the next begins.
    ///
    /// Beyond the framing this refuses records that OpenSSL 3.0 would answer
    /// with a fatal alert although they are merely invalid, so that nobody
    /// who can put a datagram on the path can end an association with one:
    /// a protected record shorter than its cipher's overhead (OpenSSL sends
    /// internal_error; openssl/openssl#25290), a record type DTLS 1.2 does
    /// not have (openssl/openssl#25840), and plaintext (epoch 0) records whose
    /// own structure is broken: a ChangeCipherSpec that is not the single byte
    /// 1 (RFC 5246 §7.1), an alert that is not two bytes of a known level
    /// (RFC 5246 §7.2), handshake fragments that overrun the record or their
    /// message (RFC 6347 §4.2.2), and application data, which is never
    /// unprotected.
    ///
    /// - Parameter minimumProtectedLength: the least a record of epoch 1 or
    ///   later can hold under the cipher in use.
    static func validPrefix(of datagram: UnsafeRawBufferPointer, minimumProtectedLength: Int = largestProtectionOverhead) -> (length: Int, defect: Defect?) {
        guard !datagram.isEmpty else { return (0, .empty) }
        guard datagram.count <= maximumDatagramLength else { return (0, .tooLong(datagram.count)) }
        var offset = 0
        while offset < datagram.count {
            guard datagram.count - offset >= headerLength else {
                return (offset, .truncatedHeader(offset: offset))
            }
            let header = Header(datagram, at: offset)
            let type = header.type, version = header.version, epoch = header.epoch, length = header.length
            guard DTLSContentType.all.contains(type) else { return (offset, .unknownContentType(type, offset: offset)) }
            guard version >> 8 == 0xFE else { return (offset, .notDTLSVersion(version, offset: offset)) }
            guard length <= maximumFragmentLength else { return (offset, .fragmentTooLong(length, offset: offset)) }
            let available = datagram.count - offset - headerLength
            guard length <= available else {
                return (offset, .truncatedFragment(declared: length, available: available, offset: offset))
            }
            let fragment = UnsafeRawBufferPointer(rebasing: datagram[(offset + headerLength)..<(offset + headerLength + length)])
            if epoch == 0 {
                guard plaintextRecordIsWellFormed(type: type, fragment: fragment) else {
                    return (offset, .malformedPlaintext(type: type, offset: offset))
                }
            } else {
                guard length >= minimumProtectedLength else {
                    return (offset, .shorterThanProtection(length, offset: offset))
                }
            }
            offset += headerLength + length
        }
        return (offset, nil)
    }

    /// The structure of an unprotected record's content (see `validPrefix`).
    static func plaintextRecordIsWellFormed(type: UInt8, fragment: UnsafeRawBufferPointer) -> Bool {
        switch type {
        case DTLSContentType.changeCipherSpec:
            // RFC 5246 §7.1: ChangeCipherSpec is one byte, 1.
            return fragment.count == 1 && fragment[0] == 1
        case DTLSContentType.alert:
            // RFC 5246 §7.2: AlertLevel (warning 1, fatal 2) and description.
            return fragment.count == 2 && (fragment[0] == 1 || fragment[0] == 2)
        case DTLSContentType.handshake:
            // RFC 6347 §4.2.2: msg_type(1) length(3) message_seq(2)
            // fragment_offset(3) fragment_length(3), then the fragment. A
            // record may hold several.
            var cursor = 0
            while cursor < fragment.count {
                guard fragment.count - cursor >= 12 else { return false }
                let messageLength = uint24(fragment, at: cursor + 1)
                let fragmentOffset = uint24(fragment, at: cursor + 6)
                let fragmentLength = uint24(fragment, at: cursor + 9)
                guard messageLength <= maximumHandshakeMessageLength,
                      fragmentOffset + fragmentLength <= messageLength,
                      fragmentLength <= fragment.count - cursor - 12
                else { return false }
                cursor += 12 + fragmentLength
            }
            return true
        default:
            // Application data only ever travels protected.
            return false
        }
    }

    private static func uint24(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
    }

    /// Cuts the front of `stream` (records back to back, as OpenSSL wrote
    /// them) into datagrams of at most `mtu` bytes, each made of whole
    /// records, and hands each to `emit`. Returns how many bytes it used; a
    /// trailing partial record stays for the next call.
    ///
    /// A record longer than `mtu` goes alone in a datagram of its own (it
    /// cannot be split); `oversized` counts those. OpenSSL sizes handshake
    /// fragments to the MTU and `write` refuses larger payloads, so this
    /// does not happen with the settings of this module.
    static func packDatagrams(
        _ stream: UnsafeRawBufferPointer,
        mtu: Int,
        oversized: inout Int,
        emit: (UnsafeRawBufferPointer) -> Void
    ) -> Int {
        var datagramStart = 0
        var cursor = 0
        while stream.count - cursor >= headerLength {
            let length = Int(stream[cursor + 11]) << 8 | Int(stream[cursor + 12])
            let recordEnd = cursor + headerLength + length
            guard recordEnd <= stream.count else { break }
            if recordEnd - datagramStart > mtu, cursor > datagramStart {
                // This record does not fit with the ones before it.
                emit(UnsafeRawBufferPointer(rebasing: stream[datagramStart..<cursor]))
                datagramStart = cursor
            }
            if recordEnd - datagramStart > mtu { oversized += 1 }
            cursor = recordEnd
        }
        if cursor > datagramStart {
            emit(UnsafeRawBufferPointer(rebasing: stream[datagramStart..<cursor]))
        }
        return cursor
    }
}

/// DTLS 1.2 record content types (RFC 5246 §6.2.1, RFC 6347 §4.1).
enum DTLSContentType {
    static let changeCipherSpec: UInt8 = 20
    static let alert: UInt8 = 21
    static let handshake: UInt8 = 22
    static let applicationData: UInt8 = 23
    /// Every type DTLS 1.2 has (RFC 7983 §7 gives DTLS 20...63 as first bytes).
    static let all: ClosedRange<UInt8> = changeCipherSpec...applicationData
}
