import Testing
import TernTestSupport
@testable import TernSCTP

/// Flows sharing one bottleneck in virtual time, as the lab's fairness
/// runs do (scripts/bench-lossy.sh with BENCH_LOSSES=none): the lab's
/// round trip (50 ms) and queue (100 ms, two round trips of buffer) at a
/// fifth of its rate, so a second of virtual time costs a fifth of the CPU.
/// Each share is of the bytes delivered over a window in which both flows
/// run, after the second has had time to settle.
struct BBRFairnessHeavyTests {
    typealias Simulation = BBRPathTests.Simulation

    static func configuration(_ kind: SCTPCongestionControlKind = .bbr) -> Simulation.Association.Configuration {
        var configuration = Simulation.Association.Configuration(receiveWindow: 6 << 20)
        configuration.congestionControl = kind
        return configuration
    }

    static func path() -> Simulation.Path {
        var path = Simulation.Path()
        path.rate = 20e6 / 8
        path.oneWayDelay = .milliseconds(25)
        path.queue = .milliseconds(100)
        return path
    }

    /// The first flow's share of the bytes both delivered from `from` to `to`,
    /// the second flow starting at `secondStart`.
    static func share(
        _ first: SCTPCongestionControlKind, _ second: SCTPCongestionControlKind, secondStart: Duration = .zero,
        from: Duration, to: Duration, seed: UInt64 = 11
    ) throws -> Double {
        var simulation = Simulation(path: path(), seed: seed)
        simulation.addFlow(bytes: 1 << 30, configuration: Self.configuration(first))
        if secondStart > .zero { try simulation.run(until: secondStart) }
        simulation.addFlow(bytes: 1 << 30, configuration: Self.configuration(second))
        try simulation.run(until: from)
        let before = simulation.flows.map(\.received)
        var samples: [String] = []
        var t = from
        while t < to {
            t = min(t + .seconds(5), to)
            try simulation.run(until: t)
            samples.append("\(t): \(simulation.flows.map { $0.received / 1000 })")
        }
        let intact = simulation.flows.allSatisfy { $0.intact }
        #expect(intact)
        let a = Double(simulation.flows[0].received - before[0]), b = Double(simulation.flows[1].received - before[1])
        print("\(first) + \(second) (second at \(secondStart)): \(a / (a + b)) of \((a + b) / 1e6) MB; \(samples); drops \(simulation.dropsAtQueue), median queue \(simulation.medianQueueDelay())")
        return a / (a + b)
    }

    /// Both flows' Startup fills the queue and neither drains it, so the
    /// smallest round trip either sees includes the other's queue. Renewing
    /// an expired minimum with whatever round trip came next kept that
    /// queue in the estimate: losses then read as random (no queue above
    /// the "minimum"), the flow losing more than 20% alone cut its bounds,
    /// and the first flow took 0.88 of the bytes. With ProbeRTT renewing it
    /// from a drained flight, 0.54.
    @Test func twoFlowsStartedTogether() throws {
        let share = try Self.share(.bbr, .bbr, from: .seconds(10), to: .seconds(40))
        #expect(share > 0.4 && share < 0.6, "\(share)")
    }
}
