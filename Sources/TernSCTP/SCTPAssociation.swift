import TernCollections
import TernWire
/// What the association tells its owner (the data channel layer).
public enum SCTPEvent: Sendable, Equatable {
    /// The four-way handshake finished (RFC 9260 §5.1): data may flow.
    case established
    /// The peer reset these incoming streams (RFC 6525 §5.2.2): for data
    /// channels, the peer closed them.
    case incomingStreamsReset([UInt16])
    /// Our reset of these outgoing streams was performed by the peer.
    case outgoingStreamsReset([UInt16])
    /// A stream's queued bytes fell to or below its low-water mark.
    case bufferedAmountLow(stream: UInt16)
    /// A graceful shutdown finished (RFC 9260 §9.2).
    case closed
    /// The association ended abruptly: an ABORT from the peer, too many
    /// retransmissions, or a protocol violation (we sent ABORT).
    case aborted(String)
}

/// Why the association refused a call.
public enum SCTPAssociationError: Error, Equatable, Sendable {
    case notEstablished
    case messageTooLarge(size: Int, limit: Int)
    case streamOutOfRange(UInt16)
    case closing
}

/// An SCTP association (RFC 9260) as WebRTC data channels use it, over DTLS
/// (RFC 8261): one path, no multihoming, both sides may INIT. A sans-IO core:
/// feed it packets (`handleChunks`) and the time, poll packets to send,
/// events and messages, and its next deadline.
///
/// Generic over its congestion controller, so the data path calls it
/// statically (design.md: no existential dispatch in the hot loop).
public struct SCTPAssociation<Congestion: SCTPCongestionControl>: Sendable {
    public struct Configuration: Sendable {
        /// Largest SCTP packet (common header and chunks), within one DTLS
        /// record: the size every path is assumed to carry.
        public var mtu: Int
        /// The largest packet the layer below could carry on this path, if
        /// larger than `mtu`: once established the association probes for it
        /// (RFC 8899 §4.1, RFC 9260 §8.3: a HEARTBEAT filled with a PAD
        /// chunk, RFC 4820) and sends larger packets if a probe is answered.
        /// Nil: no probing.
        public var maximumMTU: Int?
        /// Our receive window (RFC 9260 a_rwnd): bytes the peer may have
        /// outstanding towards us, including whole messages not read yet,
        /// each fragment or message charged `limits.receivedChunkOverhead`
        /// on top of its bytes.
        public var receiveWindow: Int
        public var maximumMessageSize: Int
        /// Streams we offer each way (the INIT's OS and MIS). The peer may
        /// send on fewer: the smaller of this and its outbound count (RFC
        /// 9260 §5.1.1); DATA on any other stream is answered with an ERROR.
        public var streams: UInt16
        public var rto: SCTPRetransmissionTimeout.Configuration
        /// RFC 9260 §16: Max.Init.Retransmits and Association.Max.Retrans.
        public var maximumInitRetransmits: Int
        public var maximumRetransmits: Int
        /// Heartbeats on an idle association (RFC 9260 §8.3); nil: none.
        public var heartbeatInterval: Duration?
        /// Announce RFC 9653 zero checksums (the DTLS layer protects integrity).
        public var zeroChecksum: Bool
        /// bufferedAmountLow fires when a stream's queued bytes fall to this.
        public var bufferedAmountLowThreshold: Int
        /// What the association holds for its peer at most (and the codec's
        /// bounds): see `SCTPLimits`.
        public var limits: SCTPLimits
        /// The congestion controller to run, for a controller type that can
        /// be several (`SelectableCongestionControl`); others ignore it.
        public var congestionControl: SCTPCongestionControlKind = .default
        /// Offer ECN (RFC 9260 Appendix A): the ECN Capable parameter in
        /// INIT and INIT ACK. When both sides offer it (`ecnNegotiated`),
        /// the layer below may send this association's packets ECT(0) and
        /// passes up which arrived marked CE; the association echoes the
        /// marks (ECNE) and answers the peer's echoes (CWR) and its
        /// controller reacts to them.
        public var explicitCongestionNotification = true

        public init(
            mtu: Int = 1200, receiveWindow: Int = 4 << 20, maximumMessageSize: Int = 256 * 1024, streams: UInt16 = 1024,
            rto: SCTPRetransmissionTimeout.Configuration = .init(), maximumInitRetransmits: Int = 8, maximumRetransmits: Int = 10,
            heartbeatInterval: Duration? = .seconds(30), zeroChecksum: Bool = true, bufferedAmountLowThreshold: Int = 0,
            maximumMTU: Int? = nil, limits: SCTPLimits = .default
        ) {
            self.mtu = max(mtu, 512)
            self.maximumMTU = maximumMTU
            self.receiveWindow = max(receiveWindow, 64 * 1024)
            self.maximumMessageSize = maximumMessageSize
            self.streams = max(streams, 1)
            self.rto = rto
            self.maximumInitRetransmits = maximumInitRetransmits
            self.maximumRetransmits = maximumRetransmits
            self.heartbeatInterval = heartbeatInterval
            self.zeroChecksum = zeroChecksum
            self.bufferedAmountLowThreshold = bufferedAmountLowThreshold
            self.limits = limits
        }
    }

    /// RFC 9260 §4.
    public enum State: Sendable, Equatable {
        case closed, cookieWait, cookieEchoed, established
        case shutdownPending, shutdownSent, shutdownReceived, shutdownAckSent
    }

    /// One packet to send: the verification tag to put in its common header,
    /// its chunks, and whether its checksum may be zero (RFC 9653).
    public struct Packet: Sendable, Equatable {
        public var verificationTag: UInt32
        public var chunks: [SCTPChunkModel]
        public var zeroChecksum: Bool
        /// A path MTU probe.
        public var isProbe = false
        /// Larger than `pathMTU` (a probe, or a chunk cut before the path
        /// MTU went down): the layer below must send it as it is, alone.
        public var exceedsPathMTU = false
    }

    public let configuration: Configuration
    public private(set) var state: State = .closed
    public private(set) var localTag: UInt32
    public private(set) var peerTag: UInt32 = 0
    private let localInitialTSN: TSN
    private let cookieKey: [UInt8]

    public private(set) var congestion: Congestion?
    public private(set) var rto: SCTPRetransmissionTimeout
    private var sendQueue = SCTPSendQueue()
    public private(set) var retransmissions: SCTPRetransmissionQueue
    private var tracker: SCTPDataTracker?
    private var reassembly: SCTPReassemblyQueue
    /// The peer's receive window as we know it (RFC 9260 §6.2.1).
    public private(set) var peerReceiveWindow = 0
    private var peerForwardTSN = false
    private var peerReconfig = false
    private var peerZeroChecksum = false
    /// Both sides offered ECN (RFC 9260 Appendix A): the layer below may
    /// send this association's packets ECT(0), and should report the ones
    /// that arrive marked CE (`handleChunks(_:verificationTag:now:congestionExperienced:)`).
    public private(set) var ecnNegotiated = false
    /// Receiving: the packets marked CE since the peer's last CWR, and the
    /// lowest TSN among them: echoed in every packet (ECNE) until a CWR
    /// with that TSN or a later one arrives.
    private var ceEpisode: (lowestTSN: TSN, packets: UInt32)?
    /// Receiving: a CWR in the packet being handled ended the episode.
    private var episodeEndedInPacket = false
    /// Receiving: marked packets not yet in an echo sent; a CWR that ends
    /// their episode hands them to the next one, so every mark is counted once.
    private var marksSinceEcho: UInt32 = 0
    /// Sending: the last ECNE taken into account (its TSN and count).
    private var lastEcho: (lowestTSN: TSN, packets: UInt32)?
    /// Sending: the highest TSN sent when the window was last reduced for
    /// an ECNE; an echo of data up to it is the same congestion (RFC 9260
    /// Appendix A, after RFC 3168 §6.1.2: one reduction per window).
    private var ecnReductionTSN: TSN?
    /// Sending: a CWR to send, with the TSN of the ECNE it answers.
    private var cwrDue: TSN?
    private var peerInboundStreams: UInt16 = 0
    /// Streams the peer may send on: ours offered and its outbound count, the smaller (RFC 9260 §5.1.1).
    public private(set) var inboundStreams: UInt16 = 0

    /// Control chunks to send; a chunk with its own tag (INIT: 0; INIT ACK:
    /// the initiate tag of the INIT it answers) goes in a packet of its own.
    private var control = FIFO<(chunk: SCTPChunkModel, tag: UInt32?)>()
    private var events = FIFO<SCTPEvent>()

    // Timers.
    private var initTimer: (deadline: Duration, attempts: Int)?
    private var initChunk: SCTPChunkModel?
    private var cookieChunk: SCTPChunkModel?
    private var t3Deadline: Duration?
    /// The tail timer (`tailTimerExpired`): armed while data is in flight,
    /// from the last SACK that acknowledged something or the last data sent.
    private var tailDeadline: Duration?
    /// Its expiries since a SACK last acknowledged something: the first
    /// may probe, and each doubles the next timeout. A T3 expiry (the path
    /// may be gone, and T3 backs off) stops it until such a SACK.
    private var tailExpiries = 0
    private var tailStopped = false
    private var consecutiveTimeouts = 0
    private var shutdownTimer: (deadline: Duration, attempts: Int)?
    private var heartbeatDeadline: Duration?
    private var heartbeatOutstanding: (nonce: UInt64, sentAt: Duration)?
    /// Packets are built up to this size: `configuration.mtu` until a
    /// probe shows the path carries more.
    public private(set) var pathMTU: Int
    private var mtuSearch: MTUSearch?
    /// True while path MTU probes are still to be answered or sent.
    public var isProbingPathMTU: Bool { mtuSearch != nil }
    private var lastSendAt: Duration = .zero
    /// When new DATA last went out (for the idle decay of the window).
    private var lastDataSentAt: Duration?
    /// Pacing (a token bucket in bytes, `SCTPPacer`), for controllers that pace.
    private var pacer = SCTPPacer()
    private var forwardTSNDue = false
    private var nonce: UInt64
    /// The congestion controller's seed (`SCTPCongestionControl.seedRandomness`).
    private let congestionSeed: UInt64

    // Stream reset (RFC 6525).
    private var resetPending: [UInt16] = []
    private var resetInFlight: (sequence: UInt32, streams: [UInt16], deadline: Duration)?
    private var nextRequestSequence: UInt32
    private var peerNextRequestSequence: UInt32?
    private var deferredIncomingResets: [(request: UInt32, lastTSN: TSN, streams: [UInt16])] = []
    /// Streams whose low-water event is armed (bytes went above the threshold).
    private var lowWaterArmed: Set<UInt16> = []

    /// Counters for what was dropped; nothing here is fatal.
    public private(set) var droppedChunks = 0
    /// DATA chunks acknowledged and discarded for a stream the peer may not send on (RFC 9260 §6.5).
    public private(set) var invalidStreamChunks = 0

    /// What the association did, for diagnostics and benchmarks.
    public struct Statistics: Sendable, Equatable {
        public var packetsSent = 0
        public var dataChunksSent = 0
        public var retransmittedChunks = 0
        public var fastRetransmits = 0
        /// Chunks the tail timer found lost, and the probes it sent instead.
        public var tailRetransmits = 0
        public var tailProbes = 0
        public var timeouts = 0
        /// Path MTU probes answered.
        public var mtuProbes = 0
        /// Packets with DATA that arrived marked CE (ECN).
        public var congestionExperiencedPackets = 0
        /// CE-marked packets the peer echoed (ECNE counts), and the window
        /// reductions they caused (at most one per round trip).
        public var echoedMarks = 0
        public var ecnReductions = 0
        /// Sends that stopped before the packet was full, by what stopped
        /// them: the pacer, the congestion window, the peer's receive
        /// window, or no data queued (the application).
        public var limitedByPacing = 0
        public var limitedByCongestionWindow = 0
        public var limitedByReceiveWindow = 0
        public var limitedByApplication = 0
    }
    public private(set) var statistics = Statistics()

    /// Path MTU probing (RFC 8899 §5, simplified): candidate sizes from the
    /// largest down, each probed at most twice; the first one answered
    /// becomes the path MTU and the search ends.
    struct MTUSearch: Sendable {
        var candidates: [Int]
        var attempts = 0
        var outstanding: (nonce: UInt64, size: Int, deadline: Duration)?
        /// Sizes to try between `base` (exclusive) and `maximum`: the
        /// maximum, then steps down that cover common tunnel overheads.
        static func candidates(base: Int, maximum: Int) -> [Int] {
            var sizes: [Int] = []
            for step in [0, 20, 60, 140] {
                let size = (maximum - step) & ~3
                if size > base, !sizes.contains(size) { sizes.append(size) }
            }
            return sizes
        }
    }

    /// - Parameter random: the tag, initial TSN and cookie key come from it
    ///   (RFC 9260 §5.3.1 asks for good randomness for the tag).
    public init(configuration: Configuration = Configuration(), random: inout some RandomNumberGenerator) {
        self.configuration = configuration
        pathMTU = configuration.mtu
        var tag: UInt32 = 0
        while tag == 0 { tag = UInt32.random(in: 1...UInt32.max, using: &random) }
        localTag = tag
        localInitialTSN = TSN(UInt32.random(in: 0...UInt32.max, using: &random))
        cookieKey = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        nonce = UInt64.random(in: 0...UInt64.max, using: &random)
        // The nonce's first value: random, and the peer sees the nonces
        // anyway, so the seed tells it nothing (a draw of its own would also
        // do; this one leaves what `random` yields next as it was).
        congestionSeed = nonce
        nextRequestSequence = localInitialTSN.value
        rto = SCTPRetransmissionTimeout(configuration: configuration.rto)
        retransmissions = SCTPRetransmissionQueue(initialTSN: localInitialTSN)
        reassembly = SCTPReassemblyQueue(
            maximumMessageSize: configuration.maximumMessageSize, itemOverhead: configuration.limits.receivedChunkOverhead)
        lastAdvertisedWindow = UInt32(clamping: configuration.receiveWindow)  // what INIT and INIT ACK offer
    }

    public init(configuration: Configuration = Configuration()) {
        var random = SystemRandomNumberGenerator()
        self.init(configuration: configuration, random: &random)
    }

    // MARK: - Commands

    /// Starts the handshake with an INIT (RFC 9260 §5.1 A). In WebRTC both
    /// sides may do this; a collision resolves through the cookie exchange.
    public mutating func connect(now: Duration) {
        guard state == .closed else { return }
        let chunk = SCTPChunkModel.initiation(localInit())
        initChunk = chunk
        control.push((chunk, 0))
        state = .cookieWait
        initTimer = (now + rto.value, 0)
    }

    /// Queues a message (RFC 9260 §6.1). Sent as the windows allow.
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func send(
        stream: UInt16, ppid: UInt32, payload: [UInt8], unordered: Bool = false, reliability: SCTPReliability = .reliable, now: Duration
    ) throws(SCTPAssociationError) {
        switch state {
        case .established: break
        case .closed, .cookieWait, .cookieEchoed: throw .notEstablished
        default: throw .closing
        }
        guard payload.count <= configuration.maximumMessageSize else {
            throw .messageTooLarge(size: payload.count, limit: configuration.maximumMessageSize)
        }
        guard stream < min(peerInboundStreams, configuration.streams) else { throw .streamOutOfRange(stream) }
        sendQueue.enqueue(stream: stream, ppid: ppid, payload: payload, unordered: unordered, reliability: reliability, now: now)
        if sendQueue.bufferedAmount[stream, default: 0] > configuration.bufferedAmountLowThreshold { lowWaterArmed.insert(stream) }
    }

    /// Bytes queued on `stream` and not yet handed to the network.
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public func bufferedAmount(stream: UInt16) -> Int { sendQueue.bufferedAmount[stream] ?? 0 }

    /// Resets outgoing streams (RFC 6525 §5.1.2): for data channels, closing
    /// them. Sent once what is queued on them has been sent.
    public mutating func resetStreams(_ streams: [UInt16]) {
        for stream in streams where !resetPending.contains(stream) { resetPending.append(stream) }
    }

    /// Graceful close (RFC 9260 §9.2): queued data is sent first.
    public mutating func shutdown(now: Duration) {
        switch state {
        case .established: state = .shutdownPending
        case .closed, .cookieWait, .cookieEchoed:
            state = .closed
            events.push(.closed)
        default: break
        }
    }

    /// Abrupt close (RFC 9260 §9.1).
    public mutating func abort(reason: String) {
        abort(causes: Self.userCauses(reason), reason: reason)
    }

    /// Sends ABORT with `causes` and ends the association (RFC 9260 §9.1).
    private mutating func abort(causes: [SCTPErrorCause], reason: String) {
        guard state != .closed else { return }
        control.push((.abort(causes: causes), nil))
        terminate(.aborted(reason))
    }

    /// The reason an upper layer gave, as the User-Initiated Abort cause
    /// (RFC 9260 §3.3.10.12), bounded; none for an empty reason.
    static func userCauses(_ reason: String) -> [SCTPErrorCause] {
        reason.isEmpty ? [] : [.userInitiatedAbort(Array(reason.utf8.prefix(200))[...])]
    }

    // MARK: - Outputs

    public mutating func pollEvent() -> SCTPEvent? { events.pop() }

    /// The next whole message from the peer.
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func pollMessage() -> SCTPMessage? { reassembly.poll() }

    /// Bytes of messages the layer above took from `pollMessage` but its
    /// application has not read yet; they count against the receive window
    /// like the ones still here, so a slow reader slows the sender down.
    public var applicationBufferedBytes = 0

    /// What the receive window is charged: bytes held here (each fragment
    /// or message with its overhead) and bytes the application holds.
    private var bufferedBytes: Int { reassembly.chargedBytes + applicationBufferedBytes }

    /// Fragments and messages held for the peer, not yet taken by the layer above.
    public var heldReceiveItems: Int { reassembly.heldItems }
    /// Bytes charged for them (user data and overhead, `SCTPLimits.receivedChunkOverhead` each).
    public var heldReceiveBytes: Int { reassembly.chargedBytes }

    /// True when the SACK due reports a new gap or a duplicate: it should
    /// not wait for the rest of a read batch (`SCTPDataTracker.urgentSACKDue`).
    /// (Asked per datagram: read in place, without copying the tracker.)
    public var gapReportDue: Bool { tracker?.urgentSACKDue == true }

    /// Our advertised receive window: what is left after buffered and unread data.
    public var advertisedReceiveWindow: UInt32 {
        UInt32(clamping: max(0, configuration.receiveWindow - bufferedBytes))
    }

    /// The window our last SACK advertised.
    private var lastAdvertisedWindow: UInt32 = 0

    /// RFC 9260 §6.2: a SACK beyond one per packet only "to update the
    /// offered window as the receiving application consumes new data". Sent
    /// once the window grew by an eighth since the last SACK: a peer that
    /// saw it close (a slow reader) would otherwise wait for a zero-window
    /// probe and the delayed-ack timer (200 ms) for each reopening.
    private var windowUpdateDue: Bool {
        Int(advertisedReceiveWindow) - Int(lastAdvertisedWindow) >= configuration.receiveWindow / 8
    }

    // MARK: - Input

    /// One received packet's chunks (RFC 9260 §8.5: the caller has checked
    /// the checksum; this checks the verification tag).
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func handleChunks(_ chunks: [SCTPChunkModel], verificationTag: UInt32, now: Duration, congestionExperienced: Bool = false) {
        guard let first = chunks.first else { return }
        episodeEndedInPacket = false
        // §8.5.1: tag rules.
        switch first {
        case .initiation:
            guard verificationTag == 0, chunks.count == 1 else { return drop() }
        case .abort, .shutdownComplete:
            guard verificationTag == localTag || verificationTag == peerTag else { return drop() }
        case .cookieEcho:
            break  // checked against the cookie's contents
        default:
            guard verificationTag == localTag else { return drop() }
        }
        var sawData = false
        /// Streams of this packet's DATA the peer may not send on, for one ERROR chunk.
        var invalidStreams: [UInt16] = []
        chunkLoop: for chunk in chunks {
            if state == .closed && !Self.allowedWhileClosed(chunk) {
                droppedChunks += 1
                continue
            }
            switch chunk {
            case .data(let fragment):
                sawData = true
                receiveData(fragment, invalidStreams: &invalidStreams)
            case .initiation(let fields): receiveInit(fields, now: now)
            case .initiationAck(let fields, let cookie): receiveInitAck(fields, cookie: cookie, now: now)
            case .cookieEcho(let cookie): receiveCookieEcho(cookie, verificationTag: verificationTag, now: now)
            case .cookieAck: receiveCookieAck(now: now)
            case .sack(let sack): receiveSACK(sack, now: now)
            case .heartbeat(let info): control.push((.heartbeatAck(info: info), nil))
            case .heartbeatAck(let info): receiveHeartbeatAck(info, now: now)
            case .abort(let causes):
                let reason = causes.map(SCTPWire.describe).joined(separator: ", ")
                terminate(.aborted("the peer aborted the association" + (reason.isEmpty ? "" : ": \(reason)")))
                return
            case .shutdown(let cumulative): receiveShutdown(cumulative, now: now)
            case .shutdownAck: receiveShutdownAck()
            case .shutdownComplete:
                if state == .shutdownAckSent { terminate(.closed) }
            case .error: break
            case .forwardTSN(let cumulative, let streams): receiveForwardTSN(cumulative, streams: streams)
            case .reconfig(let parameters): receiveReconfig(parameters, now: now)
            case .padding: break  // RFC 4820: a probe's filler
            case .ecnEcho(let tsn, let packets): receiveECNEcho(tsn, packets: packets, now: now)
            case .cwr(let tsn): receiveCWR(tsn)
            case .unknown(let type):
                // §3.2: the two high bits of an unknown type: report it
                // (01, 11), and skip it (1x) or stop processing the packet (0x).
                droppedChunks += 1
                if type & 0x40 != 0 { control.push((.error(causes: [.unrecognizedChunkType([])]), nil)) }
                if type & 0x80 == 0 { break chunkLoop }
            }
        }
        if !invalidStreams.isEmpty, state != .closed {
            // §6.5: after the SACK (pollTransmit puts it first) if one goes in the same packet.
            control.push((.error(causes: invalidStreams.map { .invalidStreamIdentifier(streamID: $0) }), nil))
        }
        if sawData, congestionExperienced, ecnNegotiated, tracker != nil { markedPacketReceived(chunks) }
        if sawData, tracker != nil {
            tracker?.packetWithDataReceived(now: now)
            processDeferredResets()
        }
    }

    private static func allowedWhileClosed(_ chunk: SCTPChunkModel) -> Bool {
        switch chunk {
        case .initiation, .cookieEcho, .abort, .shutdownAck, .shutdownComplete: return true
        default: return false
        }
    }

    private mutating func drop() {
        droppedChunks += 1
    }

    // MARK: - Handshake (RFC 9260 §5.1, §5.2)

    private func localInit() -> SCTPChunkModel.InitFields {
        SCTPChunkModel.InitFields(
            initiateTag: localTag, receiveWindow: advertisedReceiveWindow, outboundStreams: configuration.streams,
            inboundStreams: configuration.streams, initialTSN: localInitialTSN, forwardTSNSupported: true,
            reconfigSupported: true, zeroChecksumAcceptable: configuration.zeroChecksum,
            ecnCapable: configuration.explicitCongestionNotification)
    }

    private mutating func receiveInit(_ fields: SCTPChunkModel.InitFields, now: Duration) {
        guard fields.initiateTag != 0, fields.outboundStreams > 0, fields.inboundStreams > 0 else {
            // §3.3.2: a zero tag or stream count is a violation.
            control.push((.abort(causes: Self.userCauses("invalid INIT")), fields.initiateTag))
            return
        }
        // §5.2.1/§5.2.2: answer with an INIT ACK carrying a cookie, whatever our
        // state; our own tag stays the one we sent (collision) or is fresh.
        var features: UInt8 = 0
        if fields.forwardTSNSupported { features |= 1 }
        if fields.reconfigSupported { features |= 2 }
        if fields.zeroChecksumAcceptable { features |= 4 }
        if fields.ecnCapable { features |= 8 }
        let cookie = SCTPStateCookie(
            localTag: localTag, peerTag: fields.initiateTag, localInitialTSN: localInitialTSN, peerInitialTSN: fields.initialTSN,
            peerOutboundStreams: fields.outboundStreams, peerInboundStreams: fields.inboundStreams, peerFeatures: features,
            createdAtNanoseconds: UInt64(clamping: Self.nanoseconds(now)))
        // The INIT ACK goes out with the peer's initiate tag in the common header.
        control.push((.initiationAck(localInit(), cookie: cookie.encoded(key: cookieKey)), fields.initiateTag))
    }

    private mutating func receiveInitAck(_ fields: SCTPChunkModel.InitFields, cookie: [UInt8], now: Duration) {
        guard state == .cookieWait else { return drop() }  // §5.2.3: discard otherwise
        guard fields.initiateTag != 0, fields.outboundStreams > 0, fields.inboundStreams > 0 else {
            terminate(.aborted("the peer sent an invalid INIT ACK"))
            return
        }
        adoptPeer(fields)
        initTimer = nil
        initChunk = nil
        let echo = SCTPChunkModel.cookieEcho(cookie: cookie)
        cookieChunk = echo
        control.push((echo, nil))
        state = .cookieEchoed
        initTimer = (now + rto.value, 0)
    }

    private mutating func receiveCookieEcho(_ bytes: [UInt8], verificationTag: UInt32, now: Duration) {
        guard let cookie = SCTPStateCookie(decoding: bytes, key: cookieKey), cookie.localTag == localTag,
              verificationTag == localTag
        else { return drop() }
        // §5.1.5: lifetime of a cookie (60 s here).
        let age = Self.nanoseconds(now) - Int64(clamping: cookie.createdAtNanoseconds)
        guard age >= 0, age < 60_000_000_000 else {
            control.push((.error(causes: [.staleCookie(stalenessMicroseconds: 0)]), nil))
            return
        }
        if state == .established || state == .cookieEchoed || state == .cookieWait || state == .closed {
            if state != .established {
                adoptPeer(SCTPChunkModel.InitFields(
                    initiateTag: cookie.peerTag, receiveWindow: UInt32(clamping: configuration.receiveWindow),
                    outboundStreams: cookie.peerOutboundStreams, inboundStreams: cookie.peerInboundStreams,
                    initialTSN: cookie.peerInitialTSN, forwardTSNSupported: cookie.peerFeatures & 1 != 0,
                    reconfigSupported: cookie.peerFeatures & 2 != 0, zeroChecksumAcceptable: cookie.peerFeatures & 4 != 0,
                    ecnCapable: cookie.peerFeatures & 8 != 0))
                establish(now: now)
            }
            control.push((.cookieAck, nil))
        }
    }

    private mutating func receiveCookieAck(now: Duration) {
        guard state == .cookieEchoed else { return }
        establish(now: now)
    }

    private mutating func adoptPeer(_ fields: SCTPChunkModel.InitFields) {
        peerTag = fields.initiateTag
        peerReceiveWindow = Int(fields.receiveWindow)
        peerForwardTSN = fields.forwardTSNSupported
        peerReconfig = fields.reconfigSupported
        peerZeroChecksum = fields.zeroChecksumAcceptable && configuration.zeroChecksum
        ecnNegotiated = fields.ecnCapable && configuration.explicitCongestionNotification
        peerInboundStreams = fields.inboundStreams
        inboundStreams = min(configuration.streams, fields.outboundStreams)
        if tracker == nil {
            tracker = SCTPDataTracker(peerInitialTSN: fields.initialTSN, limits: configuration.limits)
            peerNextRequestSequence = fields.initialTSN.value
        }
    }

    /// A controller of the configured kind, seeded by this association.
    private func makeCongestionControl(mtu: Int, peerReceiveWindow: Int) -> Congestion {
        var controller = Congestion(mtu: mtu, peerReceiveWindow: max(peerReceiveWindow, mtu), kind: configuration.congestionControl)
        controller.seedRandomness(congestionSeed)
        return controller
    }

    private mutating func establish(now: Duration) {
        state = .established
        initTimer = nil
        initChunk = nil
        cookieChunk = nil
        congestion = makeCongestionControl(mtu: configuration.mtu, peerReceiveWindow: peerReceiveWindow)
        if let interval = configuration.heartbeatInterval { heartbeatDeadline = now + interval }
        if let maximum = configuration.maximumMTU {
            let candidates = MTUSearch.candidates(base: configuration.mtu, maximum: min(maximum, SCTPLimits.default.maximumPacketLength))
            if !candidates.isEmpty { mtuSearch = MTUSearch(candidates: candidates) }
        }
        lastSendAt = now
        events.push(.established)
    }

    // MARK: - Data (RFC 9260 §6)

    private mutating func receiveData(_ fragment: SCTPFragment, invalidStreams: inout [UInt16]) {
        // The tracker is used in place (optional chaining), never copied: a
        // copy costs a retain and release of its arrays per DATA chunk, and
        // a copy-on-write of them when there are gaps.
        guard let next = tracker?.cumulativeTSN.next,
              state == .established || state == .shutdownPending || state == .shutdownSent
        else { return drop() }
        // §6.2: a DATA chunk without user data is answered with ABORT.
        guard !fragment.payload.isEmpty else {
            abort(causes: [.noUserData(tsn: fragment.tsn.value)], reason: "the peer sent a DATA chunk without user data (TSN \(fragment.tsn.value))")
            return
        }
        // §6.5: a stream the peer may not send on: acknowledged as usual,
        // answered with an ERROR, and discarded (it costs no memory).
        guard fragment.stream < inboundStreams else {
            invalidStreamChunks += 1
            guard tracker?.observe(fragment.tsn) != .outOfWindow else { return drop() }
            if invalidStreams.count < configuration.limits.maximumErrorCausesPerChunk, !invalidStreams.contains(fragment.stream) {
                invalidStreams.append(fragment.stream)
            }
            return
        }
        // §6.2: data beyond our window is dropped, unless it is the next TSN
        // in order (it lets the message at the cumulative TSN out, or it is a
        // zero window probe), and even that once the overrun limit is reached.
        // A dropped chunk is answered with a SACK at once.
        let charged = bufferedBytes + fragment.payload.count + configuration.limits.receivedChunkOverhead
        if charged > configuration.receiveWindow,
           fragment.tsn != next || charged > configuration.receiveWindow + configuration.limits.maximumReceiveWindowOverrun
        {
            droppedChunks += 1
            tracker?.requestSACK()
            return
        }
        switch tracker?.observe(fragment.tsn) {
        case .new: break
        case .outOfWindow:
            // Too far ahead, or one gap too many (SCTPLimits): dropped, not acknowledged.
            droppedChunks += 1
            return
        case .duplicate, nil: return
        }
        reassembly.add(fragment)
        if reassembly.oversizedMessages > 0 {
            abort(reason: "a message larger than the max-message-size")
        }
    }

    private mutating func receiveSACK(_ sack: SCTPChunkModel.SACKFields, now: Duration) {
        guard state != .cookieWait, state != .cookieEchoed else { return drop() }
        let gaps = sack.gapBlocks.map { (start: $0.start, end: $0.end) }
        guard let outcome = retransmissions.handleSACK(cumulative: sack.cumulativeTSN, gapBlocks: gaps, now: now) else {
            abort(reason: "a SACK acknowledged data that was never sent")
            return
        }
        if let sample = outcome.roundTrip {
            rto.measured(sample)
            congestion?.roundTripMeasured(sample, now: now)
        }
        if outcome.newlyAcknowledgedBytes > 0 { consecutiveTimeouts = 0 }
        congestion?.acknowledged(SCTPAcknowledgement(
            bytes: outcome.newlyAcknowledgedBytes, flightSizeBefore: outcome.flightSizeBefore,
            cumulativeAdvanced: outcome.cumulativeAdvanced, inFastRecovery: retransmissions.inFastRecovery, now: now,
            sample: outcome.rateSample, flightSize: retransmissions.flightSize))
        statistics.fastRetransmits += outcome.fastRetransmits
        if outcome.fastRetransmits > 0 { congestion?.packetsLost(outcome.fastRetransmits) }
        if outcome.fastRetransmits > 0, retransmissions.enterFastRecovery() {
            congestion?.lossDetected(flightSize: retransmissions.flightSize, now: now)
        }
        // §6.2.1 D: the peer's window less what is still in flight, each
        // chunk with the overhead a receiver charges for it (SCTPLimits).
        peerReceiveWindow = max(
            0, Int(sack.receiveWindow) - retransmissions.flightSize - retransmissions.chunksInFlight * configuration.limits.receivedChunkOverhead)
        // §6.3.2 R2/R3: restart T3 when the earliest outstanding is acknowledged.
        if retransmissions.flightSize == 0 && !retransmissions.hasRetransmissions {
            t3Deadline = nil
            tailDeadline = nil
        } else if outcome.cumulativeAdvanced || t3Deadline == nil {
            t3Deadline = now + rto.value
        }
        if outcome.newlyAcknowledgedBytes > 0 {
            tailExpiries = 0
            tailStopped = false
            armTailTimer(now: now)
        }
        if peerForwardTSN, retransmissions.abandonExpired(now: now) { forwardTSNDue = true }
        if state == .shutdownReceived || state == .shutdownPending { continueShutdown(now: now) }
    }

    // MARK: - Tail loss (RFC 8985 §7, for SCTP)

    /// Twice the smoothed round trip, and the peer's delayed SACK (RFC 9260
    /// §6.2: up to 200 ms) when the one chunk in flight is the newest,
    /// which a receiver may hold (a chunk that fills a gap is acknowledged
    /// at once); at least 10 ms (a loaded host's timers and SACK batching)
    /// and at most the RTO. None before a round trip was measured.
    private var tailTimeout: Duration? {
        guard let smoothed = rto.smoothedRoundTrip else { return nil }
        var timeout = smoothed * 2
        if retransmissions.chunksInFlight == 1, retransmissions.newestIsInFlight { timeout += .milliseconds(200) }
        return min(max(timeout, .milliseconds(10)), rto.value)
    }

    /// From a SACK that acknowledged something or data sent, while data
    /// is in flight; not when T3 would expire first.
    private mutating func armTailTimer(now: Duration) {
        guard retransmissions.flightSize > 0, !tailStopped, let timeout = tailTimeout else {
            tailDeadline = nil
            return
        }
        let deadline = now + timeout * (1 << min(tailExpiries, 6))
        if let t3 = t3Deadline, deadline >= t3 {
            tailDeadline = nil
        } else {
            tailDeadline = deadline
        }
    }

    /// No SACK acknowledged anything for a tail timeout: holes the peer's
    /// last SACK left, a round trip (and a quarter, for reordering) after
    /// they were sent, are lost and go again at once, as fast retransmit's
    /// would (and their resends, lost again, at the next expiry, which
    /// comes twice as late); with none, at the first expiry, one probe.
    /// T3 stays armed behind it.
    private mutating func tailTimerExpired(now: Duration) {
        tailDeadline = nil
        tailExpiries += 1
        guard state == .established || state == .shutdownPending || state == .shutdownReceived,
              let smoothed = rto.smoothedRoundTrip else { return }
        switch retransmissions.tailTimerExpired(now: now, age: smoothed + smoothed / 4, probe: tailExpiries == 1) {
        case .lost(let chunks, _):
            statistics.tailRetransmits += chunks
            congestion?.packetsLost(chunks)
            if retransmissions.enterFastRecovery() {
                congestion?.lossDetected(flightSize: retransmissions.flightSize, now: now)
            }
        case .probe:
            statistics.tailProbes += 1
        case .nothing:
            break
        }
    }

    private mutating func receiveForwardTSN(_ cumulative: TSN, streams: [SCTPChunkModel.ForwardedStream]) {
        guard tracker != nil, state == .established || state == .shutdownPending || state == .shutdownSent else { return drop() }
        tracker?.forward(to: cumulative)
        reassembly.forward(to: cumulative, skipping: streams.map { (stream: $0.stream, ssn: $0.ssn) })
    }

    // MARK: - ECN (RFC 9260 Appendix A)

    /// A packet with DATA arrived marked CE: echoed from now on with the
    /// lowest TSN marked since the peer's last CWR. The first mark of an
    /// episode gets a SACK with the next packet, so the sender hears of it
    /// within a round trip; later ones ride on the SACKs due anyway (every
    /// second packet). The sender answers every echo with a CWR, which
    /// rides on its data and ends the episode, so under steady marking the
    /// packet that ends one begins the next: that episode waits for the
    /// usual SACK too (a SACK per marked packet where a step AQM marked
    /// most of them, before). Marks not yet echoed when a CWR ends their
    /// episode count in the next one, so each reaches the sender once.
    private mutating func markedPacketReceived(_ chunks: [SCTPChunkModel]) {
        var lowest: TSN?
        for case .data(let fragment) in chunks where lowest.map({ fragment.tsn < $0 }) ?? true { lowest = fragment.tsn }
        guard let lowest else { return }
        statistics.congestionExperiencedPackets += 1
        marksSinceEcho &+= 1
        if let episode = ceEpisode {
            ceEpisode = (min(episode.lowestTSN, lowest), episode.packets &+ 1)
        } else {
            ceEpisode = (lowest, marksSinceEcho)
            if !episodeEndedInPacket { tracker?.requestSACK() }
        }
    }

    /// The peer reduced its window for our echo of `tsn`: stop echoing,
    /// unless marks of later data arrived since (they are echoed on).
    private mutating func receiveCWR(_ tsn: TSN) {
        guard let episode = ceEpisode, episode.lowestTSN <= tsn else { return }
        ceEpisode = nil
        episodeEndedInPacket = true
    }

    /// The peer saw CE marks on our data. Each new mark goes to the
    /// controller; the window is reduced (a congestion event, like a loss)
    /// once per window of data: for an echo of data sent after the last
    /// reduction. Every echo is answered with a CWR.
    private mutating func receiveECNEcho(_ tsn: TSN, packets: UInt32?, now: Duration) {
        guard ecnNegotiated, state != .cookieWait, state != .cookieEchoed, state != .closed else { return drop() }
        // Only data we sent can have been marked.
        guard tsn < retransmissions.nextTSN else { return drop() }
        // The count runs since the peer's last CWR: a new episode (a new
        // lowest TSN) starts it again. The short form counts one per episode.
        let count = packets ?? 1
        var marks = 0
        if let last = lastEcho, last.lowestTSN == tsn {
            if count &- last.packets < 0x8000_0000 { marks = Int(count &- last.packets) }
        } else {
            marks = Int(min(count, 1 << 16))
        }
        if lastEcho.map({ $0.lowestTSN != tsn || marks > 0 }) ?? true { lastEcho = (tsn, count) }
        statistics.echoedMarks += marks
        let reduce = ecnReductionTSN.map { $0 < tsn } ?? true
        if reduce {
            ecnReductionTSN = retransmissions.nextTSN.previous
            statistics.ecnReductions += 1
        }
        if marks > 0 || reduce {
            congestion?.congestionExperienced(
                markedPackets: marks, reduceWindow: reduce, flightSize: retransmissions.flightSize, now: now)
        }
        cwrDue = cwrDue.map { max($0, tsn) } ?? tsn
    }

    // MARK: - Heartbeat (RFC 9260 §8.3)

    private mutating func receiveHeartbeatAck(_ info: [UInt8], now: Duration) {
        if info.count == Self.probeInfoLength {
            receiveProbeAck(info)
            return
        }
        var reader = WireReader(info)
        guard let outstanding = heartbeatOutstanding, let echoed = try? reader.readUInt64(), reader.isAtEnd,
              echoed == outstanding.nonce
        else { return }
        heartbeatOutstanding = nil
        consecutiveTimeouts = 0
        rto.measured(now - outstanding.sentAt)
    }

    // MARK: - Path MTU probing (RFC 8899 §4.1)

    /// A probe's heartbeat information: a nonce and the probed size (eight
    /// and four bytes), told apart from a plain heartbeat's by its length.
    static var probeInfoLength: Int { 12 }

    private mutating func receiveProbeAck(_ info: [UInt8]) {
        guard let outstanding = mtuSearch?.outstanding else { return }
        var reader = WireReader(info)
        guard let nonce = try? reader.readUInt64(), let probed = try? reader.readUInt32(), reader.isAtEnd,
              nonce == outstanding.nonce, Int(probed) == outstanding.size
        else { return }
        let size = Int(probed)
        mtuSearch = nil  // candidates go from the largest down: this is the best
        statistics.mtuProbes += 1
        if size > pathMTU {
            pathMTU = size
            congestion?.pathMTUChanged(to: size)
        }
    }

    /// The probe packet due now, if any: alone, HEARTBEAT then PAD up to
    /// exactly the candidate size.
    private mutating func pollProbe(now: Duration) -> Packet? {
        guard var search = mtuSearch, search.outstanding == nil, let size = search.candidates.first,
              state == .established else { return nil }
        nonce &+= 1
        var info: [UInt8] = []
        info.appendBigEndian(nonce)
        info.appendBigEndian(UInt32(size))
        let heartbeat = SCTPChunkModel.heartbeat(info: info)
        let padding = size - 12 - Self.size(of: heartbeat)
        guard padding >= 4 else {
            mtuSearch = nil
            return nil
        }
        search.outstanding = (nonce, size, now + rto.value)
        search.attempts += 1
        mtuSearch = search
        statistics.packetsSent += 1
        return Packet(
            verificationTag: peerTag, chunks: [heartbeat, .padding(length: padding)], zeroChecksum: false, isProbe: true,
            exceedsPathMTU: true)
    }

    /// An unanswered probe: once more, then the next smaller candidate.
    /// Probe loss is not congestion (RFC 8899 §3 req. 7): nothing else changes.
    private mutating func probeTimedOut(now: Duration) {
        guard var search = mtuSearch, let outstanding = search.outstanding, now >= outstanding.deadline else { return }
        search.outstanding = nil
        if search.attempts >= 2 {
            search.candidates.removeFirst()
            search.attempts = 0
        }
        mtuSearch = search.candidates.isEmpty ? nil : search
    }

    // MARK: - Stream reset (RFC 6525)

    private mutating func receiveReconfig(_ parameters: [SCTPChunkModel.Reconfig], now: Duration) {
        guard state == .established || state == .shutdownPending else { return drop() }
        var responses: [SCTPChunkModel.Reconfig] = []
        for parameter in parameters {
            switch parameter {
            case .outgoingReset(let request, _, let lastTSN, let streams):
                guard let expected = peerNextRequestSequence else { continue }
                if request != expected {
                    // §5.2.1: a retransmitted request is answered again; others are errors.
                    let result: UInt32 = request == expected &- 1 ? 1 : 5  // success-nothing-to-do / bad sequence
                    responses.append(.response(responseSequence: request, result: result))
                    continue
                }
                peerNextRequestSequence = expected &+ 1
                if let tracker, !(tracker.cumulativeTSN < lastTSN) {
                    performIncomingReset(streams)
                    responses.append(.response(responseSequence: request, result: 1))  // Success - Performed
                } else {
                    // §5.2.2 E2: wait until the data before the reset has arrived.
                    deferredIncomingResets.append((request, lastTSN, streams))
                    responses.append(.response(responseSequence: request, result: 6))  // In progress
                }
            case .response(let sequence, let result):
                guard let inFlight = resetInFlight, inFlight.sequence == sequence else { continue }
                switch result {
                case 1, 0:  // Success - Performed / nothing to do
                    for stream in inFlight.streams { sendQueue.resetStream(stream) }
                    resetInFlight = nil
                    events.push(.outgoingStreamsReset(inFlight.streams))
                case 6:  // In progress: ask again later
                    resetInFlight = (inFlight.sequence, inFlight.streams, now + rto.value)
                default:
                    resetInFlight = nil
                    events.push(.aborted("the peer refused to reset streams \(inFlight.streams)"))
                }
            case .unsupported(let request):
                if let request { responses.append(.response(responseSequence: request, result: 2)) }  // Denied
            }
        }
        if !responses.isEmpty { control.push((.reconfig(responses), nil)) }
    }

    private mutating func processDeferredResets() {
        guard !deferredIncomingResets.isEmpty, let tracker else { return }
        var remaining: [(request: UInt32, lastTSN: TSN, streams: [UInt16])] = []
        for deferred in deferredIncomingResets {
            if !(tracker.cumulativeTSN < deferred.lastTSN) {
                performIncomingReset(deferred.streams)
            } else {
                remaining.append(deferred)
            }
        }
        deferredIncomingResets = remaining
    }

    private mutating func performIncomingReset(_ streams: [UInt16]) {
        for stream in streams { reassembly.resetStream(stream) }
        events.push(.incomingStreamsReset(streams))
    }

    // MARK: - Shutdown (RFC 9260 §9.2)

    private mutating func receiveShutdown(_ cumulative: TSN, now: Duration) {
        guard state == .established || state == .shutdownPending || state == .shutdownSent else { return }
        _ = retransmissions.handleSACK(cumulative: cumulative, gapBlocks: [], now: now)
        if state == .shutdownSent {
            // Both sides shut down at once: answer with SHUTDOWN ACK.
            state = .shutdownAckSent
            control.push((.shutdownAck, nil))
            shutdownTimer = (now + rto.value, 0)
            return
        }
        state = .shutdownReceived
        continueShutdown(now: now)
    }

    private mutating func receiveShutdownAck() {
        guard state == .shutdownSent || state == .shutdownAckSent else { return }
        control.push((.shutdownComplete, nil))
        terminate(.closed)
    }

    /// Moves a shutdown on once nothing is left to send or acknowledge.
    private mutating func continueShutdown(now: Duration) {
        guard sendQueue.isEmpty, retransmissions.isEmpty else { return }
        switch state {
        case .shutdownPending:
            state = .shutdownSent
            control.push((.shutdown(cumulativeTSN: tracker?.cumulativeTSN ?? TSN(0)), nil))
            shutdownTimer = (now + rto.value, 0)
        case .shutdownReceived:
            state = .shutdownAckSent
            control.push((.shutdownAck, nil))
            shutdownTimer = (now + rto.value, 0)
        default:
            break
        }
    }

    private mutating func terminate(_ event: SCTPEvent) {
        state = .closed
        initTimer = nil
        t3Deadline = nil
        tailDeadline = nil
        shutdownTimer = nil
        heartbeatDeadline = nil
        resetInFlight = nil
        mtuSearch = nil
        events.push(event)
    }

    // MARK: - Path change

    /// The layer below now carries this association's packets on another
    /// path (ICE moved the session to another candidate pair: a direct one
    /// instead of a relayed one, a backup after the selected pair died, the
    /// pair an ICE restart found). What was in flight on the old path is
    /// taken to be gone with it, as QUIC's path migration takes it (RFC 9000
    /// §9.4):
    /// - every DATA chunk in flight is marked for retransmission and goes out
    ///   with the next `pollTransmit`, ahead of new data (RFC 9260 §6.4:
    ///   retransmissions to an alternate destination; §6.1 A), not as a loss
    ///   the controller reacts to: the path went away, no queue overflowed;
    /// - the T3-rtx timer's back-off ends (§6.3.3 E2 doubled it for the path
    ///   that stopped answering) and the timer runs again from now;
    /// - on a new network path, the round-trip estimate starts afresh (RTO =
    ///   RTO.Initial, §6.3.1 C1) and so does the congestion controller (its
    ///   initial window, §7.2.1; BBR from Startup), and chunks sent before now
    ///   give no round-trip or rate samples (RFC 9000 §9.4: packets sent on
    ///   the old path must not feed the new path's estimates).
    ///
    /// `sameNetworkPath`: only a port changed (a NAT rebinding, or the same
    /// pair selected again): the estimate and the controller's model stay, as
    /// RFC 9000 §9.4 allows for a port-only change; the rest is as above.
    public mutating func pathChanged(sameNetworkPath: Bool = false, now: Duration) {
        guard state != .closed, state != .cookieWait, state != .cookieEchoed else { return }
        if sameNetworkPath {
            rto.endBackOff()
        } else {
            rto = SCTPRetransmissionTimeout(configuration: configuration.rto)
            // The window the peer advertised last (§6.2.1 D took what is in
            // flight off it), as a controller's initial threshold wants it.
            let advertised = peerReceiveWindow + retransmissions.flightSize
                + retransmissions.chunksInFlight * configuration.limits.receivedChunkOverhead
            congestion = makeCongestionControl(mtu: pathMTU, peerReceiveWindow: advertised)
            // Its answer would measure the old path and the new one together.
            heartbeatOutstanding = nil
        }
        retransmissions.pathChanged(now: now)
        pacer.stop()
        t3Deadline = retransmissions.hasRetransmissions ? now + rto.value : nil
        tailDeadline = nil
    }

    // MARK: - Time

    public var nextDeadline: Duration? {
        var deadline: Duration?
        func consider(_ value: Duration?) {
            guard let value else { return }
            deadline = deadline.map { min($0, value) } ?? value
        }
        consider(initTimer?.deadline)
        consider(t3Deadline)
        consider(tailDeadline)
        consider(shutdownTimer?.deadline)
        consider(heartbeatDeadline)
        consider(tracker?.delayedAckDeadline)
        consider(resetInFlight?.deadline)
        consider(mtuSearch?.outstanding?.deadline)
        if !sendQueue.isEmpty || retransmissions.hasRetransmissions { consider(pacer.nextSend) }
        return deadline
    }

    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func advanceTime(now: Duration) {
        if let timer = initTimer, now >= timer.deadline {
            // §5.1 A/C: T1-init and T1-cookie.
            if timer.attempts + 1 > configuration.maximumInitRetransmits {
                terminate(.aborted("the peer did not answer the SCTP handshake"))
                return
            }
            rto.backOff()
            if state == .cookieWait, let initChunk { control.push((initChunk, 0)) }
            if state == .cookieEchoed, let cookieChunk { control.push((cookieChunk, nil)) }
            initTimer = (now + rto.value, timer.attempts + 1)
        }
        if let deadline = t3Deadline, now >= deadline {
            // §6.3.3 E1-E3.
            statistics.timeouts += 1
            consecutiveTimeouts += 1
            if consecutiveTimeouts > configuration.maximumRetransmits {
                abort(reason: "too many retransmissions")
                return
            }
            rto.backOff()
            // RFC 8899 §4.3: repeated timeouts after the path MTU went up may
            // mean larger packets no longer get through: new data goes back
            // to the base size (chunks already cut larger cannot be recut).
            if consecutiveTimeouts >= 2, pathMTU > configuration.mtu {
                pathMTU = configuration.mtu
                congestion?.pathMTUChanged(to: pathMTU)
            }
            retransmissions.timerExpired()
            congestion?.retransmissionTimeout(now: now)
            t3Deadline = now + rto.value
            tailDeadline = nil
            tailStopped = true
            if peerForwardTSN, retransmissions.abandonExpired(now: now) { forwardTSNDue = true }
        }
        if let deadline = tailDeadline, now >= deadline { tailTimerExpired(now: now) }
        if let timer = shutdownTimer, now >= timer.deadline {
            if timer.attempts + 1 > configuration.maximumRetransmits {
                abort(reason: "the peer did not answer the shutdown")
                return
            }
            rto.backOff()
            switch state {
            case .shutdownSent: control.push((.shutdown(cumulativeTSN: tracker?.cumulativeTSN ?? TSN(0)), nil))
            case .shutdownAckSent: control.push((.shutdownAck, nil))
            default: break
            }
            shutdownTimer = (now + rto.value, timer.attempts + 1)
        }
        tracker?.advanceTime(now: now)
        probeTimedOut(now: now)
        if let inFlight = resetInFlight, now >= inFlight.deadline {
            resetInFlight = nil
            for stream in inFlight.streams.reversed() where !resetPending.contains(stream) { resetPending.insert(stream, at: 0) }
        }
        if let deadline = heartbeatDeadline, now >= deadline, state == .established {
            if heartbeatOutstanding != nil {
                // §8.3: an unanswered heartbeat counts as a timeout.
                consecutiveTimeouts += 1
                if consecutiveTimeouts > configuration.maximumRetransmits {
                    abort(reason: "the peer stopped answering heartbeats")
                    return
                }
            }
            if retransmissions.isEmpty && now - lastSendAt >= (configuration.heartbeatInterval ?? .seconds(30)) {
                nonce &+= 1
                var info: [UInt8] = []
                info.appendBigEndian(nonce)
                control.push((.heartbeat(info: info), nil))
                heartbeatOutstanding = (nonce, now)
            }
            heartbeatDeadline = now + (configuration.heartbeatInterval ?? .seconds(30)) + rto.value
        }
    }

    // MARK: - Building packets

    /// The next packet to send, if any: control chunks (SACK first), then
    /// retransmissions, then new data as the congestion window, the peer's
    /// receive window and pacing allow (RFC 9260 §6.1).
    @_specialize(exported: true, where Congestion == RFC9260CongestionControl)
    @_specialize(exported: true, where Congestion == LossTolerantCongestionControl)
    @_specialize(exported: true, where Congestion == SelectableCongestionControl)
    public mutating func pollTransmit(now: Duration) -> Packet? {
        var chunks: [SCTPChunkModel] = []
        var room = pathMTU - 12
        // A chunk with a tag of its own (INIT, INIT ACK, an ABORT for a bad INIT) travels alone.
        if let next = control.first, let tag = next.tag {
            _ = control.pop()
            return Packet(verificationTag: tag, chunks: [next.chunk], zeroChecksum: false)
        }
        if mtuSearch != nil, let probe = pollProbe(now: now) { return probe }
        let tag = peerTag
        if let cumulative = tracker?.cumulativeTSN, tracker?.sackDue == true || windowUpdateDue, state != .closed {
            let sack = SCTPChunkModel.sack(SCTPChunkModel.SACKFields(
                cumulativeTSN: cumulative, receiveWindow: advertisedReceiveWindow,
                gapBlocks: (tracker?.gapBlocks ?? []).prefix(64).map { SCTPChunkModel.GapBlock(start: $0.start, end: $0.end) },
                duplicates: tracker?.takeDuplicates() ?? []))
            tracker?.sackSent()
            lastAdvertisedWindow = advertisedReceiveWindow
            chunks.append(sack)
            room -= Self.size(of: sack)
            // RFC 9260 Appendix A: the echo rides with every SACK until the CWR.
            if let episode = ceEpisode {
                marksSinceEcho = 0
                let echo = SCTPChunkModel.ecnEcho(lowestTSN: episode.lowestTSN, markedPackets: episode.packets)
                chunks.append(echo)
                room -= Self.size(of: echo)
            }
        }
        if let tsn = cwrDue, state != .closed, tag != 0 {
            let cwr = SCTPChunkModel.cwr(lowestTSN: tsn)
            cwrDue = nil
            chunks.append(cwr)
            room -= Self.size(of: cwr)
        }
        while let next = control.first, next.tag == nil, Self.size(of: next.chunk) <= room || chunks.isEmpty {
            _ = control.pop()
            room -= Self.size(of: next.chunk)
            chunks.append(next.chunk)
        }
        if state == .established || state == .shutdownPending || state == .shutdownReceived {
            if forwardTSNDue, peerForwardTSN, let forward = retransmissions.forwardTSN() {
                let chunk = SCTPChunkModel.forwardTSN(
                    newCumulativeTSN: forward.newCumulative,
                    streams: forward.skipped.map { SCTPChunkModel.ForwardedStream(stream: $0.stream, ssn: $0.ssn) })
                if Self.size(of: chunk) <= room {
                    chunks.append(chunk)
                    room -= Self.size(of: chunk)
                    forwardTSNDue = false
                }
            }
            appendResetRequest(&chunks, room: &room, now: now)
            appendData(&chunks, room: &room, now: now)
        }
        guard !chunks.isEmpty else { return nil }
        // A CWR with nothing else waits for the next packet while data is
        // in flight (its SACKs bring one); the peer echoes on meanwhile,
        // and echoes of the same episode reduce nothing more.
        if chunks.count == 1, case .cwr(let tsn) = chunks[0], retransmissions.flightSize > 0 {
            cwrDue = tsn
            return nil
        }
        statistics.packetsSent += 1
        lastSendAt = now
        return Packet(verificationTag: tag, chunks: chunks, zeroChecksum: peerZeroChecksum && tag != 0, exceedsPathMTU: room < 0)
    }

    private mutating func appendData(_ chunks: inout [SCTPChunkModel], room: inout Int, now: Duration) {
        // RFC 9260 §7.2.1: a window unused for an RTO or more decays before
        // new data goes out on it.
        if retransmissions.isEmpty, !sendQueue.isEmpty, let last = lastDataSentAt, now - last >= rto.value {
            congestion?.wasIdle(for: now - last, retransmissionTimeout: rto.value)
            lastDataSentAt = now
        }
        guard let congestion else { return }
        let pacingRate = congestion.pacingRate ?? 0
        if pacingRate > 0 {
            guard pacer.mayRelease(rate: pacingRate, mtu: pathMTU, now: now) else {
                if !sendQueue.isEmpty || retransmissions.hasRetransmissions { statistics.limitedByPacing += 1 }
                return
            }
        } else {
            pacer.stop()
        }
        var sentBytes = 0
        // Retransmissions first (§6.1 A), within the window after a timeout
        // (cwnd = 1 MTU then), at once for fast retransmit (§7.2.4 step 3).
        while room > 16 + 4 {
            guard retransmissions.flightSize < congestion.congestionWindow || retransmissions.inFastRecovery else { break }
            // A chunk cut before the path MTU went down (see advanceTime)
            // cannot be recut: it goes alone in a packet of its own size,
            // left to the host to fragment. Room below zero marks that.
            let alone = chunks.isEmpty
            guard let item = retransmissions.nextRetransmission(now: now, room: alone ? .max : room) else { break }
            let chunk = SCTPChunkModel.data(item.fragment)
            chunks.append(chunk)
            room -= Self.size(of: chunk)
            sentBytes += item.fragment.payload.count
            statistics.retransmittedChunks += 1
            if t3Deadline == nil { t3Deadline = now + rto.value }
        }
        if retransmissions.takeAbandonment(), peerForwardTSN { forwardTSNDue = true }
        sendQueue.dropExpired(now: now)
        while room > 16 + 4 {
            // §6.1 B: the congestion window; A: the peer's receive window,
            // except one chunk when nothing is in flight (zero window probe).
            let flight = retransmissions.flightSize
            guard flight < congestion.congestionWindow else {
                if !sendQueue.isEmpty { statistics.limitedByCongestionWindow += 1 }
                break
            }
            let overhead = configuration.limits.receivedChunkOverhead
            guard peerReceiveWindow > overhead || flight == 0 else {
                if !sendQueue.isEmpty { statistics.limitedByReceiveWindow += 1 }
                break
            }
            // The chunk is padded to four bytes (§3.2): keep the padded size within the room.
            let maximumPayload = min((room - 16) & ~3, max(peerReceiveWindow - overhead, 1))
            let tsn = retransmissions.nextTSN
            guard let item = sendQueue.nextFragment(tsn: tsn, maximumPayload: maximumPayload) else {
                // Room in the windows and nothing to send: rate samples
                // taken now show the application's pace, not the path's.
                retransmissions.applicationLimited()
                statistics.limitedByApplication += 1
                break
            }
            retransmissions.sent(item, now: now)
            peerReceiveWindow = max(0, peerReceiveWindow - item.fragment.payload.count - overhead)
            let chunk = SCTPChunkModel.data(item.fragment)
            chunks.append(chunk)
            room -= Self.size(of: chunk)
            sentBytes += item.fragment.payload.count
            statistics.dataChunksSent += 1
            lastDataSentAt = now
            if t3Deadline == nil { t3Deadline = now + rto.value }
            let stream = item.fragment.stream
            if lowWaterArmed.contains(stream), sendQueue.bufferedAmount[stream, default: 0] <= configuration.bufferedAmountLowThreshold {
                lowWaterArmed.remove(stream)
                events.push(.bufferedAmountLow(stream: stream))
            }
        }
        // Paced in bytes of user data, the unit of the controller's delivery rate.
        if pacingRate > 0, sentBytes > 0 { pacer.sent(sentBytes, rate: pacingRate, mtu: pathMTU, now: now) }
        if sentBytes > 0 { armTailTimer(now: now) }
        if state == .shutdownPending || state == .shutdownReceived { continueShutdown(now: now) }
    }

    private mutating func appendResetRequest(_ chunks: inout [SCTPChunkModel], room: inout Int, now: Duration) {
        guard resetInFlight == nil, peerReconfig, !resetPending.isEmpty else { return }
        // §5.1.2: a stream is reset once its queued data has been sent.
        let ready = resetPending.filter { sendQueue.isIdle($0) }
        guard !ready.isEmpty else { return }
        let sequence = nextRequestSequence
        let chunk = SCTPChunkModel.reconfig([.outgoingReset(
            requestSequence: sequence, responseSequence: (peerNextRequestSequence ?? 0) &- 1,
            lastTSN: retransmissions.nextTSN.previous, streams: ready)])
        guard Self.size(of: chunk) <= room else { return }
        nextRequestSequence &+= 1
        resetPending.removeAll { ready.contains($0) }
        resetInFlight = (sequence, ready, now + rto.value)
        chunks.append(chunk)
        room -= Self.size(of: chunk)
    }

    /// Bytes a chunk takes in a packet, padding included (RFC 9260 §3.2).
    static func size(of chunk: SCTPChunkModel) -> Int {
        func padded(_ n: Int) -> Int { (n + 3) & ~3 }
        switch chunk {
        case .data(let fragment): return padded(16 + fragment.payload.count)
        case .initiation(let fields), .initiationAck(let fields, _):
            var size = 20 + 4 + 8  // fixed part, Forward-TSN-Supported, Supported Extensions (2 types, padded)
            if fields.zeroChecksumAcceptable { size += 8 }
            if fields.ecnCapable { size += 4 }
            if case .initiationAck(_, let cookie) = chunk { size += padded(4 + cookie.count) }
            return size
        case .sack(let sack): return 16 + 4 * sack.gapBlocks.count + 4 * sack.duplicates.count
        case .heartbeat(let info), .heartbeatAck(let info): return 4 + padded(4 + info.count)
        case .abort(let causes), .error(let causes): return 4 + causes.reduce(0) { $0 + $1.paddedLength }
        case .shutdown, .cwr: return 8
        case .ecnEcho(_, let packets): return packets == nil ? 8 : 12
        case .cookieEcho(let cookie): return padded(4 + cookie.count)
        case .forwardTSN(_, let streams): return 8 + 4 * streams.count
        case .reconfig(let parameters):
            return 4 + parameters.reduce(0) { total, parameter in
                switch parameter {
                case .outgoingReset(_, _, _, let streams): return total + padded(16 + 2 * streams.count)
                case .response: return total + 12
                case .unsupported: return total + 12
                }
            }
        case .padding(let length): return padded(max(length, 4))
        case .shutdownAck, .cookieAck, .shutdownComplete, .unknown: return 4
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}

