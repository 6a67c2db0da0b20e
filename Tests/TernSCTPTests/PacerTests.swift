import Testing
@testable import TernSCTP

struct PacerTests {
    /// At 12.5 MB/s (100 Mbit/s) the pacer releases about 1 ms of data
    /// (ten 1200-byte packets) per wake-up and holds the rate over a second.
    @Test func releasesBurstsOfAMillisecondAtTheRate() {
        var pacer = SCTPPacer()
        let rate = 12_500_000
        var now = Duration.zero
        var sent = 0
        var wakeUps = 0
        var largestBurst = 0
        while now < .seconds(1) {
            var burst = 0
            while pacer.mayRelease(rate: rate, mtu: 1200, now: now) {
                pacer.sent(1200, rate: rate, mtu: 1200, now: now)
                burst += 1200
            }
            sent += burst
            largestBurst = max(largestBurst, burst)
            wakeUps += 1
            guard let next = pacer.nextSend else { break }
            now = next
        }
        #expect(abs(Double(sent) - Double(rate)) < 0.02 * Double(rate), "\(sent) bytes in a second")
        #expect(wakeUps > 900 && wakeUps < 1100, "\(wakeUps) wake-ups")
        #expect(largestBurst <= 2 * 12_500 + 1200, "\(largestBurst)")
    }

    /// A timer that fires late costs no rate: the bucket holds 10 ms of it.
    @Test func aLateTimerDoesNotLoseRate() {
        var pacer = SCTPPacer()
        let rate = 12_500_000
        var now = Duration.zero
        var sent = 0
        while now < .seconds(1) {
            while pacer.mayRelease(rate: rate, mtu: 1200, now: now) {
                pacer.sent(1200, rate: rate, mtu: 1200, now: now)
                sent += 1200
            }
            guard let next = pacer.nextSend else { break }
            now = next + .milliseconds(8)  // always 8 ms late
        }
        #expect(Double(sent) > 0.97 * Double(rate), "\(sent) bytes in a second")
    }
}
