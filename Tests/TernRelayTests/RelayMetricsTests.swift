import Foundation
import Testing
import TernRendezvous
import TernSession
import TernTestSupport

/// `/metrics` of a real relay process, read the way Prometheus reads it.
@Suite struct RelayMetricsTests {
    static func metricsPort(_ relay: RelayProcess) throws -> Int {
        let line = relay.running.stderr.text.split(separator: "\n").first { $0.contains("relay listening") } ?? ""
        let field = line.split(separator: " ").first { $0.hasPrefix("metrics_port=") }
        return try #require(field.flatMap { Int($0.dropFirst("metrics_port=".count)) }, "\(line)")
    }

    static func scrape(port: Int, path: String = "/metrics") async throws -> (String, String) {
        let curl = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/curl"), arguments: ["-s", "-i", "-m", "5", "http://127.0.0.1:\(port)\(path)"])
        _ = try await curl.wait()
        let parts = curl.stdout.text.components(separatedBy: "\r\n\r\n")
        return (parts.count > 1 ? parts[1] : "", parts.first ?? "")
    }

    /// The value of one sample line, `name{labels} value`.
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func metricsAreServedOnlyOnTheMetricsListener() async throws {
        let plain = try await RelayProcess.start()
        #expect(plain.running.stderr.text.contains("metrics_port=off"))
        let (_, status) = try await httpGet(port: plain.port, path: "/metrics")
        #expect(status.contains("404"))
        try await plain.stop()
    }

    @Test func pairingsMessagesRefusalsAndLatencyAreCounted() async throws {
        let relay = try await RelayProcess.start(["--metrics-listen", "127.0.0.1:0", "--max-mailboxes-per-address", "1"])
        let port = try Self.metricsPort(relay)
        let url = try RelayURL(parsing: relay.url)
        try await RelayProcessTests.pairOnce(relay: url, label: "metrics")
        // A refusal by a limit: a second mailbox from this address while one is open.
        let (holder, holderFramesStart) = try await RelayProcessTests.connect(relay)
        var holderFrames = holderFramesStart
        try await holder.send(.allocate(side: .random()))
        _ = try await holderFrames.next()
        let (extra, extraFramesStart) = try await RelayProcessTests.connect(relay)
        var extraFrames = extraFramesStart
        try await extra.send(.allocate(side: .random()))
        guard case .error(.limit, _)? = try await extraFrames.next() else { Issue.record("no refusal"); return }

        // The pairing's mailbox is removed once both sides closed; wait for that.
        var text = ""
        for _ in 0..<50 {
            (text, _) = try await Self.scrape(port: port)
            if Self.value(text, "tern_relay_pairings_completed_total") == 1 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(text.contains("# TYPE tern_relay_pairings_started_total counter"))
        #expect(Self.value(text, "tern_relay_pairings_started_total") == 2, "\(text)")
        #expect(Self.value(text, "tern_relay_pairings_joined_total") == 1)
        #expect(Self.value(text, "tern_relay_pairings_completed_total") == 1)
        #expect(Self.value(text, #"tern_relay_pairings_failed_total{reason="scary"}"#) == 0)
        #expect(Self.value(text, "tern_relay_messages_relayed_total") == 6)
        #expect((Self.value(text, "tern_relay_bytes_relayed_total") ?? 0) > 0)
        #expect(Self.value(text, #"tern_relay_refusals_total{limit="mailboxes_per_address"}"#) == 1)
        #expect(Self.value(text, "tern_relay_mailboxes") == 1)
        #expect(Self.value(text, "tern_relay_pairing_seconds_count") == 1)
        #expect(Self.value(text, #"tern_relay_pairing_seconds_bucket{le="+Inf"}"#) == 1)
        #expect(Self.value(text, "tern_relay_turn_credentials_issued_total") == 0)
        // A counter does not count twice across scrapes.
        let (again, _) = try await Self.scrape(port: port)
        #expect(Self.value(again, "tern_relay_messages_relayed_total") == 6)
        let (_, missing) = try await Self.scrape(port: port, path: "/health")
        #expect(missing.contains("404"))
        await holder.close()
        await extra.close()
        try await relay.stop()
    }
}
