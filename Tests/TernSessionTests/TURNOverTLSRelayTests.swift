import Foundation
import Testing
import TernRelay
import TernRendezvous
import TernTestSupport
import TernTLS
@testable import TernSession

/// The relay hands out the pin of its `turns:` servers' certificate
/// (`tern relay --turn-tls-cert`), as a real `tern relay` process.
@Suite(.serialized) struct TURNOverTLSRelayTests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    @Test func theRelayHandsOutThePinOfItsTURNServersCertificate() async throws {
        let certificate = try await TURNOverTLSTests.TestCertificate(in: directories)
        let relay = try await RelayProcess.start([
            "--turn-uri", "turns:127.0.0.1:443?transport=tcp", "--turn-uri", "turn:127.0.0.1:3478?transport=udp",
            "--turn-secret", "s3cret", "--turn-tls-cert", certificate.certificate.path,
        ])
        let connection = try await RelayConnection.connect(to: try RelayURL(parsing: relay.url))
        var frames = connection.frames.makeAsyncIterator()
        guard case .welcome? = try await frames.next() else {
            Issue.record("no welcome")
            return
        }
        // TURN credentials come in a `turn` frame once both sides are in a
        // mailbox (docs/protocol.md §8), not in the welcome.
        try await connection.send(.allocate(side: .random()))
        guard case .allocated(let nameplate, _)? = try await frames.next() else { Issue.record("no allocation"); return }
        let peer = try await RelayConnection.connect(to: try RelayURL(parsing: relay.url))
        try await peer.send(.claim(nameplate: nameplate, side: .random()))
        guard case .turn(let turn)? = try await frames.next() else { Issue.record("no turn frame"); return }
        await peer.close()
        #expect(turn.uris == ["turns:127.0.0.1:443?transport=tcp", "turn:127.0.0.1:3478?transport=udp"])
        // The same digest the openssl tool gives.
        let openssl = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/openssl"), arguments: [
            "x509", "-in", certificate.certificate.path, "-noout", "-fingerprint", "-sha256",
        ])
        #expect(try await openssl.wait() == 0)
        let printed = openssl.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)  // "sha256 Fingerprint=AB:..."
        let hex = try #require(printed.split(separator: "=").last)
        #expect(turn.tlsPin == "sha-256 \(hex)")
        await connection.close()
        try await relay.stop()
    }

    @Test func mintedCredentialsCarryTheConfiguredPin() {
        var configuration = TURNConfiguration(uris: ["turns:turn.example:443?transport=tcp"], secret: [1, 2, 3])
        configuration.tlsPin = TLSCertificatePinTests.sample
        #expect(TURNCredentialMinter(configuration).mint().tlsPin == TLSCertificatePinTests.sample)
        #expect(TURNCredentialMinter(TURNConfiguration(uris: [], secret: [1])).mint().tlsPin == nil)
    }
}
