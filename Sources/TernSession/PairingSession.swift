import NIOConcurrencyHelpers
import NIOCore
import TernCrypto
import TernPairing
import TernRendezvous

/// What happens during pairing, for the CLI to show.
public enum PairingEvent: Sendable, Equatable {
    case connected(Welcome)
    /// The code to give the other side (sender with an allocated nameplate),
    /// or the pre-agreed one in use.
    case code(Code)
    /// Key confirmation succeeded.
    case paired
    /// The connection to the relay broke and was re-established; nothing was lost.
    case reconnected
}

/// Drives the pairing core over a relay connection: connect, get or claim a
/// nameplate, run CPace and key confirmation through the mailbox, and then
/// carry sealed peer messages.
///
/// Once it has a mailbox, a lost relay connection is not fatal: the session
/// reconnects, attaches to its mailbox with the count of peer messages it
/// has, and sends its own messages again (the relay drops the copies it
/// already stored), so every message still arrives exactly once.
///
/// Not Sendable: one task owns a session from start to end. Other tasks
/// (the connectivity driver) hand it messages to send through `outbox`; the
/// owner sends them, in order, while it waits in `receive`.
public final class PairingSession {
    /// The relay's welcome; its `turn` is filled in from the relay's `turn`
    /// frame, which comes once both sides are in the mailbox.
    public private(set) var welcome: Welcome
    public let code: Code
    public let role: PairingRole
    private let relay: RelayURL
    private let side: Identifier
    private let mailbox: Identifier
    private let events: (PairingEvent) -> Void
    private var connection: RelayConnection
    /// Relay frames (tagged with the connection they came on) and requests
    /// from `outbox`, in the order they happened.
    private var inbox: AsyncStream<Inbound>.Iterator
    private let inboxInput: AsyncStream<Inbound>.Continuation
    /// Counts connections: frames and endings of an older one are ignored.
    private var generation = 0
    private var woken = false
    /// Inbox entries read while flushing, to be handled by the next receive.
    private var deferred: [Inbound] = []
    private var flushes = 0
    private var machine: PairingMachine
    /// Every body this side added, index = seq, for resending after a reconnect.
    private var sent: [[UInt8]] = []
    private var nextReceiveSeq = 0
    private var pending: [PeerMessage] = []
    private var closed = false
    /// The task reading the mailbox for the data path (`readInBackground`).
    private var follower: Task<Void, Never>?
    /// `close` began: a reconnection under way (the background reader's)
    /// gives up at once rather than finish its backoff. Shared with the
    /// reader's task, hence the lock.
    private let closing = NIOLockedValueBox(false)
    /// The relay connection ended and no new one is attached: `close` has
    /// nobody to tell and nothing to wait for.
    private var connectionDown = false

    /// Reconnection attempts after a lost connection, and the waits between them.
    static let reconnectDelays: [TimeAmount] = [.milliseconds(100), .milliseconds(300), .seconds(1), .seconds(2), .seconds(4)]

    /// Pairs with the other side.
    ///
    /// - Parameters:
    ///   - code: nil for a sender that asks the relay for a nameplate; the code
    ///     otherwise (the receiver's, or a pre-agreed one).
    ///   - randomWords: two bytes from a cryptographic source, for an allocated code.
    public static func pair(
        relay: RelayURL, role: PairingRole, code: Code?,
        randomWords: (UInt8, UInt8) = PairingSession.randomWords(),
        events: @escaping (PairingEvent) -> Void
    ) async throws(SessionError) -> PairingSession {
        let connection = try await RelayConnection.connect(to: relay)
        var frames = connection.frames.makeAsyncIterator()
        let session: PairingSession
        do {
            let welcome = try await expectWelcome(&frames)
            events(.connected(welcome))

            let side = Identifier.random()
            let finalCode: Code
            let mailbox: Identifier
            if let code {
                try await connection.send(.claim(nameplate: code.nameplate, side: side))
                guard case .claimed(let nameplate, let id) = try await next(&frames), nameplate == code.nameplate else {
                    throw SessionError.relayProtocol("expected 'claimed'")
                }
                finalCode = code
                mailbox = id
            } else {
                try await connection.send(.allocate(side: side))
                guard case .allocated(let nameplate, let id) = try await next(&frames) else {
                    throw SessionError.relayProtocol("expected 'allocated'")
                }
                do {
                    finalCode = try Code(nameplate: nameplate, randomBytes: randomWords)
                } catch {
                    throw SessionError.relayProtocol("the relay allocated a bad nameplate")
                }
                mailbox = id
            }
            events(.code(finalCode))

            let machine: PairingMachine
            do {
                machine = try PairingMachine(role: role, code: finalCode, mailbox: mailbox)
            } catch {
                throw SessionError.pairing(error)
            }
            session = PairingSession(
                welcome: welcome, code: finalCode, role: role, relay: relay, side: side, mailbox: mailbox,
                connection: connection, frames: frames, machine: machine, events: events)
        } catch let error as SessionError {
            await connection.close()
            throw error
        } catch {
            await connection.close()
            throw .relayLost("lost the connection to the relay: \(ErrorText.describe(error))")
        }
        do {
            try await session.runPairing()
        } catch {
            await session.connection.close()
            throw error
        }
        events(.paired)
        return session
    }

    private init(
        welcome: Welcome, code: Code, role: PairingRole, relay: RelayURL, side: Identifier, mailbox: Identifier,
        connection: RelayConnection, frames: sending AsyncThrowingStream<RelayFrame, Error>.Iterator, machine: PairingMachine,
        events: @escaping (PairingEvent) -> Void
    ) {
        self.welcome = welcome
        self.code = code
        self.role = role
        self.relay = relay
        self.side = side
        self.mailbox = mailbox
        self.connection = connection
        self.machine = machine
        self.events = events
        let (stream, input) = AsyncStream<Inbound>.makeStream()
        self.inbox = stream.makeAsyncIterator()
        self.inboxInput = input
        Self.forward(frames, generation: 0, to: input)
    }

    deinit {
        inboxInput.finish()
    }

    /// Moves a connection's frames into the inbox until it ends.
    private static func forward(
        _ frames: sending AsyncThrowingStream<RelayFrame, Error>.Iterator, generation: Int,
        to inbox: AsyncStream<Inbound>.Continuation
    ) {
        Task {
            var frames = frames
            do {
                while let frame = try await frames.next() {
                    inbox.yield(.frame(generation: generation, frame))
                }
                inbox.yield(.ended(generation: generation, .relayLost("the relay closed the connection")))
            } catch let error as SessionError {
                inbox.yield(.ended(generation: generation, error))
            } catch {
                inbox.yield(.ended(generation: generation, .relayLost("lost the connection to the relay: \(ErrorText.describe(error))")))
            }
        }
    }

    /// Hands messages to the task that owns the session.
    public var outbox: PeerOutbox { PeerOutbox(inbox: inboxInput) }

    private func runPairing() async throws(SessionError) {
        try await add(machine.start())
        while !machine.isPaired {
            guard let body = try await nextPeerBody() else { continue }
            let outputs: [PairingMachine.Output]
            do {
                outputs = try machine.receive(body)
            } catch .confirmationFailed {
                await close(mood: .scary)
                throw .wrongCode
            } catch {
                await close(mood: .scary)
                throw .pairing(error)
            }
            for output in outputs {
                switch output {
                case .send(let body): try await add(body)
                case .paired: break
                case .message(let message): pending.append(message)
                }
            }
        }
    }

    /// Seals and sends a message to the peer.
    public func send(_ message: PeerMessage) async throws(SessionError) {
        let body: [UInt8]
        do {
            body = try machine.seal(message)
        } catch {
            throw .pairing(error)
        }
        guard body.count <= welcome.maxMessageBytes else {
            throw .pairing(.messageTooLarge(size: body.count, limit: welcome.maxMessageBytes))
        }
        try await add(body)
    }

    /// The next message from the peer. Messages handed to `outbox` are sent
    /// meanwhile.
    public func receive() async throws(SessionError) -> PeerMessage {
        // Without a wake-up, nextPeerBody returns only with a body.
        while true {
            if let message = try await receive(wakeable: false) { return message }
        }
    }

    /// The next message from the peer, or nil once `outbox.wake()` was
    /// called (now or before). Messages handed to `outbox` are sent meanwhile.
    public func receiveUntilWoken() async throws(SessionError) -> PeerMessage? {
        try await receive(wakeable: true)
    }

    /// The next message from the peer, or nil if none came within `limit`
    /// (a peer that stopped halfway). Messages handed to `outbox` are sent
    /// meanwhile.
    public func receive(within limit: Duration) async throws(SessionError) -> PeerMessage? {
        if !pending.isEmpty { return pending.removeFirst() }
        deadlines += 1
        let timer = Self.wake(inboxInput, with: .deadline(deadlines), after: limit)
        defer { timer.cancel() }
        return try await receive(wakeable: false, deadline: deadlines)
    }

    /// Counts `receive(within:)` calls: a deadline of an earlier one is ignored.
    private var deadlines = 0

    private func receive(wakeable: Bool, deadline: Int? = nil) async throws(SessionError) -> PeerMessage? {
        if !pending.isEmpty { return pending.removeFirst() }
        while true {
            guard let body = try await nextPeerBody(wakeable: wakeable, deadline: deadline) else { return nil }
            let outputs: [PairingMachine.Output]
            do {
                outputs = try machine.receive(body)
            } catch {
                await close(mood: .scary)
                throw .pairing(error)
            }
            for case .message(let message) in outputs { pending.append(message) }
            if !pending.isEmpty { return pending.removeFirst() }
        }
    }

    /// Sends every message handed to `outbox` so far, without waiting for
    /// the peer; what arrives meanwhile is kept for the next `receive`.
    public func flushOutbox() async throws(SessionError) {
        flushes += 1
        let marker = flushes
        inboxInput.yield(.flushed(marker))
        while let input = await inbox.next() {
            switch input {
            case .send(let message): try await send(message)
            case .flushed(let seen) where seen == marker: return
            case .flushed: continue
            default: deferred.append(input)
            }
        }
    }

    /// Once the data path is up, keeps reading the mailbox from a task of
    /// its own and hands each message from the peer to `handle`, until
    /// `close` (which stops it first): a tern peer may restart ICE through
    /// it during the transfer (docs/protocol.md §7.3), and messages handed
    /// to `outbox` keep going out. The connection is kept as before (the
    /// relay's pings, reconnecting and reattaching when it drops). The
    /// caller must not use the session meanwhile but to `close` it.
    /// Reading ends by itself when the peer leaves the mailbox or the relay
    /// is gone for good; the transfer does not depend on it.
    public func readInBackground(_ handle: @escaping @Sendable (PeerMessage) async -> Void) {
        guard follower == nil, !closed else { return }
        let handover = Handover(self)
        follower = Task { await handover.session.follow(handle) }
    }

    /// The background reader's loop (`readInBackground`).
    private func follow(_ handle: @Sendable (PeerMessage) async -> Void) async {
        while true {
            if !pending.isEmpty {
                await handle(pending.removeFirst())
                continue
            }
            do {
                guard let body = try await nextPeerBody(stopsFollowing: true) else { return }
                for case .message(let message) in try machine.receive(body) { pending.append(message) }
            } catch {
                return
            }
        }
    }

    /// How long `close` waits for the relay to acknowledge.
    static let closeWait: Duration = .seconds(2)

    /// Leaves the mailbox and closes the connection. Never waits for a
    /// reconnection: one under way (the relay connection dropped just
    /// before) is abandoned, and the mailbox is left only if a connection
    /// is up, waiting at most `closeWait` for the relay's acknowledgement.
    public func close(mood: Mood) async {
        guard !closed else { return }
        closing.withLockedValue { $0 = true }
        if let follower {
            inboxInput.yield(.stopFollowing)
            await follower.value
            self.follower = nil
        }
        closed = true
        guard !connectionDown else {
            await connection.close()
            return
        }
        try? await connection.send(.close(mood: mood))
        // Wait for the relay's acknowledgement so the close is not lost, but
        // not for ever: a relay that stopped answering must not hold the
        // process.
        let limit = Self.wake(inboxInput, with: .closeWaitOver, after: Self.closeWait)
        defer { limit.cancel() }
        waiting: while let input = deferred.isEmpty ? await inbox.next() : deferred.removeFirst() {
            switch input {
            case .frame(let generation, .closed) where generation == self.generation: break waiting
            case .ended(let generation, _) where generation == self.generation: break waiting
            case .closeWaitOver: break waiting
            default: continue
            }
        }
        await connection.close()
    }

    /// Puts `entry` in the inbox after `delay`, unless cancelled first.
    private static func wake(_ inbox: AsyncStream<Inbound>.Continuation, with entry: Inbound, after delay: Duration) -> Task<Void, Never> {
        Task {
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            inbox.yield(entry)
        }
    }

    private func add(_ body: [UInt8]) async throws(SessionError) {
        sent.append(body)
        do {
            try await connection.send(.add(seq: sent.count - 1, body: body))
        } catch .relayLost {
            // Reattaching sends every stored body again, this one included.
            try await reconnect()
        }
    }

    /// The next body from the peer, or nil when woken and `wakeable`, or
    /// when `deadline` passed.
    private func nextPeerBody(wakeable: Bool = false, deadline: Int? = nil, stopsFollowing: Bool = false) async throws(SessionError) -> [UInt8]? {
        while true {
            if wakeable && woken { return nil }
            let next = deferred.isEmpty ? await inbox.next() : deferred.removeFirst()
            guard let input = next else { throw .relayLost("the session was closed") }
            let frame: RelayFrame
            switch input {
            case .send(let message):
                try await send(message)
                if case .iceRestart = message {
                    // A restart means the path died, often because this
                    // machine moved to another network: the relay connection
                    // left from the old address too, and a TCP connection
                    // whose address went away never says so (the relay
                    // would drop it only after a minute of silence). A fresh
                    // one carries this message (resent on attach) and the
                    // peer's answer; the relay keeps every message once.
                    try await reconnect(after: [.zero] + Self.reconnectDelays)
                }
                continue
            case .wake:
                woken = true
                continue
            case .flushed, .closeWaitOver:
                continue
            case .deadline(let marker):
                if marker == deadline { return nil }
                continue
            case .stopFollowing:
                if stopsFollowing { return nil }
                continue
            case .ended(let generation, let error):
                guard generation == self.generation else { continue }
                guard case .relayLost = error else { connectionDown = true; throw error }
                try await reconnect()
                continue
            case .frame(let generation, let received):
                guard generation == self.generation else { continue }
                if case .error(let code, let message) = received { throw .relayRefused(code, message) }
                frame = received
            }
            switch frame {
            case .message(let seq, let body):
                if seq < nextReceiveSeq { continue }  // a resend after reconnect
                guard seq == nextReceiveSeq else { throw .relayProtocol("peer message \(seq) arrived before \(nextReceiveSeq)") }
                nextReceiveSeq += 1
                return body
            case .peerClosed(let mood):
                throw mood == .scary && !machine.isPaired ? .wrongCode : .peerLeft(mood)
            case .turn(let credentials):
                welcome.turn = credentials
                continue
            default:
                throw .relayProtocol("unexpected frame from the relay")
            }
        }
    }

    /// Opens a new connection and attaches to the mailbox, retrying with
    /// backoff; then resends this side's messages. Gives up as soon as
    /// `close` begins (within `closingPoll`), in the backoff or while a
    /// connection is being made.
    private func reconnect(after delays: [TimeAmount] = PairingSession.reconnectDelays) async throws(SessionError) {
        var lastError = SessionError.relayLost("lost the connection to the relay")
        let stopped = SessionError.relayLost("the session was closed while reconnecting to the relay")
        // The old connection is closed below: until a new one is attached,
        // `close` has nobody to tell.
        connectionDown = true
        for delay in delays {
            await connection.close()
            guard await Self.wait(.nanoseconds(delay.nanoseconds), unless: closing) else { throw stopped }
            do throws(SessionError) {
                let relay = self.relay
                let connecting = Task { try await RelayConnection.connect(to: relay) }
                guard await Self.wait(for: connecting, unless: closing) else {
                    // Whatever it makes is closed when it is made.
                    Task { try? await connecting.value.close() }
                    throw stopped
                }
                let fresh: RelayConnection
                switch await connecting.result {
                case .success(let connection): fresh = connection
                case .failure(let error): throw (error as? SessionError) ?? .relayUnreachable(ErrorText.describe(error))
                }
                var freshFrames = fresh.frames.makeAsyncIterator()
                _ = try await Self.expectWelcome(&freshFrames)
                try await fresh.send(.attach(mailbox: mailbox, side: side, received: nextReceiveSeq))
                guard case .attached(let id) = try await Self.next(&freshFrames), id == mailbox else {
                    throw .relayProtocol("expected 'attached'")
                }
                for (seq, body) in sent.enumerated() {
                    try await fresh.send(.add(seq: seq, body: body))
                }
                connection = fresh
                connectionDown = false
                generation += 1
                Self.forward(freshFrames, generation: generation, to: inboxInput)
                events(.reconnected)
                return
            } catch {
                if error == stopped { throw error }
                switch error {
                case .relayUnreachable(let why), .relayLost(let why):
                    lastError = .relayLost("lost the connection to the relay and could not reconnect: \(why)")
                default:
                    throw error
                }
            }
        }
        throw lastError
    }

    /// How often a reconnection looks whether `close` began.
    static let closingPoll: Duration = .milliseconds(20)

    /// Sleeps `delay`; false (at once, or within `closingPoll`) if `flag`
    /// is or becomes set.
    private static func wait(_ delay: Duration, unless flag: NIOLockedValueBox<Bool>) async -> Bool {
        let end = ContinuousClock.now + delay
        while ContinuousClock.now < end {
            if flag.withLockedValue({ $0 }) { return false }
            guard (try? await Task.sleep(for: min(closingPoll, end - ContinuousClock.now))) != nil else { return false }
        }
        return !flag.withLockedValue { $0 }
    }

    /// Waits for `task` to finish; false (leaving it running) if `flag` is
    /// or becomes set first.
    private static func wait<Success: Sendable>(
        for task: Task<Success, Error>, unless flag: NIOLockedValueBox<Bool>
    ) async -> Bool {
        let finished = NIOLockedValueBox(false)
        let watcher = Task {
            _ = await task.result
            finished.withLockedValue { $0 = true }
        }
        defer { watcher.cancel() }
        while !finished.withLockedValue({ $0 }) {
            if flag.withLockedValue({ $0 }) { return false }
            guard (try? await Task.sleep(for: closingPoll)) != nil else { return false }
        }
        return true
    }

    private static func expectWelcome(_ frames: inout AsyncThrowingStream<RelayFrame, Error>.Iterator) async throws(SessionError) -> Welcome {
        guard case .welcome(let welcome) = try await next(&frames) else {
            throw .relayProtocol("the relay did not start with a welcome")
        }
        guard welcome.version == rendezvousProtocolVersion else {
            throw .relayProtocol("the relay speaks protocol version \(welcome.version), this tern speaks \(rendezvousProtocolVersion)")
        }
        return welcome
    }

    private static func next(
        _ frames: inout AsyncThrowingStream<RelayFrame, Error>.Iterator, allowErrors: Bool = false
    ) async throws(SessionError) -> RelayFrame {
        let frame: RelayFrame?
        do {
            frame = try await frames.next()
        } catch let error as SessionError {
            throw error
        } catch {
            throw .relayLost("lost the connection to the relay: \(ErrorText.describe(error))")
        }
        guard let frame else { throw .relayLost("the relay closed the connection") }
        if case .error(let code, let message) = frame, !allowErrors {
            throw .relayRefused(code, message)
        }
        return frame
    }
}

/// What the owner of a session reads: relay frames, and requests from other tasks.
enum Inbound: Sendable {
    case frame(generation: Int, RelayFrame)
    case ended(generation: Int, SessionError)
    case send(PeerMessage)
    case wake
    case flushed(Int)
    /// `close` waited long enough for the relay's acknowledgement.
    case closeWaitOver
    /// The limit of a `receive(within:)` passed.
    case deadline(Int)
    /// `close` stops the background reader (`readInBackground`).
    case stopFollowing
}

/// The session handed to its background reader, which alone uses it until
/// `close` has stopped it (PairingSession is used by one task at a time).
private final class Handover: @unchecked Sendable {
    let session: PairingSession
    init(_ session: PairingSession) { self.session = session }
}

/// A handle other tasks use to send peer messages through a session they do
/// not own. The owner sends them in order while it waits in `receive`.
public struct PeerOutbox: Sendable {
    let inbox: AsyncStream<Inbound>.Continuation

    public func send(_ message: PeerMessage) {
        inbox.yield(.send(message))
    }

    /// Makes the owner's `receiveUntilWoken` return nil.
    public func wake() {
        inbox.yield(.wake)
    }
}

extension PairingSession {
    /// Two bytes from TernCrypto's CSPRNG, for an allocated code's words.
    public static func randomWords() -> (UInt8, UInt8) {
        var random = SecureRandomNumberGenerator()
        return (UInt8.random(in: .min ... .max, using: &random), UInt8.random(in: .min ... .max, using: &random))
    }
}
