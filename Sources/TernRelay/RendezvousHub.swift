import NIOCore
import TernRendezvous

/// Limits the relay enforces; each one is a `tern relay` flag.
public struct RelayLimits: Sendable {
    /// Largest mailbox message body in bytes.
    public var maxMessageBytes = 64 * 1024
    /// A nameplate waiting for its second side, or a mailbox neither of whose
    /// sides is connected, with no activity for this long is removed; a
    /// removed waiting nameplate the relay allocated stays refused
    /// ("expired") for as long again.
    public var idleLifetime: TimeAmount = .minutes(10)
    /// Mailboxes one client address may have open at once.
    public var maxMailboxesPerAddress = 64
    /// Mailboxes open at once in total.
    public var maxMailboxes = 10_000
    /// Messages one side may add to one mailbox.
    public var maxMessagesPerSide = 256
    /// Connections open at once in total.
    public var maxConnections = 20_000
    /// A side whose connection dropped without a `close` keeps its place
    /// this long, for the client to reconnect and attach (its schedule of
    /// retries takes about 8 s); then it counts as gone. A mailbox whose
    /// sides are all gone is removed and its nameplate freed, so that a
    /// pre-agreed code can be used again by a new pair. Not a flag: it
    /// follows the client's reconnect schedule, not the operator's needs.
    public var reattachWindow: TimeAmount = .seconds(15)

    public init() {}
}

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
    }

    public struct Statistics: Sendable, Equatable {
        public var connections = 0
        public var nameplates = 0
        public var mailboxes = 0
        public var messagesRelayed = 0
        public var protocolErrors = 0
    }

    private enum NameplateState {
        /// One side is in the mailbox, waiting for the other.
        case waiting(Identifier)
        /// Both sides met; the nameplate refuses further claims until the mailbox goes.
        case consumed(Identifier)
        /// An allocated nameplate expired or its only side left; refused
        /// until the deadline (a receiver typing the code of a sender that
        /// gave up is told so, and the number is not handed out again yet).
        case tombstone(until: NIODeadline)
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
        /// When the connection dropped without a `close` (nil while
        /// connected, and once the side closed).
        var droppedAt: NIODeadline?

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
    public private(set) var statistics = Statistics()

    public init(limits: RelayLimits) {
        self.limits = limits
    }

    // MARK: Inputs

    /// A new connection. Returns false when the relay is full: close it.
    public mutating func connected(_ id: ConnectionID, address: String, now: NIODeadline) -> Bool {
        guard connections.count < limits.maxConnections else { return false }
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

    /// Expires idle mailboxes, nameplates and connections that never joined one.
    public mutating func tick(now: NIODeadline) -> [Action] {
        var actions: [Action] = []
        for (key, state) in nameplates {
            if case .tombstone(let until) = state, until <= now { nameplates[key] = nil }
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
            removeMailbox(id, now: now)
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
        for (id, connection) in connections where connection.bound == nil && now - connection.since >= limits.idleLifetime {
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
            guard let nameplate = smallestFreeNameplate() else { return refuse(id, .limit, "no free nameplate") }
            return open(nameplate: nameplate, allocated: true, side: side, connection: id, address: connection.address, now: now) {
                nameplate, mailbox in .allocated(nameplate: nameplate, mailbox: mailbox)
            }

        case .claim(let nameplate, let side):
            guard connection.bound == nil else { return refuse(id, .outOfOrder, "this connection already joined a mailbox") }
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
                mailbox.sides.append(Side(id: side, connection: id))
                mailbox.lastActivity = now
                mailboxes[mailboxID] = mailbox
                nameplates[nameplate] = .consumed(mailboxID)
                connections[id]?.bound = (mailboxID, side)
                return [.send(id, .claimed(nameplate: nameplate, mailbox: mailboxID))] + deliver(mailboxID, to: 1)
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
            guard count < limits.maxMessagesPerSide else { return refuse(id, .mailboxFull, "the mailbox is full") }
            mailbox.sides[index].messages.append(body)
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
        guard mailboxes.count < limits.maxMailboxes else { return refuse(id, .limit, "the relay is full") }
        guard mailboxesByAddress[address, default: 0] < limits.maxMailboxesPerAddress else {
            return refuse(id, .limit, "too many open mailboxes from this address")
        }
        var mailboxID = Identifier.random()
        while mailboxes[mailboxID] != nil { mailboxID = Identifier.random() }
        mailboxes[mailboxID] = Mailbox(
            nameplate: nameplate, allocated: allocated, address: address, sides: [Side(id: side, connection: id)], lastActivity: now)
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

    private mutating func removeMailbox(_ id: Identifier, now: NIODeadline) {
        guard let mailbox = mailboxes.removeValue(forKey: id) else { return }
        if let count = mailboxesByAddress[mailbox.address] {
            mailboxesByAddress[mailbox.address] = count > 1 ? count - 1 : nil
        }
        switch nameplates[mailbox.nameplate] {
        case .waiting(let waiting) where waiting == id:
            nameplates[mailbox.nameplate] = mailbox.allocated ? .tombstone(until: now + limits.idleLifetime) : nil
        case .consumed(let consumed) where consumed == id:
            nameplates[mailbox.nameplate] = nil
        default:
            break
        }
        statistics.mailboxes = mailboxes.count
        statistics.nameplates = nameplates.count
    }

    private func smallestFreeNameplate() -> String? {
        var candidate = 1
        while candidate < 1_000_000 {
            let name = String(candidate)
            if nameplates[name] == nil { return name }
            candidate += 1
        }
        return nil
    }

    private mutating func refuse(_ id: ConnectionID, _ code: RelayErrorCode, _ message: String) -> [Action] {
        statistics.protocolErrors += 1
        return [.send(id, .error(code: code, message: message)), .close(id)]
    }
}
