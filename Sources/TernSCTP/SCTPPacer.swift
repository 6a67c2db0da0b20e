/// Pacing for a controller that gives a rate (`SCTPCongestionControl.pacingRate`):
/// a token bucket in bytes that turns the rate into departure times. Packets
/// leave in bursts of `quantum` worth of the rate (at least two packets),
/// and the association's deadline asks to be woken when the next burst is
/// due: at 100 Mbit/s about ten 1200-byte packets per wake-up, on a fast
/// LAN as much as the rate fills in `quantum`, so the driver's timer
/// granularity does not cap the rate. The bucket holds `depth` of the
/// rate (at least four bursts), so a timer or a loop that runs late by up
/// to that much (a loaded machine's: docs/architecture.md) costs no rate;
/// the catch-up is one larger burst after the late wake-up.
public struct SCTPPacer: Sendable {
    /// The time one burst is worth. SwiftNIO's timers fire late by tens of
    /// microseconds (docs/architecture.md): a wake-up per millisecond or less keeps
    /// that error small and the timer's cost below what it saves.
    public static let quantum: Duration = .milliseconds(1)
    /// The time of sending the bucket holds.
    public static let depth: Duration = .milliseconds(10)

    private var tokens = 0.0
    private var refilledAt: Duration?
    /// When the next burst may leave, while the bucket is empty.
    public private(set) var nextSend: Duration?

    public init() {}

    /// Bytes one burst releases at `rate` bytes per second.
    public static func burst(rate: Int, mtu: Int) -> Double {
        max(2 * Double(mtu), Double(rate) * seconds(quantum))
    }

    /// True if a packet may leave now; otherwise `nextSend` says when.
    public mutating func mayRelease(rate: Int, mtu: Int, now: Duration) -> Bool {
        let burst = Self.burst(rate: rate, mtu: mtu)
        if let last = refilledAt {
            let elapsed = min(Self.seconds(now - last), 1)
            let capacity = max(4 * burst, Double(rate) * Self.seconds(Self.depth))
            if elapsed > 0 { tokens = min(tokens + Double(rate) * elapsed, capacity) }
        } else {
            tokens = burst
        }
        refilledAt = now
        if tokens > 0 {
            nextSend = nil
            return true
        }
        schedule(burst: burst, rate: rate, now: now)
        return false
    }

    /// A packet of `bytes` left (its chunks' bytes).
    public mutating func sent(_ bytes: Int, rate: Int, mtu: Int, now: Duration) {
        tokens -= Double(bytes)
        if tokens <= 0 { schedule(burst: Self.burst(rate: rate, mtu: mtu), rate: rate, now: now) }
    }

    /// The controller stopped pacing.
    public mutating func stop() {
        tokens = 0
        refilledAt = nil
        nextSend = nil
    }

    /// Wakes when the bucket holds a whole burst again.
    private mutating func schedule(burst: Double, rate: Int, now: Duration) {
        let wait = (burst - tokens) / Double(max(rate, 1))
        nextSend = now + .nanoseconds(Int64(min(wait, 1) * 1e9) + 1)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
