import TernCrypto
import TernWire

/// The state cookie (RFC 9260 §5.1.3): what the INIT ACK side needs to set up
/// the association when the COOKIE ECHO comes back, signed with HMAC-SHA-256
/// under a per-association secret so a forged or altered cookie is refused.
struct SCTPStateCookie: Sendable, Equatable {
    static let magic: [UInt8] = Array("tern-sctp-cookie1".utf8)
    static let macLength = 32
    static let encodedLength = magic.count + 4 + 4 + 4 + 4 + 2 + 2 + 1 + 8 + macLength

    var localTag: UInt32
    var peerTag: UInt32
    var localInitialTSN: TSN
    var peerInitialTSN: TSN
    var peerOutboundStreams: UInt16
    var peerInboundStreams: UInt16
    var peerFeatures: UInt8  // bit 0: forward-TSN, bit 1: re-config, bit 2: zero checksum, bit 3: ECN
    var createdAtNanoseconds: UInt64

    func encoded(key: [UInt8]) -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.encodedLength)
        for value in [localTag, peerTag, localInitialTSN.value, peerInitialTSN.value] { bytes.appendBigEndian(value) }
        bytes.appendBigEndian(peerOutboundStreams)
        bytes.appendBigEndian(peerInboundStreams)
        bytes.append(peerFeatures)
        bytes.appendBigEndian(createdAtNanoseconds)
        bytes += Self.mac(key: key, bytes)
        return bytes
    }

    /// Nil if the cookie is not one of ours or was altered.
    init?(decoding bytes: [UInt8], key: [UInt8]) {
        guard bytes.count == Self.encodedLength, bytes.starts(with: Self.magic) else { return nil }
        let body = Array(bytes[..<(bytes.count - Self.macLength)])
        let expected = Self.mac(key: key, body)
        guard expected.count == Self.macLength, Memory.constantTimeEqual(expected, bytes[(bytes.count - Self.macLength)...]) else { return nil }
        var reader = WireReader(body[Self.magic.count...])
        do {
            localTag = try reader.readUInt32()
            peerTag = try reader.readUInt32()
            localInitialTSN = TSN(try reader.readUInt32())
            peerInitialTSN = TSN(try reader.readUInt32())
            peerOutboundStreams = try reader.readUInt16()
            peerInboundStreams = try reader.readUInt16()
            peerFeatures = try reader.readUInt8()
            createdAtNanoseconds = try reader.readUInt64()
            try reader.expectEnd()
        } catch {
            return nil
        }
    }

    init(
        localTag: UInt32, peerTag: UInt32, localInitialTSN: TSN, peerInitialTSN: TSN, peerOutboundStreams: UInt16,
        peerInboundStreams: UInt16, peerFeatures: UInt8, createdAtNanoseconds: UInt64
    ) {
        self.localTag = localTag
        self.peerTag = peerTag
        self.localInitialTSN = localInitialTSN
        self.peerInitialTSN = peerInitialTSN
        self.peerOutboundStreams = peerOutboundStreams
        self.peerInboundStreams = peerInboundStreams
        self.peerFeatures = peerFeatures
        self.createdAtNanoseconds = createdAtNanoseconds
    }

    /// HMAC-SHA256 of the cookie's body. HMAC fails only when OpenSSL cannot
    /// allocate; the empty MAC it then gives makes the cookie refused.
    static func mac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        (try? HashFunction.sha256.authenticationCode(key: key, message: message)) ?? []
    }
}
