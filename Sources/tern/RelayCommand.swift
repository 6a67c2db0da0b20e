import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import TernRelay
import TernSession
import TernTLS

struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a rendezvous relay: pairs senders and receivers, answers STUN, hands out TURN credentials.",
        discussion: """
            The relay sees nameplates and sealed messages only; it cannot learn the code's \
            words or read what the two sides say to each other.

            In public: serve wss:// with --tls-cert/--tls-key (or a TLS proxy in front, then \
            raise the per-address limits, since every client shares the proxy's address), run \
            coturn beside it with --turn-uri and TERN_TURN_SECRET (coturn's static-auth-secret; \
            credentials go only to the two sides of a mailbox), and keep --metrics-listen on a \
            private address. Limits per client address (an IPv4 address or IPv6 /64): 128 \
            connections, 30 nameplate requests a minute, 64 mailboxes, 8 MiB stored; a \
            connection must upgrade within 5 s and claim within 10 s. docs/relay.md explains \
            every limit and metric, and contrib/tern-relay.service is a systemd unit.

            SIGINT or SIGTERM: stop accepting, tell every client to reconnect elsewhere \
            (WebSocket close 1001), exit 0.
            """)

    @Option(name: .long, help: ArgumentHelp("Address for the WebSocket rendezvous and /health.", valueName: "host:port"))
    var listen = "0.0.0.0:4747"

    @Option(name: .long, help: ArgumentHelp("UDP address of the STUN binding responder, or 'off'.", valueName: "host:port"))
    var stunListen = "0.0.0.0:3478"

    @Option(name: .long, help: ArgumentHelp("STUN URI to announce instead of the relay's own (repeatable).", valueName: "uri"))
    var stunAdvertise: [String] = []

    @Option(name: .long, help: ArgumentHelp("TURN server URI to hand out, e.g. turn:turn.example:3478?transport=udp (repeatable).", valueName: "uri"))
    var turnUri: [String] = []

    @Option(name: .long, help: ArgumentHelp("Secret shared with the TURN server (coturn's static-auth-secret; default: $TERN_TURN_SECRET).", valueName: "secret"))
    var turnSecret: String?

    @Option(name: .long, help: ArgumentHelp("PEM certificate of the turns: servers: hand out its SHA-256 pin, so clients accept it without a public CA.", valueName: "file"),
            completion: .file())
    var turnTlsCert: String?

    @Option(name: .long, help: ArgumentHelp("Lifetime of handed-out TURN credentials.", valueName: "seconds"))
    var turnTtl = 12 * 3600

    @Option(name: .long, help: ArgumentHelp("Largest mailbox message.", valueName: "bytes"))
    var maxMessageBytes = 64 * 1024

    @Option(name: .long, help: ArgumentHelp("Remove mailboxes and waiting nameplates idle this long.", valueName: "seconds"))
    var idleTimeout = 600.0

    @Option(name: .long, help: ArgumentHelp("Messages one side may add to one mailbox.", valueName: "count"))
    var maxMessagesPerSide = 64

    @Option(name: .long, help: ArgumentHelp("Bytes one side may store in one mailbox.", valueName: "bytes"))
    var maxBytesPerSide = 1 << 20

    @Option(name: .long, help: ArgumentHelp("Bytes stored in mailboxes per client address (IPv6: per /64).", valueName: "bytes"))
    var maxBytesPerAddress = 8 << 20

    @Option(name: .long, help: ArgumentHelp("Bytes stored in mailboxes in total.", valueName: "bytes"))
    var maxBytesTotal = 512 << 20

    @Option(name: .long, help: ArgumentHelp("Close a connection that has not completed its WebSocket upgrade this long after it was accepted.", valueName: "seconds"))
    var handshakeTimeout = 5.0

    @Option(name: .long, help: ArgumentHelp("Close a WebSocket connection that has not allocated, claimed or attached this long after the upgrade.", valueName: "seconds"))
    var claimTimeout = 10.0

    @Option(name: .long, help: ArgumentHelp("Nameplate allocations and claims allowed per client address (IPv6: per /64) per minute; 0: no limit.", valueName: "count"))
    var claimsPerMinute = 30

    @Option(name: .long, help: ArgumentHelp("Abandoned allocated nameplates kept refused ('expired') per client address.", valueName: "count"))
    var maxTombstonesPerAddress = 16

    @Option(name: .long, help: ArgumentHelp("Open connections allowed per client address (IPv6: per /64), counted at accept time.", valueName: "count"))
    var maxConnectionsPerAddress = 128

    @Option(name: .long, help: ArgumentHelp("Open mailboxes allowed per client address.", valueName: "count"))
    var maxMailboxesPerAddress = 64

    @Option(name: .long, help: ArgumentHelp("Open mailboxes allowed in total.", valueName: "count"))
    var maxMailboxes = 10_000

    @Option(name: .long, help: ArgumentHelp("Open connections allowed in total (lowered to fit the descriptor limit).", valueName: "count"))
    var maxConnections = 20_000

    @Option(name: .long, help: ArgumentHelp("PEM certificate chain: serve wss:// (TLS) instead of ws://.", valueName: "file"),
            completion: .file())
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("PEM private key for --tls-cert.", valueName: "file"), completion: .file())
    var tlsKey: String?

    @Option(name: .long, help: ArgumentHelp("Serve the browser page from this directory (default: the one installed with tern).", valueName: "dir"),
            completion: .directory)
    var web: String?

    @Flag(name: .long, help: "Serve no browser page at /.")
    var noWeb = false

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDR/metrics (off unless given; keep it private).", valueName: "host:port"))
    var metricsListen: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    func validate() throws {
        guard (1...FrameLimitsBound.maxBody).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes must be between 1 and \(FrameLimitsBound.maxBody)")
        }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be above 0") }
        guard (60...(7 * 24 * 3600)).contains(turnTtl) else { throw ValidationError("--turn-ttl must be between 60 seconds and 7 days") }
        guard maxMailboxesPerAddress > 0, maxMailboxes > 0, maxConnections > 0, maxMessagesPerSide > 0, maxBytesPerSide > 0,
              maxBytesPerAddress > 0, maxBytesTotal > 0, maxConnectionsPerAddress > 0, claimsPerMinute >= 0, maxTombstonesPerAddress >= 0,
              handshakeTimeout > 0, claimTimeout > 0
        else {
            throw ValidationError("limits must be above 0")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        _ = try Self.hostPort(listen, option: "--listen")
        if stunListen != "off" { _ = try Self.hostPort(stunListen, option: "--stun-listen") }
        if let metricsListen { _ = try Self.hostPort(metricsListen, option: "--metrics-listen") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if web != nil && noWeb { throw ValidationError("--web and --no-web exclude each other") }
        if turnTlsCert != nil && turnUri.isEmpty { throw ValidationError("--turn-tls-cert needs --turn-uri") }
        if !turnUri.isEmpty && (turnSecret ?? ProcessInfo.processInfo.environment["TERN_TURN_SECRET"]) == nil {
            throw ValidationError("--turn-uri needs --turn-secret or TERN_TURN_SECRET")
        }
    }

    func run() async throws {
        do {
            try await serve()
        } catch let error as CLIError {
            // Send and receive say their errors through Output; the relay's
            // (a bad --tls-cert or --web before the logger has a listener)
            // would otherwise end with only the exit status.
            FileHandle.standardError.write(Data("tern: \(error.message)\n".utf8))
            throw error
        }
    }

    private func serve() async throws {
        var configuration = RelayConfiguration()
        (configuration.host, configuration.port) = try Self.hostPort(listen, option: "--listen")
        if stunListen == "off" {
            configuration.stunPort = nil
        } else {
            let (host, port) = try Self.hostPort(stunListen, option: "--stun-listen")
            configuration.stunHost = host
            configuration.stunPort = port
        }
        configuration.stunAdvertise = stunAdvertise
        if let metricsListen {
            (configuration.metricsHost, configuration.metricsPort) = try Self.hostPort(metricsListen, option: "--metrics-listen")
        }
        if !turnUri.isEmpty, let secret = turnSecret ?? ProcessInfo.processInfo.environment["TERN_TURN_SECRET"] {
            configuration.turn = TURNConfiguration(uris: turnUri, secret: Array(secret.utf8), ttl: turnTtl)
            if let turnTlsCert {
                do {
                    configuration.turn?.tlsPin = try TLSCertificatePin.ofCertificate(pemFile: turnTlsCert).description
                } catch {
                    throw CLIError(.usage, "cannot pin the TURN server's certificate: \(error.reason)")
                }
            }
        }
        if let tlsCert, let tlsKey {
            do {
                configuration.tls = try TLSContext.server(certificateChainFile: tlsCert, privateKeyFile: tlsKey)
            } catch {
                throw CLIError(.usage, "cannot serve TLS: \(error.reason)")
            }
        }
        if let web {
            do {
                configuration.web = try WebApp(directory: web)
            } catch {
                throw CLIError(.usage, "cannot serve the browser page: \(ErrorText.describe(error))")
            }
        } else if !noWeb, let directory = WebApp.defaultDirectory(executable: Bundle.main.executableURL?.path ?? CommandLine.arguments[0]) {
            // The installed page; a relay without one serves none, and says so below.
            configuration.web = try? WebApp(directory: directory)
        }
        configuration.limits.maxMessageBytes = maxMessageBytes
        configuration.limits.idleLifetime = .nanoseconds(Int64(idleTimeout * 1e9))
        configuration.limits.maxMailboxesPerAddress = maxMailboxesPerAddress
        configuration.limits.maxMailboxes = maxMailboxes
        configuration.limits.maxConnections = maxConnections
        configuration.limits.maxMessagesPerSide = maxMessagesPerSide
        configuration.limits.maxBytesPerSide = maxBytesPerSide
        configuration.limits.maxBytesPerAddress = maxBytesPerAddress
        configuration.limits.maxBytesTotal = maxBytesTotal
        configuration.limits.handshakeTimeout = .nanoseconds(Int64(handshakeTimeout * 1e9))
        configuration.limits.claimTimeout = .nanoseconds(Int64(claimTimeout * 1e9))
        configuration.limits.claimsPerMinute = claimsPerMinute
        configuration.limits.maxTombstonesPerAddress = maxTombstonesPerAddress
        configuration.limits.maxConnectionsPerAddress = maxConnectionsPerAddress

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = LogfmtHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "tern.relay")
        let signals = TerminationSignals()
        let server = RelayServer(configuration: configuration, logger: logger)
        do {
            _ = try await server.start()
            logger.info("browser page", metadata: ["web": "\(configuration.web?.directory ?? "none")"])
        } catch {
            logger.error("could not start the relay", metadata: ["error": "\(ErrorText.describe(error))"])
            throw CLIError(.failure, "could not start the relay: \(ErrorText.describe(error))")
        }
        await signals.wait()
        logger.info("shutting down")
        await server.shutdown()
    }

    static func hostPort(_ text: String, option: String) throws -> (String, Int) {
        var host = "0.0.0.0"
        var portText = text
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if host.isEmpty { host = "0.0.0.0" }
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("\(option) takes HOST:PORT, got '\(text)'")
        }
        return (host, port)
    }
}

enum FrameLimitsBound {
    static let maxBody = 1 << 20
}

/// SIGINT and SIGTERM, caught from the moment this is made (so a signal that
/// comes while the server starts is not lost, nor fatal) until `wait()` sees one.
final class TerminationSignals: @unchecked Sendable {
    private let lock = NIOLockedValueBox<(arrived: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [lock] in
                let waiter = lock.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                    defer { state = (true, nil) }
                    return state.waiter
                }
                waiter?.resume()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Returns once SIGINT or SIGTERM has arrived (at once if one already has).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let arrived = lock.withLockedValue { state -> Bool in
                if !state.arrived { state.waiter = continuation }
                return state.arrived
            }
            if arrived { continuation.resume() }
        }
    }
}
