import Foundation

/// A coturn process (Debian's turnserver) on 127.0.0.1 with a port of its
/// own, using coturn's shared-secret REST credentials; loopback peers are
/// allowed so tests can relay between local sockets. A root test runs it as
/// the unprivileged test user (RunningProcess), with its pid file and user
/// database in a directory of that user's (coturn's defaults, /var/run and
/// /var/lib/turn, are root's).
public final class CoturnProcess: @unchecked Sendable {
    public let process: RunningProcess
    public let port: UInt16
    /// TURN over TLS (`turns:`), when started with a certificate.
    public let tlsPort: UInt16?
    public let secret: String
    /// The pid file and user database, removed with the process.
    private let state: URL

    /// - Parameters:
    ///   - extraArguments: more turnserver options, e.g. "--stale-nonce=2"
    ///     for nonces that expire after 2 s.
    ///   - tls: a PEM certificate and key the test user can read: coturn
    ///     then serves TURN over TLS on `tlsPort` too.
    public init(secret: String = "coturn-test-secret", extraArguments: [String] = [], tls: (certificate: URL, key: URL)? = nil) async throws {
        self.secret = secret
        port = UInt16.random(in: 20000...29000)
        let chosenTLSPort: UInt16? = tls == nil ? nil : UInt16.random(in: 30000...39000)
        tlsPort = chosenTLSPort
        let tlsArguments = tls.map { tls in
            ["--cert=\(tls.certificate.path)", "--pkey=\(tls.key.path)", "--tls-listening-port=\(chosenTLSPort ?? 0)", "--no-dtls"]
        } ?? ["--no-tls", "--no-dtls"]
        let relayBase = Int.random(in: 40000...50000)
        let state = try makeTestDirectory(prefix: "coturn")
        self.state = state
        let arguments = [
            "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port=\(port)",
            "--min-port=\(relayBase)", "--max-port=\(relayBase + 50)",
            "--use-auth-secret", "--static-auth-secret=\(secret)", "--realm=tern.test",
            "--allow-loopback-peers", "--no-cli", "--fingerprint",
            "--log-file=stdout", "--simple-log",
            "--pidfile=\(state.appendingPathComponent("turnserver.pid").path)",
            "--userdb=\(state.appendingPathComponent("turndb").path)",
        ] + tlsArguments + extraArguments
        do {
            process = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/turnserver"), arguments: arguments)
        } catch {
            removeTestItem(state)
            throw error
        }
        // Ready when it answers a STUN Binding request (RFC 8489 §5: type
        // 0x0001, no attributes, the magic cookie, a random transaction id).
        let probe = try UDPTestSocket()
        var request: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]
        for _ in 0..<12 { request.append(UInt8.random(in: 0...255)) }
        for _ in 0..<100 {
            if (try? probe.exchange(request, port: port, timeoutMilliseconds: 100)) != nil { return }
            guard process.process.isRunning else { break }
        }
        throw SocketFailure(description: "coturn did not start: \(process.stdout.text.suffix(1500))")
    }

    /// `turn:127.0.0.1:PORT?transport=...`
    public func uri(tcp: Bool = false) -> String {
        "turn:127.0.0.1:\(port)?transport=\(tcp ? "tcp" : "udp")"
    }

    /// `turns:HOST:TLSPORT?transport=tcp`, for a coturn started with `tls`.
    public func tlsURI(host: String = "127.0.0.1") -> String {
        "turns:\(host):\(tlsPort ?? 0)?transport=tcp"
    }

    // SIGKILL: the test's spawning thread has SIGTERM blocked, and
    // posix_spawn hands that mask to coturn, which then never sees it.
    deinit {
        process.killGroup()
        removeTestItem(state)
    }
}
