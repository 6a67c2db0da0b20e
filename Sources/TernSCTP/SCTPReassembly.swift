import TernCollections

/// One DATA chunk's fields as the association sees them (RFC 9260 §3.3.1).
public struct SCTPFragment: Sendable, Equatable {
    public var tsn: TSN
    public var stream: UInt16
    public var ssn: SSN
    public var ppid: UInt32
    public var unordered: Bool
    public var beginning: Bool
    public var ending: Bool
    /// A slice of what holds the bytes: the queued message on the sending
    /// side (no copy per fragment), the decrypted record on the receiving
    /// side until reassembly copies it out.
    public var payload: ArraySlice<UInt8>

    public init(
        tsn: TSN, stream: UInt16, ssn: SSN, ppid: UInt32, unordered: Bool, beginning: Bool, ending: Bool, payload: ArraySlice<UInt8>
    ) {
        self.tsn = tsn
        self.stream = stream
        self.ssn = ssn
        self.ppid = ppid
        self.unordered = unordered
        self.beginning = beginning
        self.ending = ending
        self.payload = payload
    }

    public init(tsn: TSN, stream: UInt16, ssn: SSN, ppid: UInt32, unordered: Bool, beginning: Bool, ending: Bool, payload: [UInt8]) {
        self.init(
            tsn: tsn, stream: stream, ssn: ssn, ppid: ppid, unordered: unordered, beginning: beginning, ending: ending,
            payload: payload[...])
    }
}

/// A whole user message, reassembled.
public struct SCTPMessage: Sendable, Equatable {
    public var stream: UInt16
    public var ppid: UInt32
    public var unordered: Bool
    public var payload: [UInt8]

    public init(stream: UInt16, ppid: UInt32, unordered: Bool, payload: [UInt8]) {
        self.stream = stream
        self.ppid = ppid
        self.unordered = unordered
        self.payload = payload
    }
}

/// Reassembles fragments into messages and delivers them: unordered ones
/// as soon as they are whole, ordered ones in SSN order per stream (RFC
/// 9260 §6.5, §6.6, §6.9). It counts every byte it holds, including whole
/// messages the application has not read yet, and every fragment or
/// message it holds (`chargedBytes` adds `itemOverhead` for each), so the
/// association can advertise a receive window that stops the peer before
/// memory runs out, however small its chunks.
///
/// Without I-DATA (RFC 8260), a sender gives the fragments of one message
/// consecutive TSNs (§6.9), so a message is a run of TSNs from a B fragment
/// to an E fragment; `begin[tsn]` remembers, for each fragment whose run back
/// to its B is complete, where that run began.
public struct SCTPReassemblyQueue: Sendable {
    private var fragments: [UInt32: SCTPFragment] = [:]
    private var begin: [UInt32: UInt32] = [:]
    /// Per stream: the next SSN to deliver, and whole ordered messages waiting for it.
    private var nextSSN: [UInt16: SSN] = [:]
    private var waiting: [UInt16: [UInt16: SCTPMessage]] = [:]
    private var ready = FIFO<SCTPMessage>()

    /// The message being reassembled in TSN order, the common case, kept
    /// out of the dictionaries: the first fragment's fields, the TSNs so
    /// far and the bytes so far. It only starts while no fragment waits in
    /// the dictionaries, and goes into them ("parked", as one fragment
    /// covering its TSNs) as soon as a fragment does not continue it, so
    /// it never waits for a fragment that is already here.
    private struct Run: Sendable {
        var first: SCTPFragment
        var start: UInt32
        var next: UInt32
        var payload: [UInt8]
    }
    private var run: Run?
    /// The size of the last message reassembled from a run: a new run
    /// reserves that much at once. Senders cut a stream into messages of
    /// one size, so the run's bytes are copied once instead of again at
    /// each doubling of the array (about eight times for 256 KiB).
    private var lastRunSize = 0

    /// Bytes held: fragments, whole messages waiting for their turn, and
    /// delivered messages not yet taken by the application.
    public private(set) var bufferedBytes = 0
    /// Things held, each of which costs memory beyond its bytes: fragments
    /// (the in-order run counts as one), messages waiting for their turn,
    /// messages not yet taken.
    public private(set) var heldItems = 0
    /// Bytes charged per held item (`SCTPLimits.receivedChunkOverhead`).
    public let itemOverhead: Int
    /// What the receive window is charged: the bytes held and the overhead of each thing held.
    public var chargedBytes: Int { bufferedBytes + heldItems * itemOverhead }
    /// Messages larger than this are refused (the association aborts: the
    /// peer broke the advertised max-message-size).
    public let maximumMessageSize: Int
    public private(set) var oversizedMessages = 0

    public init(maximumMessageSize: Int = 256 * 1024, itemOverhead: Int = SCTPLimits.default.receivedChunkOverhead) {
        self.maximumMessageSize = maximumMessageSize
        self.itemOverhead = itemOverhead
    }

    /// Adds a new fragment (the data tracker said it is new).
    public mutating func add(_ fragment: SCTPFragment) {
        let tsn = fragment.tsn.value
        bufferedBytes += fragment.payload.count
        if fragment.beginning && fragment.ending {
            complete(
                SCTPMessage(stream: fragment.stream, ppid: fragment.ppid, unordered: fragment.unordered, payload: Array(fragment.payload)),
                ssn: fragment.ssn)
            bufferedBytes -= fragment.payload.count
            return
        }
        if var current = run.take() {
            if tsn == current.next, !fragment.beginning, current.payload.count + fragment.payload.count <= maximumMessageSize {
                current.payload.append(contentsOf: fragment.payload)
                if fragment.ending {
                    let first = current.first, size = current.payload.count
                    complete(SCTPMessage(stream: first.stream, ppid: first.ppid, unordered: first.unordered, payload: current.payload), ssn: first.ssn)
                    bufferedBytes -= size
                    heldItems -= 1
                    lastRunSize = size
                } else {
                    current.next = tsn &+ 1
                    run = current
                }
                return
            }
            park(current)
        } else if fragment.beginning, fragments.isEmpty {
            var first = fragment
            first.payload = []
            var payload: [UInt8] = []
            payload.reserveCapacity(max(fragment.payload.count, lastRunSize))
            payload.append(contentsOf: fragment.payload)
            run = Run(first: first, start: tsn, next: tsn &+ 1, payload: payload)
            heldItems += 1
            return
        }
        // A fragment that waits holds its own bytes, not the record they came in.
        var waiting = fragment
        waiting.payload = ArraySlice(Array(fragment.payload))
        store(waiting)
        if fragment.beginning {
            begin[tsn] = tsn
        } else if let start = begin[tsn &- 1] {
            begin[tsn] = start
        } else {
            return  // its run back to a B is not complete yet
        }
        // Walk forward over fragments that were waiting for this one.
        var cursor = tsn
        while true {
            guard let start = begin[cursor], let current = fragments[cursor] else { return }
            if current.ending {
                assemble(from: start, to: cursor)
                return
            }
            let following = cursor &+ 1
            guard let next = fragments[following], !next.beginning else { return }
            begin[following] = start
            cursor = following
        }
    }

    /// Moves the in-order run into the dictionaries as one fragment at its
    /// last TSN that begins a message (assembly then counts its bytes once).
    private mutating func park(_ current: Run) {
        var merged = current.first
        let last = current.next &- 1
        merged.tsn = TSN(last)
        merged.beginning = true
        merged.ending = false
        merged.payload = current.payload[...]
        heldItems -= 1  // the run; `store` counts it again as a fragment
        store(merged)
        begin[last] = last
    }

    /// Keeps a fragment whose bytes are counted already; one already at
    /// its TSN is replaced, not counted twice.
    private mutating func store(_ fragment: SCTPFragment) {
        let tsn = fragment.tsn.value
        if let replaced = fragments.updateValue(fragment, forKey: tsn) {
            bufferedBytes -= replaced.payload.count
        } else {
            heldItems += 1
        }
    }

    /// The next message for the application, if one is ready.
    public mutating func poll() -> SCTPMessage? {
        guard let message = ready.pop() else { return nil }
        bufferedBytes -= message.payload.count
        heldItems -= 1
        return message
    }

    /// Messages ready to be taken.
    public var readyCount: Int { ready.count }

    /// RFC 3758 §3.6: the peer gave up on everything up to `cumulative`.
    /// Fragments at or below it are dropped, and ordered streams skip to
    /// after the SSNs the FORWARD-TSN names.
    public mutating func forward(to cumulative: TSN, skipping streams: [(stream: UInt16, ssn: SSN)]) {
        // A run the peer gave up on, even in part, is dropped whole.
        if let current = run, !(cumulative < TSN(current.start)) {
            bufferedBytes -= current.payload.count
            heldItems -= 1
            run = nil
        }
        for (tsn, fragment) in fragments where !(cumulative < TSN(tsn)) {
            fragments[tsn] = nil
            begin[tsn] = nil
            bufferedBytes -= fragment.payload.count
            heldItems -= 1
        }
        for (stream, ssn) in streams {
            let expected = nextSSN[stream] ?? SSN(0)
            if !(ssn < expected) {
                // Messages up to `ssn` will never come: drop what waits for them.
                if var pending = waiting[stream] {
                    for (key, message) in pending where !(ssn < SSN(key)) {
                        pending[key] = nil
                        bufferedBytes -= message.payload.count
                        heldItems -= 1
                    }
                    waiting[stream] = pending
                }
                nextSSN[stream] = ssn.next
                deliverWaiting(stream)
            }
        }
    }

    /// RFC 6525 §5.2.2: an incoming stream was reset; its SSNs start at 0 again.
    public mutating func resetStream(_ stream: UInt16) {
        nextSSN[stream] = nil
        if let pending = waiting.removeValue(forKey: stream) {
            for message in pending.values { bufferedBytes -= message.payload.count }
            heldItems -= pending.count
        }
    }

    private mutating func assemble(from start: UInt32, to end: UInt32) {
        var payload: [UInt8] = []
        var size = 0
        var cursor = start
        while true {
            size += fragments[cursor]?.payload.count ?? 0
            if cursor == end { break }
            cursor &+= 1
        }
        guard let first = fragments[start] else { return }
        let oversized = size > maximumMessageSize
        if !oversized { payload.reserveCapacity(size) }
        cursor = start
        while true {
            if let fragment = fragments.removeValue(forKey: cursor) {
                if !oversized { payload.append(contentsOf: fragment.payload) }
                bufferedBytes -= fragment.payload.count
                heldItems -= 1
            }
            begin[cursor] = nil
            if cursor == end { break }
            cursor &+= 1
        }
        if oversized {
            oversizedMessages += 1
            return
        }
        bufferedBytes += payload.count
        complete(SCTPMessage(stream: first.stream, ppid: first.ppid, unordered: first.unordered, payload: payload), ssn: first.ssn)
        bufferedBytes -= payload.count
    }

    /// A whole message: delivered now (unordered, or the SSN the stream
    /// expects) or kept until the SSNs before it are delivered.
    private mutating func complete(_ message: SCTPMessage, ssn: SSN) {
        if message.unordered {
            deliver(message)
            return
        }
        let expected = nextSSN[message.stream] ?? SSN(0)
        if ssn == expected {
            nextSSN[message.stream] = ssn.next
            deliver(message)
            deliverWaiting(message.stream)
        } else if expected < ssn {
            bufferedBytes += message.payload.count
            // A second message with the same SSN (a broken or hostile peer) replaces the first.
            if let replaced = waiting[message.stream, default: [:]].updateValue(message, forKey: ssn.value) {
                bufferedBytes -= replaced.payload.count
            } else {
                heldItems += 1
            }
        }
        // An SSN behind the expected one is a duplicate message: dropped.
    }

    private mutating func deliverWaiting(_ stream: UInt16) {
        while let expected = nextSSN[stream], let message = waiting[stream]?.removeValue(forKey: expected.value) {
            bufferedBytes -= message.payload.count
            heldItems -= 1
            nextSSN[stream] = expected.next
            deliver(message)
        }
    }

    private mutating func deliver(_ message: SCTPMessage) {
        bufferedBytes += message.payload.count
        heldItems += 1
        ready.push(message)
    }
}
