import COpenSSL
import Testing
@testable import TernDTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The AES-GCM suites whose records `DTLSRecordCipher` protects, by
/// OpenSSL's names (those in `DTLSAssociation.cipherSuites`).
enum GCMSuite: String, CaseIterable, CustomStringConvertible, Sendable {
    case aes128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
    case aes256 = "ECDHE-ECDSA-AES256-GCM-SHA384"

    var keyLength: Int { self == .aes128 ? 16 : 32 }
    var description: String { rawValue }
}

@Suite("Record protection: key schedule, AES-GCM records, replay window")
struct RecordProtectionTests {
    // MARK: Helpers

    /// A connected pair whose client offered only `suite` (the server takes
    /// any suite we offer, so that one is negotiated).
    static func connectedPair(_ suite: GCMSuite) throws -> Pair {
        let pair = try Pair()
        try #require(SSL_set_cipher_list(pair.client.ssl, suite.rawValue) == 1)
        pair.handshake()
        try #require(pair.client.isConnected && pair.server.isConnected)
        try #require(pair.client.cipherSuite == suite.rawValue)
        _ = pair.takeEvents(.client)
        _ = pair.takeEvents(.server)
        return pair
    }

    static func keys(of association: DTLSAssociation) throws -> DTLSRecordKeys {
        try #require(try DTLSRecordKeys.derive(from: association.ssl))
    }

    static func seal(
        _ cipher: DTLSRecordCipher,
        _ plaintext: [UInt8],
        type: UInt8 = 23,
        epoch: UInt16 = 1,
        sequence: UInt64,
        explicitNonce: UInt64? = nil
    ) throws -> [UInt8] {
        var record: [UInt8] = []
        try plaintext.withUnsafeBytes { bytes in
            try cipher.seal(
                type: type, epoch: epoch, sequence: sequence,
                explicitNonce: explicitNonce ?? (UInt64(epoch) << 48 | sequence),
                plaintext: bytes, appendingTo: &record
            )
        }
        return record
    }

    /// `open` into a buffer of `capacity` bytes (the record's plaintext
    /// length when nil): the plaintext, or nil, and what the buffer holds.
    static func open(_ cipher: DTLSRecordCipher, _ record: [UInt8], capacity: Int? = nil) -> (plaintext: [UInt8]?, buffer: [UInt8]) {
        var buffer = [UInt8](repeating: 0xAA, count: capacity ?? max(record.count - 37, 0))
        let length = record.withUnsafeBytes { bytes in
            buffer.withUnsafeMutableBytes { cipher.open(record: bytes, into: $0) }
        }
        return (length.map { Array(buffer[..<$0]) }, buffer)
    }

    static func cipher(keyLength: Int, seed: UInt64) throws -> DTLSRecordCipher {
        var generator = SeededGenerator(seed: seed)
        return try DTLSRecordCipher(key: generator.bytes(keyLength), salt: generator.bytes(4))
    }

    // MARK: PRF

    @Test("the PRF equals OpenSSL's TLS1-PRF", arguments: ["SHA256", "SHA384"], [1, 12, 31, 32, 48, 72, 100, 136])
    func prfMatchesOpenSSLsKDF(digestName: String, length: Int) throws {
        let digest = try #require(digestName == "SHA256" ? EVP_sha256() : EVP_sha384())
        var generator = SeededGenerator(seed: UInt64(length) &* 31 &+ UInt64(digestName.count))
        let secret = generator.bytes(48)
        let seed = generator.bytes(64)
        for label in ["key expansion", "master secret", "client finished"] {
            let ours = try DTLSRecordKeys.prf(secret: secret, label: label, seed: seed, digest: digest, length: length)
            let reference = try ReferencePRF.derive(
                digestName: digestName, secret: secret, seed: Array(label.utf8) + seed, length: length
            )
            #expect(ours.count == length)
            #expect(ours == reference, "\(digestName), \(label), \(length) bytes")
        }
    }

    @Test func aShorterPRFOutputIsAPrefixOfALongerOne() throws {
        let digest = try #require(EVP_sha256())
        let secret = [UInt8](repeating: 7, count: 48)
        let long = try DTLSRecordKeys.prf(secret: secret, label: "key expansion", seed: [1, 2, 3], digest: digest, length: 100)
        for length in [0, 1, 32, 33, 64, 99] {
            let short = try DTLSRecordKeys.prf(secret: secret, label: "key expansion", seed: [1, 2, 3], digest: digest, length: length)
            #expect(short == Array(long.prefix(length)))
        }
        #expect(throws: DTLSError.self) {
            _ = try DTLSRecordKeys.prf(secret: secret, label: "x", seed: [], digest: digest, length: -1)
        }
    }

    @Test func theKeyBlockIsCutInRFC5246Order() throws {
        // RFC 5246 §6.3 with RFC 5288 §3: no MAC keys, then the two write
        // keys, then the two 4-byte IVs; the seed is server random first.
        let digest = try #require(EVP_sha256())
        let master = [UInt8](repeating: 0x11, count: 48)
        let client = [UInt8](repeating: 0x22, count: 32)
        let server = [UInt8](repeating: 0x33, count: 32)
        for keyLength in [16, 32] {
            let block = try DTLSRecordKeys.prf(
                secret: master, label: "key expansion", seed: server + client, digest: digest, length: 2 * keyLength + 8)
            let keys = try DTLSRecordKeys.expand(
                masterSecret: master, clientRandom: client, serverRandom: server, digest: digest, keyLength: keyLength)
            #expect(keys.clientWriteKey == Array(block[0..<keyLength]))
            #expect(keys.serverWriteKey == Array(block[keyLength..<(2 * keyLength)]))
            #expect(keys.clientWriteSalt == Array(block[(2 * keyLength)..<(2 * keyLength + 4)]))
            #expect(keys.serverWriteSalt == Array(block[(2 * keyLength + 4)...]))
        }
        #expect(throws: DTLSError.self) {
            _ = try DTLSRecordKeys.expand(masterSecret: master, clientRandom: client, serverRandom: server, digest: digest, keyLength: 24)
        }
        #expect(throws: DTLSError.self) {
            _ = try DTLSRecordKeys.expand(masterSecret: [1], clientRandom: client, serverRandom: server, digest: digest, keyLength: 16)
        }
    }

    // MARK: Keys from a real handshake

    @Test("both ends derive the same keys", arguments: GCMSuite.allCases)
    func bothEndsDeriveTheSameKeys(suite: GCMSuite) throws {
        let pair = try Self.connectedPair(suite)
        let client = try Self.keys(of: pair.client)
        let server = try Self.keys(of: pair.server)
        #expect(client.clientWriteKey == server.clientWriteKey)
        #expect(client.serverWriteKey == server.serverWriteKey)
        #expect(client.clientWriteSalt == server.clientWriteSalt)
        #expect(client.serverWriteSalt == server.serverWriteSalt)
        #expect(client.clientWriteKey.count == suite.keyLength && client.serverWriteKey.count == suite.keyLength)
        #expect(client.clientWriteSalt.count == 4 && client.serverWriteSalt.count == 4)
        for piece in [client.clientWriteKey, client.serverWriteKey, client.clientWriteSalt, client.serverWriteSalt] {
            #expect(piece.contains { $0 != 0 })
        }
        #expect(client.clientWriteKey != client.serverWriteKey)
        #expect(client.clientWriteSalt != client.serverWriteSalt)

        // Another association has other keys.
        let other = try Self.keys(of: try Self.connectedPair(suite).client)
        #expect(other.clientWriteKey != client.clientWriteKey)
    }

    @Test func chaCha20IsLeftToOpenSSL() throws {
        let pair = try Pair()
        try #require(SSL_set_cipher_list(pair.client.ssl, "ECDHE-ECDSA-CHACHA20-POLY1305") == 1)
        pair.handshake()
        try #require(pair.client.cipherSuite == "ECDHE-ECDSA-CHACHA20-POLY1305")
        #expect(try DTLSRecordKeys.derive(from: pair.client.ssl) == nil)
        #expect(try DTLSRecordKeys.derive(from: pair.server.ssl) == nil)
    }

    @Test func noKeysBeforeTheHandshakeFinishes() throws {
        let pair = try Pair()
        #expect(throws: DTLSError.notConnected) { _ = try DTLSRecordKeys.derive(from: pair.client.ssl) }
        pair.start()
        #expect(throws: DTLSError.notConnected) { _ = try DTLSRecordKeys.derive(from: pair.client.ssl) }
    }

    @Test func wipeZeroesEveryPiece() throws {
        var keys = try Self.keys(of: try Self.connectedPair(.aes128).client)
        keys.wipe()
        for piece in [keys.clientWriteKey, keys.serverWriteKey, keys.clientWriteSalt, keys.serverWriteSalt] {
            #expect(!piece.isEmpty && piece.allSatisfy { $0 == 0 })
        }
    }

    @Test func theKeysDoNotPrintThemselves() throws {
        let keys = try Self.keys(of: try Self.connectedPair(.aes256).client)
        for text in [String(describing: keys), String(reflecting: keys), "\(keys)"] {
            #expect(text == "DTLSRecordKeys(AES-256-GCM, redacted)")
        }
    }

    // MARK: Interop with OpenSSL's record layer

    @Test("records we seal are read by OpenSSL", arguments: GCMSuite.allCases, [Pair.Side.client, .server])
    func recordsWeSealAreReadByOpenSSL(suite: GCMSuite, sender: Pair.Side) throws {
        let pair = try Self.connectedPair(suite)
        let sending = pair.association(sender)
        let receiving = pair.association(sender == .client ? .server : .client)
        let keys = try Self.keys(of: sending)
        let cipher = try keys.cipher(sentBy: sender == .client ? .client : .server)
        let maximum = try #require(sending.maximumPayload)
        var generator = SeededGenerator(seed: 5)
        for (index, size) in [1, 2, 100, 1000, maximum].enumerated() {
            let message = generator.bytes(size)
            // Sequence numbers well above the few OpenSSL used in epoch 1.
            let record = try Self.seal(cipher, message, sequence: 1000 + UInt64(index), explicitNonce: generator.next())
            #expect(record.count == 13 + 8 + size + 16)
            receiving.handleDatagram(record, now: pair.now)
            #expect(pair.takeEvents(sender == .client ? .server : .client) == [.data(message)], "\(size) bytes")
        }
        #expect(receiving.isConnected && receiving.counters.malformedDatagrams == 0)
        // A largest record fills the MTU exactly, as OpenSSL's do.
        let largest = try Self.seal(cipher, [UInt8](repeating: 1, count: maximum), sequence: 2000)
        #expect(largest.count == sending.configuration.mtu)
    }

    @Test("records OpenSSL writes are opened by us", arguments: GCMSuite.allCases, [Pair.Side.client, .server])
    func recordsOpenSSLWritesAreOpened(suite: GCMSuite, sender: Pair.Side) throws {
        let pair = try Self.connectedPair(suite)
        let sending = pair.association(sender)
        let keys = try Self.keys(of: pair.association(sender == .client ? .server : .client))
        let cipher = try keys.cipher(sentBy: sender == .client ? .client : .server)
        let maximum = try #require(sending.maximumPayload)
        var generator = SeededGenerator(seed: 6)
        var window = DTLSReplayWindow()
        for size in [1, 2, 100, 1000, maximum] {
            let message = generator.bytes(size)
            try sending.write(message)
            let datagram = try #require(sending.pollTransmit())
            let header = try #require(RecordHeader(datagram[...]))
            #expect(header.type == 23 && header.epoch == 1 && 13 + header.length == datagram.count, "one record per datagram")
            #expect(Self.open(cipher, datagram).plaintext == message, "\(size) bytes")
            // OpenSSL numbers its records upwards; each is fresh once.
            let sequence = datagram[5..<11].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(window.isFresh(sequence))
            window.accept(sequence)
            #expect(!window.isFresh(sequence))
        }
        // The other direction's key does not open them.
        try sending.write([1, 2, 3])
        let datagram = try #require(sending.pollTransmit())
        let wrong = try keys.cipher(sentBy: sender == .client ? .server : .client)
        #expect(Self.open(wrong, datagram).plaintext == nil)
        #expect(Self.open(cipher, datagram).plaintext == [1, 2, 3])
    }

    // MARK: Record layout and limits

    @Test func aSealedRecordHasTheDTLSLayout() throws {
        let cipher = try Self.cipher(keyLength: 16, seed: 1)
        var output: [UInt8] = [9, 9, 9]
        let plaintext: [UInt8] = Array(0..<50)
        try plaintext.withUnsafeBytes { bytes in
            try cipher.seal(
                type: 23, epoch: 0x0102, sequence: 0x0304_0506_0708, explicitNonce: 0x1112_1314_1516_1718,
                plaintext: bytes, appendingTo: &output)
        }
        #expect(output.count == 3 + 13 + 8 + 50 + 16)
        #expect(Array(output[0..<3]) == [9, 9, 9], "earlier bytes untouched")
        let record = Array(output[3...])
        #expect(Array(record[0..<13]) == [23, 0xFE, 0xFD, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0, 74])
        #expect(Array(record[13..<21]) == [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18])
        #expect(Array(record[21..<71]) != plaintext)
        #expect(Self.open(cipher, record).plaintext == plaintext)

        // A second record appends after the first.
        try [UInt8]([1]).withUnsafeBytes { bytes in
            try cipher.seal(type: 21, epoch: 1, sequence: 1, explicitNonce: 1, plaintext: bytes, appendingTo: &output)
        }
        #expect(output.count == 3 + 87 + 38)
        #expect(Self.open(cipher, Array(output[90...])).plaintext == [1])
        #expect(Array(output[3..<90]) == record)
    }

    @Test func anEmptyPlaintextMakesAMinimalRecord() throws {
        let cipher = try Self.cipher(keyLength: 32, seed: 2)
        let record = try Self.seal(cipher, [], sequence: 3)
        #expect(record.count == 37)
        #expect(Self.open(cipher, record).plaintext == [])
        var empty: [UInt8] = []
        let length = record.withUnsafeBytes { bytes in empty.withUnsafeMutableBytes { cipher.open(record: bytes, into: $0) } }
        #expect(length == 0)
    }

    @Test func sealRefusesWhatCannotBeSent() throws {
        let cipher = try Self.cipher(keyLength: 16, seed: 3)
        var output: [UInt8] = [1, 2]
        let limit = DTLSRecordCipher.sequenceLimit
        #expect(throws: DTLSError.self) {
            try [UInt8]([1]).withUnsafeBytes { try cipher.seal(type: 23, epoch: 1, sequence: limit, explicitNonce: 0, plaintext: $0, appendingTo: &output) }
        }
        #expect(throws: DTLSError.self) {
            try [UInt8]([1]).withUnsafeBytes { try cipher.seal(type: 24, epoch: 1, sequence: 1, explicitNonce: 0, plaintext: $0, appendingTo: &output) }
        }
        let tooLong = [UInt8](repeating: 0, count: (1 << 14) + 1)
        #expect(throws: DTLSError.payloadTooLarge(size: tooLong.count, maximum: 1 << 14)) {
            try tooLong.withUnsafeBytes { try cipher.seal(type: 23, epoch: 1, sequence: 1, explicitNonce: 0, plaintext: $0, appendingTo: &output) }
        }
        #expect(output == [1, 2], "nothing appended by a refused seal")

        // The last sequence number and the largest plaintext are fine.
        let last = try Self.seal(cipher, [7], sequence: limit - 1)
        #expect(Array(last[5..<11]) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(Self.open(cipher, last).plaintext == [7])
        let largest = [UInt8](repeating: 3, count: 1 << 14)
        #expect(Self.open(cipher, try Self.seal(cipher, largest, sequence: 1)).plaintext == largest)
    }

    @Test func aCipherNeedsAnAESKeyAndAFourByteSalt() {
        #expect(throws: DTLSError.self) { _ = try DTLSRecordCipher(key: [UInt8](repeating: 1, count: 24), salt: [1, 2, 3, 4]) }
        #expect(throws: DTLSError.self) { _ = try DTLSRecordCipher(key: [UInt8](repeating: 1, count: 16), salt: [1, 2, 3]) }
        #expect(throws: DTLSError.self) { _ = try DTLSRecordCipher(key: [], salt: [1, 2, 3, 4]) }
    }

    // MARK: Tampering

    @Test("any flipped bit fails to open", arguments: [16, 32])
    func anyFlippedByteFailsToOpen(keyLength: Int) throws {
        let cipher = try Self.cipher(keyLength: keyLength, seed: 4)
        let plaintext = (0..<40).map { UInt8($0) }
        let record = try Self.seal(cipher, plaintext, sequence: 77)
        // Every byte: header (type, version, epoch, sequence number,
        // length), explicit nonce, ciphertext, tag; low and high bit.
        for index in record.indices {
            for mask: UInt8 in [0x01, 0x80] {
                var forged = record
                forged[index] ^= mask
                let (opened, buffer) = Self.open(cipher, forged)
                #expect(opened == nil, "byte \(index) ^ \(mask)")
                #expect(buffer.allSatisfy { $0 == 0 || $0 == 0xAA }, "no unauthenticated plaintext left behind")
            }
        }
        // The context is unharmed by the failures.
        #expect(Self.open(cipher, record).plaintext == plaintext)
    }

    @Test func unauthenticatedPlaintextIsWipedFromTheBuffer() throws {
        let cipher = try Self.cipher(keyLength: 16, seed: 5)
        var record = try Self.seal(cipher, [UInt8](repeating: 0x41, count: 64), sequence: 1)
        record[record.count - 1] ^= 1
        let (opened, buffer) = Self.open(cipher, record)
        #expect(opened == nil)
        #expect(buffer.allSatisfy { $0 == 0 })
    }

    @Test func aRecordWithItsLengthAdjustedStillFails() throws {
        let cipher = try Self.cipher(keyLength: 16, seed: 6)
        let record = try Self.seal(cipher, [UInt8](repeating: 5, count: 30), sequence: 9)
        func withLength(_ bytes: [UInt8]) -> [UInt8] {
            var adjusted = bytes
            let length = bytes.count - 13
            adjusted[11] = UInt8(length >> 8)
            adjusted[12] = UInt8(length & 0xFF)
            return adjusted
        }
        // One byte less or more, length field in step: the tag decides.
        #expect(Self.open(cipher, withLength(Array(record.dropLast()))).plaintext == nil)
        #expect(Self.open(cipher, withLength(record + [0])).plaintext == nil)
        // Ciphertext cut out of the middle, the tag kept.
        #expect(Self.open(cipher, withLength(Array(record[0..<30]) + Array(record.suffix(16)))).plaintext == nil)
        // Length field out of step with the record: refused outright.
        #expect(Self.open(cipher, record + [0]).plaintext == nil)
    }

    @Test func truncatedRecordsFailToOpen() throws {
        let cipher = try Self.cipher(keyLength: 32, seed: 7)
        let record = try Self.seal(cipher, [UInt8](repeating: 6, count: 20), sequence: 2)
        for length in 0..<record.count {
            #expect(Self.open(cipher, Array(record.prefix(length)), capacity: 64).plaintext == nil, "\(length) bytes")
        }
    }

    @Test func aPlaintextBufferTooSmallFails() throws {
        let cipher = try Self.cipher(keyLength: 16, seed: 8)
        let plaintext = [UInt8](repeating: 8, count: 100)
        let record = try Self.seal(cipher, plaintext, sequence: 2)
        #expect(Self.open(cipher, record, capacity: 99).plaintext == nil)
        #expect(Self.open(cipher, record, capacity: 0).plaintext == nil)
        #expect(Self.open(cipher, record, capacity: 100).plaintext == plaintext)
        #expect(Self.open(cipher, record, capacity: 1000).plaintext == plaintext)
    }

    @Test func anotherKeyOrSaltDoesNotOpen() throws {
        var generator = SeededGenerator(seed: 9)
        let key = generator.bytes(16)
        let salt = generator.bytes(4)
        let sealer = try DTLSRecordCipher(key: key, salt: salt)
        let record = try Self.seal(sealer, [1, 2, 3, 4], sequence: 5)
        var otherKey = key
        otherKey[0] ^= 1
        var otherSalt = salt
        otherSalt[3] ^= 1
        #expect(Self.open(try DTLSRecordCipher(key: otherKey, salt: salt), record).plaintext == nil)
        #expect(Self.open(try DTLSRecordCipher(key: key, salt: otherSalt), record).plaintext == nil)
        #expect(Self.open(try DTLSRecordCipher(key: generator.bytes(32), salt: salt), record).plaintext == nil)
        #expect(Self.open(try DTLSRecordCipher(key: key, salt: salt), record).plaintext == [1, 2, 3, 4])
    }

    // MARK: Replay window (RFC 6347 §4.1.2.6)

    @Test func anEmptyWindowTakesAnything() {
        let window = DTLSReplayWindow()
        for sequence: UInt64 in [0, 1, 63, 64, 1000, (1 << 48) - 1] {
            #expect(window.isFresh(sequence))
        }
    }

    @Test func aSeenSequenceNumberIsNotFreshAgain() {
        var window = DTLSReplayWindow()
        window.accept(0)
        #expect(!window.isFresh(0))
        #expect(window.isFresh(1))
        window.accept(10)
        #expect(!window.isFresh(10) && !window.isFresh(0))
        #expect(window.isFresh(9) && window.isFresh(1) && window.isFresh(11))
        window.accept(5)
        #expect(!window.isFresh(5) && window.isFresh(4) && window.isFresh(6))
        #expect(!window.isFresh(10), "an older record does not move the window")
    }

    @Test func theWindowIsSixtyFourRecordsWide() {
        var window = DTLSReplayWindow()
        window.accept(100)
        #expect(window.isFresh(37), "100 - 63 is inside")
        #expect(!window.isFresh(36), "100 - 64 is outside")
        #expect(!window.isFresh(0))
        window.accept(37)
        #expect(!window.isFresh(37))

        // Sliding: 100 becomes 64 behind and falls out, 101 is still in.
        window.accept(164)
        #expect(!window.isFresh(100) && !window.isFresh(37))
        #expect(window.isFresh(101))
        window.accept(101)
        #expect(!window.isFresh(101))
        #expect(!window.isFresh(164) && window.isFresh(163) && window.isFresh(165))
    }

    @Test func seenThroughMarksEverythingUpToIt() {
        let window = DTLSReplayWindow(seenThrough: 500)
        for sequence: UInt64 in [500, 499, 437, 436, 0] {
            #expect(!window.isFresh(sequence), "\(sequence)")
        }
        #expect(window.isFresh(501) && window.isFresh(100_000))

        var fromZero = DTLSReplayWindow(seenThrough: 0)
        #expect(!fromZero.isFresh(0) && fromZero.isFresh(1))
        fromZero.accept(2)
        #expect(!fromZero.isFresh(0) && fromZero.isFresh(1) && !fromZero.isFresh(2))
    }

    @Test func aHugeJumpForgetsTheOldWindow() {
        var window = DTLSReplayWindow()
        window.accept(5)
        let last: UInt64 = (1 << 48) - 1
        window.accept(last)
        #expect(!window.isFresh(last) && !window.isFresh(5) && !window.isFresh(6))
        #expect(window.isFresh(last - 1) && window.isFresh(last - 63) && !window.isFresh(last - 64))
        window.accept(last - 63)
        #expect(!window.isFresh(last - 63) && window.isFresh(last - 62))

        var fresh = DTLSReplayWindow(seenThrough: 10)
        fresh.accept(10 + 64)
        #expect(!fresh.isFresh(10) && fresh.isFresh(11) && fresh.isFresh(73))
    }

    @Test("the window agrees with a model that remembers everything", arguments: [1, 2, 3] as [UInt64])
    func agreesWithAModel(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var window = DTLSReplayWindow()
        var seen: Set<UInt64> = []
        var highest: UInt64?
        for _ in 0..<5000 {
            // Mostly near the top, sometimes a jump ahead or far behind.
            let base = highest ?? 0
            let sequence: UInt64
            switch UInt8.random(in: 0..<10, using: &generator) {
            case 0: sequence = base + UInt64.random(in: 1...200, using: &generator)
            case 1: sequence = base - min(base, UInt64.random(in: 60...70, using: &generator))
            default: sequence = base - min(base, UInt64.random(in: 0...40, using: &generator)) + UInt64.random(in: 0...3, using: &generator)
            }
            let expected = highest.map { sequence > $0 || ($0 - sequence < 64 && !seen.contains(sequence)) } ?? true
            #expect(window.isFresh(sequence) == expected, "\(sequence) with highest \(String(describing: highest))")
            if expected {
                window.accept(sequence)
                seen.insert(sequence)
                highest = max(highest ?? sequence, sequence)
            }
        }
    }
}

/// OpenSSL's own TLS 1.2 PRF, the "TLS1-PRF" EVP_KDF (RFC 5246 §5), to check
/// ours against an implementation that is not ours. kdf.h is not part of the
/// COpenSSL shim, so its functions are looked up in the running process,
/// which links libcrypto.
enum ReferencePRF {
    private typealias Fetch = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> OpaquePointer?
    private typealias NewContext = @convention(c) (OpaquePointer?) -> OpaquePointer?
    private typealias Free = @convention(c) (OpaquePointer?) -> Void
    private typealias Derive = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, Int, UnsafePointer<OSSL_PARAM>?) -> Int32

    private static func function<T>(_ name: String, as type: T.Type) throws -> T {
        let process = dlopen(nil, RTLD_NOW)
        let address = try #require(dlsym(process, name), "libcrypto exports \(name)")
        return unsafeBitCast(address, to: type)
    }

    /// PRF(secret, label, seed) with `seed` already holding the label.
    static func derive(digestName: String, secret: [UInt8], seed: [UInt8], length: Int) throws -> [UInt8] {
        let fetch = try function("EVP_KDF_fetch", as: Fetch.self)
        let newContext = try function("EVP_KDF_CTX_new", as: NewContext.self)
        let freeKDF = try function("EVP_KDF_free", as: Free.self)
        let freeContext = try function("EVP_KDF_CTX_free", as: Free.self)
        let derive = try function("EVP_KDF_derive", as: Derive.self)

        let kdf = try #require(fetch(nil, "TLS1-PRF", nil))
        defer { freeKDF(kdf) }
        let context = try #require(newContext(kdf))
        defer { freeContext(context) }

        // OSSL_PARAM keeps pointers, so every string and buffer must live
        // until the derive call: C copies made here, freed after.
        let names: [UnsafeMutablePointer<CChar>?] = ["digest", "secret", "seed", digestName].map { (text: String) in strdup(text) }
        defer { names.forEach { free($0) } }
        var secretCopy = secret
        var seedCopy = seed
        var output = [UInt8](repeating: 0, count: length)
        let result = secretCopy.withUnsafeMutableBytes { secretBytes in
            seedCopy.withUnsafeMutableBytes { seedBytes in
                output.withUnsafeMutableBufferPointer { out in
                    let parameters = [
                        OSSL_PARAM_construct_utf8_string(names[0], names[3], 0),
                        OSSL_PARAM_construct_octet_string(names[1], secretBytes.baseAddress, secretBytes.count),
                        OSSL_PARAM_construct_octet_string(names[2], seedBytes.baseAddress, seedBytes.count),
                        OSSL_PARAM_construct_end(),
                    ]
                    return derive(context, out.baseAddress, length, parameters)
                }
            }
        }
        try #require(result == 1, "EVP_KDF_derive")
        return output
    }
}
