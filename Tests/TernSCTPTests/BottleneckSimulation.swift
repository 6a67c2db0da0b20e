import TernTestSupport
@testable import TernSCTP

/// A simulated path in virtual time: senders' packets cross one bottleneck
/// of a given rate with a drop-tail queue of a given length (in time at
/// that rate), then a one-way delay; packets each way may also be lost at
/// random. The way back (SACKs) has the delay and the loss, not the rate.
/// One or more associations (flows) share it; each flow's side 0 sends
/// 256 KiB messages to its side 1, keeping 512 KiB queued as SecureChannels
/// does (or as its `Application` says).
///
/// Packets leave the bottleneck in the order they entered it, so each
/// direction is a FIFO and every step costs O(flows).
struct BottleneckSimulation<C: SCTPCongestionControl> {
    typealias Association = SCTPAssociation<C>

    struct Path {
        /// Bytes per second at the bottleneck.
        var rate: Double = 20e6 / 8
        var queue: Duration = .milliseconds(100)
        var oneWayDelay: Duration = .milliseconds(20)
        var lossEachWay = 0.0
        /// Bytes a packet costs on the wire besides its SCTP packet (DTLS, UDP, IP).
        var overhead = 29 + 8 + 20
        /// ECN at the bottleneck: a packet of an association that agreed ECN
        /// (sent ECT(0)) is marked CE when it waits longer than this (a
        /// step AQM, as the lab's delay line with --ecn); nil: no marking.
        var markingThreshold: Duration?
        /// The share of ECT packets marked CE at random, queue or not.
        var randomMarking = 0.0
    }

    /// How a flow's application hands over data: `message`-byte messages,
    /// keeping `highWater` bytes queued, except during a stall.
    struct Application {
        var message = 256 << 10
        var highWater = 512 << 10
        var stall: Stall?
    }

    /// An application that falls behind: from `from` until `to` it hands
    /// the association one `message`-byte message every `interval` (a slow
    /// disk, a pipe), instead of keeping the send queue full.
    struct Stall {
        var from: Duration
        var to: Duration
        var message: Int
        var interval: Duration
    }

    struct Flow {
        var sides: [Association]
        var application: Application
        var nextStallMessage: Duration = .zero
        var queued = 0
        var received = 0
        var intact = true
        var nextIndex: UInt8 = 0
        var expected: UInt8 = 0
        var total: Int
        var start: Duration
        var finished: Duration?
    }

    private struct Transit {
        var arrival: Duration
        var flow: Int
        var to: Int
        var packet: Association.Packet
        var marked = false
    }

    var path: Path
    private(set) var flows: [Flow] = []
    private(set) var now: Duration = .zero
    private var random: SplitMix64
    /// Forward (through the bottleneck) and backward packets, each in arrival order.
    private var forward: [Transit] = []
    private var forwardHead = 0
    private var backward: [Transit] = []
    private var backwardHead = 0
    /// When the bottleneck finishes sending what it has accepted.
    private var busyUntil: Duration = .zero
    /// Queueing delay each forward packet met at the bottleneck (nanoseconds).
    private(set) var queueDelays: [Int64] = []
    private(set) var dropsAtQueue = 0
    private(set) var randomDrops = 0
    private(set) var markedPackets = 0

    init(path: Path, seed: UInt64) {
        self.path = path
        random = SplitMix64(seed: seed)
    }

    /// Adds a flow of `bytes`, connected at once (the handshake runs in the loop).
    mutating func addFlow(
        bytes: Int, configuration: Association.Configuration = .init(receiveWindow: 4 << 20), application: Application = .init()
    ) {
        var sides = [Association(configuration: configuration, random: &random), Association(configuration: configuration, random: &random)]
        sides[0].connect(now: now)
        flows.append(Flow(sides: sides, application: application, total: bytes, start: now))
    }

    /// Runs until every flow finished or `limit` of virtual time passed.
    mutating func run(until limit: Duration) throws {
        while now < limit {
            try feedSenders()
            pumpAll()
            if flows.allSatisfy({ $0.finished != nil }) { return }
            var next = limit
            if forwardHead < forward.count { next = min(next, forward[forwardHead].arrival) }
            if backwardHead < backward.count { next = min(next, backward[backwardHead].arrival) }
            for flow in flows {
                for side in flow.sides { if let deadline = side.nextDeadline { next = min(next, deadline) } }
                // A stalled application's next message (or the stall's end) wakes the loop.
                if let stall = flow.application.stall {
                    let wake = min(max(flow.nextStallMessage, stall.from), stall.to)
                    if wake > now { next = min(next, wake) }
                }
            }
            now = max(now, next)
            while forwardHead < forward.count, forward[forwardHead].arrival <= now {
                deliver(forward[forwardHead])
                forwardHead += 1
            }
            while backwardHead < backward.count, backward[backwardHead].arrival <= now {
                deliver(backward[backwardHead])
                backwardHead += 1
            }
            if forwardHead > 4096 { forward.removeFirst(forwardHead); forwardHead = 0 }
            if backwardHead > 4096 { backward.removeFirst(backwardHead); backwardHead = 0 }
            for index in flows.indices { for side in 0..<2 { flows[index].sides[side].advanceTime(now: now) } }
        }
    }

    /// When the path last moved (`move`), and when DATA first reached a
    /// receiver after that.
    private(set) var movedAt: Duration?
    private(set) var firstDataAfterMove: Duration?

    /// The flows' packets take another path from now on: what is in transit
    /// on the old one is lost (unless `oldPathDelivers`: an upgrade, the old
    /// path still carrying what it has), and the new one starts with an
    /// empty queue. `tellSCTP`: each side's association is told
    /// (`pathChanged`), as SecureChannels tells it when ICE moves the session.
    mutating func move(to newPath: Path, tellSCTP: Bool, oldPathDelivers: Bool = false) {
        if !oldPathDelivers {
            forwardHead = forward.count
            backwardHead = backward.count
        }
        busyUntil = now
        path = newPath
        movedAt = now
        firstDataAfterMove = nil
        guard tellSCTP else { return }
        for index in flows.indices { for side in 0..<2 { flows[index].sides[side].pathChanged(now: now) } }
    }

    private mutating func deliver(_ transit: Transit) {
        if transit.to == 1, movedAt != nil, firstDataAfterMove == nil,
           transit.packet.chunks.contains(where: { if case .data = $0 { return true } else { return false } }) {
            firstDataAfterMove = now
        }
        flows[transit.flow].sides[transit.to].handleChunks(
            transit.packet.chunks, verificationTag: transit.packet.verificationTag, now: now, congestionExperienced: transit.marked)
    }

    private mutating func feedSenders() throws {
        for index in flows.indices where flows[index].sides[0].state == .established {
            let application = flows[index].application
            if let stall = application.stall, now >= stall.from, now < stall.to {
                if now >= flows[index].nextStallMessage, flows[index].queued < flows[index].total {
                    try queueMessage(flow: index, size: min(stall.message, flows[index].total - flows[index].queued))
                    flows[index].nextStallMessage = now + stall.interval
                }
                continue
            }
            while flows[index].queued < flows[index].total && flows[index].sides[0].bufferedAmount(stream: 1) < application.highWater {
                try queueMessage(flow: index, size: min(application.message, flows[index].total - flows[index].queued))
            }
        }
    }

    private mutating func queueMessage(flow index: Int, size: Int) throws {
        try flows[index].sides[0].send(stream: 1, ppid: 53, payload: [UInt8](repeating: flows[index].nextIndex, count: size), now: now)
        flows[index].nextIndex &+= 1
        flows[index].queued += size
    }

    private mutating func pumpAll() {
        for index in flows.indices {
            for side in 0..<2 {
                while let packet = flows[index].sides[side].pollTransmit(now: now) { transmit(packet, flow: index, from: side) }
                while flows[index].sides[side].pollEvent() != nil {}
                while let message = flows[index].sides[side].pollMessage() {
                    guard side == 1 else { continue }
                    // Each message is filled with its index: order and content.
                    if message.payload.first != flows[index].expected || message.payload.last != flows[index].expected
                        || message.payload.contains(where: { $0 != flows[index].expected }) {
                        flows[index].intact = false
                    }
                    flows[index].expected &+= 1
                    flows[index].received += message.payload.count
                    if flows[index].received >= flows[index].total, flows[index].finished == nil { flows[index].finished = now }
                }
            }
        }
    }

    private mutating func transmit(_ packet: Association.Packet, flow: Int, from side: Int) {
        if path.lossEachWay > 0, Double.random(in: 0..<1, using: &random) < path.lossEachWay {
            randomDrops += 1
            return
        }
        guard side == 0 else {
            backward.append(Transit(arrival: now + path.oneWayDelay, flow: flow, to: 0, packet: packet))
            return
        }
        let size = 12 + packet.chunks.reduce(0) { $0 + Association.size(of: $1) } + path.overhead
        let start = max(now, busyUntil)
        guard start - now <= path.queue else {
            dropsAtQueue += 1
            return
        }
        queueDelays.append(Association.nanoseconds(start - now))
        busyUntil = start + .nanoseconds(Int64(Double(size) / path.rate * 1e9))
        var marked = false
        if flows[flow].sides[side].ecnNegotiated {
            if let threshold = path.markingThreshold, start - now > threshold { marked = true }
            if path.randomMarking > 0, Double.random(in: 0..<1, using: &random) < path.randomMarking { marked = true }
        }
        if marked { markedPackets += 1 }
        forward.append(Transit(arrival: busyUntil + path.oneWayDelay, flow: flow, to: 1, packet: packet, marked: marked))
    }

    /// Goodput of a flow in bytes per second of user data, start to finish (or to now).
    func goodput(_ flow: Int) -> Double {
        let end = flows[flow].finished ?? now
        return Double(flows[flow].received) / BBRCongestionControl.seconds(end - flows[flow].start)
    }

    /// The median queueing delay forward packets met after `skip` of them.
    func medianQueueDelay(skippingFirst skip: Int = 0) -> Duration {
        let delays = queueDelays.dropFirst(skip).sorted()
        guard !delays.isEmpty else { return .zero }
        return .nanoseconds(delays[delays.count / 2])
    }

    /// The bottleneck's payload share for user data: what a perfect sender gets.
    var userDataFraction: Double {
        let payload = 1200 - 12 - 16  // one DATA chunk filling a 1200-byte SCTP packet
        return Double(payload) / Double(1200 + path.overhead)
    }
}
