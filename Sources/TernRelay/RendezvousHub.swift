import NIOCore
import TernRendezvous

/// Identifies one client connection inside the relay.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var description: String { "#\(value)" }
}

/// The rendezvous relay's protocol core: nameplates, mailboxes and the frames
/// that move between them. It does no I/O and reads no clock: the server
/// feeds it connections, frames and the time, and carries out the actions it
/// returns. Every frame from a client is hostile; a bad one closes that
/// connection only.
public struct RendezvousHub: Sendable {
    public enum Action: Sendable, Equatable {
        case send(ConnectionID, RelayFrame)
        /// Close the connection after sending what was queued before.
        case close(ConnectionID)
        /// The second side joined a mailbox this long after the first opened
        /// it (for the relay's pairing latency histogram).
        case joined(after: TimeAmount)
        /// Both sides are in this connection's mailbox: send it TURN
        /// credentials (`turn`), if the relay hands out any. Once per side
        /// and connection, before the peer's messages.
        case grantTURN(ConnectionID)
    }

    public struct Statistics: Sendable, Equatable {
        public var connections = 0
        public var nameplates = 0
        public var mailboxes = 0
        public var messagesRelayed = 0
        /// Bytes of message bodies stored since start.
        public var bytesRelayed = 0
        /// Bytes of message bodies held in mailboxes now.
        public var bytesStored = 0
        public var protocolErrors = 0
        /// Mailboxes opened (by `allocate` or a first `claim`), since start.
        public var pairingsStarted = 0
        /// Mailboxes whose second side arrived, since start.
        public var pairingsJoined = 0
        /// Mailboxes removed after both sides closed `happy`, since start.
        public var pairingsCompleted = 0
        /// Mailboxes removed otherwise, since start, by reason: `expired`
        /// (nobody came within the idle lifetime), `abandoned` (the only side
        /// left first), `scary`, `lonely`, `errory` (a side closed so after
        /// the two met; scary first), `dropped` (a side vanished).
        public var pairingsFailed: [String: Int] = [:]
        /// Tombstoned nameplates now.
        public var tombstones = 0
        /// Requests refused by a limit, by the limit's name.
        public var refusals: [String: Int] = [:]
    }

    private enum NameplateState {
        /// One side is in the mailbox, waiting for the other.
        case waiting(Identifier)
        /// Both sides met; the nameplate refuses further claims until the mailbox goes.
        case consumed(Identifier)
        /// An allocated nameplate expired or its only side left; refused
        /// until the deadline (a receiver typing the code of a sender that
        /// gave up is told so, and the number is not handed out again yet).
        case tombstone(until: NIODeadline, address: String)
    }

    private struct Side {
        var id: Identifier
        var connection: ConnectionID?
        /// This side's messages, in order; index = seq.
        var messages: [[UInt8]] = []
        var closed: Mood?
        /// How many of the peer's messages this side's connection has been sent.
        var delivered = 0
        var toldPeerClosed = false
        /// This side's current connection was sent TURN credentials.
        var grantedTURN = false
        /// When the connection dropped without a `close` (nil while
        /// connected, and once the side closed).
        var droppedAt: NIODeadline?
        /// Bytes of `messages`, charged to `address` until the mailbox goes.
        var bytes = 0
        var address: String

        /// Closed, or dropped longer than `window` ago without coming back.
        func isGone(now: NIODeadline, window: TimeAmount) -> Bool {
            if closed != nil { return true }
            guard connection == nil, let droppedAt else { return false }
            return now - droppedAt >= window
        }
    }

    private struct Mailbox {
        var nameplate: String
        /// The relay allocated the nameplate (an `allocate`), rather than a
        /// first `claim` opening it (a pre-agreed code).
        var allocated: Bool
        var address: String
        var sides: [Side]
        var lastActivity: NIODeadline
        /// When the first side opened it.
        var opened: NIODeadline
    }

    private struct Connection {
        var address: String
        var since: NIODeadline
        var bound: (mailbox: Identifier, side: Identifier)?
    }

    public let limits: RelayLimits
    private var nameplates: [String: NameplateState] = [:]
    private var mailboxes: [Identifier: Mailbox] = [:]
    private var connections: [ConnectionID: Connection] = [:]
    private var mailboxesByAddress: [String: Int] = [:]
    private var bytesByAddress: [String: Int] = [:]
    private var tombstonesByAddress: [String: Int] = [:]
    private var claimBuckets: [String: ClaimBucket] = [:]

    /// The token bucket behind `claimsPerMinute`, per address.
    private struct ClaimBucket {
        var tokens: Double
        var at: NIODeadline

        func refilled(now: NIODeadline, limits: RelayLimits) -> Double {
            let capacity = Double(limits.claimsPerMinute)
            let elapsed = Double((now - at).nanoseconds) / 60e9
            return min(capacity, tokens + elapsed * capacity)
        }
    }
    public private(set) var statistics = Statistics()

    public init(limits: RelayLimits) {
        self.limits = limits
    }

    // MARK: Inputs

    /// A new connection. Returns false when the relay is full: close it.
    public mutating func connected(_ id: ConnectionID, address: String, now: NIODeadline) -> Bool {
        guard connections.count < limits.maxConnections else {
            statistics.refusals["connections", default: 0] += 1
            return false
        }
        connections[id] = Connection(address: address, since: now)
        statistics.connections = connections.count
        return true
    }

    public mutating func disconnected(_ id: ConnectionID, now: NIODeadline) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        statistics.connections = connections.count
        if let bound = connection.bound, var mailbox = mailboxes[bound.mailbox],
           let index = mailbox.sides.firstIndex(where: { $0.id == bound.side }), mailbox.sides[index].connection == id {
            mailbox.sides[index].connection = nil
            mailbox.sides[index].droppedAt = now
            mailboxes[bound.mailbox] = mailbox
        }
    }

    /// One text frame from a client.
    public mutating func received(_ text: some Collection<UInt8>, from id: ConnectionID, now: NIODeadline) -> [Action] {
        guard connections[id] != nil else { return [] }
        let frame: ClientFrame
        do {
            frame = try ClientFrame(decoding: text, maxBodyBytes: limits.maxMessageBytes)
        } catch {
            let code: RelayErrorCode = if case .frameTooLarge = error { .tooLarge } else { .malformed }
            return refuse(id, code, error.reason)
        }
        return handle(frame, from: id, now: now)
    }

    /// A frame over the transport's size limit, refused before it was read.
    public mutating func receivedOversize(from id: ConnectionID) -> [Action] {
        refuse(id, .tooLarge, "frame over the limit of \(FrameLimits.maxFrameBytes(forBody: limits.maxMessageBytes)) bytes")
    }

    /// A WebSocket frame that breaks the transport's rules (RFC 6455).
    public mutating func receivedInvalid(from id: ConnectionID, _ code: RelayErrorCode, _ message: String) -> [Action] {
        refuse(id, code, message)
    }

    /// Expires idle mailboxes, nameplates and connections that never joined one.
    public mutating func tick(now: NIODeadline) -> [Action] {
        var actions: [Action] = []
        for (key, state) in nameplates {
            if case .tombstone(let until, let address) = state, until <= now {
                nameplates[key] = nil
                forgetTombstone(of: address)
            }
        }
        for (address, bucket) in claimBuckets where bucket.refilled(now: now, limits: limits) >= Double(limits.claimsPerMinute) {
            claimBuckets[address] = nil
        }
        for (id, mailbox) in mailboxes where now - mailbox.lastActivity >= limits.idleLifetime {
            // Two sides that met and are still connected are not idle, however
            // quiet (a person at a prompt, a long transfer); the server's
            // keep-alive pings drop connections that are dead. A nameplate
            // waiting for its second side expires all the same.
            if mailbox.sides.count == 2 && mailbox.sides.contains(where: { $0.connection != nil }) { continue }
            for side in mailbox.sides {
                if let connection = side.connection {
                    actions.append(.send(connection, .error(code: .expired, message: "the mailbox was idle for too long")))
                    actions.append(.close(connection))
                    connections[connection]?.bound = nil
                }
            }
            removeMailbox(id, now: now, expired: true)
        }
        // A side that dropped and did not come back within the window is
        // gone, as if it had closed with `errory`: a peer still waiting on
        // the mailbox (at a prompt, for a description) is told so.
        for (id, mailbox) in mailboxes where mailbox.sides.count == 2 {
            for index in mailbox.sides.indices
            where mailbox.sides[index].closed == nil && mailbox.sides[index].isGone(now: now, window: limits.reattachWindow) {
                mailboxes[id]?.sides[index].closed = .errory
                actions += deliver(id, to: 1 - index)
            }
        }
        // Sides that closed or dropped and did not come back within the
        // window hold nothing: the nameplate of a finished or abandoned
        // session is free again (one guess per nameplate is one guess per
        // meeting of two sides; a new meeting is a new pairing).
        for (id, mailbox) in mailboxes where mailbox.sides.allSatisfy({ $0.isGone(now: now, window: limits.reattachWindow) }) {
            removeMailbox(id, now: now)
        }
        for (id, connection) in connections where connection.bound == nil && now - connection.since >= limits.claimTimeout {
            actions.append(.send(id, .error(code: .expired, message: "no nameplate was claimed in time")))
            actions.append(.close(id))
        }
        statistics.nameplates = nameplates.count
        return actions
    }

    /// The state of a nameplate, for tests and the health endpoint.
    public func nameplateIsInUse(_ nameplate: String) -> Bool { nameplates[nameplate] != nil }

    // MARK: Frames

    private mutating func handle(_ frame: ClientFrame, from id: ConnectionID, now: NIODeadline) -> [Action] {
        guard let connection = connections[id] else { return [] }
        switch frame {
        case .allocate(let side):
            guard connection.bound == nil else { return refuse(id, .outOfOrder, "this connection already joined a mailbox") }
            guard takeClaimToken(connection.address, now: now) else {
                return refuse(id, .limit, "too many nameplate requests from this address; try again in a minute", limit: "claims_per_address")
            }
            guard let nameplate = freeNameplate() else { return refuse(id, .limit, "no free nameplate", limit: "nameplates") }
            return open(nameplate: nameplate, allocated: true, side: side, connection: id, address: connection.address, now: now) {
                nameplate, mailbox in .allocated(nameplate: nameplate, mailbox: mailbox)
            }

        case .claim(let nameplate, let side):
            guard connection.bound == nil else { return refuse(id, .outOfOrder, "this connection already joined a mailbox") }
            guard takeClaimToken(connection.address, now: now) else {
                return refuse(id, .limit, "too many nameplate requests from this address; try again in a minute", limit: "claims_per_address")
            }
            switch nameplates[nameplate] {
            case nil:
                // A pre-agreed code: the first side to claim opens the nameplate.
                return open(nameplate: nameplate, allocated: false, side: side, connection: id, address: connection.address, now: now) {
                    nameplate, mailbox in .claimed(nameplate: nameplate, mailbox: mailbox)
                }
            case .waiting(let mailboxID):
                guard var mailbox = mailboxes[mailboxID], mailbox.sides.count == 1 else {
                    return refuse(id, .unknownNameplate, "nameplate \(nameplate) is not open")
                }
                guard mailbox.sides[0].id != side else { return refuse(id, .outOfOrder, "this side already claimed nameplate \(nameplate); attach instead") }
                // Both sides met: the nameplate takes no more claims (one guess per code).
                mailbox.sides.append(Side(id: side, connection: id, address: connection.address))
                mailbox.lastActivity = now
                mailboxes[mailboxID] = mailbox
                nameplates[nameplate] = .consumed(mailboxID)
                connections[id]?.bound = (mailboxID, side)
                statistics.pairingsJoined += 1
                return [.send(id, .claimed(nameplate: nameplate, mailbox: mailboxID)), .joined(after: now - mailbox.opened)]
                    + deliver(mailboxID, to: 1) + deliver(mailboxID, to: 0)
            case .consumed:
                return refuse(id, .crowded, "nameplate \(nameplate) already has two sides")
            case .tombstone:
                return refuse(id, .expired, "nameplate \(nameplate) has expired")
            }

        case .attach(let mailboxID, let side, let received):
            guard connection.bound == nil else { return refuse(id, .outOfOrder, "this connection already joined a mailbox") }
            guard var mailbox = mailboxes[mailboxID], let index = mailbox.sides.firstIndex(where: { $0.id == side }) else {
                return refuse(id, .unknownMailbox, "no such mailbox, or this side is not in it")
            }
            guard mailbox.sides[index].closed == nil else { return refuse(id, .outOfOrder, "this side already closed the mailbox") }
            let peerCount = mailbox.sides.count == 2 ? mailbox.sides[1 - index].messages.count : 0
            guard received <= peerCount else { return refuse(id, .outOfOrder, "received more messages than the peer sent") }
            var superseded: [Action] = []
            if let old = mailbox.sides[index].connection, old != id {
                // The side came back on a new connection: the old one is stale.
                connections[old]?.bound = nil
                superseded = [.send(old, .error(code: .outOfOrder, message: "this side attached on another connection")), .close(old)]
            }
            mailbox.sides[index].connection = id
            mailbox.sides[index].droppedAt = nil
            mailbox.sides[index].delivered = received
            mailbox.sides[index].toldPeerClosed = false
            mailbox.sides[index].grantedTURN = false
            mailbox.lastActivity = now
            mailboxes[mailboxID] = mailbox
            connections[id]?.bound = (mailboxID, side)
            return superseded + [.send(id, .attached(mailbox: mailboxID))] + deliver(mailboxID, to: index)

        case .add(let seq, let body):
            guard let bound = connection.bound, var mailbox = mailboxes[bound.mailbox],
                  let index = mailbox.sides.firstIndex(where: { $0.id == bound.side })
            else { return refuse(id, .outOfOrder, "add before joining a mailbox") }
            let count = mailbox.sides[index].messages.count
            if seq < count { return [] }  // a resend after a reconnect: already stored once
            guard seq == count else { return refuse(id, .outOfOrder, "expected message \(count), got \(seq)") }
            guard count < limits.maxMessagesPerSide else { return refuse(id, .mailboxFull, "the mailbox is full", limit: "messages_per_side") }
            guard mailbox.sides[index].bytes + body.count <= limits.maxBytesPerSide else {
                return refuse(id, .mailboxFull, "the mailbox is full", limit: "bytes_per_side")
            }
            let charged = mailbox.sides[index].address
            guard bytesByAddress[charged, default: 0] + body.count <= limits.maxBytesPerAddress else {
                return refuse(id, .limit, "too many bytes stored from this address", limit: "bytes_per_address")
            }
            guard statistics.bytesStored + body.count <= limits.maxBytesTotal else {
                return refuse(id, .limit, "the relay is full", limit: "bytes_total")
            }
            mailbox.sides[index].messages.append(body)
            mailbox.sides[index].bytes += body.count
            bytesByAddress[charged, default: 0] += body.count
            statistics.bytesStored += body.count
            statistics.bytesRelayed += body.count
            mailbox.lastActivity = now
            mailboxes[bound.mailbox] = mailbox
            statistics.messagesRelayed += 1
            return mailbox.sides.count == 2 ? deliver(bound.mailbox, to: 1 - index) : []

        case .close(let mood):
            guard let bound = connection.bound, var mailbox = mailboxes[bound.mailbox],
                  let index = mailbox.sides.firstIndex(where: { $0.id == bound.side })
            else { return refuse(id, .outOfOrder, "close before joining a mailbox") }
            mailbox.sides[index].closed = mood
            mailbox.sides[index].connection = nil
            mailbox.lastActivity = now
            mailboxes[bound.mailbox] = mailbox
            connections[id]?.bound = nil
            var actions: [Action] = [.send(id, .closed), .close(id)]
            if mailbox.sides.count == 2 {
                if mailbox.sides.allSatisfy({ $0.closed != nil }) {
                    removeMailbox(bound.mailbox, now: now)
                } else {
                    actions += deliver(bound.mailbox, to: 1 - index)
                }
            } else {
                // The only side left before anyone came: an allocated code
                // is dead; a pre-agreed one is free for the next attempt.
                removeMailbox(bound.mailbox, now: now)
            }
            return actions
        }
    }

    // MARK: Helpers

    private mutating func open(
        nameplate: String, allocated: Bool, side: Identifier, connection id: ConnectionID, address: String, now: NIODeadline,
        reply: (String, Identifier) -> RelayFrame
    ) -> [Action] {
        guard mailboxes.count < limits.maxMailboxes else { return refuse(id, .limit, "the relay is full", limit: "mailboxes") }
        guard mailboxesByAddress[address, default: 0] < limits.maxMailboxesPerAddress else {
            return refuse(id, .limit, "too many open mailboxes from this address", limit: "mailboxes_per_address")
        }
        var mailboxID = Identifier.random()
        while mailboxes[mailboxID] != nil { mailboxID = Identifier.random() }
        mailboxes[mailboxID] = Mailbox(
            nameplate: nameplate, allocated: allocated, address: address, sides: [Side(id: side, connection: id, address: address)], lastActivity: now, opened: now)
        statistics.pairingsStarted += 1
        mailboxesByAddress[address, default: 0] += 1
        nameplates[nameplate] = .waiting(mailboxID)
        connections[id]?.bound = (mailboxID, side)
        statistics.mailboxes = mailboxes.count
        statistics.nameplates = nameplates.count
        return [.send(id, reply(nameplate, mailboxID))]
    }

    /// Sends side `index` every peer message it has not been sent, then the
    /// peer's close if there was one.
    private mutating func deliver(_ mailboxID: Identifier, to index: Int) -> [Action] {
        guard var mailbox = mailboxes[mailboxID], mailbox.sides.count == 2,
              let connection = mailbox.sides[index].connection else { return [] }
        let peer = mailbox.sides[1 - index]
        var actions: [Action] = []
        if !mailbox.sides[index].grantedTURN {
            actions.append(.grantTURN(connection))
            mailbox.sides[index].grantedTURN = true
        }
        while mailbox.sides[index].delivered < peer.messages.count {
            let seq = mailbox.sides[index].delivered
            actions.append(.send(connection, .message(seq: seq, body: peer.messages[seq])))
            mailbox.sides[index].delivered += 1
        }
        if let mood = peer.closed, !mailbox.sides[index].toldPeerClosed {
            actions.append(.send(connection, .peerClosed(mood: mood)))
            mailbox.sides[index].toldPeerClosed = true
        }
        mailboxes[mailboxID] = mailbox
        return actions
    }

    private mutating func removeMailbox(_ id: Identifier, now: NIODeadline, expired: Bool = false) {
        guard let mailbox = mailboxes.removeValue(forKey: id) else { return }
        if let reason = Self.failure(of: mailbox, expired: expired) {
            statistics.pairingsFailed[reason, default: 0] += 1
        } else {
            statistics.pairingsCompleted += 1
        }
        if let count = mailboxesByAddress[mailbox.address] {
            mailboxesByAddress[mailbox.address] = count > 1 ? count - 1 : nil
        }
        for side in mailbox.sides where side.bytes > 0 {
            let left = bytesByAddress[side.address, default: 0] - side.bytes
            bytesByAddress[side.address] = left > 0 ? left : nil
            statistics.bytesStored -= side.bytes
        }
        switch nameplates[mailbox.nameplate] {
        case .waiting(let waiting) where waiting == id:
            // An abandoned allocated code stays refused for a while, so a
            // receiver typing it late is told it expired; an address that
            // abandons many gets no more tombstones (it cannot fill the
            // nameplate space with them).
            if mailbox.allocated && tombstonesByAddress[mailbox.address, default: 0] < limits.maxTombstonesPerAddress {
                nameplates[mailbox.nameplate] = .tombstone(until: now + limits.idleLifetime, address: mailbox.address)
                tombstonesByAddress[mailbox.address, default: 0] += 1
                statistics.tombstones += 1
            } else {
                nameplates[mailbox.nameplate] = nil
            }
        case .consumed(let consumed) where consumed == id:
            nameplates[mailbox.nameplate] = nil
        default:
            break
        }
        statistics.mailboxes = mailboxes.count
        statistics.nameplates = nameplates.count
    }

    /// Why a pairing failed, for a mailbox being removed; nil when both
    /// sides met and closed `happy`.
    private static func failure(of mailbox: Mailbox, expired: Bool) -> String? {
        guard mailbox.sides.count == 2 else { return expired ? "expired" : "abandoned" }
        let moods = mailbox.sides.map(\.closed)
        if moods.allSatisfy({ $0 == .happy }) { return nil }
        for mood in [Mood.scary, .lonely, .errory] where moods.contains(mood) { return mood.rawValue }
        return expired ? "expired" : "dropped"
    }

    /// The ranges nameplates are drawn from: the shortest whose size is more
    /// than twice the nameplates in use (waiting, consumed or tombstoned),
    /// so codes stay short while the relay is quiet.
    static let nameplateRanges: [ClosedRange<Int>] = [1...99, 1...999, 1...9_999, 1...99_999, 1...999_999]

    /// A free nameplate drawn at random (not the smallest, which anyone could
    /// predict and claim first). A range at most half full makes each draw
    /// succeed with probability at least 1/2, so this takes O(1) draws; after
    /// 16 misses it moves to the next range.
    private func freeNameplate() -> String? {
        var generator = SystemRandomNumberGenerator()
        for range in Self.nameplateRanges where nameplates.count * 2 < range.count {
            for _ in 0..<16 {
                let candidate = String(Int.random(in: range, using: &generator))
                if nameplates[candidate] == nil { return candidate }
            }
        }
        return nil
    }

    /// Takes one of the address's `allocate`/`claim` tokens; false when none is left.
    private mutating func takeClaimToken(_ address: String, now: NIODeadline) -> Bool {
        guard limits.claimsPerMinute > 0 else { return true }
        let tokens = claimBuckets[address]?.refilled(now: now, limits: limits) ?? Double(limits.claimsPerMinute)
        guard tokens >= 1 else { return false }
        claimBuckets[address] = ClaimBucket(tokens: tokens - 1, at: now)
        return true
    }

    private mutating func forgetTombstone(of address: String) {
        let left = tombstonesByAddress[address, default: 0] - 1
        tombstonesByAddress[address] = left > 0 ? left : nil
        statistics.tombstones -= 1
    }

    private mutating func refuse(_ id: ConnectionID, _ code: RelayErrorCode, _ message: String, limit: String? = nil) -> [Action] {
        statistics.protocolErrors += 1
        if let limit { statistics.refusals[limit, default: 0] += 1 }
        return [.send(id, .error(code: code, message: message)), .close(id)]
    }
}
