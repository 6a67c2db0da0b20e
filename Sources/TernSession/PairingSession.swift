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
}

/// Drives the pairing core over a relay connection: connect, get or claim a
/// nameplate, run CPace and key confirmation through the mailbox, and then
/// carry sealed peer messages.
///
/// Not Sendable: one task owns a session from start to end.
public final class PairingSession {
    public let welcome: Welcome
    public let code: Code
    public let role: PairingRole
    private let connection: RelayConnection
    private var frames: AsyncThrowingStream<RelayFrame, Error>.Iterator
    private var machine: PairingMachine
    private var nextSendSeq = 0
    private var nextReceiveSeq = 0
    private var pending: [PeerMessage] = []
    private var closed = false

    /// Pairs with the other side.
    ///
    /// - Parameters:
    ///   - code: nil for a sender that asks the relay for a nameplate; the code
    ///     otherwise (the receiver's, or a pre-agreed one).
    ///   - randomWords: two bytes from a cryptographic source, for an allocated code.
    public static func pair(
        relay: RelayURL, role: PairingRole, code: Code?,
        randomWords: (UInt8, UInt8) = (UInt8.random(in: .min ... .max), UInt8.random(in: .min ... .max)),
        events: (PairingEvent) -> Void
    ) async throws(SessionError) -> PairingSession {
        let connection = try await RelayConnection.connect(to: relay)
        var frames = connection.frames.makeAsyncIterator()
        do {
            guard case .welcome(let welcome) = try await next(&frames) else {
                throw SessionError.relayProtocol("the relay did not start with a welcome")
            }
            guard welcome.version == rendezvousProtocolVersion else {
                throw SessionError.relayProtocol("the relay speaks protocol version \(welcome.version), this tern speaks \(rendezvousProtocolVersion)")
            }
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
            let session = PairingSession(
                welcome: welcome, code: finalCode, role: role, connection: connection, frames: frames, machine: machine)
            try await session.runPairing()
            events(.paired)
            return session
        } catch let error as SessionError {
            await connection.close()
            throw error
        } catch {
            await connection.close()
            throw .relayLost("lost the connection to the relay: \(error)")
        }
    }

    private init(
        welcome: Welcome, code: Code, role: PairingRole, connection: RelayConnection,
        frames: AsyncThrowingStream<RelayFrame, Error>.Iterator, machine: PairingMachine
    ) {
        self.welcome = welcome
        self.code = code
        self.role = role
        self.connection = connection
        self.frames = frames
        self.machine = machine
    }

    private func runPairing() async throws(SessionError) {
        try await add(machine.start())
        while !machine.isPaired {
            let body = try await nextPeerBody()
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
        try await add(body)
    }

    /// The next message from the peer.
    public func receive() async throws(SessionError) -> PeerMessage {
        if !pending.isEmpty { return pending.removeFirst() }
        while true {
            let body = try await nextPeerBody()
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

    /// Leaves the mailbox and closes the connection.
    public func close(mood: Mood) async {
        guard !closed else { return }
        closed = true
        try? await connection.send(.close(mood: mood))
        // Wait briefly for the relay's acknowledgement so the close is not lost.
        while let frame = try? await Self.next(&frames, allowClose: true) {
            if case .closed = frame { break }
        }
        await connection.close()
    }

    private func add(_ body: [UInt8]) async throws(SessionError) {
        try await connection.send(.add(seq: nextSendSeq, body: body))
        nextSendSeq += 1
    }

    private func nextPeerBody() async throws(SessionError) -> [UInt8] {
        while true {
            switch try await Self.next(&frames) {
            case .message(let seq, let body):
                if seq < nextReceiveSeq { continue }  // a resend after reconnect
                guard seq == nextReceiveSeq else { throw .relayProtocol("peer message \(seq) arrived before \(nextReceiveSeq)") }
                nextReceiveSeq += 1
                return body
            case .peerClosed(let mood):
                throw mood == .scary && !machine.isPaired ? .wrongCode : .peerLeft(mood)
            default:
                throw .relayProtocol("unexpected frame from the relay")
            }
        }
    }

    private static func next(
        _ frames: inout AsyncThrowingStream<RelayFrame, Error>.Iterator, allowClose: Bool = false
    ) async throws(SessionError) -> RelayFrame {
        let frame: RelayFrame?
        do {
            frame = try await frames.next()
        } catch let error as SessionError {
            throw error
        } catch {
            throw .relayLost("lost the connection to the relay: \(error)")
        }
        guard let frame else { throw .relayLost("the relay closed the connection") }
        if case .error(let code, let message) = frame, !allowClose {
            throw .relayRefused(code, message)
        }
        return frame
    }
}
