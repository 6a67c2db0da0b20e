import COpenSSL
import Testing
@testable import TernDTLS

/// The DTLS parameters docs/protocol.md ("DTLS parameters") states, read from
/// OpenSSL after a handshake between two tern associations.
@Suite("DTLS parameters as documented")
struct ParameterTests {
    @Test func dtls12WithX25519AndTheExtendedMasterSecret() throws {
        let pair = try Pair()
        pair.handshake()
        try #require(pair.client.isConnected && pair.server.isConnected)
        for side in [Pair.Side.client, .server] {
            let ssl = pair.association(side).ssl
            #expect(SSL_version(ssl) == DTLS1_2_VERSION, "\(side)")
            // RFC 7627: the master secret covers the whole handshake.
            #expect(SSL_ctrl(ssl, SSL_CTRL_GET_EXTMS_SUPPORT, 0, nil) == 1, "\(side)")
            // The first group both offer.
            #expect(SSL_ctrl(ssl, SSL_CTRL_GET_NEGOTIATED_GROUP, 0, nil) == Int(NID_X25519), "\(side)")
            #expect(pair.association(side).cipherSuite == "ECDHE-ECDSA-AES128-GCM-SHA256", "\(side)")
        }
    }
}
