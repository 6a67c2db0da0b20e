/// A one-way-delay link between two sans-IO peers on a virtual clock, with
/// seeded loss, reordering and duplication: the pump the SCTP and data
/// channel tests run their two endpoints over.
public struct VirtualLink<Packet> {
    public struct InFlight {
        public var deliverAt: Duration
        public var sequence: Int
        public var to: Int
        public var packet: Packet
    }

    public var delay: Duration = .milliseconds(20)
    public var loss = 0.0
    public var duplication = 0.0
    public var reordering = 0.0
    public var random: SplitMix64
    public private(set) var queue: [InFlight] = []
    private var sequence = 0
    public private(set) var delivered = 0
    public private(set) var lost = 0

    public init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// Puts a packet on the link towards side `to` (0 or 1).
    public mutating func send(_ packet: Packet, to: Int, now: Duration) {
        if Double.random(in: 0..<1, using: &random) < loss {
            lost += 1
            return
        }
        var at = now + delay
        if Double.random(in: 0..<1, using: &random) < reordering { at += .milliseconds(Int64.random(in: 1...30, using: &random)) }
        sequence += 1
        queue.append(InFlight(deliverAt: at, sequence: sequence, to: to, packet: packet))
        if Double.random(in: 0..<1, using: &random) < duplication {
            sequence += 1
            queue.append(InFlight(deliverAt: at + .milliseconds(3), sequence: sequence, to: to, packet: packet))
        }
    }

    /// When the next packet arrives, if any is on the way.
    public var nextArrival: Duration? { queue.map(\.deliverAt).min() }

    /// Takes the earliest packet due at `now`, if any.
    public mutating func takeDue(now: Duration) -> InFlight? {
        guard let index = queue.indices.min(by: { (queue[$0].deliverAt, queue[$0].sequence) < (queue[$1].deliverAt, queue[$1].sequence) }),
              queue[index].deliverAt <= now
        else { return nil }
        delivered += 1
        return queue.remove(at: index)
    }
}
