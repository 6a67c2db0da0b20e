import Foundation
import Logging
import NIOConcurrencyHelpers
import TernDTLS
import TernDataChannel
import TernICE
import TernPairing
import TernRendezvous
import TernSession
import TernTransfer
import TernCollections

/// One data channel of `SecureChannels` as the transfer's message pipe.
final class DataChannelPipe: TransferChannel, @unchecked Sendable {
    let channels: SecureChannels
    /// The channel's stream; the receiver learns it from the first message.
    private let stream: NIOLockedValueBox<UInt16?>

    init(channels: SecureChannels, stream: UInt16?) {
        self.channels = channels
        self.stream = NIOLockedValueBox(stream)
    }

    func send(_ message: [UInt8]) async throws {
        guard let stream = stream.withLockedValue({ $0 }) else {
            throw TransferError.protocolViolation("no channel to answer on")
        }
        try await channels.send(message, on: stream)
    }

    func send(contentsOf messages: [[UInt8]]) async throws {
        guard let stream = stream.withLockedValue({ $0 }) else {
            throw TransferError.protocolViolation("no channel to answer on")
        }
        try await channels.send(contentsOf: messages, on: stream)
    }

    /// Messages taken from the channel in one trip to its loop and not
    /// yet handed out (at most `batch`, 2 MiB of chunks).
    private let pending = NIOLockedValueBox<(messages: [DataChannelMessage], next: Int)>(([], 0))
    private static let batch = 8

    func receive() async throws -> [UInt8]? {
        while let message = try await nextMessage() {
            let ours = stream.withLockedValue { current -> Bool in
                if current == nil { current = message.stream }
                return current == message.stream
            }
            // Messages on any other channel are not part of the transfer.
            if ours && message.binary { return message.payload }
        }
        // A path that stopped answering is not a close: say so.
        switch await channels.endReason() {
        case .noPath(let reason)?, .connectionLost(let reason)?: throw TransferError.connectionLost(reason)
        case .secureChannel(let reason)? where reason.hasSuffix(Self.oversizedMessageReason):
            // Our SCTP association aborted on a message above our
            // a=max-message-size: the peer broke the protocol, it did not close.
            throw TransferError.protocolViolation("the other side sent a message larger than this side accepts (its a=max-message-size)")
        default: return nil
        }
    }

    /// How TernSCTP's association ends a reassembly that passed the maximum
    /// message size (SCTPAssociation.receiveData).
    static let oversizedMessageReason = "a message larger than the max-message-size"

    private func nextMessage() async throws -> DataChannelMessage? {
        if let message = takePending() { return message }
        guard let batch = try await channels.receive(upTo: Self.batch) else { return nil }
        pending.withLockedValue { $0 = (batch, 0) }
        return takePending()
    }

    private func takePending() -> DataChannelMessage? {
        pending.withLockedValue { state -> DataChannelMessage? in
            guard state.next < state.messages.count else { return nil }
            // Handed out by value; the slot is emptied so the payload is not kept.
            let message = state.messages[state.next]
            state.messages[state.next].payload = []
            state.next += 1
            return message
        }
    }

    var currentStream: UInt16? { stream.withLockedValue { $0 } }

    func close() async {
        await channels.close()
    }
}

/// What runs when Ctrl-C arrives during a transfer: tell the peer, close
/// the channel, let the transfer save its resume state.
enum InterruptHook {
    private static let hook = NIOLockedValueBox<(@Sendable () async -> Void)?>(nil)
    private static let interrupted = NIOLockedValueBox(false)

    static func markInterrupted() {
        interrupted.withLockedValue { $0 = true }
    }

    static var wasInterrupted: Bool { interrupted.withLockedValue { $0 } }

    static func set(_ action: (@Sendable () async -> Void)?) {
        hook.withLockedValue { $0 = action }
    }

    static func run() async {
        guard let action = hook.withLockedValue({ $0 }) else { return }
        await finishes(within: .milliseconds(700), action)
    }
}

/// The data path both commands share: DTLS, SCTP and one data channel on
/// the connected path, then the transfer over it.
enum DataPath {
    static let channelLabel = "tern-transfer"
    static let logger = Logger(label: "tern.transfer")

    /// After an accepted offer: a certificate for this session, ICE through
    /// the mailbox (the receiver starts on the sender's description), then
    /// DTLS, SCTP and data channels. On failure the mailbox is closed with
    /// the mood that tells the peer why.
    static func open(
        session: PairingSession, role: ICERole, pairedAt: ContinuousClock.Instant, options: SessionOptions, output: Output
    ) async throws -> (ConnectivityDriver, ConnectedPath, SecureChannels) {
        let certificate: DTLSCertificate
        do {
            certificate = try DTLSCertificate.generate()
        } catch {
            await session.close(mood: .errory)
            throw CLIError(.failure, "cannot make a DTLS certificate: \(error.reason)")
        }
        do {
            var first: PeerMessage?
            if role == .controlled {
                // Bounded: a sender that stops after the answer must not hold us.
                first = try await session.receive(within: PeerConnection.signallingTimeout)
                guard first != nil else { throw PeerConnection.descriptionOverdue }
                guard case .sessionDescription(.offer, _)? = first else {
                    throw CLIError(.failure, "the sender sent something other than a session description")
                }
            }
            let (driver, path) = try await Connect.establish(
                session: session, role: role, first: first, pairedAt: pairedAt, options: options, certificate: certificate, output: output)
            // The mailbox stays open and is read until the end: a tern peer
            // restarts ICE through it when the only path dies.
            session.readInBackground { message in _ = await driver.handle(message) }
            do {
                let started = ContinuousClock.now
                let channels = try await PeerConnection.secure(driver: driver, path: path, role: role, certificate: certificate)
                logger.debug("DTLS and SCTP up", metadata: ["ms": "\(Connect.milliseconds(ContinuousClock.now - started))"])
                return (driver, path, channels)
            } catch {
                await driver.close()
                throw error
            }
        } catch {
            await session.close(mood: Connect.mood(after: error))
            throw error
        }
    }

    /// Ctrl-C during a transfer: the peer gets an `error` (given up to 300 ms
    /// to leave), then the channel closes.
    static func interrupt(_ pipe: DataChannelPipe, saying reason: String) async {
        try? await pipe.send(TransferMessage.failure(.cancelled, reason).encoded())
        await drain(pipe)
        await pipe.channels.close()
    }

    /// Waits up to `limit` until everything queued on the transfer channel
    /// was sent (an `error` behind queued chunks included).
    static func drain(_ pipe: DataChannelPipe, limit: Duration = .milliseconds(300)) async {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await pipe.channels.bufferedAmount(pipe.currentStream ?? 0) == 0 { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    static func cliError(_ error: TransferError) -> CLIError {
        switch error {
        case .integrity: return CLIError(.integrity, error.message)
        case .exists: return CLIError(.declined, error.message)
        case .connectionLost: return CLIError(.unreachable, error.message)
        case .peerFailed(let code, _):
            switch code {
            case .integrity: return CLIError(.integrity, error.message)
            case .exists: return CLIError(.declined, error.message)
            default: return CLIError(.failure, error.message)
            }
        case .unsafePath, .protocolViolation, .io, .noSpace, .streamNoSpace: return CLIError(.failure, error.message)
        case .unsendable: return CLIError(.usage, error.message)
        }
    }

    /// Ends what a transfer used, in order: the data channels, then the path
    /// (ICE checks, TURN allocations), then the mailbox with the outcome's
    /// mood. The one teardown for both sides.
    static func close(_ channels: SecureChannels, _ driver: ConnectivityDriver, _ session: PairingSession, mood: Mood) async {
        await channels.close()
        await driver.close()
        await session.close(mood: mood)
    }

    /// Runs a transfer, maps its errors for the CLI, closes the channels.
    static func run(
        _ body: @escaping @Sendable () async throws -> TransferSummary, channels: SecureChannels, pipe: DataChannelPipe,
        onInterrupt: @escaping @Sendable () async -> Void, afterInterrupt: @escaping @Sendable () -> Void = {}
    ) async throws -> TransferSummary {
        let job = Task { try await body() }
        InterruptHook.set {
            await onInterrupt()
            // The transfer notices the closed channel and saves its state.
            _ = await job.result
            afterInterrupt()
        }
        defer { InterruptHook.set(nil) }
        do {
            let summary = try await job.value
            if let statistics = await channels.statistics() {
                let datagramSize = await channels.datagramSize()
                logger.debug("SCTP", metadata: [
                    "packets": "\(statistics.packetsSent)", "data_chunks": "\(statistics.dataChunksSent)",
                    "retransmitted": "\(statistics.retransmittedChunks)", "fast_retransmits": "\(statistics.fastRetransmits)",
                    "tail_retransmits": "\(statistics.tailRetransmits)", "tail_probes": "\(statistics.tailProbes)",
                    "timeouts": "\(statistics.timeouts)", "mtu_probes_answered": "\(statistics.mtuProbes)",
                    "datagram_size": "\(datagramSize)",
                    "limited_by_pacing": "\(statistics.limitedByPacing)", "limited_by_cwnd": "\(statistics.limitedByCongestionWindow)",
                    "limited_by_rwnd": "\(statistics.limitedByReceiveWindow)", "limited_by_application": "\(statistics.limitedByApplication)",
                ])
                let ecn = await channels.ecnStatus()
                logger.debug("ECN", metadata: [
                    "negotiated": "\(ecn.negotiated)", "ect_datagrams_received": "\(ecn.ecnCapableDatagrams)",
                    "ce_datagrams_received": "\(ecn.markedDatagrams)", "ce_packets_echoed": "\(statistics.congestionExperiencedPackets)",
                    "ce_marks_from_peer": "\(statistics.echoedMarks)", "ecn_reductions": "\(statistics.ecnReductions)",
                ])
            }
            return summary
        } catch let error as TransferError {
            // Our own failure was sent to the peer: let it leave before the
            // caller closes the channel, so the peer reads why.
            if error.failureCode != nil { await drain(pipe) }
            throw cliError(error)
        } catch let error as SessionError {
            // The channel died under the transfer.
            throw CLIError(.unreachable, "the connection to the other side was lost: \(error.message)")
        }
    }
}

/// Progress for a person (a bar on a terminal) and for scripts (`progress`
/// JSON events, at most ten a second), and the `file` events.
final class ProgressReporter: @unchecked Sendable {
    private let output: Output
    private let verb: String
    private let lock = NIOLock()
    private let started = ContinuousClock.now
    private var lastEvent: ContinuousClock.Instant?
    private var lastBar: ContinuousClock.Instant?
    /// When this run's bytes started to move (after a resume's plan): the
    /// rate counts from here, and only bytes moved since.
    private var runStarted: ContinuousClock.Instant?
    private let showBar: Bool
    private(set) var bytes: UInt64 = 0
    private var resumed: UInt64 = 0
    private var total: UInt64?

    init(output: Output, verb: String) {
        self.output = output
        self.verb = verb
        self.showBar = output.drawsStatus
    }

    func handle(_ event: TransferEvent) {
        lock.withLock {
            switch event {
            case .started(let files, let total, let resumed):
                self.total = total
                self.resumed = resumed
                self.bytes = resumed
                self.runStarted = ContinuousClock.now
                if resumed > 0 {
                    output.event("resume", [("bytes", .uint(resumed))])
                    output.say("Resuming: \(formatBytes(resumed)) already there.")
                }
                _ = files
            case .progress(let bytes, let total, let file):
                self.bytes = bytes
                let now = ContinuousClock.now
                if output.json, lastEvent.map({ now - $0 >= .milliseconds(100) }) ?? true {
                    lastEvent = now
                    var fields: [(String, JSONValue)] = [("bytes", .uint(bytes)), ("total", total.map { .uint($0) } ?? .null)]
                    fields.append(("rate", .uint(UInt64(rate(now: now)))))
                    fields.append(("file", .string(file)))
                    output.event("progress", fields)
                }
                if showBar, lastBar.map({ now - $0 >= .milliseconds(100) }) ?? true {
                    lastBar = now
                    drawBar(file: file, now: now)
                }
            case .verified(let path, let size, let root):
                // Built only for --json: one per file, a hash in hex each.
                guard output.json else { break }
                output.event("file", [("name", .string(path)), ("size", .uint(size)), ("hash", .string(root.hex)), ("verified", .bool(true))])
            case .warning(let text):
                output.warn(text)
            }
        }
    }

    /// Bytes per second of this run (resumed bytes do not count), from
    /// when they started to move.
    private func rate(now: ContinuousClock.Instant) -> Double {
        let seconds = Connect.milliseconds(now - (runStarted ?? started)) / 1000
        return seconds > 0 ? Double(bytes - min(bytes, resumed)) / seconds : 0
    }

    /// The rate, once there is enough of this run to tell it (a rate over
    /// the first few milliseconds says nothing).
    private func shownRate(now: ContinuousClock.Instant) -> Double? {
        guard now - (runStarted ?? started) >= ProgressLine.rateAfter else { return nil }
        return rate(now: now)
    }

    private func drawBar(file: String, now: ContinuousClock.Instant) {
        let line = ProgressLine(bytes: bytes, total: total, rate: shownRate(now: now), name: DisplayText.escaped(file))
        output.status { line.text(columns: $0) }
    }

    private func clearBar() {
        output.clearStatus()
    }

    /// The `done` event and one summary line.
    func finish(_ summary: TransferSummary, path: ConnectedPath) {
        lock.withLock {
            clearBar()
            let seconds = Connect.milliseconds(ContinuousClock.now - started) / 1000
            output.event("done", [
                ("files", .int(Int64(summary.files))), ("bytes", .uint(summary.bytes)), ("sent_bytes", .uint(summary.sentBytes)),
                ("seconds", .seconds(seconds)), ("hash", .string(summary.hash.hex)),
            ])
            output.say(ProgressLine.summary(verb: verb, summary: summary, seconds: seconds, relayed: path.isRelayed))
        }
    }

    func abandon() {
        lock.withLock { clearBar() }
    }
}

