import Foundation
import Logging
import NIOConcurrencyHelpers
import TernLAN
import TernPairing
import TernRelay
import TernRendezvous
import TernSession

/// LAN mode: with no relay, the sender runs the relay's rendezvous itself
/// (the same `RelayServer` as `tern relay`) and announces it on the local
/// network; the receiver finds it there (see docs/architecture.md, "LAN mode").
enum LANMode {
    static let logger = Logger(label: "tern.lan")

    /// How long a receiver looks for a sender when --timeout does not say.
    static let defaultDiscoveryTimeout = 10.0

    /// The sender's embedded rendezvous and its announcer.
    final class Rendezvous: @unchecked Sendable {
        let server: RelayServer
        let port: Int
        private let announcer = NIOLockedValueBox<LANAnnouncer?>(nil)
        private let started = ContinuousClock.now

        init(server: RelayServer, port: Int) {
            self.server = server
            self.port = port
        }

        /// The sender's own way in (the server listens on every address).
        func url() throws(CLIError) -> RelayURL {
            try LANMode.url(host: "127.0.0.1", port: port)
        }

        func announce(nameplate: String) async throws(CLIError) {
            do {
                let started = try await LANAnnouncer.start(nameplate: nameplate, port: UInt16(port))
                announcer.withLockedValue { $0 = started }
            } catch {
                throw CLIError(.failure, error.reason)
            }
        }

        /// Stops announcing (once paired: the nameplate is used up); returns
        /// how long the sender was announced.
        @discardableResult
        func stopAnnouncing() async -> Duration {
            let running = announcer.withLockedValue { value -> LANAnnouncer? in
                defer { value = nil }
                return value
            }
            await running?.stop()
            return ContinuousClock.now - started
        }

        func close() async {
            await stopAnnouncing()
            await server.shutdown()
        }
    }

    /// Starts the rendezvous on an ephemeral port of every address (IPv6 and
    /// IPv4 on one socket where the system allows, IPv4 alone otherwise),
    /// without STUN and TURN: ICE uses host candidates on the LAN. It serves
    /// the browser page too, as `tern relay` does.
    static func startRendezvous() async throws(CLIError) -> Rendezvous {
        var lastError: Error?
        for host in ["::", "0.0.0.0"] {
            var configuration = RelayConfiguration()
            configuration.host = host
            configuration.port = 0
            configuration.stunPort = nil
            // The page a phone on the same network opens from the QR code
            // (the receive link points here), when tern was installed with it.
            if let directory = WebApp.defaultDirectory(executable: Bundle.main.executableURL?.path ?? CommandLine.arguments[0]) {
                configuration.web = try? WebApp(directory: directory)
            }
            let server = RelayServer(configuration: configuration, logger: Logger(label: "tern.lan.rendezvous"))
            do {
                let addresses = try await server.start()
                guard let port = addresses.rendezvous.port else { throw CLIError(.failure, "no port") }
                return Rendezvous(server: server, port: port)
            } catch {
                lastError = error
                await server.shutdown()
            }
        }
        throw CLIError(.failure, "cannot start the LAN rendezvous: \(lastError.map(ErrorText.describe) ?? "no address")")
    }

    /// A fresh code for LAN mode. The nameplate is drawn from 100-999 rather
    /// than handed out smallest-first as a relay does: senders on one LAN
    /// share no allocator, and two of them must not both use "1".
    static func newCode() throws(CLIError) -> Code {
        do {
            return try Code(nameplate: String(Int.random(in: 100...999)), randomBytes: (UInt8.random(in: .min ... .max), UInt8.random(in: .min ... .max)))
        } catch {
            throw CLIError(.failure, error.reason)
        }
    }

    /// This machine's addresses as a receiver would type them after --from:
    /// IPv4 first, then IPv6 (global or ULA; a link-local one would need its
    /// interface's name on the receiver's side, which this side cannot know),
    /// so a host on an IPv6-only network still has one to give.
    static func addressesForHint() -> [String] {
        let addresses = (try? LocalAddresses.usable()) ?? []
        let v4 = addresses.filter { $0.ip.count == 4 }.map { $0.ip.map(String.init).joined(separator: ".") }
        let v6 = addresses.filter { $0.ip.count == 16 }.compactMap { ipv6Text($0.ip) }
        return v4 + v6
    }

    /// An IPv6 address in its short form (RFC 5952, as inet_ntop writes it).
    static func ipv6Text(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return nil }
        return String(cString: text)
    }

    /// `host:port` as --from takes it: an IPv6 host in brackets.
    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    // MARK: Receiver

    /// The sentence a receiver that heard nothing exits 4 with: the three ways forward.
    static func nothingHeard(nameplate: String, after seconds: Double) -> CLIError {
        CLIError(.unreachable, """
            no sender for code \(nameplate)-… answered on this network within \(formatSeconds(seconds)). \
            Ways forward: give both sides the same relay (--relay ws://HOST:4747 or TERN_RELAY), \
            ask the sender for its address and run 'tern receive --from ADDRESS', \
            or run both machines on the same network (multicast must pass between them)
            """)
    }

    /// Where `--from` points: a host alone (asked on the beacon port) or host:port (the rendezvous itself).
    static func parseFrom(_ text: String) throws(CLIError) -> (host: String, port: Int?) {
        var host = text.trimmingCharacters(in: .whitespaces)
        var port: Int?
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let rest = host[host.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let number = Int(rest.dropFirst()) else { throw badFrom(text) }
                port = number
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]) else { throw badFrom(text) }
            port = number
            host = String(host[..<colon])
        }
        if let port, !(1...65535).contains(port) { throw badFrom(text) }
        guard isNumericAddress(host) else { throw badFrom(text) }
        do {
            host = try LinkLocalZone.resolve(host, interfaces: LinkLocalZone.interfaces())
        } catch {
            throw zoneError(error, host: host)
        }
        return (host, port)
    }

    /// What is wrong with the zone of a link-local --from address.
    private static func zoneError(_ problem: LinkLocalZone.Problem, host: String) -> CLIError {
        let bare = host.split(separator: "%").first.map(String.init) ?? host
        switch problem {
        case .unknownInterface(let zone, let known):
            return CLIError(.usage, "--from \(host.prefix(80)): no interface '\(zone.prefix(32))' here has a link-local IPv6 address"
                + (known.isEmpty ? "" : " (these do: \(known.joined(separator: ", ")))"))
        case .ambiguous(let known):
            return CLIError(.usage, "--from \(bare): a link-local address needs the interface it is reached on after a %, "
                + "such as \(bare)%\(known.first ?? "eth0") (interfaces here: \(known.joined(separator: ", ")))")
        case .noInterface:
            return CLIError(.usage, "--from \(bare): no interface here has a link-local IPv6 address")
        }
    }

    private static func badFrom(_ text: String) -> CLIError {
        CLIError(.usage, "--from takes the sender's IP address, optionally with the port it printed (192.168.1.20, 192.168.1.20:41234, fd74:6e::11, [fd74:6e::11]:41234, fe80::1%eth0), got '\(text.prefix(80))'")
    }

    static func isNumericAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        let bare = host.split(separator: "%", maxSplits: 1).first.map(String.init) ?? host
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
    }

    /// The URL of a rendezvous at a numeric address (an IPv6 zone, which a
    /// URL cannot carry unescaped, is kept in `host`).
    static func url(host: String, port: Int) throws(CLIError) -> RelayURL {
        do {
            var url = try RelayURL(parsing: "ws://127.0.0.1:\(port)")
            url.host = host
            return url
        } catch {
            throw CLIError(error)
        }
    }

    /// Finds the sender of `code` on the LAN (or at `from`) and returns its
    /// rendezvous, saying what it does and how long it took.
    static func discover(code: Code, from: String?, asks: Bool, timeout: Double, output: Output) async throws -> LANRendezvous? {
        let started = ContinuousClock.now
        var found: LANRendezvous?
        if let from {
            let (host, port) = try parseFrom(from)
            if let port {
                found = LANRendezvous(host: host, port: port)
            } else {
                found = try await LANDiscovery.find(nameplate: code.nameplate, from: host, timeout: .milliseconds(Int64(timeout * 1000)))
            }
        } else {
            found = try await LANDiscovery.find(nameplate: code.nameplate, asks: asks, timeout: .milliseconds(Int64(timeout * 1000)))
        }
        guard let found else { return nil }
        let waited = Connect.milliseconds(ContinuousClock.now - started)
        output.event("found", [("host", .string(found.host)), ("port", .int(Int64(found.port))), ("waited_ms", .int(Int64(waited.rounded())))])
        output.say("Found the sender at \(hostPort(found.host, found.port)) after \(formatMilliseconds(waited)).")
        return found
    }

    static func formatMilliseconds(_ milliseconds: Double) -> String {
        milliseconds < 1000 ? "\(Int(milliseconds.rounded())) ms" : String(format: "%.1f s", milliseconds / 1000)
    }
}

extension LANError {
    var cli: CLIError { CLIError(.failure, reason) }
}
