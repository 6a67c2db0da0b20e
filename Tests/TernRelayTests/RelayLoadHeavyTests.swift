import Foundation
import NIOConcurrencyHelpers
import Testing
import TernPairing
import TernRendezvous
import TernSession
import TernTestSupport

/// 500 pairings at once through one relay process (a load test: it runs in
/// the serial Heavy phase, where nothing else competes for the cores).
@Suite(.serialized) struct RelayLoadHeavyTests {
    struct TimedOut: Error, CustomStringConvertible {
        var description: String
    }

    /// Every one completes, every sealed message arrives once. Prints the
    /// rate and the relay's peak memory. The relay's handshake and claim
    /// timeouts are lifted (the test is about concurrency, not about slow
    /// clients), and the pairings run under a watchdog: a pairing whose
    /// peer never comes waits for it without end, so a failure must end the
    /// test rather than hang the run.
    @Test func fiveHundredConcurrentPairings() async throws {
        let relay = try await RelayProcess.start([
            "--max-mailboxes-per-address", "2000", "--max-connections-per-address", "2000", "--claims-per-minute", "0",
            "--max-bytes-per-address", "\(64 << 20)", "--handshake-timeout", "120", "--claim-timeout", "120",
        ])
        let url = try RelayURL(parsing: relay.url)
        let count = 500
        let start = Date()
        let work = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask { try await RelayProcessTests.pairOnce(relay: url, label: "load-\(index)") }
                }
                try await group.waitForAll()
            }
        }
        let finished = NIOLockedValueBox<Result<Void, Error>?>(nil)
        let watcher = Task {
            let result = await work.result
            finished.withLockedValue { $0 = result }
        }
        let deadline = Date().addingTimeInterval(240)
        while finished.withLockedValue({ $0 }) == nil && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        guard let result = finished.withLockedValue({ $0 }) else {
            // Stopping the relay closes every connection, so the stuck
            // pairings end with an error instead of waiting on.
            work.cancel()
            try await relay.stop()
            watcher.cancel()
            throw TimedOut(description: "500 pairings did not finish within 240 s")
        }
        try result.get()
        let seconds = Date().timeIntervalSince(start)
        let (health, _) = try await httpGet(port: relay.port, path: "/health")
        // Four messages per pairing (share, tag, each way) plus offer and answer.
        #expect(health.contains(#""messages":\#(count * 6)"#), "\(health)")
        #expect(health.contains(#""protocol_errors":0"#), "\(health)")
        let pid = relay.running.process.processIdentifier
        let peak = peakMemoryKiB(pid: pid)
        let cpu = cpuSeconds(pid: pid)
        print("load: \(count) concurrent pairings in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", Double(count) / seconds)) pairings/s; relay peak RSS \(peak.map { "\($0 / 1024) MiB" } ?? "unknown"), relay CPU \(cpu.map { String(format: "%.2f s", $0) } ?? "unknown")")
        try await relay.stop()
    }
}
