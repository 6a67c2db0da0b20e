import Testing
@testable import TernSCTP

struct SendQueueTests {
    @Test func messagesAreCutIntoFragmentsWithConsecutiveTSNsAndPerStreamSSNs() {
        var queue = SCTPSendQueue()
        queue.enqueue(stream: 1, ppid: 53, payload: Array(0..<10), now: .zero)
        queue.enqueue(stream: 1, ppid: 51, payload: [42], now: .zero)
        #expect(queue.bufferedAmount[1] == 11)
        var tsn = TSN(7)
        var fragments: [SCTPFragment] = []
        while let next = queue.nextFragment(tsn: tsn, maximumPayload: 4) {
            fragments.append(next.fragment)
            tsn = tsn.next
        }
        #expect(fragments.map(\.payload.count) == [4, 4, 2, 1])
        #expect(fragments.map(\.tsn.value) == [7, 8, 9, 10])
        #expect(fragments.map { "\($0.beginning ? "B" : "")\($0.ending ? "E" : "")" } == ["B", "", "E", "BE"])
        #expect(fragments.map(\.ssn.value) == [0, 0, 0, 1])
        #expect(queue.bufferedAmount[1] == 0 && queue.isEmpty)
    }

    @Test func streamsTakeTurnsMessageByMessage() {
        var queue = SCTPSendQueue()
        for stream: UInt16 in [1, 1, 3, 3] { queue.enqueue(stream: stream, ppid: 53, payload: [UInt8(stream)], now: .zero) }
        var order: [UInt16] = []
        while let next = queue.nextFragment(tsn: TSN(0), maximumPayload: 100) { order.append(next.fragment.stream) }
        #expect(order == [1, 3, 1, 3])
    }

    @Test func expiredLifetimeMessagesAreDroppedBeforeSending() {
        var queue = SCTPSendQueue()
        queue.enqueue(stream: 1, ppid: 53, payload: [1], reliability: .lifetime(.milliseconds(100)), now: .zero)
        queue.enqueue(stream: 1, ppid: 53, payload: [2], now: .zero)
        queue.dropExpired(now: .milliseconds(100))
        let next = queue.nextFragment(tsn: TSN(0), maximumPayload: 10)
        #expect(next?.fragment.payload == [2])
        #expect(queue.totalBuffered == 0)
    }
}

struct RetransmissionQueueTests {
    func sack(_ q: inout SCTPRetransmissionQueue, _ cumulative: UInt32, _ gaps: [(start: UInt16, end: UInt16)] = [], at now: Duration) throws -> SCTPRetransmissionQueue.SACKOutcome {
        let outcome = q.handleSACK(cumulative: TSN(cumulative), gapBlocks: gaps, now: now)
        return try #require(outcome)
    }

    /// A queue with `count` one-byte... 100-byte chunks sent at time zero, TSNs from 1.
    func queue(_ count: Int, reliability: SCTPReliability = .reliable, sentAt: Duration = .zero) -> SCTPRetransmissionQueue {
        var send = SCTPSendQueue()
        var queue = SCTPRetransmissionQueue(initialTSN: TSN(1))
        for _ in 0..<count { send.enqueue(stream: 0, ppid: 53, payload: [UInt8](repeating: 0, count: 100), reliability: reliability, now: .zero) }
        while let fragment = send.nextFragment(tsn: queue.nextTSN, maximumPayload: 1000) { queue.sent(fragment, now: sentAt) }
        return queue
    }

    @Test func aCumulativeSACKRemovesChunksAndMeasuresTheRoundTrip() throws {
        var q = queue(4)
        #expect(q.flightSize == 400)
        let outcome = try sack(&q, 2, at: .milliseconds(30))
        #expect(outcome.newlyAcknowledgedBytes == 200 && outcome.cumulativeAdvanced)
        #expect(outcome.roundTrip == .milliseconds(30))
        #expect(q.flightSize == 200 && q.outstandingCount == 2)
        let bad = q.handleSACK(cumulative: TSN(9), gapBlocks: [], now: .zero)
        #expect(bad == nil, "acknowledging what was never sent")
    }

    @Test func threeMissIndicationsTriggerOneFastRetransmit() throws {
        var q = queue(6)
        // TSN 1 lost; 2, 3, 4 arrive one SACK at a time.
        for (end, expected) in [(UInt16(1), 0), (UInt16(2), 0), (UInt16(3), 1)] {
            let outcome = try sack(&q, 0, [(start: 2, end: end + 1)], at: .milliseconds(10))
            #expect(outcome.fastRetransmits == expected, "after gap up to \(end + 1)")
        }
        let entered = q.enterFastRecovery()
        let again = q.enterFastRecovery()
        #expect(entered && !again, "once per recovery")
        let first = q.nextRetransmission(now: .milliseconds(20))
        let resent = try #require(first)
        #expect(resent.fragment.tsn == TSN(1))
        let none = q.nextRetransmission(now: .milliseconds(20))
        #expect(none == nil)
        // Karn: the resent chunk gives no RTT sample.
        let outcome = try sack(&q, 6, at: .milliseconds(40))
        #expect(outcome.roundTrip == .milliseconds(40), "from TSN 5/6, sent once")
        #expect(!q.inFastRecovery)
    }

    /// The tail timer: a hole below a gap-acknowledged chunk, unacknowledged
    /// for `age` since it was sent, is lost; one sent later is not yet;
    /// with no such hole the newest chunk in flight is resent as a probe,
    /// not counted as lost, and only when a probe is allowed.
    @Test func theTailTimerMarksOldHolesLostAndOtherwiseProbesTheNewestChunk() throws {
        var q = queue(5)
        // TSNs 1 and 3 missing below 4, which arrived; 5 unknown.
        _ = try sack(&q, 0, [(start: 2, end: 2), (start: 4, end: 4)], at: .milliseconds(40))
        #expect(q.flightSize == 300)
        let early = q.tailTimerExpired(now: .milliseconds(40), age: .milliseconds(50))
        #expect(early == .probe, "no hole is old enough yet: the newest chunk goes again")
        #expect(q.flightSize == 200 && q.nextRetransmission(now: .milliseconds(40))?.fragment.tsn == TSN(5))
        let outcome = q.tailTimerExpired(now: .milliseconds(60), age: .milliseconds(50))
        #expect(outcome == .lost(chunks: 2, bytes: 200))
        #expect(q.flightSize == 100, "TSN 5, resent at 40 ms, is still in flight")
        let first = q.nextRetransmission(now: .milliseconds(60))?.fragment.tsn
        let second = q.nextRetransmission(now: .milliseconds(60))?.fragment.tsn
        #expect(first == TSN(1) && second == TSN(3))
        // Their resends are judged from when they went: not lost at 100 ms, lost at 110.
        #expect(q.tailTimerExpired(now: .milliseconds(100), age: .milliseconds(50), probe: false) == .nothing)
        #expect(q.tailTimerExpired(now: .milliseconds(110), age: .milliseconds(50), probe: false) == .lost(chunks: 2, bytes: 200))
        // Everything acknowledged: nothing left to do.
        _ = q.nextRetransmission(now: .milliseconds(110))
        _ = q.nextRetransmission(now: .milliseconds(110))
        _ = try sack(&q, 5, at: .milliseconds(150))
        #expect(q.tailTimerExpired(now: .seconds(1), age: .milliseconds(50)) == .nothing)
    }

    @Test func aTimeoutMarksEverythingInFlightForRetransmission() throws {
        var q = queue(3)
        _ = try sack(&q, 0, [(start: 2, end: 2)], at: .zero)
        q.timerExpired()
        #expect(q.flightSize == 0)
        let first = q.nextRetransmission(now: .seconds(1))?.fragment.tsn
        let second = q.nextRetransmission(now: .seconds(1))?.fragment.tsn
        #expect(first == TSN(1))
        #expect(second == TSN(3), "TSN 2 was gap-acknowledged")
        #expect(q.flightSize == 200)
    }

    @Test func partiallyReliableChunksAreAbandonedAndForwardTSNSkipsThem() throws {
        var q = queue(3, reliability: .maxRetransmits(0))
        q.timerExpired()
        let resent = q.nextRetransmission(now: .seconds(1))
        #expect(resent == nil, "zero retransmissions allowed")
        let announced = q.forwardTSN()
        let forward = try #require(announced)
        #expect(forward.newCumulative == TSN(3))
        #expect(forward.skipped.map(\.stream) == [0])
        #expect(forward.skipped.first?.ssn == SSN(2))
        #expect(q.flightSize == 0)
    }
}
