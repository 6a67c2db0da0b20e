import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

/// The relay's metrics in Prometheus text format, served on
/// `--metrics-listen` only (docs/relay.md lists each one). The metrics are
/// swift-metrics types whose handlers are swift-prometheus collectors in a
/// registry of this relay's own: nothing is bootstrapped process-wide, so a
/// relay embedded in another command leaves the process's metrics alone.
///
/// Counters the hub and the server already keep (messages, refusals, STUN
/// datagrams) are brought up to date when scraped; the pairing latency is
/// recorded as each pairing happens.
final class RelayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let pairingLatency: CoreMetrics.Timer
    private let exported = ExportedTotals()

    static let latencyBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        .seconds(60), .seconds(120), .seconds(300), .seconds(600),
    ]

    init() {
        pairingLatency = CoreMetrics.Timer(
            label: "tern_relay_pairing_seconds", dimensions: [],
            handler: registry.makeDurationHistogram(
                descriptor: Self.name("pairing", unit: "seconds", "Time from a mailbox's first side to its second side joining."),
                labels: [], buckets: Self.latencyBuckets))
    }

    static func name(_ metric: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tern", subsystem: "relay", metricName: metric, unitName: unit, helpText: help)
    }

    func recordPairing(after latency: TimeAmount) {
        pairingLatency.recordNanoseconds(latency.nanoseconds)
    }

    /// A monotonic total the relay keeps, exported as a counter: adds what
    /// it grew by since the last scrape.
    private func count(_ metric: String, _ help: String, labels: [(String, String)] = [], total: Int) {
        let counter = CoreMetrics.Counter(
            label: metric, dimensions: labels,
            handler: registry.makeCounter(descriptor: Self.name(metric, unit: "total", help), labels: labels))
        let key = metric + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = exported.advance(key, to: total)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    private func gauge(_ metric: String, _ help: String, labels: [(String, String)] = [], value: Int) {
        let meter = CoreMetrics.Meter(
            label: metric, dimensions: labels,
            handler: registry.makeGauge(descriptor: Self.name(metric, unit: "", help), labels: labels))
        meter.set(value)
    }

    /// Brings every metric up to date from the relay's state and returns
    /// the exposition. Runs on the relay's event loop.
    func scrape(_ state: RelayState) -> [UInt8] {
        let stats = state.hub.statistics
        count("pairings_started", "Mailboxes opened by allocate or a first claim.", total: stats.pairingsStarted)
        count("pairings_joined", "Mailboxes whose second side arrived.", total: stats.pairingsJoined)
        count("pairings_completed", "Mailboxes removed after both sides closed happy.", total: stats.pairingsCompleted)
        for reason in ["expired", "abandoned", "scary", "lonely", "errory", "dropped"] {
            count("pairings_failed", "Mailboxes removed without both sides closing happy, by reason.",
                  labels: [("reason", reason)], total: stats.pairingsFailed[reason, default: 0])
        }
        gauge("connections", "TCP connections open, before and after the WebSocket upgrade.", value: state.openTotal)
        gauge("websocket_connections", "WebSocket connections open.", value: stats.connections)
        gauge("mailboxes", "Mailboxes open.", value: stats.mailboxes)
        gauge("nameplates", "Nameplates in use: waiting, consumed or tombstoned.", value: stats.nameplates)
        gauge("tombstones", "Nameplates refused as expired for a while.", value: stats.tombstones)
        gauge("stored_bytes", "Bytes of message bodies held in mailboxes.", value: stats.bytesStored)
        count("messages_relayed", "Mailbox messages stored.", total: stats.messagesRelayed)
        count("bytes_relayed", "Bytes of mailbox message bodies stored.", total: stats.bytesRelayed)
        count("protocol_errors", "Client frames refused with an error.", total: stats.protocolErrors)
        var refusals = stats.refusals
        for (limit, total) in state.acceptRefusals { refusals[limit, default: 0] += total }
        refusals["handshake_timeout", default: 0] += state.handshakeTimeouts
        for limit in Self.limits {
            count("refusals", "Connections and requests refused by a limit, by limit.", labels: [("limit", limit)],
                  total: refusals[limit, default: 0])
        }
        count("stun_requests", "Datagrams on the STUN port, by result.", labels: [("result", "answered")], total: state.stunCounters.answered)
        count("stun_requests", "Datagrams on the STUN port, by result.", labels: [("result", "dropped")], total: state.stunCounters.dropped)
        count("turn_credentials_issued", "TURN credentials handed out (one per side of a mailbox both sides joined).",
              total: state.turnCredentialsIssued)
        return registry.emitToBuffer()
    }

    /// Every limit `refusals_total` reports, so each series exists from the start.
    static let limits = [
        "connections", "connections_per_address", "handshake_timeout", "claims_per_address", "mailboxes",
        "mailboxes_per_address", "nameplates", "messages_per_side", "bytes_per_side", "bytes_per_address", "bytes_total",
    ]
}

/// The totals last exported, per series.
final class ExportedTotals: Sendable {
    private let totals = NIOLockedValueBox<[String: Int]>([:])

    /// Records `total` for `key` and returns how much it grew.
    func advance(_ key: String, to total: Int) -> Int {
        totals.withLockedValue { totals in
            let delta = total - totals[key, default: 0]
            totals[key] = total
            return delta
        }
    }
}
