/// DATA this side sent and the peer has not acknowledged cumulatively: what
/// a SACK acknowledges (RFC 9260 §6.2.1), what fast retransmit and the
/// T3-rtx timer resend (§7.2.4, §6.3.3), and what partial reliability gives
/// up on (RFC 3758 §3.5).
public struct SCTPRetransmissionQueue: Sendable {
    struct Outstanding: Sendable {
        var item: SCTPSendQueue.Fragment
        var sentAt: Duration
        /// What had been delivered when it was (last) sent, for rate samples.
        var rate: DeliveryRateSendState
        var transmissions = 1
        var gapAcked = false
        var missIndications = 0
        /// Waiting to be sent again (fast retransmit or T3 expiry); not in flight.
        var needsRetransmission = false
        var abandoned = false
        var inFlight: Bool { !gapAcked && !needsRetransmission && !abandoned }
        var size: Int { item.fragment.payload.count }
    }

    /// What one SACK did.
    public struct SACKOutcome: Sendable, Equatable {
        /// Bytes acknowledged for the first time (cumulatively or by gap blocks).
        public var newlyAcknowledgedBytes = 0
        public var cumulativeAdvanced = false
        /// A round trip measured on a chunk sent once and newly acknowledged (Karn).
        public var roundTrip: Duration?
        /// Chunks newly marked for fast retransmission.
        public var fastRetransmits = 0
        /// The flight size before the SACK.
        public var flightSizeBefore = 0
        /// Bytes newly marked for fast retransmission (lost).
        public var newlyLostBytes = 0
        /// The delivery-rate sample of this SACK (nil if it acknowledged
        /// and lost nothing).
        public var rateSample: DeliveryRateSample?
    }

    /// Delivery-rate estimation over the chunks sent and acknowledged.
    public private(set) var deliveryRate = DeliveryRateSampler()

    /// The sender had room in its windows and nothing to send: samples
    /// taken until what is in flight now is delivered are app-limited.
    public mutating func applicationLimited() {
        deliveryRate.applicationLimited(inFlight: flightSize)
    }

    /// The cumulative TSN the peer acknowledged last.
    public private(set) var cumulativeAcknowledged: TSN
    /// Outstanding chunks, in TSN order, from `cumulativeAcknowledged + 1`.
    private var items: [Outstanding] = []
    private var head = 0
    /// Bytes in flight (RFC 9260 §6.1: sent, not acknowledged, not marked for retransmission).
    public private(set) var flightSize = 0
    /// Chunks in flight (those `flightSize` counts): a receiver charges
    /// each an overhead beyond its bytes (`SCTPLimits.receivedChunkOverhead`).
    public private(set) var chunksInFlight = 0
    /// Fast recovery's exit point (RFC 9260 §7.2.4), while in it.
    public private(set) var fastRecoveryExit: TSN?
    /// Where FORWARD-TSN may move the peer's cumulative TSN (RFC 3758 §3.5 C).
    public private(set) var advancedPeerAckPoint: TSN

    public init(initialTSN: TSN) {
        cumulativeAcknowledged = initialTSN.previous
        advancedPeerAckPoint = initialTSN.previous
    }

    /// Entries marked for retransmission (so the data path need not scan for them).
    private var waitingRetransmission = 0
    /// Outstanding entries with a lifetime limit (so SACKs need not scan for expiry).
    private var lifetimeLimited = 0

    public var outstandingCount: Int { items.count - head }
    public var isEmpty: Bool { head == items.count }
    public var hasRetransmissions: Bool { waitingRetransmission > 0 }

    private mutating func mark(_ index: Int, retransmit: Bool) {
        guard items[index].needsRetransmission != retransmit else { return }
        items[index].needsRetransmission = retransmit
        waitingRetransmission += retransmit ? 1 : -1
    }

    /// A chunk in flight is to be sent again: it leaves the flight until it is.
    private mutating func takeForRetransmission(_ index: Int) {
        mark(index, retransmit: true)
        flightSize -= items[index].size
        chunksInFlight -= 1
    }
    /// The TSN the next new chunk gets.
    public var nextTSN: TSN { cumulativeAcknowledged.advanced(by: UInt32(items.count - head + 1)) }

    /// Records a newly sent chunk (its TSN must be `nextTSN`).
    public mutating func sent(_ item: SCTPSendQueue.Fragment, now: Duration) {
        let rate = deliveryRate.sending(size: item.fragment.payload.count, inFlight: flightSize, now: now)
        items.append(Outstanding(item: item, sentAt: now, rate: rate))
        if case .lifetime = item.reliability { lifetimeLimited += 1 }
        flightSize += item.fragment.payload.count
        chunksInFlight += 1
    }

    /// Applies a SACK (RFC 9260 §6.2.1). Returns nil for a SACK whose
    /// cumulative TSN is behind the last one (reordered; ignored) or ahead
    /// of anything sent (a protocol violation the caller reports).
    public mutating func handleSACK(cumulative: TSN, gapBlocks: [(start: UInt16, end: UInt16)], now: Duration) -> SACKOutcome? {
        var outcome = SACKOutcome(flightSizeBefore: flightSize)
        if cumulative < cumulativeAcknowledged { return outcome }
        let advance = cumulativeAcknowledged.distance(to: cumulative)
        guard advance <= UInt32(items.count - head) else { return nil }
        var highestNewlyAcknowledged: TSN?
        // When the newest of the newly acknowledged chunks was (last) sent.
        var latestNewlyAcknowledgedSend: Duration?
        var newestSample: Duration?
        // Cumulatively acknowledged chunks leave the queue.
        for _ in 0..<advance {
            let entry = items[head]
            if !entry.gapAcked && !entry.abandoned {
                outcome.newlyAcknowledgedBytes += entry.size
                deliveryRate.acknowledged(size: entry.size, state: entry.rate, sentAt: entry.sentAt, now: now)
                highestNewlyAcknowledged = entry.item.fragment.tsn
                latestNewlyAcknowledgedSend = max(latestNewlyAcknowledgedSend ?? entry.sentAt, entry.sentAt)
                if entry.transmissions == 1, entry.sentAt >= samplesSince { newestSample = now - entry.sentAt }
            }
            if entry.inFlight {
                flightSize -= entry.size
                chunksInFlight -= 1
            }
            if entry.needsRetransmission { waitingRetransmission -= 1 }
            if case .lifetime = entry.item.reliability, !entry.abandoned { lifetimeLimited -= 1 }
            head += 1
        }
        if advance > 0 {
            cumulativeAcknowledged = cumulative
            outcome.cumulativeAdvanced = true
            if cumulativeAcknowledged > advancedPeerAckPoint || advancedPeerAckPoint == cumulativeAcknowledged {
                advancedPeerAckPoint = cumulativeAcknowledged
            }
        }
        compact()
        // Gap blocks: chunks received above a hole.
        for block in gapBlocks where block.start <= block.end && block.start >= 1 {
            for offset in Int(block.start)...Int(block.end) {
                let index = head + offset - 1
                guard index < items.count else { break }
                if !items[index].gapAcked {
                    items[index].gapAcked = true
                    if !items[index].abandoned {
                        outcome.newlyAcknowledgedBytes += items[index].size
                        deliveryRate.acknowledged(size: items[index].size, state: items[index].rate, sentAt: items[index].sentAt, now: now)
                        highestNewlyAcknowledged = items[index].item.fragment.tsn
                        latestNewlyAcknowledgedSend = max(latestNewlyAcknowledgedSend ?? items[index].sentAt, items[index].sentAt)
                        if items[index].transmissions == 1, items[index].sentAt >= samplesSince {
                            newestSample = now - items[index].sentAt
                        }
                    }
                    if !items[index].needsRetransmission && !items[index].abandoned {
                        flightSize -= items[index].size
                        chunksInFlight -= 1
                    }
                    mark(index, retransmit: false)
                }
            }
        }
        outcome.roundTrip = newestSample
        if let exit = fastRecoveryExit, !(cumulativeAcknowledged < exit) { fastRecoveryExit = nil }
        // §7.2.4 (HTNA): a chunk below the highest newly acknowledged TSN that
        // is still missing gets a miss indication; the third one resends it.
        // Only acknowledgements of chunks sent after this chunk's latest
        // transmission count: a resent chunk keeps its low TSN, and without
        // this every SACK for data sent before the resend (a window's worth
        // on a fast link) would count against it and resend it again and
        // again while the first resend is still on its way.
        if let highest = highestNewlyAcknowledged, let latestSend = latestNewlyAcknowledgedSend {
            var index = head
            while index < items.count, items[index].item.fragment.tsn < highest {
                if !items[index].gapAcked && !items[index].abandoned && !items[index].needsRetransmission
                    && (items[index].transmissions == 1 || items[index].sentAt < latestSend) {
                    items[index].missIndications += 1
                    if items[index].missIndications == 3 {
                        takeForRetransmission(index)
                        outcome.fastRetransmits += 1
                        outcome.newlyLostBytes += items[index].size
                        deliveryRate.markLost(items[index].size)
                    }
                }
                index += 1
            }
        }
        outcome.rateSample = deliveryRate.finishSACK(now: now)
        return outcome
    }

    /// Starts fast recovery (RFC 9260 §7.2.4 step 5); false if already in it.
    public mutating func enterFastRecovery() -> Bool {
        guard fastRecoveryExit == nil else { return false }
        fastRecoveryExit = items.last?.item.fragment.tsn ?? cumulativeAcknowledged
        return true
    }

    public var inFastRecovery: Bool { fastRecoveryExit != nil }

    /// The T3-rtx timer expired (RFC 9260 §6.3.3 E3): everything in flight
    /// is to be sent again.
    public mutating func timerExpired() {
        for index in head..<items.count where items[index].inFlight {
            takeForRetransmission(index)
        }
        fastRecoveryExit = nil
    }

    /// The newest chunk sent is neither acknowledged nor marked for retransmission.
    public var newestIsInFlight: Bool { items.last.map { $0.inFlight && head < items.count } ?? false }

    /// What the tail timer found (`tailTimerExpired`).
    public enum TailOutcome: Sendable, Equatable {
        /// Chunks below one the peer acknowledged, unacknowledged a round
        /// trip after they were sent: lost, and marked for retransmission.
        case lost(chunks: Int, bytes: Int)
        /// No such chunk: the newest one in flight goes again, to draw a SACK.
        case probe
        case nothing
    }

    /// The tail timer expired: no SACK acknowledged anything for a while
    /// although data is in flight (RFC 8985's tail loss probe, its
    /// time-based loss detection done at that moment only). The last
    /// chunks of a transfer, or of a burst, cannot collect the three miss
    /// indications fast retransmit needs (§7.2.4): a hole below a chunk
    /// the peer holds, still unacknowledged `age` after it was sent (a
    /// round trip and a reordering allowance), is lost. Without one, the
    /// newest chunk in flight is resent (not counted as lost): its SACK
    /// reports what is missing below it. Either way T3, with its backed-off
    /// RTO and its one-packet window, is left for when this does not help.
    public mutating func tailTimerExpired(now: Duration, age: Duration, probe: Bool = true) -> TailOutcome {
        var highestAcknowledged: Int?
        var index = items.count
        while index > head {
            index -= 1
            if items[index].gapAcked { highestAcknowledged = index; break }
        }
        var chunks = 0, bytes = 0
        if let highest = highestAcknowledged {
            for index in head..<highest where items[index].inFlight && now - items[index].sentAt >= age {
                takeForRetransmission(index)
                chunks += 1
                bytes += items[index].size
            }
        }
        if chunks > 0 {
            deliveryRate.markLost(bytes)
            return .lost(chunks: chunks, bytes: bytes)
        }
        guard probe, waitingRetransmission == 0, let newest = items[head...].lastIndex(where: { $0.inFlight }) else { return .nothing }
        takeForRetransmission(newest)
        return .probe
    }

    /// The association's packets now take another path (RFC 9260 §6.4:
    /// a retransmission to an alternate destination): everything in flight
    /// on the old one is to be sent again at once, as after a T3 expiry, but
    /// none of it counts as lost (no loss reaches the delivery-rate sampler
    /// or the controller: the path went away, no queue overflowed), fast
    /// recovery ends, and chunks sent before `now` give neither round-trip
    /// nor rate samples any more (RFC 9000 §9.4: packets sent on the old
    /// path must not feed the new path's estimates).
    public mutating func pathChanged(now: Duration) {
        timerExpired()
        samplesSince = now
        deliveryRate.pathChanged(now: now)
    }

    /// Chunks (last) sent before this give no round-trip samples (`pathChanged`).
    private var samplesSince: Duration = .zero

    /// The next chunk to resend, if any, taken in TSN order (§6.1 rule A:
    /// retransmissions go before new data). Applies partial reliability
    /// first: a chunk over its limits is abandoned with its whole message.
    ///
    /// `room`: bytes left in the packet; a chunk that does not fit (with its
    /// 16-byte header and padding) waits for the next packet.
    public mutating func nextRetransmission(now: Duration, room: Int = .max) -> SCTPSendQueue.Fragment? {
        guard waitingRetransmission > 0 else { return nil }
        var index = head
        while index < items.count {
            if items[index].needsRetransmission && !items[index].abandoned {
                if shouldAbandon(items[index], now: now) {
                    abandonMessage(items[index].item.messageID)
                } else if 16 + ((items[index].size + 3) & ~3) > room {
                    return nil
                } else {
                    mark(index, retransmit: false)
                    items[index].transmissions += 1
                    items[index].missIndications = 0
                    items[index].sentAt = now
                    items[index].rate = deliveryRate.sending(size: items[index].size, inFlight: flightSize, now: now)
                    flightSize += items[index].size
                    chunksInFlight += 1
                    return items[index].item
                }
            }
            index += 1
        }
        return nil
    }

    /// Abandons chunks whose lifetime ran out even if they are not due for
    /// retransmission (RFC 3758 §3.5 A2); returns true if anything was.
    public mutating func abandonExpired(now: Duration) -> Bool {
        guard lifetimeLimited > 0 else { return false }
        var any = false
        for index in head..<items.count where !items[index].abandoned && !items[index].gapAcked {
            if case .lifetime(let lifetime) = items[index].item.reliability, now >= items[index].item.queuedAt + lifetime {
                abandonMessage(items[index].item.messageID)
                any = true
            }
        }
        return any
    }

    /// RFC 3758 §3.5 C: the point FORWARD-TSN can announce, and the
    /// (stream, SSN) of ordered messages skipped up to it; nil when there
    /// is nothing to announce.
    public mutating func forwardTSN() -> (newCumulative: TSN, skipped: [(stream: UInt16, ssn: SSN)])? {
        var point = cumulativeAcknowledged
        var skipped: [UInt16: SSN] = [:]
        var index = head
        while index < items.count, items[index].abandoned {
            let fragment = items[index].item.fragment
            point = fragment.tsn
            if !fragment.unordered { skipped[fragment.stream] = fragment.ssn }
            index += 1
        }
        guard cumulativeAcknowledged < point else { return nil }
        advancedPeerAckPoint = point
        return (point, skipped.map { (stream: $0.key, ssn: $0.value) }.sorted { $0.stream < $1.stream })
    }

    /// The oldest chunk in flight was sent at this time (the T3 timer runs from it).
    public var oldestInFlightSentAt: Duration? {
        items[head...].lazy.filter(\.inFlight).map(\.sentAt).min()
    }

    private func shouldAbandon(_ entry: Outstanding, now: Duration) -> Bool {
        switch entry.item.reliability {
        case .reliable: return false
        case .maxRetransmits(let limit): return entry.transmissions > limit
        case .lifetime(let lifetime): return now >= entry.item.queuedAt + lifetime
        }
    }

    /// True once since the last call if a message was abandoned (so a
    /// FORWARD-TSN is due).
    public mutating func takeAbandonment() -> Bool {
        defer { abandonedSinceLastCheck = false }
        return abandonedSinceLastCheck
    }

    private var abandonedSinceLastCheck = false

    /// RFC 3758 §3.5 A3: all fragments of a message go together.
    private mutating func abandonMessage(_ id: UInt64) {
        abandonedSinceLastCheck = true
        for index in head..<items.count where items[index].item.messageID == id && !items[index].abandoned {
            if items[index].inFlight {
                flightSize -= items[index].size
                chunksInFlight -= 1
            }
            if case .lifetime = items[index].item.reliability { lifetimeLimited -= 1 }
            mark(index, retransmit: false)
            items[index].abandoned = true
        }
    }

    private mutating func compact() {
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}
