import Foundation
import NIOCore
import NIOPosix
import Testing
import TernRelay
import TernRendezvous
import TernTestSupport
import TernTLS
@testable import TernSession

/// TURN over TLS (RFC 8656 §3.1, `turns:` URIs) against real coturn serving
/// TLS with a certificate made for the test, and the relay handing out that
/// certificate's pin.
@Suite(.serialized) struct TURNOverTLSTests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    /// A self-signed certificate (P-256) for 127.0.0.1, made with the
    /// openssl tool in a directory the test user (coturn's) can read, one of
    /// `directories`.
    struct TestCertificate {
        let certificate: URL
        let key: URL

        init(in directories: TestDirectories, commonName: String = "turn.tern.test") async throws {
            let directory = try directories.make("turns-cert")
            certificate = directory.appendingPathComponent("cert.pem")
            key = directory.appendingPathComponent("key.pem")
            let openssl = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/openssl"), arguments: [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=\(commonName)", "-addext", "subjectAltName=IP:127.0.0.1,DNS:\(commonName)",
                "-keyout", key.path, "-out", certificate.path,
            ])
            guard try await openssl.wait() == 0 else {
                throw SocketFailure(description: "openssl req failed: \(openssl.stderr.text.suffix(500))")
            }
            try TestUser.give(certificate)
            try TestUser.give(key)
        }
    }

    func startCoturn() async throws -> (CoturnProcess, TestCertificate) {
        let certificate = try await TestCertificate(in: directories)
        let coturn = try await CoturnProcess(tls: (certificate.certificate, certificate.key))
        return (coturn, certificate)
    }

    /// One side alone against a peer that only answers with credentials:
    /// its only server fails, so the driver ends at once with the reason.
    static func failureReason(turn: TURNCredentials, tlsHandshakeTimeout: Duration = .seconds(5)) async throws -> (String, Duration) {
        var options = ConnectivityOptions(role: .controlling, stun: [], turn: turn, forceRelay: true, failureTimeout: .seconds(10))
        options.tlsHandshakeTimeout = tlsHandshakeTimeout
        let started = ContinuousClock.now
        let driver = try await ConnectivityDriver.start(options: options, signal: { _ in })
        await driver.handle(.sessionDescription(kind: .answer, sdp: ConnectivityDriverTests.bareAnswer))
        await driver.handle(.endOfCandidates)
        defer { Task { await driver.close() } }
        do {
            let path = try await driver.connected()
            Issue.record("connected over \(path.pair) with a server that should have been refused")
            return ("", ContinuousClock.now - started)
        } catch {
            guard case .noPath(let why) = error else { throw error }
            return (why, ContinuousClock.now - started)
        }
    }

    @Test func bothSidesConnectThroughCoturnOverTLSWithThePinnedCertificate() async throws {
        let (coturn, certificate) = try await startCoturn()
        var turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.tlsURI()])
        turn.tlsPin = try TLSCertificatePin.ofCertificate(pemFile: certificate.certificate.path).description
        let (a, b, toAnswerer, _) = try await ConnectivityDriverTests.connect(
            offerer: ConnectivityOptions(role: .controlling, stun: [], turn: turn, forceRelay: true),
            answerer: ConnectivityOptions(role: .controlled, stun: [], turn: turn, forceRelay: true))
        #expect(a.pair.local.type == .relayed && b.pair.local.type == .relayed)
        #expect(a.relayTransport == .tcp && b.relayTransport == .tcp)
        #expect(a.relayOverTLS && b.relayOverTLS)
        #expect(ConnectivityDriverTests.candidateTypes(toAnswerer) == ["relay"])
        // coturn saw TLS sessions, not plain TCP ones.
        #expect(coturn.process.stdout.text.contains("TLS"), "\(coturn.process.stdout.text.suffix(2000))")
    }

    @Test func aCertificateOtherThanThePinnedOneIsRefused() async throws {
        let (coturn, _) = try await startCoturn()
        let other = try await TestCertificate(in: directories)
        var turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.tlsURI()])
        let otherPin = try TLSCertificatePin.ofCertificate(pemFile: other.certificate.path)
        turn.tlsPin = otherPin.description
        let (why, elapsed) = try await Self.failureReason(turn: turn)
        #expect(why.contains("TURN \(coturn.tlsURI()): TLS: the server's certificate is not the pinned one (\(otherPin))"), "\(why)")
        #expect(elapsed < .seconds(5), "\(elapsed)")
    }

    @Test func withoutAPinTheCertificateMustChainToTheTrustStore() async throws {
        let (coturn, _) = try await startCoturn()
        let turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.tlsURI()])
        let (why, elapsed) = try await Self.failureReason(turn: turn)
        #expect(why.contains("TLS: the certificate was not accepted: self-signed certificate"), "\(why)")
        #expect(elapsed < .seconds(5), "\(elapsed)")
    }

    /// A middlebox that accepts the TCP connection on port 443 and then
    /// says nothing: the handshake's bound ends the server's candidate.
    @Test func aServerThatNeverAnswersTheHandshakeIsGivenUpOnInTime() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(silent.localAddress?.port)
        let turn = ConnectivityDriverTests.credentials(secret: "unused", uris: ["turns:127.0.0.1:\(port)?transport=tcp"])
        let (why, elapsed) = try await Self.failureReason(turn: turn, tlsHandshakeTimeout: .milliseconds(300))
        #expect(why.contains("TLS: the TLS handshake took longer than 300 ms"), "\(why)")
        // 300 ms and a start; far below ICE's 10 s.
        #expect(elapsed < .seconds(4), "\(elapsed)")
        try await silent.close()
    }
}

@Suite struct TLSCertificatePinTests {
    static let sample = "sha-256 " + (0..<32).map { String(format: "%02X", $0 * 7 % 256) }.joined(separator: ":")

    @Test func readsAndWritesTheFingerprintForm() throws {
        let pin = try TLSCertificatePin(parsing: Self.sample)
        #expect(pin.description == Self.sample)
        #expect(pin.digest.count == 32 && pin.digest[1] == 7)
        #expect(try TLSCertificatePin(parsing: Self.sample.lowercased().replacingOccurrences(of: "sha-256", with: "SHA-256")) == pin)
    }

    @Test(arguments: [
        "", "sha-256", "sha-256 ", "sha-1 00:11", "sha-256 00:11", "sha-256  " + String(sample.dropFirst(8)),
        String(sample.dropLast(3)), sample + ":00", sample.replacingOccurrences(of: ":", with: ""),
        sample.replacingOccurrences(of: "07", with: "0G"), sample.replacingOccurrences(of: "07", with: "+7"),
        sample + String(repeating: " ", count: 200),
    ])
    func refusesWhatIsNotAPin(text: String) {
        #expect(throws: TLSError.self) { try TLSCertificatePin(parsing: text) }
    }

    @Test func theWelcomeCarriesThePinAndBoundsIt() throws {
        let credentials = TURNCredentials(
            uris: ["turns:turn.example:443?transport=tcp"], username: "1767225600:tern", credential: "Sz6/AtgIdVNzGuUaUaZqNneOPFs=",
            ttl: 600, tlsPin: Self.sample)
        let frame = RelayFrame.welcome(Welcome(maxMessageBytes: 1024, stun: [], turn: credentials))
        let text = frame.encoded()
        #expect(text.contains("\"tls_pin\":\"sha-256 00:07:"))
        #expect(try RelayFrame(decoding: Array(text.utf8)) == frame)
        // Without the field (a relay before TURN over TLS): no pin.
        let old = text.replacingOccurrences(of: ",\"tls_pin\":\"\(Self.sample)\"", with: "")
        guard case .welcome(let welcome) = try RelayFrame(decoding: Array(old.utf8)) else {
            Issue.record("not a welcome")
            return
        }
        #expect(welcome.turn?.tlsPin == nil && welcome.turn?.username == credentials.username)
        let huge = text.replacingOccurrences(of: Self.sample, with: String(repeating: "A", count: 2000))
        #expect(throws: RendezvousError.self) { try RelayFrame(decoding: Array(huge.utf8)) }
    }
}
