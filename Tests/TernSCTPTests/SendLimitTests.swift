import Testing
import TernTestSupport
@testable import TernSCTP

/// The counters of what stopped a send (`SCTPAssociation.Statistics`), over
/// the simulated bottleneck (20 Mbit/s, 40 ms round trip): each reason
/// counts where it is the one that holds the sender back, and only there.
struct SendLimitTests {
    typealias Simulation = BottleneckSimulation<SelectableCongestionControl>

    static func run(_ kind: SCTPCongestionControlKind, receiveWindow: Int) throws -> SCTPAssociation<SelectableCongestionControl>.Statistics {
        var simulation = Simulation(path: Simulation.Path(), seed: 3)
        var configuration = Simulation.Association.Configuration(receiveWindow: receiveWindow)
        configuration.congestionControl = kind
        simulation.addFlow(bytes: 2 << 20, configuration: configuration)
        try simulation.run(until: .seconds(30))
        let flow = simulation.flows[0]
        #expect(flow.received == 2 << 20 && flow.intact)
        return flow.sides[0].statistics
    }

    @Test func aPacedSenderCountsThePacerAndNotTheReceiveWindow() throws {
        let statistics = try Self.run(.bbr, receiveWindow: 4 << 20)
        #expect(statistics.limitedByPacing > 0)
        #expect(statistics.limitedByReceiveWindow == 0)
        // The last message sent, the queue is empty while the rest is in flight.
        #expect(statistics.limitedByApplication > 0)
    }

    @Test func anUnpacedSenderCountsItsCongestionWindow() throws {
        let statistics = try Self.run(.rfc9260, receiveWindow: 4 << 20)
        #expect(statistics.limitedByCongestionWindow > 0)
        #expect(statistics.limitedByPacing == 0 && statistics.limitedByReceiveWindow == 0)
    }

    @Test func aSmallReceiveWindowIsCounted() throws {
        // Little more than one 256 KiB message with its fragments' charge:
        // the receiver holds most of it until its last fragment arrives.
        let statistics = try Self.run(.bbr, receiveWindow: 384 << 10)
        #expect(statistics.limitedByReceiveWindow > 0)
    }
}
