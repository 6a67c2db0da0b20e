import Testing
import TernSTUN

@Suite("Client transaction retransmission timing")
struct TransactionTests {
    @Test func defaultScheduleMatchesRFC8489() {
        // RFC 8489 §6.2.1: "requests would be sent at times 0 ms, 500 ms, 1500 ms,
        // 3500 ms, 7500 ms, 15500 ms, and 31500 ms ... timed out after 39500 ms".
        let schedule = STUNTransaction.schedule()
        #expect(schedule.transmissions == [0, 500, 1500, 3500, 7500, 15500, 31500].map { Duration.milliseconds($0) })
        #expect(schedule.timeout == .milliseconds(39_500))
    }

    @Test func scheduleFollowsConfiguredRTOAndCounts() {
        let schedule = STUNTransaction.schedule(.init(initialRTO: .milliseconds(100), maxTransmissions: 3, finalWaitMultiplier: 4))
        #expect(schedule.transmissions == [0, 100, 300].map { Duration.milliseconds($0) })
        #expect(schedule.timeout == .milliseconds(700))
    }

    @Test func pollingStepByStepFromAnArbitraryStart() {
        let start = Duration.seconds(1000)
        var transaction = STUNTransaction(now: start)
        #expect(transaction.deadline == start)
        #expect(transaction.poll(now: start) == .transmit)
        #expect(transaction.transmissions == 1)
        #expect(transaction.poll(now: start) == .wait(until: start + .milliseconds(500)))
        #expect(transaction.poll(now: start + .milliseconds(499)) == .wait(until: start + .milliseconds(500)))
        #expect(transaction.poll(now: start + .milliseconds(500)) == .transmit)
        #expect(transaction.deadline == start + .milliseconds(1500))
        #expect(transaction.transmissions == 2)
    }

    @Test func completeStopsRetransmission() {
        var transaction = STUNTransaction(now: .zero)
        #expect(transaction.poll(now: .zero) == .transmit)
        transaction.complete()
        #expect(transaction.deadline == nil)
        #expect(transaction.transmissions == 1)
        #expect(transaction.poll(now: .seconds(100)) == .completed)
    }

    @Test func timedOutStaysTimedOut() {
        var transaction = STUNTransaction(now: .zero)
        let schedule = STUNTransaction.schedule()
        for time in schedule.transmissions {
            #expect(transaction.poll(now: time) == .transmit)
        }
        #expect(transaction.poll(now: schedule.timeout - .milliseconds(1)) == .wait(until: schedule.timeout))
        #expect(transaction.poll(now: schedule.timeout) == .timedOut)
        #expect(transaction.deadline == nil)
        #expect(transaction.transmissions == 7)
        #expect(transaction.poll(now: .seconds(1_000_000)) == .timedOut)
    }

    @Test func reliableTransportSendsOnceAndWaits39500Milliseconds() {
        let schedule = STUNTransaction.schedule(.init(reliable: true))
        #expect(schedule.transmissions == [.zero])
        #expect(schedule.timeout == .milliseconds(39_500))
    }
}
