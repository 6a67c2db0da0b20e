import Foundation
import Testing
import TernTestSupport

/// `tern relay --tls-cert/--tls-key` serving wss://, and clients that check
/// the relay's certificate: real processes, certificates made with openssl.
@Suite(.serialized) struct TLSRelayTests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    /// A self-signed P-256 certificate for `subjectAltName`, and its key.
    func makeCertificate(subjectAltName: String) async throws -> (cert: String, key: String) {
        // The test user's: openssl writes the key 0600, and the relay, run as
        // that user, must read it.
        let directory = try directories.make("tern-tls")
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/openssl"), arguments: [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=tern test relay", "-addext", "subjectAltName=\(subjectAltName)", "-keyout", key, "-out", cert,
        ])
        #expect(try await openssl.wait() == 0, "\(openssl.stderr.text)")
        return (cert, key)
    }

    @Test func pairsThroughAWssRelayWhoseCertificateIsTrusted() async throws {
        let (cert, key) = try await makeCertificate(subjectAltName: "IP:127.0.0.1")
        let relay = try await RelayProcess.start(["--tls-cert", cert, "--tls-key", key])
        let url = "wss://127.0.0.1:\(relay.port)"
        let trust = ["SSL_CERT_FILE": cert]
        let sender = try RunningProcess(arguments: ["send", "--text", "over TLS", "--relay", url, "--code", "51-acme-aftermath"], environment: trust)
        let receiver = try RunningProcess(arguments: ["receive", "51-acme-aftermath", "--relay", url, "--yes"], environment: trust)
        #expect(try await receiver.wait() == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait() == 0, "\(sender.stderr.text)")
        #expect(receiver.stdout.text == "over TLS\n")
        try await relay.stop()
    }

    @Test func refusesARelayWhoseCertificateIsNotTrusted() async throws {
        let (cert, key) = try await makeCertificate(subjectAltName: "IP:127.0.0.1")
        let relay = try await RelayProcess.start(["--tls-cert", cert, "--tls-key", key])
        let receiver = try RunningProcess(arguments: ["receive", "51-acme-aftermath", "--relay", "wss://127.0.0.1:\(relay.port)", "--yes"])
        #expect(try await receiver.wait() == 4)
        #expect(receiver.stderr.text.contains("certificate"), "\(receiver.stderr.text)")
        try await relay.stop()
    }

    @Test func refusesACertificateForAnotherName() async throws {
        let (cert, key) = try await makeCertificate(subjectAltName: "DNS:relay.example")
        let relay = try await RelayProcess.start(["--tls-cert", cert, "--tls-key", key])
        let receiver = try RunningProcess(arguments: ["receive", "51-acme-aftermath", "--relay", "wss://127.0.0.1:\(relay.port)", "--yes"],
                                          environment: ["SSL_CERT_FILE": cert])
        #expect(try await receiver.wait() == 4)
        #expect(receiver.stderr.text.contains("certificate"), "\(receiver.stderr.text)")
        try await relay.stop()
    }

    @Test func aPlainClientGetsAClearErrorFromATLSRelay() async throws {
        let (cert, key) = try await makeCertificate(subjectAltName: "IP:127.0.0.1")
        let relay = try await RelayProcess.start(["--tls-cert", cert, "--tls-key", key])
        let started = Date()
        let receiver = try RunningProcess(arguments: ["receive", "51-acme-aftermath", "--relay", "ws://127.0.0.1:\(relay.port)", "--yes", "--timeout", "10"])
        #expect(try await receiver.wait() == 4)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(receiver.stderr.text.contains("wss://"), "\(receiver.stderr.text)")
        // The relay keeps serving TLS clients.
        #expect(relay.running.process.isRunning)
        try await relay.stop()
    }
}
