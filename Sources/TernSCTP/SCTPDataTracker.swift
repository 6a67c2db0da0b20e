/// The receiving side's view of the peer's TSNs (RFC 9260 §6.2): the
/// cumulative TSN, what arrived above it (the gap ack blocks of the next
/// SACK), duplicates, and when a SACK is due.
public struct SCTPDataTracker: Sendable {
    /// What `observe` made of a TSN.
    public enum Observation: Equatable, Sendable {
        /// New data: the caller keeps the chunk.
        case new
        /// Already received (or below the cumulative TSN): reported in the next SACK.
        case duplicate
        /// Too far ahead of the cumulative TSN to track: dropped, not acknowledged.
        case outOfWindow
    }

    /// The highest TSN such that it and every TSN before it arrived.
    public var cumulativeTSN: TSN { TSN(UInt32(truncatingIfNeeded: cumulative)) }
    /// `cumulativeTSN` unwrapped to 64 bits, so ranges never wrap.
    private var cumulative: UInt64
    /// Received TSNs above `cumulative + 1` (unwrapped), as sorted, disjoint,
    /// non-adjacent ranges.
    private var above: [ClosedRange<UInt64>] = []
    private var duplicates: [TSN] = []
    /// Packets with DATA since the last SACK (RFC 9260 §6.2: SACK at least every second one).
    private var unacknowledgedPackets = 0
    private var sackNow = false
    /// The SACK due reports news the sender acts on at once: a new gap
    /// (its fast retransmit counts the reports) or a duplicate.
    private var urgent = false
    public private(set) var delayedAckDeadline: Duration?

    /// The farthest ahead of the cumulative TSN a TSN may be and still be
    /// tracked (`SCTPLimits.maximumTSNDistance`).
    public let maximumDistance: UInt32
    /// Duplicates reported per SACK (`SCTPLimits.maximumReportedDuplicates`).
    public let maximumDuplicates: Int
    /// Gap blocks kept, each a range (`SCTPLimits.maximumReceivedGaps`).
    public let maximumRanges: Int
    /// RFC 9260 §6.2: a SACK within 200 ms of the first unacknowledged DATA.
    public let delayedAckTimeout: Duration

    public init(peerInitialTSN: TSN, limits: SCTPLimits = .default, delayedAckTimeout: Duration = .milliseconds(200)) {
        cumulative = UInt64(peerInitialTSN.previous.value)
        maximumDistance = limits.maximumTSNDistance
        maximumDuplicates = limits.maximumReportedDuplicates
        maximumRanges = limits.maximumReceivedGaps
        self.delayedAckTimeout = delayedAckTimeout
    }

    /// Records one DATA chunk's TSN.
    public mutating func observe(_ tsn: TSN) -> Observation {
        guard cumulativeTSN < tsn else {
            noteDuplicate(tsn)
            return .duplicate
        }
        let offset = cumulativeTSN.distance(to: tsn)
        guard offset <= maximumDistance else { return .outOfWindow }
        // Below the highest TSN received: it fills (part of) a gap, most
        // likely a retransmission. Acknowledged at once (as RFC 5681 §4.2
        // asks of TCP): the sender's recovery, and at the end of a
        // transfer its tail timer, wait on that SACK, and a lone
        // retransmission would otherwise wait for the delayed-SACK timer.
        if let highest = above.last?.upperBound, cumulative + UInt64(offset) < highest { sackNow = true }
        if offset == 1 {
            cumulative += 1
            absorbFront()
            return .new
        }
        // Above a gap: RFC 9260 §6.7 asks for an immediate SACK when a
        // gap appears. Data that only extends what arrived above an
        // existing gap is acknowledged as in-order data is (every second
        // packet): at 1% loss on a 100 Mbit/s, 50 ms path a gap is open
        // nearly all the time, and a SACK per packet doubled the packets
        // both sides handle.
        let ranges = above.count
        switch insert(cumulative + UInt64(offset)) {
        case .inserted:
            if above.count > ranges {
                sackNow = true
                urgent = true
            }
            return .new
        case .present:
            sackNow = true
            noteDuplicate(tsn)
            return .duplicate
        case .full: return .outOfWindow
        }
    }

    /// Call once per received packet that carried DATA, after its chunks.
    public mutating func packetWithDataReceived(now: Duration) {
        unacknowledgedPackets += 1
        // §6.2: every second packet (§6.7's gaps: see `observe`).
        if unacknowledgedPackets >= 2 { sackNow = true }
        if delayedAckDeadline == nil { delayedAckDeadline = now + delayedAckTimeout }
    }

    /// True when a SACK should go out with the next packet.
    public var sackDue: Bool { sackNow }

    /// True when the SACK due should not wait for the rest of a read batch:
    /// it reports a new gap or a duplicate.
    public var urgentSACKDue: Bool { sackNow && urgent }

    /// A SACK goes out with the next packet (RFC 9260 §6.2: after a DATA
    /// chunk was dropped for want of room).
    public mutating func requestSACK() {
        sackNow = true
    }

    /// True while data above a gap is held: the peer must hear of the gap
    /// at once (RFC 9260 §6.7), it drives fast retransmit.
    public var hasGaps: Bool { !above.isEmpty }

    /// The delayed-ack timer fired.
    public mutating func advanceTime(now: Duration) {
        if let deadline = delayedAckDeadline, now >= deadline { sackNow = true }
    }

    /// Gap ack blocks (RFC 9260 §3.3.4): start and end offsets from the cumulative TSN.
    public var gapBlocks: [(start: UInt16, end: UInt16)] {
        above.compactMap { range in
            guard range.upperBound - cumulative <= UInt64(UInt16.max) else { return nil }
            return (UInt16(range.lowerBound - cumulative), UInt16(range.upperBound - cumulative))
        }
    }

    /// The duplicates to report, emptied (§6.2: each reported once).
    public mutating func takeDuplicates() -> [TSN] {
        defer { duplicates.removeAll(keepingCapacity: true) }
        return duplicates
    }

    /// A SACK was sent: the counters start over.
    public mutating func sackSent() {
        sackNow = false
        urgent = false
        unacknowledgedPackets = 0
        delayedAckDeadline = nil
    }

    /// The peer abandoned data up to `newCumulative` (RFC 3758 §3.6): the
    /// cumulative TSN moves there and what is received above it stays.
    public mutating func forward(to newCumulative: TSN) {
        guard cumulativeTSN < newCumulative else { return }
        cumulative += UInt64(cumulativeTSN.distance(to: newCumulative))
        above = above.compactMap { range in
            guard range.upperBound > cumulative else { return nil }
            return max(range.lowerBound, cumulative + 1)...range.upperBound
        }
        absorbFront()
        sackNow = true
    }

    /// True if `tsn` has been received.
    public func hasReceived(_ tsn: TSN) -> Bool {
        guard cumulativeTSN < tsn else { return true }
        let position = cumulative + UInt64(cumulativeTSN.distance(to: tsn))
        return above.contains { $0.contains(position) }
    }

    // MARK: - Ranges

    private enum Insertion { case inserted, present, full }

    private mutating func insert(_ offset: UInt64) -> Insertion {
        // Binary search for the first range whose upper bound is >= offset - 1.
        var low = 0, high = above.count
        while low < high {
            let middle = (low + high) / 2
            if above[middle].upperBound + 1 < offset { low = middle + 1 } else { high = middle }
        }
        if low < above.count {
            let range = above[low]
            if range.contains(offset) { return .present }
            if range.upperBound + 1 == offset {
                // Extends this range upwards, maybe up to the next one.
                if low + 1 < above.count, above[low + 1].lowerBound == offset + 1 {
                    above[low] = range.lowerBound...above[low + 1].upperBound
                    above.remove(at: low + 1)
                } else {
                    above[low] = range.lowerBound...offset
                }
                return .inserted
            }
            if range.lowerBound == offset + 1 {
                above[low] = offset...range.upperBound
                return .inserted
            }
        }
        guard above.count < maximumRanges else { return .full }
        above.insert(offset...offset, at: low)
        return .inserted
    }

    /// Moves the cumulative TSN over a range that now starts right after it.
    private mutating func absorbFront() {
        guard let first = above.first, first.lowerBound == cumulative + 1 else { return }
        cumulative = first.upperBound
        above.removeFirst()
    }

    private mutating func noteDuplicate(_ tsn: TSN) {
        sackNow = true  // §6.7: a duplicate is answered with a SACK at once
        urgent = true
        if duplicates.count < maximumDuplicates { duplicates.append(tsn) }
    }
}
