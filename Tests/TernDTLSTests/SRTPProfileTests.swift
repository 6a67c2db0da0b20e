import COpenSSL
import Testing
@testable import TernDTLS

/// The use_srtp extension (RFC 5764 §4.1.1): tern carries no media, but
/// WebRTC stacks such as aiortc fail a handshake that negotiates no SRTP
/// protection profile, so tern offers profiles as a client and selects one
/// as a server.
@Suite("use_srtp (RFC 5764 §4.1.1)")
struct SRTPProfileTests {
    /// RFC 5764 §4.1.2 and RFC 7714 §14.2: the profiles' code points.
    static let aeadAES128GCM: UInt16 = 0x0007
    static let aes128CMSHA1_80: UInt16 = 0x0001
    /// RFC 5764 §9: the use_srtp extension's type.
    static let useSRTP: UInt16 = 14

    /// The profile OpenSSL settled on for one side, read from OpenSSL itself.
    static func selected(_ association: DTLSAssociation) -> (name: String, id: UInt)? {
        guard let profile = SSL_get_selected_srtp_profile(association.ssl), let name = profile.pointee.name else { return nil }
        return (String(cString: name), profile.pointee.id)
    }

    @Test func bothSidesNegotiateTheFirstProfileByDefault() throws {
        let pair = try Pair()
        pair.handshake()
        try #require(pair.client.isConnected && pair.server.isConnected)

        for side in [Pair.Side.client, .server] {
            let association = pair.association(side)
            let profile = try #require(Self.selected(association), "the \(side) negotiated no SRTP profile")
            #expect(profile.name == "SRTP_AEAD_AES_128_GCM", "\(side)")
            #expect(profile.id == UInt(Self.aeadAES128GCM), "\(side)")
            #expect(association.srtpProtectionProfile == "SRTP_AEAD_AES_128_GCM", "\(side)")
        }
    }

    @Test func theClientHelloOffersBothProfilesAndTheServerHelloSelectsOne() throws {
        let pair = try Pair()
        pair.handshake()
        try #require(pair.client.isConnected)

        let clientHello = try #require(pair.log.first { $0.from == .client }?.bytes)
        let offered = try #require(Self.helloExtensions(clientHello, type: 1)?[Self.useSRTP], "no use_srtp in the ClientHello")
        // UseSRTPData: profiles (2-byte length, 2 bytes each), then an empty MKI.
        #expect(offered == [0, 4, 0, 0x07, 0, 0x01, 0])

        let serverHello = try #require(pair.log.first { $0.from == .server }?.bytes)
        let selected = try #require(Self.helloExtensions(serverHello, type: 2)?[Self.useSRTP], "no use_srtp in the ServerHello")
        // RFC 5764 §4.1.1: the server answers with exactly one profile.
        #expect(selected == [0, 2, 0, 0x07, 0])
    }

    /// As a server, tern takes any profile of its list that a client offers.
    @Test func aServerSelectsTheOnlyProfileAClientOffers() throws {
        let other = try Pair(configure: { if $0.role == .client { $0.srtpProtectionProfiles = ["SRTP_AES128_CM_SHA1_80"] } })
        other.handshake()
        try #require(other.client.isConnected && other.server.isConnected)
        #expect(Self.selected(other.server)?.id == UInt(Self.aes128CMSHA1_80))
        #expect(Self.selected(other.client)?.id == UInt(Self.aes128CMSHA1_80))
        #expect(other.server.srtpProtectionProfile == "SRTP_AES128_CM_SHA1_80")
    }

    /// A client that offers no profile (an older tern) is still accepted:
    /// the extension is for the peers that insist on it, not a requirement.
    @Test func aClientOfferingNoProfileStillConnects() throws {
        let other = try Pair(configure: { if $0.role == .client { $0.srtpProtectionProfiles = [] } })
        other.handshake()
        try #require(other.client.isConnected && other.server.isConnected)
        #expect(Self.selected(other.server) == nil)
        #expect(other.server.srtpProtectionProfile == nil && other.client.srtpProtectionProfile == nil)
        let clientHello = try #require(other.log.first { $0.from == .client }?.bytes)
        #expect(Self.helloExtensions(clientHello, type: 1)?[Self.useSRTP] == nil)
    }

    /// The own record layer still takes over from OpenSSL with the extension
    /// negotiated (the key block does not depend on it), and both directions
    /// carry data afterwards.
    @Test func theRecordLayerHandOverStillWorks() throws {
        let pair = try Pair()
        pair.handshake()
        try #require(pair.client.srtpProtectionProfile != nil)
        #expect(pair.client.ownsRecordLayer)
        try pair.client.write(Array("from the client".utf8))
        pair.pump()
        #expect(pair.server.ownsRecordLayer)
        try pair.server.write(Array("from the server".utf8))
        pair.pump()
        #expect(pair.received(.server) == [Array("from the client".utf8)])
        #expect(pair.received(.client) == [Array("from the server".utf8)])
        #expect(pair.client.counters.discardedRecords == 0 && pair.server.counters.discardedRecords == 0)
    }

    @Test(arguments: [["SRTP_NO_SUCH_PROFILE"], [""], ["SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM"]])
    func anUnusableProfileListIsRefused(profiles: [String]) throws {
        var configuration = DTLSAssociation.Configuration(
            role: .client, certificate: try DTLSCertificate.generate(),
            expectedPeerFingerprint: try DTLSCertificate.generate().fingerprint)
        configuration.srtpProtectionProfiles = profiles
        #expect(throws: DTLSError.self) { try DTLSAssociation(configuration: configuration) }
    }

    /// The extensions of the hello (`type` 1 ClientHello, 2 ServerHello)
    /// that starts the datagram's first record, by extension type; nil if
    /// the datagram does not start with an unfragmented hello of that type.
    static func helloExtensions(_ datagram: [UInt8], type: UInt8) -> [UInt16: [UInt8]]? {
        var reader = Reader(bytes: datagram)
        // Record header (13), handshake header (12).
        guard reader.byte() == 22, reader.skip(12), reader.byte() == type,
              let length = reader.uint24(), reader.skip(2 + 3), reader.uint24() == length,
              reader.skip(2 + 32),                                 // version, random
              let session = reader.byte(), reader.skip(Int(session))
        else { return nil }
        if type == 1 {
            guard let cookie = reader.byte(), reader.skip(Int(cookie)),
                  let suites = reader.uint16(), reader.skip(Int(suites)),
                  let compressions = reader.byte(), reader.skip(Int(compressions))
            else { return nil }
        } else {
            guard reader.skip(2 + 1) else { return nil }            // suite, compression
        }
        guard let total = reader.uint16(), reader.remaining >= Int(total) else { return nil }
        let end = reader.offset + Int(total)
        var extensions: [UInt16: [UInt8]] = [:]
        while reader.offset < end {
            guard let kind = reader.uint16(), let size = reader.uint16(), let body = reader.bytes(Int(size)) else { return nil }
            extensions[kind] = body
        }
        return extensions
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var remaining: Int { bytes.count - offset }

        mutating func bytes(_ count: Int) -> [UInt8]? {
            guard count >= 0, remaining >= count else { return nil }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }
        mutating func skip(_ count: Int) -> Bool { bytes(count) != nil }
        mutating func byte() -> UInt8? { bytes(1)?.first }
        mutating func uint16() -> UInt16? { bytes(2).map { UInt16($0[0]) << 8 | UInt16($0[1]) } }
        mutating func uint24() -> Int? { bytes(3).map { Int($0[0]) << 16 | Int($0[1]) << 8 | Int($0[2]) } }
    }
}
