import TernCollections

/// How long a message may be retried (RFC 3758 partial reliability, as
/// RFC 8831 §6.1 uses it for data channels).
public enum SCTPReliability: Sendable, Equatable {
    case reliable
    /// Abandoned after this many retransmissions.
    case maxRetransmits(Int)
    /// Abandoned once this long has passed since it was queued.
    case lifetime(Duration)
}

/// Messages the application queued, cut into DATA fragments as the
/// congestion and receive windows allow (RFC 9260 §6.9). Streams take turns
/// message by message; the fragments of one message get consecutive TSNs, so
/// a started message is finished before the next stream's turn.
public struct SCTPSendQueue: Sendable {
    struct Queued: Sendable {
        var id: UInt64
        var stream: UInt16
        var ppid: UInt32
        var unordered: Bool
        var reliability: SCTPReliability
        var queuedAt: Duration
        var payload: [UInt8]
        var offset = 0
        var ssn: SSN?
    }

    /// One fragment to send, with what the retransmission queue needs to know.
    public struct Fragment: Sendable {
        public var messageID: UInt64
        public var fragment: SCTPFragment
        public var reliability: SCTPReliability
        public var queuedAt: Duration
    }

    private var streams: [UInt16: FIFO<Queued>] = [:]
    /// Streams with queued messages, in turn order.
    private var turns: [UInt16] = []
    private var current: Queued?
    private var nextSSN: [UInt16: SSN] = [:]
    private var nextMessageID: UInt64 = 0
    /// Bytes queued per stream and not yet cut into fragments (what a data
    /// channel reports as bufferedAmount, with what is in flight excluded).
    public private(set) var bufferedAmount: [UInt16: Int] = [:]
    public private(set) var totalBuffered = 0
    /// Queued messages with a lifetime (so `dropExpired` need not look when there are none).
    private var lifetimeLimited = 0

    public init() {}

    public var isEmpty: Bool { current == nil && turns.isEmpty }

    /// Queues a message. Empty messages are the caller's business (data
    /// channels send one zero byte with the "empty" PPID, RFC 8831 §6.6).
    public mutating func enqueue(
        stream: UInt16, ppid: UInt32, payload: [UInt8], unordered: Bool = false, reliability: SCTPReliability = .reliable, now: Duration
    ) {
        let message = Queued(
            id: nextMessageID, stream: stream, ppid: ppid, unordered: unordered, reliability: reliability, queuedAt: now,
            payload: payload)
        nextMessageID &+= 1
        if !turns.contains(stream) { turns.append(stream) }
        streams[stream, default: FIFO()].push(message)
        bufferedAmount[stream, default: 0] += payload.count
        totalBuffered += payload.count
        if case .lifetime = reliability { lifetimeLimited += 1 }
    }

    /// The next fragment, at most `maximumPayload` bytes of user data.
    public mutating func nextFragment(tsn: TSN, maximumPayload: Int) -> Fragment? {
        if current == nil { current = takeNextMessage() }
        // Moved out and back in: no copy of the message (and its payload's
        // reference) per fragment.
        guard var message = current.take() else { return nil }
        let size = max(1, maximumPayload)
        let end = min(message.payload.count, message.offset + size)
        let beginning = message.offset == 0
        let ending = end == message.payload.count
        let ssn: SSN
        if let assigned = message.ssn {
            ssn = assigned
        } else if message.unordered {
            ssn = SSN(0)  // RFC 9260 §3.3.1: ignored for unordered data
            message.ssn = ssn
        } else {
            ssn = nextSSN[message.stream] ?? SSN(0)
            nextSSN[message.stream] = ssn.next
            message.ssn = ssn
        }
        let start = message.offset
        let bytes = message.payload[start..<end]
        let taken = end - message.offset
        message.offset = end
        bufferedAmount[message.stream, default: 0] -= taken
        totalBuffered -= taken
        let fragment = Fragment(
            messageID: message.id,
            fragment: SCTPFragment(
                tsn: tsn, stream: message.stream, ssn: ssn, ppid: message.ppid, unordered: message.unordered,
                beginning: beginning, ending: ending, payload: bytes),
            reliability: message.reliability, queuedAt: message.queuedAt)
        current = ending ? nil : message
        return fragment
    }

    /// Drops queued messages of a partially reliable kind whose lifetime
    /// ran out before they were sent (RFC 3758 §3.5 A1, applied before sending).
    /// A message already started is left to the retransmission queue.
    public mutating func dropExpired(now: Duration) {
        // The data path calls this before every packet: nothing to look at
        // unless a queued message has a lifetime.
        guard lifetimeLimited > 0 else { return }
        for stream in turns {
            var removedBytes = 0
            var removedMessages = 0
            streams[stream]?.removeAll { message in
                guard case .lifetime(let lifetime) = message.reliability, now >= message.queuedAt + lifetime else { return false }
                removedBytes += message.payload.count
                removedMessages += 1
                return true
            }
            bufferedAmount[stream, default: 0] -= removedBytes
            totalBuffered -= removedBytes
            lifetimeLimited -= removedMessages
        }
        turns.removeAll { streams[$0]?.isEmpty ?? true }
    }

    /// RFC 6525: an outgoing stream was reset; its SSNs start at 0 again.
    public mutating func resetStream(_ stream: UInt16) {
        nextSSN[stream] = nil
    }

    /// True if `stream` has nothing queued or being cut (so it can be reset).
    public func isIdle(_ stream: UInt16) -> Bool {
        current?.stream != stream && (streams[stream]?.isEmpty ?? true)
    }

    private mutating func takeNextMessage() -> Queued? {
        while !turns.isEmpty {
            let stream = turns.removeFirst()
            guard let message = streams[stream]?.pop() else { continue }
            if case .lifetime = message.reliability { lifetimeLimited -= 1 }
            if !(streams[stream]?.isEmpty ?? true) { turns.append(stream) }
            return message
        }
        return nil
    }
}
