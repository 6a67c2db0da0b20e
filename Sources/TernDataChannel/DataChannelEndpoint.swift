import TernCollections
import TernSCTP

/// How a channel delivers (RFC 8831 §6.1, RFC 8832 §5.1 channel types).
public struct DataChannelOptions: Sendable, Equatable {
    public var ordered: Bool
    public var reliability: SCTPReliability
    public var `protocol`: String
    public var priority: UInt16

    public init(ordered: Bool = true, reliability: SCTPReliability = .reliable, protocol: String = "", priority: UInt16 = 256) {
        self.ordered = ordered
        self.reliability = reliability
        self.protocol = `protocol`
        self.priority = priority
    }
}

/// What the data channel layer reports.
public enum DataChannelEvent: Sendable, Equatable {
    /// The SCTP association is up: channels can be opened.
    case ready
    /// A channel is open: one we opened (the peer acknowledged it) or one
    /// the peer opened (`byPeer`).
    case opened(stream: UInt16, label: String, protocol: String, byPeer: Bool)
    case bufferedAmountLow(stream: UInt16)
    /// Both directions of the channel's stream were reset (RFC 8831 §6.7).
    case closed(stream: UInt16)
    /// The association ended.
    case ended(String?)
}

/// One message received on a channel.
public struct DataChannelMessage: Sendable, Equatable {
    public var stream: UInt16
    public var payload: [UInt8]
    /// False for a string (PPID 51 or 56).
    public var binary: Bool

    public init(stream: UInt16, payload: [UInt8], binary: Bool) {
        self.stream = stream
        self.payload = payload
        self.binary = binary
    }
}

/// Why the endpoint refused a call (codec errors are `DataChannelError`).
public enum DataChannelOperationError: Error, Equatable, Sendable {
    case notReady
    case noFreeStream
    case unknownChannel(UInt16)
    case channelClosing(UInt16)
    case association(SCTPAssociationError)
    /// The label or protocol cannot be sent (too long for DCEP).
    case invalidOpen(String)
}

/// Data channels (RFC 8831) with DCEP (RFC 8832) over one SCTP association.
/// A sans-IO layer: packets and time go to the association inside it;
/// events come out in the order they happened.
public struct DataChannelEndpoint<Congestion: SCTPCongestionControl>: Sendable {
    public private(set) var association: SCTPAssociation<Congestion>
    /// RFC 8832 §6: the DTLS client uses even stream ids, the server odd ones.
    public let isDTLSClient: Bool
    /// Bounds on the peer's DATA_CHANNEL_OPEN messages.
    public let dcepLimits: DCEPLimits

    private enum ChannelState: Sendable, Equatable {
        case opening, open, closing
    }

    private struct Channel: Sendable {
        var label: String
        var options: DataChannelOptions
        var state: ChannelState
        var incomingReset = false
        var outgoingReset = false
    }

    private var channels: [UInt16: Channel] = [:]
    private var events = FIFO<DataChannelEvent>()
    /// Messages received and not read yet, each with what it is charged
    /// against the receive window (`heldMessageCharge`).
    private var messages = FIFO<(message: DataChannelMessage, charge: Int)>()
    private var nextStream: UInt16
    /// DCEP messages dropped as malformed, and user messages for unknown channels.
    public private(set) var dropped = 0

    public init(association: SCTPAssociation<Congestion>, isDTLSClient: Bool, dcepLimits: DCEPLimits = .default) {
        self.association = association
        self.isDTLSClient = isDTLSClient
        self.dcepLimits = dcepLimits
        nextStream = isDTLSClient ? 0 : 1
    }

    // MARK: - Commands

    /// Starts the association (both sides may; RFC 8841 lets either INIT).
    public mutating func connect(now: Duration) {
        association.connect(now: now)
    }

    /// Opens a channel (RFC 8832 §6): DATA_CHANNEL_OPEN on a fresh stream;
    /// messages may follow at once (they are ordered after the OPEN).
    public mutating func open(label: String, options: DataChannelOptions = DataChannelOptions(), now: Duration) throws(DataChannelOperationError) -> UInt16 {
        guard association.state == .established else { throw .notReady }
        guard let candidate = freeStream() else { throw .noFreeStream }
        let open = DataChannelOpen(
            label: label, subprotocol: options.protocol, ordered: options.ordered, reliability: Self.wireReliability(options.reliability),
            priority: options.priority)
        let message: [UInt8]
        do {
            message = try DCEPMessage.open(open).encode(limits: dcepLimits)
        } catch {
            throw .invalidOpen("\(error)")
        }
        do {
            // §6: the OPEN is sent ordered and reliable whatever the channel's type.
            try association.send(stream: candidate, ppid: DataChannelPPID.dcep.rawValue, payload: message, now: now)
        } catch {
            throw .association(error)
        }
        // Only now: a refused open leaves its stream to the next one.
        nextStream = candidate &+ 2
        channels[candidate] = Channel(label: label, options: options, state: .opening)
        return candidate
    }

    /// The next stream of this side's parity (RFC 8832 §6: even for the
    /// DTLS client, odd for the server) that no channel holds, searched from
    /// the one after the last opened and wrapping round: a stream is free
    /// again once both its directions were reset (`finishIfClosed`).
    private func freeStream() -> UInt16? {
        let limit = Int(association.configuration.streams)
        let first = isDTLSClient ? 0 : 1
        let count = (limit - first + 1) / 2
        guard count > 0 else { return nil }
        let start = Int(nextStream) < limit ? (Int(nextStream) - first) / 2 : 0
        for step in 0..<count {
            let stream = UInt16(first + 2 * ((start + step) % count))
            if channels[stream] == nil { return stream }
        }
        return nil
    }

    /// Sends a message (RFC 8831 §6.6: an empty one as one zero byte with the empty PPID).
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func send(_ payload: [UInt8], binary: Bool = true, on stream: UInt16, now: Duration) throws(DataChannelOperationError) {
        guard let channel = channels[stream] else { throw .unknownChannel(stream) }
        guard channel.state != .closing else { throw .channelClosing(stream) }
        let ppid = DataChannelPPID.forMessage(isString: !binary, isEmpty: payload.isEmpty).rawValue
        do {
            try association.send(
                stream: stream, ppid: ppid, payload: payload.isEmpty ? [0] : payload, unordered: !channel.options.ordered,
                reliability: channel.options.reliability, now: now)
        } catch {
            throw .association(error)
        }
    }

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public func bufferedAmount(_ stream: UInt16) -> Int { association.bufferedAmount(stream: stream) }

    public var statistics: SCTPAssociation<Congestion>.Statistics { association.statistics }
    /// The SCTP packet size in use (larger than configured once a probe was answered).
    public var pathMTU: Int { association.pathMTU }
    /// A SACK reporting a gap is due (see `SCTPAssociation.gapReportDue`).
    public var gapReportDue: Bool { association.gapReportDue }

    /// Closes a channel: resets its outgoing stream (RFC 8831 §6.7).
    public mutating func close(_ stream: UInt16) {
        guard var channel = channels[stream], channel.state != .closing else { return }
        channel.state = .closing
        channels[stream] = channel
        association.resetStreams([stream])
    }

    /// The layer below moved the association's packets to another path
    /// (`SCTPAssociation.pathChanged`): what was in flight goes out again
    /// at once.
    public mutating func pathChanged(sameNetworkPath: Bool, now: Duration) {
        association.pathChanged(sameNetworkPath: sameNetworkPath, now: now)
    }

    /// Ends the association at once (SCTP ABORT).
    public mutating func abort(reason: String) {
        association.abort(reason: reason)
    }

    // MARK: - Input and output

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func handleChunks(_ chunks: [SCTPChunkModel], verificationTag: UInt32, now: Duration, congestionExperienced: Bool = false) {
        association.handleChunks(chunks, verificationTag: verificationTag, now: now, congestionExperienced: congestionExperienced)
        drain(now: now)
    }

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func advanceTime(now: Duration) {
        association.advanceTime(now: now)
        drain(now: now)
    }

    public var nextDeadline: Duration? { association.nextDeadline }

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func pollTransmit(now: Duration) -> SCTPAssociation<Congestion>.Packet? {
        let packet = association.pollTransmit(now: now)
        drain(now: now)
        return packet
    }

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func pollEvent() -> DataChannelEvent? { events.pop() }

    /// The next message from the peer. Until it is taken it counts against
    /// the receive window, so the peer sends no faster than it is read.
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func pollMessage() -> DataChannelMessage? {
        guard let held = messages.pop() else { return nil }
        association.applicationBufferedBytes -= held.charge
        return held.message
    }

    /// Messages received and not read yet.
    public var heldMessages: Int { messages.count }

    /// What one received message costs the receive window while it waits to
    /// be read: its user data as SCTP carried it (one byte for an empty
    /// message, RFC 8831 §6.6) plus `SCTPLimits.receivedChunkOverhead`
    /// (default 256), as the association charges the messages it still
    /// holds. Without the overhead a peer could queue empty messages that
    /// cost the window nothing, without bound, while the reader is slow.
    func heldMessageCharge(_ message: SCTPMessage) -> Int {
        message.payload.count + association.configuration.limits.receivedChunkOverhead
    }

    // MARK: - Association events and messages

    private mutating func drain(now: Duration) {
        while let event = association.pollEvent() {
            switch event {
            case .established: events.push(.ready)
            case .incomingStreamsReset(let streams):
                for stream in streams { incomingReset(stream) }
            case .outgoingStreamsReset(let streams):
                for stream in streams { outgoingReset(stream) }
            case .bufferedAmountLow(let stream):
                if channels[stream] != nil { events.push(.bufferedAmountLow(stream: stream)) }
            case .closed: events.push(.ended(nil))
            case .aborted(let reason): events.push(.ended(reason))
            }
        }
        while let message = association.pollMessage() {
            receive(message, now: now)
        }
    }

    private mutating func receive(_ message: SCTPMessage, now: Duration) {
        let ppid = DataChannelPPID(rawValue: message.ppid)
        if ppid == .dcep {
            receiveDCEP(message, now: now)
            return
        }
        // RFC 8831 §8: the deprecated partial PPIDs are taken as whole messages.
        guard ppid.isString || ppid.isBinary else {
            dropped += 1
            return
        }
        guard let channel = channels[message.stream], !channel.incomingReset else {
            dropped += 1
            return
        }
        // A message on a channel we opened implies the peer got our OPEN (RFC 8832 §6).
        if channel.state == .opening { markOpen(message.stream, byPeer: false) }
        let delivered = DataChannelMessage(stream: message.stream, payload: ppid.isEmptyMessage ? [] : message.payload, binary: ppid.isBinary)
        let charge = heldMessageCharge(message)
        association.applicationBufferedBytes += charge
        messages.push((delivered, charge))
    }

    private mutating func receiveDCEP(_ message: SCTPMessage, now: Duration) {
        let decoded: DCEPMessage
        do {
            decoded = try DCEPMessage.decode(message.payload, limits: dcepLimits)
        } catch {
            dropped += 1
            return
        }
        switch decoded {
        case .open(let open):
            guard channels[message.stream] == nil else {
                dropped += 1  // §6: an OPEN on a stream in use
                return
            }
            let options = DataChannelOptions(
                ordered: open.isOrdered, reliability: Self.reliability(open.reliability), protocol: open.subprotocol, priority: open.priority)
            channels[message.stream] = Channel(label: open.label, options: options, state: .open)
            do {
                try association.send(stream: message.stream, ppid: DataChannelPPID.dcep.rawValue, payload: DCEPMessage.ack.encode(), now: now)
            } catch {
                dropped += 1
            }
            events.push(.opened(stream: message.stream, label: open.label, protocol: open.subprotocol, byPeer: true))
        case .ack:
            guard channels[message.stream]?.state == .opening else {
                dropped += 1
                return
            }
            markOpen(message.stream, byPeer: false)
        }
    }

    static func wireReliability(_ reliability: SCTPReliability) -> DataChannelOpen.Reliability {
        switch reliability {
        case .reliable: return .reliable
        case .maxRetransmits(let count): return .maxRetransmits(UInt32(clamping: count))
        case .lifetime(let lifetime):
            let (seconds, attoseconds) = lifetime.components
            return .maxLifetime(milliseconds: UInt32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        }
    }

    static func reliability(_ wire: DataChannelOpen.Reliability) -> SCTPReliability {
        switch wire {
        case .reliable: return .reliable
        case .maxRetransmits(let count): return .maxRetransmits(Int(count))
        case .maxLifetime(let milliseconds): return .lifetime(.milliseconds(Int64(milliseconds)))
        }
    }

    private mutating func markOpen(_ stream: UInt16, byPeer: Bool) {
        guard var channel = channels[stream] else { return }
        channel.state = .open
        channels[stream] = channel
        events.push(.opened(stream: stream, label: channel.label, protocol: channel.options.protocol, byPeer: byPeer))
    }

    private mutating func incomingReset(_ stream: UInt16) {
        guard var channel = channels[stream] else { return }
        channel.incomingReset = true
        if channel.state != .closing {
            // §6.7: the peer closed: close our direction too.
            channel.state = .closing
            association.resetStreams([stream])
        }
        channels[stream] = channel
        finishIfClosed(stream)
    }

    private mutating func outgoingReset(_ stream: UInt16) {
        guard var channel = channels[stream] else { return }
        channel.outgoingReset = true
        channels[stream] = channel
        finishIfClosed(stream)
    }

    private mutating func finishIfClosed(_ stream: UInt16) {
        guard let channel = channels[stream], channel.incomingReset, channel.outgoingReset else { return }
        channels[stream] = nil
        events.push(.closed(stream: stream))
    }
}
