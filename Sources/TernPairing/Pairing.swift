import TernRendezvous

/// Which end of a transfer this side is. The sender is the CPace initiator.
public enum PairingRole: Sendable, Equatable {
    case sender
    case receiver

    var cpaceRole: CPace.Role { self == .sender ? .initiator : .responder }
    var associatedData: [UInt8] { Array((self == .sender ? "tern sender" : "tern receiver").utf8) }
    var peer: PairingRole { self == .sender ? .receiver : .sender }
}

/// The kinds of mailbox message, the first byte of every body.
/// docs/protocol.md, "Mailbox messages".
enum MailboxMessageKind: UInt8 {
    /// version (1 byte) || CPace share (32 bytes)
    case pake = 0x01
    /// key confirmation tag (32 bytes)
    case confirm = 0x02
    /// sealed peer message: seq (8 bytes) || ciphertext || tag
    case sealed = 0x03
}

/// The pairing protocol between two sides that share a code, as a sans-IO
/// core: it is given the bodies of mailbox messages as they arrive and
/// returns the bodies to add to the mailbox, and what happened.
///
/// 1. Each side adds its CPace share at once (`start()`).
/// 2. On the peer's share, each side derives the session keys and adds its
///    key confirmation tag.
/// 3. On the peer's tag, each side checks it; a wrong code fails here on both
///    sides. Only then does anything sealed flow.
public struct PairingMachine: Sendable {
    public enum Output: Sendable, Equatable {
        /// Add this body to the mailbox.
        case send([UInt8])
        /// Key confirmation succeeded: sealed messages can flow.
        case paired
        /// A sealed message from the peer, opened and decoded.
        case message(PeerMessage)
    }

    private enum State: Sendable {
        case awaitingShare(CPace)
        case awaitingConfirmation(keys: SessionKeys, transcript: [UInt8], sealing: SealingChannel)
        case paired(SealingChannel)
        case failed(PairingError)
    }

    static let protocolVersion: UInt8 = 1

    public let role: PairingRole
    private var state: State
    private let ownShare: [UInt8]

    /// - Parameters:
    ///   - code: the code both sides typed; only its words are secret.
    ///   - mailbox: the mailbox id the relay gave both sides; it is the CPace session id.
    public init(role: PairingRole, code: Code, mailbox: Identifier) throws(PairingError) {
        self.role = role
        let cpace = try CPace(
            password: code.password,
            channelIdentifier: Array("tern v1 nameplate \(code.nameplate)".utf8),
            sessionID: mailbox.bytes,
            role: role.cpaceRole,
            associatedData: role.associatedData)
        self.ownShare = cpace.share
        self.state = .awaitingShare(cpace)
    }

    /// The first body to add to the mailbox: this side's share.
    public func start() -> [UInt8] {
        return [MailboxMessageKind.pake.rawValue, Self.protocolVersion] + ownShare
    }

    public var isPaired: Bool {
        if case .paired = state { return true }
        return false
    }

    /// Handles one body from the peer, in mailbox order.
    public mutating func receive(_ body: [UInt8]) throws(PairingError) -> [Output] {
        do {
            return try step(body)
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func step(_ body: [UInt8]) throws(PairingError) -> [Output] {
        guard let first = body.first, let kind = MailboxMessageKind(rawValue: first) else {
            throw .unexpectedMessage("unknown mailbox message kind")
        }
        switch (state, kind) {
        case (.failed(let error), _):
            throw error

        case (.awaitingShare(let cpace), .pake):
            guard body.count == 2 + 32 else { throw .unexpectedMessage("a PAKE message is 34 bytes") }
            guard body[1] == Self.protocolVersion else { throw .unsupportedVersion(body[1]) }
            let peerShare = Array(body[2...])
            let isk = try cpace.finish(peerShare: peerShare, peerAssociatedData: role.peer.associatedData)
            let keys = try SessionKeys(intermediateSessionKey: isk)
            // Both sides confirm over the draft's transcript_ir (initiator's share and AD first).
            let transcript = cpace.transcript(peerShare: peerShare, peerAssociatedData: role.peer.associatedData)
            let tag = keys.confirmationTag(for: role.cpaceRole, transcript: transcript)
            state = .awaitingConfirmation(keys: keys, transcript: transcript, sealing: SealingChannel(keys: keys, role: role.cpaceRole))
            return [.send([MailboxMessageKind.confirm.rawValue] + tag)]

        case (.awaitingConfirmation(let keys, let transcript, let sealing), .confirm):
            let tag = Array(body.dropFirst())
            guard tag.count == 32, keys.verifyConfirmation(tag, from: role.peer.cpaceRole, transcript: transcript) else {
                throw .confirmationFailed
            }
            state = .paired(sealing)
            return [.paired]

        case (.paired(var sealing), .sealed):
            let plaintext = try sealing.open(Array(body.dropFirst()))
            state = .paired(sealing)
            return [.message(try PeerMessage(decoding: plaintext))]

        case (.awaitingShare, _), (.awaitingConfirmation, _), (.paired, _):
            throw .unexpectedMessage("mailbox message out of order")
        }
    }

    /// Seals a message for the peer; only after key confirmation.
    public mutating func seal(_ message: PeerMessage) throws(PairingError) -> [UInt8] {
        guard case .paired(var sealing) = state else { throw .notPaired }
        let sealed = try sealing.seal(message.encoded())
        state = .paired(sealing)
        return [MailboxMessageKind.sealed.rawValue] + sealed
    }
}
