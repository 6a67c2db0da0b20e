import Foundation
import Testing
import TernRendezvous
import TernSession
import TernTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Slowloris against a real relay process: one address (127.0.0.2) opens
/// 2,000 idle TCP connections and 2,000 WebSocket upgrades it never uses.
/// The relay holds at most its per-address cap of them, its descriptors and
/// memory stay within budget, another address (127.0.0.1) still pairs, and
/// the held ones are closed by the handshake and claim timeouts.
@Suite(.serialized) struct RelayConnectionFloodHeavyTests {
    /// Raises this process's descriptor limit so it can hold the flood.
    static func raiseDescriptorLimit(to wanted: rlim_t) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < wanted else { return }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// A non-blocking TCP connection from `source` to 127.0.0.1:`port`; with
    /// `upgrade`, it sends a WebSocket upgrade request once connected. Returns
    /// the descriptor (the caller closes it), or nil if the system refused.
    static func open(port: Int, source: String, upgrade: Bool) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var local = RawWebSocket.address(source, port: 0)
        var remote = RawWebSocket.address("127.0.0.1", port: port)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { close(fd); return nil }
        _ = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if upgrade {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&poller, 1, 1000)
            let request = "GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            _ = Array(request.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        return fd
    }

    static func descriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func residentKiB(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    @Test func idleConnectionsFromOneAddressDoNotStopAnotherFromPairing() async throws {
        Self.raiseDescriptorLimit(to: 8192)
        let relay = try await RelayProcess.start(["--handshake-timeout", "2", "--claim-timeout", "3", "--metrics-listen", "127.0.0.1:0"])
        let pid = relay.running.process.processIdentifier
        let baseline = Self.descriptors(pid: pid)
        let baselineRSS = try #require(Self.residentKiB(pid: pid))

        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        let start = Date()
        for index in 0..<4000 {
            guard let fd = Self.open(port: relay.port, source: "127.0.0.2", upgrade: index >= 2000) else { continue }
            flood.append(fd)
        }
        let opened = Date().timeIntervalSince(start)
        #expect(flood.count >= 3900, "opened \(flood.count)")

        // Another address pairs while the flood is held.
        let pairStart = Date()
        try await RelayProcessTests.pairOnce(relay: try RelayURL(parsing: relay.url), label: "beside-a-flood")
        let paired = Date().timeIntervalSince(pairStart)

        // The relay holds at most 128 of the flood's connections (per address, at accept).
        let during = Self.descriptors(pid: pid)
        let rss = try #require(Self.residentKiB(pid: pid))
        #expect(during <= baseline + 128 + 8, "relay descriptors: \(baseline) before, \(during) during the flood")
        #expect(rss - baselineRSS < 64 * 1024, "relay RSS: \(baselineRSS) KiB before, \(rss) KiB during the flood")

        let metricsPort = try RelayMetricsTests.metricsPort(relay)
        let (metrics, _) = try await RelayMetricsTests.scrape(port: metricsPort)
        let refusedAtAccept = RelayMetricsTests.value(metrics, #"tern_relay_refusals_total{limit="connections_per_address"}"#) ?? 0
        #expect(refusedAtAccept >= 3000, "\(refusedAtAccept) refused at accept")

        // Idle ones are closed by the timeouts (2 s before the upgrade, 3 s before a claim).
        var after = during
        for _ in 0..<100 {
            after = Self.descriptors(pid: pid)
            if after <= baseline + 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(after <= baseline + 2, "relay descriptors \(after) after the timeouts, \(baseline) at start")
        print("flood: \(flood.count) connections opened in \(String(format: "%.2f", opened)) s; relay descriptors \(baseline) -> \(during) -> \(after); RSS \(baselineRSS / 1024) -> \(rss / 1024) MiB; refused at accept \(Int(refusedAtAccept)); a pairing beside it took \(String(format: "%.2f", paired)) s")
        try await relay.stop()
    }
}
