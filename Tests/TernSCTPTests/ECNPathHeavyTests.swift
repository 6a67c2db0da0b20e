import Testing
import TernTestSupport
@testable import TernSCTP

/// ECN over the simulated bottleneck (BottleneckSimulation) in virtual
/// time: 20 Mbit/s, 40 ms round trip, a 100 ms drop-tail queue that marks
/// ECT packets CE once they wait more than 5 ms (a step AQM, as the lab's
/// delay line with --ecn 5). Several seconds of CPU: the serial Heavy phase.
struct ECNPathHeavyTests {
    typealias Simulation = BBRPathTests.Simulation

    static func run(
        _ kind: SCTPCongestionControlKind = .bbr, ecn: Bool, threshold: Duration? = .milliseconds(5), randomMarking: Double = 0,
        bytes: Int = 8 << 20
    ) throws -> Simulation {
        var path = Simulation.Path()
        path.markingThreshold = threshold
        path.randomMarking = randomMarking
        var simulation = Simulation(path: path, seed: 5)
        var configuration = BBRPathTests.configuration(kind)
        configuration.explicitCongestionNotification = ecn
        simulation.addFlow(bytes: bytes, configuration: configuration)
        try simulation.run(until: .seconds(120))
        return simulation
    }

    static func meanQueueDelay(_ simulation: Simulation) -> Duration {
        .nanoseconds(simulation.queueDelays.reduce(0, +) / Int64(max(simulation.queueDelays.count, 1)))
    }

    /// The queueing delay `percentile` of the packets after the first `skip` stayed under.
    static func queueDelay(_ simulation: Simulation, percentile: Double, skip: Int = 1000) -> Duration {
        let delays = simulation.queueDelays.dropFirst(skip).sorted()
        guard !delays.isEmpty else { return .zero }
        return .nanoseconds(delays[min(Int(Double(delays.count) * percentile), delays.count - 1)])
    }

    @Test func bbrWithECNKeepsTheQueueShorterAtTheSameRate() throws {
        let with = try Self.run(ecn: true)
        let without = try Self.run(ecn: false)
        for simulation in [with, without] {
            #expect(simulation.flows[0].received == 8 << 20 && simulation.flows[0].intact)
        }
        #expect(with.markedPackets > 0 && without.markedPackets == 0)
        #expect(with.flows[0].sides[0].statistics.echoedMarks > 0)
        let rate = (with: BBRPathTests.utilisation(with), without: BBRPathTests.utilisation(without))
        let median = (with: with.medianQueueDelay(skippingFirst: 1000), without: without.medianQueueDelay(skippingFirst: 1000))
        // Startup ends sooner (marks and a bandwidth that stopped growing)
        // and Up as soon as its queue passes the threshold: a lower worst
        // case and a lower mean. The 99th percentile after Startup is no
        // higher: with Down holding in flight to a BDP by the window, the
        // flow without ECN drains Up's queue as fast (4.6 ms both; 5.3 with
        // and 8.2 without before).
        let p99 = (with: Self.queueDelay(with, percentile: 0.99), without: Self.queueDelay(without, percentile: 0.99))
        let worst = (with: Self.queueDelay(with, percentile: 1, skip: 0), without: Self.queueDelay(without, percentile: 1, skip: 0))
        let mean = (with: Self.meanQueueDelay(with), without: Self.meanQueueDelay(without))
        print("ECN on/off: rate \(rate), p99 \(p99), worst \(worst), mean \(mean), median \(median)")
        #expect(rate.with > 0.9 && rate.with > 0.97 * rate.without, "\(rate)")
        #expect(p99.with <= p99.without, "\(p99)")
        #expect(worst.with < worst.without, "\(worst)")
        #expect(mean.with < mean.without / 2, "\(mean)")
        #expect(median.with <= .milliseconds(1), "\(median)")
        #expect(with.dropsAtQueue == 0)
    }

    @Test("a few random marks do not reduce the rate", arguments: [0.01])
    func randomMarksDoNotReduceTheRate(share: Double) throws {
        let marked = try Self.run(ecn: true, threshold: nil, randomMarking: share)
        let clean = try Self.run(ecn: true, threshold: nil)
        #expect(marked.flows[0].received == 8 << 20 && marked.flows[0].intact)
        #expect(marked.markedPackets > 0)
        let rate = (marked: BBRPathTests.utilisation(marked), clean: BBRPathTests.utilisation(clean))
        #expect(rate.marked > 0.95 * rate.clean, "\(rate)")
    }

    @Test func rfc9260TreatsMarksAsLossAndKeepsTheQueueFromOverflowing() throws {
        let with = try Self.run(.rfc9260, ecn: true, bytes: 4 << 20)
        let without = try Self.run(.rfc9260, ecn: false, bytes: 4 << 20)
        #expect(with.flows[0].intact && without.flows[0].intact)
        let sender = with.flows[0].sides[0].statistics
        #expect(sender.ecnReductions > 0)
        #expect(with.dropsAtQueue < without.dropsAtQueue)
    }
}
