import Testing
import TernTestSupport
@testable import TernSCTP

/// ECN over the simulated bottleneck (BottleneckSimulation) in virtual
/// time: a 100 ms drop-tail queue that marks ECT packets CE once they wait
/// longer than a threshold (a step AQM, as the lab's delay line with
/// --ecn). BBR responds to marks only on a short path (a minimum round
/// trip of at most 5 ms, `BBRCongestionControl.ecnEligible`): 100 Mbit/s
/// and 3 ms there, marking above 0.5 ms (a data centre's shallow
/// threshold); on the lab's 50 ms round trip (at 20 Mbit/s) the marks are
/// counted and change nothing. Several seconds of CPU: the serial Heavy phase.
struct ECNPathHeavyTests {
    typealias Simulation = BBRPathTests.Simulation

    /// The short path's one-way delay: a minimum round trip of about 3.1 ms.
    static let shortDelay: Duration = .microseconds(1500)

    static func run(
        _ kind: SCTPCongestionControlKind = .bbr, ecn: Bool, threshold: Duration? = .microseconds(500), randomMarking: Double = 0,
        bytes: Int = 8 << 20, rate: Double = 100e6 / 8, oneWayDelay: Duration = shortDelay, loss: Double = 0
    ) throws -> Simulation {
        var path = Simulation.Path()
        path.rate = rate
        path.oneWayDelay = oneWayDelay
        path.lossEachWay = loss
        path.markingThreshold = threshold
        path.randomMarking = randomMarking
        var simulation = Simulation(path: path, seed: 5)
        var configuration = BBRPathTests.configuration(kind)
        configuration.explicitCongestionNotification = ecn
        simulation.addFlow(bytes: bytes, configuration: configuration)
        try simulation.run(until: .seconds(120))
        return simulation
    }

    static func bbr(_ simulation: Simulation) -> BBRCongestionControl? {
        guard case .bbr(let controller) = simulation.flows[0].sides[0].congestion else { return nil }
        return controller
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

    @Test func onAShortPathMarksBoundInFlightAndShortenTheQueueAtTheSameRate() throws {
        let with = try Self.run(ecn: true)
        let without = try Self.run(ecn: false)
        for simulation in [with, without] {
            #expect(simulation.flows[0].received == 8 << 20 && simulation.flows[0].intact)
        }
        #expect(with.markedPackets > 0 && without.markedPackets == 0)
        #expect(with.flows[0].sides[0].statistics.echoedMarks > 0)
        let controller = try #require(Self.bbr(with))
        #expect(controller.ecnEligible, "\(String(describing: controller.minimumRoundTrip))")
        // The marks bounded in flight (Startup ended on them), none was ignored.
        #expect(controller.markedRounds > 0 && controller.ignoredMarks == 0)
        let rate = (with: BBRPathTests.utilisation(with), without: BBRPathTests.utilisation(without))
        let median = (with: with.medianQueueDelay(skippingFirst: 1000), without: without.medianQueueDelay(skippingFirst: 1000))
        let p99 = (with: Self.queueDelay(with, percentile: 0.99), without: Self.queueDelay(without, percentile: 0.99))
        let mean = (with: Self.meanQueueDelay(with), without: Self.meanQueueDelay(without))
        print("short path, ECN on/off: rate \(rate), p99 \(p99), mean \(mean), median \(median)")
        // On 3 ms BBR keeps little queue without marks (its window is 2 BDP
        // and a few packets): with them, Startup ends at the threshold and
        // the mean is lower (0.15 ms against 0.20), the rest the same.
        #expect(rate.with > 0.95 && rate.with > 0.99 * rate.without, "\(rate)")
        #expect(p99.with <= p99.without, "\(p99)")
        #expect(mean.with < mean.without, "\(mean)")
        #expect(median.with <= .milliseconds(1), "\(median)")
        #expect(with.dropsAtQueue == 0)
    }

    @Test("on a short path, a few random marks do not reduce the rate", arguments: [0.01])
    func randomMarksDoNotReduceTheRate(share: Double) throws {
        let marked = try Self.run(ecn: true, threshold: nil, randomMarking: share)
        let clean = try Self.run(ecn: true, threshold: nil)
        #expect(marked.flows[0].received == 8 << 20 && marked.flows[0].intact)
        #expect(marked.markedPackets > 0)
        #expect(Self.bbr(marked)?.ecnEligible == true && Self.bbr(marked)?.ignoredMarks == 0)
        let rate = (marked: BBRPathTests.utilisation(marked), clean: BBRPathTests.utilisation(clean))
        #expect(rate.marked > 0.95 * rate.clean, "\(rate)")
    }

    /// The lab's round trip (50 ms, at 20 Mbit/s), marking above 1 ms: a
    /// threshold BBR's own pacing bursts pass on their own. The marks are
    /// echoed and counted as before, and change nothing in the model: 0.909
    /// of the link against 0.925 without ECN (0.910 against 0.924 at 1%
    /// random loss each way); before BBR ignored them there, 0.860 (0.817).
    @Test("on a long path, marks are counted and do not reduce the rate", arguments: [0.0, 0.01])
    func longPathMarksAreCountedAndIgnored(loss: Double) throws {
        func run(ecn: Bool) throws -> Simulation {
            try Self.run(ecn: ecn, threshold: .milliseconds(1), rate: 20e6 / 8, oneWayDelay: .milliseconds(25), loss: loss)
        }
        let with = try run(ecn: true)
        let without = try run(ecn: false)
        for simulation in [with, without] {
            #expect(simulation.flows[0].received == 8 << 20 && simulation.flows[0].intact)
        }
        // The association marks, echoes and counts as before.
        #expect(with.markedPackets > 0)
        let receiver = with.flows[0].sides[1].statistics, sender = with.flows[0].sides[0].statistics
        #expect(receiver.congestionExperiencedPackets > 0 && sender.echoedMarks > 0 && sender.ecnReductions > 0)
        let controller = try #require(Self.bbr(with))
        #expect(!controller.ecnEligible && controller.markedRounds == 0)
        #expect(controller.ignoredMarks == sender.echoedMarks, "\(controller.ignoredMarks) \(sender.echoedMarks)")
        let rate = (with: BBRPathTests.utilisation(with), without: BBRPathTests.utilisation(without))
        print("long path, loss \(loss), ECN on/off: rate \(rate), marked \(with.markedPackets), packets sent \(sender.packetsSent)/\(without.flows[0].sides[0].statistics.packetsSent)")
        // What is left between the two is SCTP's, not the controller's: the
        // sender answers every echo with a CWR, which displaces the full
        // DATA chunk it would have sent and goes out in a packet of its own
        // (10,169 packets against 7,160 at 0% loss), about 1.7% of the rate.
        #expect(rate.with > 0.97 * rate.without && rate.with > 0.88, "\(rate)")
    }

    @Test func rfc9260TreatsMarksAsLossAndKeepsTheQueueFromOverflowing() throws {
        // The path of before: 20 Mbit/s, 40 ms, marking above 5 ms.
        func run(ecn: Bool) throws -> Simulation {
            try Self.run(.rfc9260, ecn: ecn, threshold: .milliseconds(5), bytes: 4 << 20, rate: 20e6 / 8, oneWayDelay: .milliseconds(20))
        }
        let with = try run(ecn: true)
        let without = try run(ecn: false)
        #expect(with.flows[0].intact && without.flows[0].intact)
        let sender = with.flows[0].sides[0].statistics
        #expect(sender.ecnReductions > 0)
        #expect(with.dropsAtQueue < without.dropsAtQueue)
    }
}
