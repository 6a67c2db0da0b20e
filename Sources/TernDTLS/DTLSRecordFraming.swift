import TernWire

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
    /// The bounds, with their reasons, are `DTLSLimits`.
    static let maximumFragmentLength = DTLSLimits.maximumFragmentLength
    static let maximumDatagramLength = DTLSLimits.maximumDatagramLength

    /// A record's header (RFC 6347 §4.1), read through TernWire's bounded
    /// reader like every other wire format.
    struct Header {
        var type: UInt8
        var version: UInt16
        var epoch: UInt16
        /// The 48-bit sequence number.
        var sequence: UInt64
        /// The fragment's length, as the header declares it.
        var length: Int

        /// Reads the 13 header bytes; throws if fewer are left.
        @inline(__always)
        init(reading reader: inout UnsafeWireReader) throws(WireError) {
            type = try reader.readUInt8()
            version = try reader.readUInt16()
            // epoch (16 bits) || sequence number (48 bits): DTLS's seq_num.
            let sequenceNumber = try reader.readUInt64()
            epoch = UInt16(truncatingIfNeeded: sequenceNumber >> 48)
            sequence = sequenceNumber & (DTLSRecordCipher.sequenceLimit &- 1)
            length = Int(try reader.readUInt16())
        }
    }

    /// The next whole record of `reader` (its header, and its bytes with the
    /// header); throws, leaving `reader` where it was, when what is left
    /// does not hold a header or the fragment it declares.
    @inline(__always)
    static func readRecord(_ reader: inout UnsafeWireReader) throws(WireError) -> (Header, UnsafeRawBufferPointer) {
        var fields = reader
        let header = try Header(reading: &fields)
        return (header, try reader.readSlice(count: headerLength &+ header.length))
    }

    /// Calls `body` with each whole record of `datagram` in order (its
    /// header, and its bytes with the header), while `body` returns true.
    /// `datagram` is a valid prefix (`validPrefix`); a partial record at
    /// its end, which that rules out, would not be visited.
    @inline(__always)
    static func forEachRecord(in datagram: UnsafeRawBufferPointer, _ body: (Header, UnsafeRawBufferPointer) -> Bool) {
        var reader = UnsafeWireReader(datagram)
        while let (header, record) = try? readRecord(&reader) {
            guard body(header, record) else { return }
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

    static let maximumHandshakeMessageLength = DTLSLimits.maximumHandshakeMessageLength

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
        var reader = UnsafeWireReader(datagram)
        while !reader.isAtEnd {
            let offset = reader.offset
            var fields = reader
            guard let header = try? Header(reading: &fields) else {
                return (offset, .truncatedHeader(offset: offset))
            }
            let type = header.type, length = header.length
            guard DTLSContentType.all.contains(type) else { return (offset, .unknownContentType(type, offset: offset)) }
            guard header.version >> 8 == 0xFE else { return (offset, .notDTLSVersion(header.version, offset: offset)) }
            guard length <= maximumFragmentLength else { return (offset, .fragmentTooLong(length, offset: offset)) }
            guard let fragment = try? fields.readSlice(count: length) else {
                return (offset, .truncatedFragment(declared: length, available: fields.remaining, offset: offset))
            }
            if header.epoch == 0 {
                guard plaintextRecordIsWellFormed(type: type, fragment: fragment) else {
                    return (offset, .malformedPlaintext(type: type, offset: offset))
                }
            } else {
                guard length >= minimumProtectedLength else {
                    return (offset, .shorterThanProtection(length, offset: offset))
                }
            }
            reader = fields
        }
        return (reader.offset, nil)
    }

    /// The structure of an unprotected record's content (see `validPrefix`).
    static func plaintextRecordIsWellFormed(type: UInt8, fragment: UnsafeRawBufferPointer) -> Bool {
        var reader = UnsafeWireReader(fragment)
        do {
            switch type {
            case DTLSContentType.changeCipherSpec:
                // RFC 5246 §7.1: ChangeCipherSpec is one byte, 1.
                guard try reader.readUInt8() == 1 else { return false }
            case DTLSContentType.alert:
                // RFC 5246 §7.2: AlertLevel (warning 1, fatal 2) and description.
                let level = try reader.readUInt8()
                guard level == DTLSAlert.warningLevel || level == DTLSAlert.fatalLevel else { return false }
                try reader.skip(1)
            case DTLSContentType.handshake:
                // RFC 6347 §4.2.2: msg_type(1) length(3) message_seq(2)
                // fragment_offset(3) fragment_length(3), then the fragment. A
                // record may hold several.
                while !reader.isAtEnd {
                    try reader.skip(1)
                    let messageLength = Int(try reader.readUInt24())
                    try reader.skip(2)
                    let fragmentOffset = Int(try reader.readUInt24())
                    let fragmentLength = Int(try reader.readUInt24())
                    guard messageLength <= maximumHandshakeMessageLength,
                          fragmentOffset + fragmentLength <= messageLength
                    else { return false }
                    try reader.skip(fragmentLength)
                }
            default:
                // Application data only ever travels protected.
                return false
            }
            try reader.expectEnd()
            return true
        } catch {
            return false
        }
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
        var reader = UnsafeWireReader(stream)
        var datagramStart = 0
        // Only the length matters here: what OpenSSL or the own record
        // layer wrote is not checked again.
        while let length = reader.peekInteger(ahead: headerLength &- 2, as: UInt16.self) {
            let cursor = reader.offset
            guard (try? reader.skip(headerLength &+ Int(length))) != nil else { break }
            let recordEnd = reader.offset
            if recordEnd - datagramStart > mtu, cursor > datagramStart {
                // This record does not fit with the ones before it.
                emit(UnsafeRawBufferPointer(rebasing: stream[datagramStart..<cursor]))
                datagramStart = cursor
            }
            if recordEnd - datagramStart > mtu { oversized += 1 }
        }
        let used = reader.offset
        if used > datagramStart {
            emit(UnsafeRawBufferPointer(rebasing: stream[datagramStart..<used]))
        }
        return used
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
