import Testing
import TernSTUN
@testable import TernSession

#if canImport(Glibc)
import Glibc
#endif

// RouterProbe on loopback: the kernel answers a datagram to a port nobody
// listens on with ICMP port unreachable, which the probe's connected
// socket reports. (The lab's self-test and connect.sh see routers answer
// and stay silent; docs/lab.md.)
@Suite struct RouterProbeTests {
    @Test func anAnsweringHostIsSeenWithinMilliseconds() throws {
        let probe = try #require(RouterProbe(towards: .ipv4(127, 0, 0, 1, port: 40000)))
        defer { probe.close() }
        var answered = false
        // Loopback answers at once; allow 2 s for a loaded machine.
        for _ in 0..<200 where !answered {
            answered = probe.answered()
            if !answered { usleep(10_000) }
        }
        #expect(answered)
    }

    @Test func aClosedProbeReportsNothing() throws {
        let probe = try #require(RouterProbe(towards: .ipv4(127, 0, 0, 1, port: 40000)))
        probe.close()
        #expect(!probe.answered())
    }
}
