import Testing
@testable import TernSCTP

struct DataTrackerTests {
    @Test func inOrderTSNsMoveTheCumulativeAckAndEverySecondPacketAsksForASACK() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(100))
        #expect(tracker.cumulativeTSN == TSN(99))
        #expect(tracker.observe(TSN(100)) == .new)
        tracker.packetWithDataReceived(now: .zero)
        #expect(!tracker.sackDue)
        #expect(tracker.delayedAckDeadline == .milliseconds(200))
        #expect(tracker.observe(TSN(101)) == .new)
        tracker.packetWithDataReceived(now: .milliseconds(1))
        #expect(tracker.sackDue)
        #expect(tracker.cumulativeTSN == TSN(101))
        #expect(tracker.gapBlocks.isEmpty)
        tracker.sackSent()
        #expect(!tracker.sackDue)
        // One packet, then the 200 ms delayed-ack timer.
        _ = tracker.observe(TSN(102))
        tracker.packetWithDataReceived(now: .seconds(1))
        tracker.advanceTime(now: .seconds(1) + .milliseconds(199))
        #expect(!tracker.sackDue)
        tracker.advanceTime(now: .seconds(1) + .milliseconds(200))
        #expect(tracker.sackDue)
    }

    @Test func gapsAreReportedAsBlocksAndFilledGapsMoveTheCumulativeAck() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(1))
        for tsn: UInt32 in [1, 3, 4, 6, 9] { _ = tracker.observe(TSN(tsn)) }
        #expect(tracker.sackDue, "a gap asks for a SACK at once")
        #expect(tracker.cumulativeTSN == TSN(1))
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[2, 3], [5, 5], [8, 8]])
        _ = tracker.observe(TSN(2))
        #expect(tracker.cumulativeTSN == TSN(4))
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[2, 2], [5, 5]])
        _ = tracker.observe(TSN(5))
        _ = tracker.observe(TSN(7))
        _ = tracker.observe(TSN(8))
        #expect(tracker.cumulativeTSN == TSN(9))
        #expect(tracker.gapBlocks.isEmpty)
    }

    /// A new gap is reported at once (fast retransmit counts the reports);
    /// data that only extends what arrived above it is acknowledged every
    /// second packet, as in-order data is, and waits for the read batch.
    @Test func aNewGapIsUrgentAndDataAboveItIsAcknowledgedEverySecondPacket() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(1))
        _ = tracker.observe(TSN(1))
        tracker.packetWithDataReceived(now: .zero)
        _ = tracker.observe(TSN(3))  // 2 is missing
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.sackDue && tracker.urgentSACKDue)
        tracker.sackSent()
        _ = tracker.observe(TSN(4))
        tracker.packetWithDataReceived(now: .zero)
        #expect(!tracker.sackDue, "one packet above the same gap: not yet")
        _ = tracker.observe(TSN(5))
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.sackDue && !tracker.urgentSACKDue, "the second: due, with the batch")
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[2, 4]])
        tracker.sackSent()
        _ = tracker.observe(TSN(7))  // a second gap: 6
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.urgentSACKDue)
        tracker.sackSent()
        _ = tracker.observe(TSN(4))  // a duplicate
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.urgentSACKDue)
    }

    /// A chunk below the highest TSN received fills (part of) a gap: most
    /// likely a retransmission the sender's recovery waits on, acknowledged
    /// with the next packet rather than every second one or at the
    /// delayed-SACK timer.
    @Test func aChunkThatFillsAGapIsAcknowledgedAtOnce() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(1))
        for tsn: UInt32 in [1, 3, 5, 6] { _ = tracker.observe(TSN(tsn)) }
        tracker.packetWithDataReceived(now: .zero)
        tracker.sackSent()
        _ = tracker.observe(TSN(4))  // between two received ranges
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.sackDue, "one packet, filling part of a gap")
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[2, 5]])
        tracker.sackSent()
        _ = tracker.observe(TSN(2))  // the last hole: everything is in order now
        tracker.packetWithDataReceived(now: .zero)
        #expect(tracker.sackDue && tracker.cumulativeTSN == TSN(6) && tracker.gapBlocks.isEmpty)
        tracker.sackSent()
        _ = tracker.observe(TSN(7))  // in order, no gap: every second packet, as before
        tracker.packetWithDataReceived(now: .zero)
        #expect(!tracker.sackDue)
    }

    @Test func duplicatesAreReportedOnceEach() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(10))
        _ = tracker.observe(TSN(10))
        _ = tracker.observe(TSN(12))
        #expect(tracker.observe(TSN(10)) == .duplicate)
        #expect(tracker.observe(TSN(12)) == .duplicate)
        #expect(tracker.observe(TSN(9)) == .duplicate)
        #expect(tracker.takeDuplicates() == [TSN(10), TSN(12), TSN(9)])
        #expect(tracker.takeDuplicates().isEmpty)
    }

    @Test func tsnsWrapAroundTwoToTheThirtyTwo() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(UInt32.max - 1))
        _ = tracker.observe(TSN(UInt32.max - 1))
        _ = tracker.observe(TSN(1))
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[3, 3]])
        _ = tracker.observe(TSN(UInt32.max))
        _ = tracker.observe(TSN(0))
        #expect(tracker.cumulativeTSN == TSN(1))
        #expect(tracker.hasReceived(TSN(0)) && !tracker.hasReceived(TSN(2)))
    }

    @Test func farAheadTSNsAndTooManyGapsAreRefusedNotTracked() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(0), limits: SCTPLimits(maximumTSNDistance: 1000))
        #expect(tracker.observe(TSN(5000)) == .outOfWindow)
        for offset in stride(from: UInt32(2), to: 2 * UInt32(tracker.maximumRanges) + 2, by: 2) {
            _ = tracker.observe(TSN(offset))
        }
        #expect(tracker.gapBlocks.count == tracker.maximumRanges)
        #expect(tracker.observe(TSN(900)) == .outOfWindow)
    }

    @Test func forwardTSNMovesTheCumulativeAckOverAbandonedData() {
        var tracker = SCTPDataTracker(peerInitialTSN: TSN(1))
        for tsn: UInt32 in [1, 5, 6, 9] { _ = tracker.observe(TSN(tsn)) }
        tracker.forward(to: TSN(4))
        #expect(tracker.cumulativeTSN == TSN(6))
        #expect(tracker.gapBlocks.map { [$0.start, $0.end] } == [[3, 3]])
    }
}

struct ReassemblyTests {
    func fragment(_ tsn: UInt32, stream: UInt16 = 1, ssn: UInt16 = 0, _ flags: String, _ bytes: [UInt8], unordered: Bool = false) -> SCTPFragment {
        SCTPFragment(tsn: TSN(tsn), stream: stream, ssn: SSN(ssn), ppid: 53, unordered: unordered,
                     beginning: flags.contains("B"), ending: flags.contains("E"), payload: bytes)
    }

    @Test func aFragmentedMessageIsReassembledInAnyArrivalOrder() {
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            var queue = SCTPReassemblyQueue()
            let parts = [fragment(10, "B", [1]), fragment(11, "", [2]), fragment(12, "", [3]), fragment(13, "E", [4])]
            for (step, index) in order.enumerated() {
                queue.add(parts[index])
                if step < 3 { #expect(queue.poll() == nil) }
            }
            #expect(queue.poll() == SCTPMessage(stream: 1, ppid: 53, unordered: false, payload: [1, 2, 3, 4]), "\(order)")
            #expect(queue.bufferedBytes == 0)
        }
    }

    @Test func aMessageStartedInOrderFinishesWhenAGapInItIsFilled() {
        for order in [[0, 1, 3, 4, 2], [0, 2, 1, 3, 4], [0, 4, 3, 2, 1], [0, 1, 2, 4, 3]] {
            var queue = SCTPReassemblyQueue()
            let parts = [fragment(10, "B", [1]), fragment(11, "", [2]), fragment(12, "", [3]), fragment(13, "", [4]), fragment(14, "E", [5])]
            for (step, index) in order.enumerated() {
                queue.add(parts[index])
                if step < 4 { #expect(queue.poll() == nil, "\(order)") }
            }
            #expect(queue.poll()?.payload == [1, 2, 3, 4, 5], "\(order)")
            #expect(queue.bufferedBytes == 0)
            // The next message takes the in-order path again.
            queue.add(fragment(15, ssn: 1, "B", [6]))
            queue.add(fragment(16, ssn: 1, "E", [7]))
            #expect(queue.poll()?.payload == [6, 7], "\(order)")
            #expect(queue.bufferedBytes == 0)
        }
    }

    @Test func forwardTSNDropsAMessageBeingReassembledInOrder() {
        var queue = SCTPReassemblyQueue()
        queue.add(fragment(1, ssn: 0, "B", [1]))
        queue.add(fragment(2, ssn: 0, "", [2]))      // its E was abandoned
        #expect(queue.bufferedBytes == 2)
        queue.forward(to: TSN(1), skipping: [(stream: 1, ssn: SSN(0))])
        #expect(queue.bufferedBytes == 0, "abandoned in part: dropped whole")
        queue.add(fragment(4, ssn: 1, "BE", [4]))
        #expect(queue.poll()?.payload == [4])
        #expect(queue.bufferedBytes == 0)
    }

    @Test func aMessageOverTheLimitArrivingInOrderIsDroppedAndCounted() {
        var queue = SCTPReassemblyQueue(maximumMessageSize: 4)
        queue.add(fragment(1, "B", [1, 2]))
        queue.add(fragment(2, "", [3, 4]))
        queue.add(fragment(3, "E", [5]))
        #expect(queue.poll() == nil)
        #expect(queue.oversizedMessages == 1)
        #expect(queue.bufferedBytes == 0)
    }

    @Test func orderedMessagesWaitForTheirTurnPerStreamUnorderedOnesDoNot() {
        var queue = SCTPReassemblyQueue()
        queue.add(fragment(2, ssn: 1, "BE", [2]))
        queue.add(fragment(3, stream: 2, ssn: 0, "BE", [9]))
        queue.add(fragment(4, ssn: 0, "BE", [7], unordered: true))
        #expect(queue.poll()?.payload == [9], "stream 2 does not wait for stream 1")
        #expect(queue.poll()?.payload == [7], "unordered: at once")
        #expect(queue.poll() == nil)
        #expect(queue.bufferedBytes == 1, "stream 1's SSN 1 waits, counted")
        queue.add(fragment(1, ssn: 0, "BE", [1]))
        #expect(queue.poll()?.payload == [1])
        #expect(queue.poll()?.payload == [2])
        #expect(queue.bufferedBytes == 0)
    }

    @Test func undeliveredMessagesCountAgainstTheWindowUntilRead() {
        var queue = SCTPReassemblyQueue()
        queue.add(fragment(1, "B", [UInt8](repeating: 0, count: 1000)))
        #expect(queue.bufferedBytes == 1000)
        queue.add(fragment(2, "E", [UInt8](repeating: 0, count: 500)))
        #expect(queue.readyCount == 1)
        #expect(queue.bufferedBytes == 1500)
        _ = queue.poll()
        #expect(queue.bufferedBytes == 0)
    }

    @Test func aMessageOverTheLimitIsDroppedAndCounted() {
        var queue = SCTPReassemblyQueue(maximumMessageSize: 4)
        queue.add(fragment(1, "B", [1, 2, 3]))
        queue.add(fragment(2, "E", [4, 5]))
        #expect(queue.poll() == nil)
        #expect(queue.oversizedMessages == 1)
        #expect(queue.bufferedBytes == 0)
    }

    @Test func forwardTSNDropsAbandonedFragmentsAndSkipsTheirSSNs() {
        var queue = SCTPReassemblyQueue()
        queue.add(fragment(1, ssn: 0, "B", [1]))     // its E was abandoned
        queue.add(fragment(3, ssn: 1, "BE", [3]))    // waits for SSN 0
        #expect(queue.poll() == nil)
        queue.forward(to: TSN(2), skipping: [(stream: 1, ssn: SSN(0))])
        #expect(queue.poll()?.payload == [3])
        #expect(queue.bufferedBytes == 0)
    }
}
