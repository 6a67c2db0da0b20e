import Foundation
import NIOCore
import TernDTLS
import TernDataChannel
import TernSCTP

/// DTLS, SCTP and data channels on the path ICE selected: the stack above
/// the connectivity driver, on the driver's event loop (design.md: one loop
/// per session owns the socket, the timers and every core).
///
/// DTLS datagrams from the selected pair come in through the driver; each
/// DTLS record carries one SCTP packet (RFC 8261 §3); the data channel
/// endpoint inside runs SCTP and DCEP. The async API hides the loop: open a
/// channel, send with back-pressure, receive messages, close.
///
/// Thread safety: mutable state is touched on `loop` only.
public final class SecureChannels: @unchecked Sendable {
    /// BBR, or RFC 9260's controller with or without loss tolerance, as
    /// `Options.congestionControl` picks.
    public typealias Congestion = SelectableCongestionControl
    public typealias Endpoint = DataChannelEndpoint<Congestion>

    public struct Options: Sendable {
        public var role: DTLSRole
        public var certificate: DTLSCertificate
        public var expectedPeerFingerprint: DTLSFingerprint
        /// Our receive window (bytes in flight towards us plus unread ones).
        public var receiveWindow: Int
        /// `send` waits while a channel has more than this queued.
        public var sendHighWater: Int
        public var maximumMessageSize: Int
        /// The largest message the peer accepts (its `a=max-message-size`);
        /// `send` refuses larger ones.
        public var peerMaximumMessageSize: Int
        /// The largest datagram the path may carry (`ConnectedPath`): SCTP
        /// probes for it once up. Nil: 1200-byte datagrams throughout.
        public var maximumDatagramSize: Int?
        /// How long each stage waits for the peer, and how long a busy
        /// association may hear nothing from it.
        public var limits = PeerWatch.Limits()
        /// SCTP's congestion controller: TERN_SCTP_CONGESTION_CONTROL
        /// (bbr, loss-tolerant or rfc9260), BBR if unset or unknown.
        public var congestionControl = SCTPCongestionControlKind(
            rawValue: ProcessInfo.processInfo.environment["TERN_SCTP_CONGESTION_CONTROL"] ?? "") ?? .default
        /// Offer ECN to the peer's SCTP (on unless TERN_SCTP_ECN is 0, for
        /// comparisons): when both offer it, the datagrams to a direct peer
        /// go out ECT(0) and CE marks reach the congestion controller.
        public var explicitCongestionNotification = ProcessInfo.processInfo.environment["TERN_SCTP_ECN"] != "0"
        /// The selected pair's round trip as ICE's checks measured it
        /// (`ConnectedPath.roundTrip`): DTLS's first retransmission timer
        /// starts from it (`handshakeRetransmissionTimeout`).
        public var pathRoundTrip: Duration?

        /// DTLS's initial retransmission timer: RFC 6347 §4.2.4.1 and RFC
        /// 9147 §5.8.2 give 1 s for a sender that knows nothing of the round
        /// trip; ICE has just measured it. Three round trips (a first
        /// RFC 6298 RTO from one sample), at least 100 ms for the peer's
        /// handshake work on a busy host, at most the 1 s default
        /// (docs/architecture.md, DTLS, has what it saves on a lossy path).
        public static func handshakeRetransmissionTimeout(pathRoundTrip: Duration?) -> Duration {
            guard let pathRoundTrip else { return .seconds(1) }
            return min(max(pathRoundTrip * 3, .milliseconds(100)), .seconds(1))
        }

        public init(
            role: DTLSRole, certificate: DTLSCertificate, expectedPeerFingerprint: DTLSFingerprint,
            receiveWindow: Int = 6 << 20, sendHighWater: Int = 512 << 10, maximumMessageSize: Int = 256 * 1024
        ) {
            self.role = role
            self.certificate = certificate
            self.expectedPeerFingerprint = expectedPeerFingerprint
            self.receiveWindow = receiveWindow
            self.sendHighWater = sendHighWater
            self.maximumMessageSize = maximumMessageSize
            self.peerMaximumMessageSize = maximumMessageSize
        }
    }

    public let loop: EventLoop
    private let driver: ConnectivityDriver
    private let options: Options
    private let dtls: DTLSAssociation
    private let startedAt: NIODeadline

    // Confined to `loop`.
    private var endpoint: Endpoint?
    private lazy var timer = LoopTimer(loop: loop, origin: startedAt)
    private var pumping = false
    /// The SCTP packet being encoded, reused for every packet.
    private var packetBuffer: [UInt8] = []
    private var ended: SessionError?
    private var watch: PeerWatch
    /// Channels open now (ours and the peer's): while there is one, a
    /// transfer is under way and the peer's silence is watched.
    private var openStreams: Set<UInt16> = []
    private var readyWaiters: [CheckedContinuation<Void, Error>] = []
    private var openWaiters: [UInt16: (continuation: CheckedContinuation<UInt16, Error>, deadline: Duration)] = [:]
    private var sendWaiters: [(stream: UInt16, continuation: CheckedContinuation<Void, Error>)] = []
    private var messageWaiters: [CheckedContinuation<DataChannelMessage?, Error>] = []
    private var batchWaiters: [(limit: Int, continuation: CheckedContinuation<[DataChannelMessage]?, Error>)] = []
    private var eventsInput: AsyncStream<DataChannelEvent>.Continuation
    /// Events other than messages: channels opened and closed by the peer, the end.
    public let events: AsyncStream<DataChannelEvent>
    /// The largest message `send` accepts: the peer's limit.
    public var peerMaximumMessageSize: Int { options.peerMaximumMessageSize }
    /// SCTP packets that failed to decode, for diagnostics.
    public private(set) var malformedPackets = 0

    private init(driver: ConnectivityDriver, options: Options, dtls: DTLSAssociation) {
        self.driver = driver
        self.loop = driver.loop
        self.options = options
        self.dtls = dtls
        self.startedAt = .now()
        self.watch = PeerWatch(limits: options.limits, now: .zero)
        (events, eventsInput) = AsyncStream<DataChannelEvent>.makeStream()
    }

    /// Starts DTLS on the selected pair of `driver` (which must be connected)
    /// and returns once DTLS is up, the peer's certificate matched, and the
    /// SCTP association is established.
    public static func establish(over driver: ConnectivityDriver, options: Options) async throws(SessionError) -> SecureChannels {
        let dtls: DTLSAssociation
        do {
            var configuration = DTLSAssociation.Configuration(
                role: options.role, certificate: options.certificate, expectedPeerFingerprint: options.expectedPeerFingerprint)
            configuration.mtu = 1200
            configuration.initialRetransmissionTimeout = Options.handshakeRetransmissionTimeout(pathRoundTrip: options.pathRoundTrip)
            dtls = try DTLSAssociation(configuration: configuration)
        } catch {
            throw .secureChannel("cannot start DTLS: \(error.reason)")
        }
        let channels = SecureChannels(driver: driver, options: options, dtls: dtls)
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                channels.loop.execute {
                    channels.readyWaiters.append(continuation)
                    driver.setApplicationHandler(
                        bytes: { [channels] datagram in channels.datagramArrived(datagram) },
                        readComplete: { [channels] in channels.pump() })
                    driver.setPathLostHandler { [channels] reason in
                        channels.finish(.connectionLost(reason))
                    }
                    // RFC 9000 §9.4, RFC 9260 §6.4: what was in flight on the
                    // old pair goes out again at once on the new one, not
                    // after SCTP's backed-off timer (SCTPAssociation.pathChanged).
                    driver.setPathChangedHandler { [channels] _, sameNetworkPath in
                        channels.pathChanged(sameNetworkPath: sameNetworkPath)
                    }
                    // An ICE restart's own deadline, not the silence limit,
                    // decides whether the session survives it.
                    driver.setRestartHandler { [channels] underway in
                        channels.watch.restart(underway: underway, now: channels.now())
                        channels.rearm()
                    }
                    // A strong reference, as the driver's handlers above
                    // hold: no per-record cost (a weak one cost an atomic
                    // load and a retain per record) and nothing to prove
                    // about lifetimes. The cycle it makes (channels → dtls →
                    // this closure → channels) is cut in `finish`, which
                    // every end of the session goes through.
                    channels.dtls.applicationDataHandler = { [channels] record in channels.recordArrived(record) }
                    channels.dtls.start(now: channels.now())
                    channels.pump()
                }
            }
        } catch let error as SessionError {
            await channels.close()
            throw error
        } catch {
            await channels.close()
            throw .secureChannel("\(error)")
        }
        return channels
    }

    // MARK: - Async API

    /// Opens a channel and waits for the peer's acknowledgement.
    public func open(label: String, options channelOptions: DataChannelOptions = DataChannelOptions()) async throws(SessionError) -> UInt16 {
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt16, Error>) in
                loop.execute {
                    // The waiter is registered in the same turn of the loop as the
                    // OPEN is queued, so a fast acknowledgement cannot be missed.
                    guard self.endpoint != nil, self.ended == nil else {
                        continuation.resume(throwing: self.ended ?? SessionError.secureChannel("the data channels are not up"))
                        return
                    }
                    do {
                        let now = self.now()
                        guard let stream = try self.endpoint?.open(label: label, options: channelOptions, now: now) else { return }
                        self.openWaiters[stream] = (continuation, now + self.options.limits.channelOpen)
                    } catch {
                        continuation.resume(throwing: SessionError.secureChannel("cannot open a channel: \(error)"))
                        return
                    }
                    self.pump()
                }
            }
        } catch {
            throw Self.sessionError(error)
        }
    }

    /// Queues a message; waits first while the channel has more than the
    /// high-water mark queued (back-pressure towards the caller).
    public func send(_ payload: [UInt8], binary: Bool = true, on stream: UInt16) async throws(SessionError) {
        try await send(contentsOf: [payload], binary: binary, on: stream)
    }

    /// Queues messages in order in one trip to the loop, then waits while
    /// the channel has more than the high-water mark queued. A caller that
    /// sends one message per trip gets one per turn of the loop, which a
    /// busy data path makes long: at 1 Gbit/s one 256 KiB message per trip
    /// left the send queue empty half of the time (docs/architecture.md).
    /// A message the peer cannot take ends the batch with an error; the
    /// ones before it stay queued.
    public func send(contentsOf payloads: [[UInt8]], binary: Bool = true, on stream: UInt16) async throws(SessionError) {
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                loop.execute {
                    guard self.endpoint != nil else {
                        continuation.resume(throwing: self.ended ?? SessionError.secureChannel("the data channels are not up"))
                        return
                    }
                    for payload in payloads {
                        guard payload.count <= self.options.peerMaximumMessageSize else {
                            continuation.resume(throwing: SessionError.secureChannel(
                                "a message of \(payload.count) bytes is larger than the peer accepts (\(self.options.peerMaximumMessageSize))"))
                            self.pump()
                            return
                        }
                        do {
                            try self.endpoint?.send(payload, binary: binary, on: stream, now: self.now())
                        } catch {
                            continuation.resume(throwing: SessionError.secureChannel("cannot send on channel \(stream): \(error)"))
                            self.pump()
                            return
                        }
                    }
                    if (self.endpoint?.bufferedAmount(stream) ?? 0) > self.options.sendHighWater {
                        self.sendWaiters.append((stream, continuation))
                    } else {
                        continuation.resume()
                    }
                    self.pump()
                }
            }
        } catch {
            throw Self.sessionError(error)
        }
    }

    /// The next message from the peer on any channel; nil once the
    /// association has ended and every message was read.
    public func receive() async throws(SessionError) -> DataChannelMessage? {
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<DataChannelMessage?, Error>) in
                loop.execute {
                    if let message = self.endpoint?.pollMessage() {
                        continuation.resume(returning: message)
                        self.pump()  // the window opened: a SACK may be due
                    } else if self.ended != nil {
                        continuation.resume(returning: nil)
                    } else {
                        self.messageWaiters.append(continuation)
                    }
                }
            }
        } catch {
            throw Self.sessionError(error)
        }
    }

    /// The messages from the peer that are ready, at most `limit` and at
    /// least one (waiting for it); nil once the association has ended and
    /// every message was read. One trip to the loop for a burst of them:
    /// a reader taking one message per trip gets one per turn of the loop,
    /// which a busy data path makes long. Messages taken here no longer
    /// count against the receive window, so `limit` bounds what the caller
    /// may hold beyond it.
    public func receive(upTo limit: Int) async throws(SessionError) -> [DataChannelMessage]? {
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[DataChannelMessage]?, Error>) in
                loop.execute {
                    var batch: [DataChannelMessage] = []
                    while batch.count < max(1, limit), let message = self.endpoint?.pollMessage() { batch.append(message) }
                    if !batch.isEmpty {
                        continuation.resume(returning: batch)
                        self.pump()  // the window opened: a SACK may be due
                    } else if self.ended != nil {
                        continuation.resume(returning: nil)
                    } else {
                        self.batchWaiters.append((max(1, limit), continuation))
                    }
                }
            }
        } catch {
            throw Self.sessionError(error)
        }
    }

    /// Closes one channel (both directions, RFC 8831 §6.7).
    public func close(channel stream: UInt16) {
        loop.execute {
            self.endpoint?.close(stream)
            self.pump()
        }
    }

    /// The SCTP association's counters (packets, retransmissions, timeouts).
    public func statistics() async -> SCTPAssociation<Congestion>.Statistics? {
        try? await loop.submit { self.endpoint?.statistics }.get() ?? nil
    }

    /// ECN on this session: whether the peer agreed, and the datagrams
    /// that arrived from it ECN-capable and marked CE (the driver's counts).
    public func ecnStatus() async -> (negotiated: Bool, ecnCapableDatagrams: Int, markedDatagrams: Int) {
        (try? await loop.submit {
            (self.endpoint?.association.ecnNegotiated ?? false, self.driver.ecnCapableDatagrams, self.driver.markedDatagrams)
        }.get()) ?? (false, 0, 0)
    }

    /// The largest datagram sent now (1200 until a path MTU probe was answered).
    public func datagramSize() async -> Int {
        (try? await loop.submit { self.dtls.pathMTU }.get()) ?? 0
    }

    /// DTLS's record counters and whether application data is protected by
    /// TernDTLS's own record layer (true once handed over from OpenSSL's).
    public func recordLayer() async -> (own: Bool, counters: DTLSCounters) {
        (try? await loop.submit { (self.dtls.ownsRecordLayer, self.dtls.counters) }.get()) ?? (false, DTLSCounters())
    }

    /// Why the association ended, once it has (nil while it runs).
    public func endReason() async -> SessionError? {
        (try? await loop.submit { self.ended }.get()) ?? nil
    }

    /// Bytes queued on a channel and not yet sent.
    public func bufferedAmount(_ stream: UInt16) async -> Int {
        (try? await loop.submit { self.endpoint?.bufferedAmount(stream) ?? 0 }.get()) ?? 0
    }

    /// Ends the association: SCTP shutdown is not waited for; DTLS sends
    /// close_notify; the driver is left to the caller.
    public func close() async {
        let done = loop.makePromise(of: Void.self)
        loop.execute {
            self.endpoint?.abort(reason: "closed")
            self.pump()
            self.dtls.close()
            self.flushDTLS()
            self.finish(.secureChannel("the data channels were closed"))
            done.succeed()
        }
        try? await done.futureResult.get()
    }

    // MARK: - Pumping (on `loop`)

    /// One datagram of a batch: decrypted and fed to SCTP at once; what
    /// SCTP then wants to send goes out when the batch ends (`pump`), so a
    /// burst of 64 reads costs one round of polling, timers and flushing.
    private func datagramArrived(_ datagram: UnsafeRawBufferPointer) {
        // A clock reading per datagram (tens of nanoseconds): SCTP measures
        // round trips and delivery rates with it. One reading per pump was
        // stale for the datagrams of a batch's later reads, which arrive
        // while the loop works through the earlier ones (up to 12 ms on a
        // loaded machine at 1 Gbit/s: a minimum round trip of 13 ms on a
        // 20 ms path, docs/architecture.md).
        let now = self.now()
        datagramTime = now
        watch.heard(now: now)
        // The datagram's ECN mark goes with each SCTP packet in it.
        datagramMarked = driver.datagramCongestionExperienced
        dtls.handleDatagram(bytes: datagram, now: now)
        while let event = dtls.pollEvent() { handleDTLS(event, now: now) }
        datagramMarked = false
        // A batch can hold a whole window (GRO reads of up to 2 MiB): answer
        // within it, or the sender idles while this side works through the
        // batch, and this side idles while the sender refills the window.
        // A gap is reported at once (it drives the sender's fast retransmit).
        datagramsSincePump += 1
        if datagramsSincePump >= Self.datagramsPerPump || endpoint?.gapReportDue == true { pump() }
    }

    /// Datagrams handled before a pump (SACKs, window updates) within one
    /// read batch: 32 rather than 16, for less CPU and a faster transfer
    /// (docs/architecture.md, "Measurements behind constants").
    static let datagramsPerPump = 32
    /// The datagram being decrypted arrived marked CE (ECN).
    private var datagramMarked = false
    /// The driver marks datagrams ECT(0): the association agreed ECN.
    private var ecnMarking = false
    private var datagramsSincePump = 0
    /// The time the datagram being handled was read, which the records
    /// decrypted from it carry into SCTP; cleared by `pump`.
    private var datagramTime: Duration?

    private func pump() {
        guard !pumping else { return }
        datagramsSincePump = 0
        datagramTime = nil
        pumping = true
        defer { pumping = false }
        let now = self.now()
        var moved = true
        while moved {
            moved = false
            while let event = dtls.pollEvent() {
                moved = true
                handleDTLS(event, now: now)
            }
            if endpoint != nil {
                followPathMTU()
                while let packet = endpoint?.pollTransmit(now: now) ?? nil {
                    moved = true
                    writePacket(packet)
                }
                while let event = endpoint?.pollEvent() ?? nil {
                    moved = true
                    handleEndpoint(event)
                }
                while !messageWaiters.isEmpty, let message = endpoint?.pollMessage() ?? nil {
                    moved = true
                    messageWaiters.removeFirst().resume(returning: message)
                }
                while !batchWaiters.isEmpty, let message = endpoint?.pollMessage() ?? nil {
                    moved = true
                    let waiter = batchWaiters.removeFirst()
                    var batch = [message]
                    while batch.count < waiter.limit, let next = endpoint?.pollMessage() ?? nil { batch.append(next) }
                    waiter.continuation.resume(returning: batch)
                }
                resumeSenders()
            }
            if flushDTLS() { moved = true }
        }
        rearm()
    }

    /// ICE moved the session's datagrams to another pair (the driver has
    /// switched already): SCTP resends what it had in flight at once.
    private func pathChanged(sameNetworkPath: Bool) {
        guard ended == nil, endpoint != nil else { return }
        endpoint?.pathChanged(sameNetworkPath: sameNetworkPath, now: now())
        pump()
    }

    /// DTLS records grow (or shrink) with the packets SCTP builds, once a
    /// probe changed its path MTU.
    private func followPathMTU() {
        guard let packetMTU = endpoint?.pathMTU, let payload = dtls.maximumPayload, packetMTU != payload else { return }
        do {
            try dtls.setPathMTU(dtls.pathMTU + packetMTU - payload)
        } catch {
            finish(.secureChannel("cannot follow the path MTU: \(error)"))
        }
    }

    /// Moves DTLS datagrams to the driver; true if there were any.
    @discardableResult
    private func flushDTLS() -> Bool {
        var any = false
        dtls.drainTransmit { datagrams, lengths in
            any = true
            // One buffer for the batch; each datagram goes out as a slice of it.
            var buffer = driver.allocateBuffer(capacity: datagrams.count)
            buffer.writeBytes(datagrams)
            driver.sendApplication(buffer, lengths: lengths)
        }
        if any { driver.flushApplication() }
        return any
    }

    private func writePacket(_ packet: SCTPAssociation<Congestion>.Packet) {
        do {
            try SCTPWire.encode(
                verificationTag: packet.verificationTag, chunks: packet.chunks, zeroChecksum: packet.zeroChecksum, into: &packetBuffer)
        } catch {
            packetFailed(error)
            return
        }
        let dtls = self.dtls, oversized = packet.exceedsPathMTU
        var failure: DTLSError?
        packetBuffer.withUnsafeBytes { bytes in
            do throws(DTLSError) { try dtls.write(bytes: bytes, oversized: oversized) } catch { failure = error }
        }
        if let failure { packetFailed(failure) }
    }

    /// The association builds packets within the DTLS payload limit; a
    /// packet that does not fit would be retransmitted forever.
    private func packetFailed(_ error: some Error) {
        malformedPackets += 1
        finish(.secureChannel("an SCTP packet could not be sent: \(error)"))
    }

    private func handleDTLS(_ event: DTLSEvent, now: Duration) {
        switch event {
        case .connected:
            let payload = dtls.maximumPayload ?? 1100
            var configuration = SCTPAssociation<Congestion>.Configuration(
                mtu: payload, receiveWindow: options.receiveWindow, maximumMessageSize: options.maximumMessageSize)
            // The SCTP packet in a datagram of the largest size: what a record adds comes off.
            configuration.maximumMTU = options.maximumDatagramSize.map { $0 - (dtls.pathMTU - payload) }
            configuration.bufferedAmountLowThreshold = options.sendHighWater / 2
            configuration.congestionControl = options.congestionControl
            configuration.explicitCongestionNotification = options.explicitCongestionNotification
            // RFC 9260 §8.3 leaves HB.interval to configuration: a HEARTBEAT
            // after a second without sending keeps a live but idle peer
            // answering, so that silence means it is gone (`PeerWatch`).
            configuration.heartbeatInterval = .seconds(1)
            watch.enter(.association, now: now)
            var endpoint = Endpoint(association: SCTPAssociation(configuration: configuration), isDTLSClient: options.role == .client)
            // Both sides INIT (RFC 8841 lets either); the cookie exchange sorts out a collision.
            endpoint.connect(now: now)
            self.endpoint = endpoint
        case .data(let record):
            recordArrived(record[...], now: now)
        case .closed:
            finish(.secureChannel("the peer closed the secure channel"))
        case .failed(let error):
            finish(.secureChannel("DTLS failed: \(error.reason)"))
        }
    }

    /// One DTLS record of application data: one SCTP packet (RFC 8261 §3).
    private func recordArrived(_ record: ArraySlice<UInt8>, now: Duration? = nil) {
        guard endpoint != nil, let packet = SCTPWire.decode(record) else {
            malformedPackets += 1
            return
        }
        endpoint?.handleChunks(
            packet.chunks, verificationTag: packet.verificationTag, now: now ?? datagramTime ?? self.now(), congestionExperienced: datagramMarked)
    }

    private func handleEndpoint(_ event: DataChannelEvent) {
        switch event {
        case .ready:
            watch.enter(.up, now: now())
            // RFC 9260 Appendix A: ECT(0) only towards a peer that agreed.
            if endpoint?.association.ecnNegotiated == true, !ecnMarking {
                ecnMarking = true
                driver.setECNMarking(true)
            }
            for waiter in readyWaiters { waiter.resume() }
            readyWaiters.removeAll()
        case .opened(let stream, _, _, let byPeer):
            openStreams.insert(stream)
            if !byPeer, let waiter = openWaiters.removeValue(forKey: stream) { waiter.continuation.resume(returning: stream) }
            eventsInput.yield(event)
        case .bufferedAmountLow:
            resumeSenders()
        case .closed(let stream):
            openStreams.remove(stream)
            eventsInput.yield(event)
        case .ended(let reason):
            eventsInput.yield(event)
            finish(.secureChannel(reason.map { "the data channels ended: \($0)" } ?? "the peer shut the data channels down"))
        }
    }

    private func resumeSenders() {
        guard !sendWaiters.isEmpty, endpoint != nil else { return }
        var still: [(stream: UInt16, continuation: CheckedContinuation<Void, Error>)] = []
        for waiter in sendWaiters {
            if (endpoint?.bufferedAmount(waiter.stream) ?? 0) <= options.sendHighWater / 2 {
                waiter.continuation.resume()
            } else {
                still.append(waiter)
            }
        }
        sendWaiters = still
    }

    private func finish(_ error: SessionError) {
        guard ended == nil else { return }
        ended = error
        timer.cancel()
        // The records' closure holds `self` (see `establish`). DTLS may
        // still answer (close_notify): without the closure its records wait
        // as events, which nobody needs any more.
        dtls.applicationDataHandler = nil
        for waiter in readyWaiters { waiter.resume(throwing: error) }
        readyWaiters.removeAll()
        for waiter in openWaiters.values { waiter.continuation.resume(throwing: error) }
        openWaiters.removeAll()
        for waiter in sendWaiters { waiter.continuation.resume(throwing: error) }
        sendWaiters.removeAll()
        // Readers get what is left (a last message can arrive in the same
        // batch as the ABORT that ended the association), then nil.
        while !messageWaiters.isEmpty, let message = endpoint?.pollMessage() {
            messageWaiters.removeFirst().resume(returning: message)
        }
        for waiter in messageWaiters {
            waiter.resume(returning: nil)
        }
        messageWaiters.removeAll()
        for waiter in batchWaiters {
            var batch: [DataChannelMessage] = []
            while batch.count < waiter.limit, let message = endpoint?.pollMessage() { batch.append(message) }
            waiter.continuation.resume(returning: batch.isEmpty ? nil : batch)
        }
        batchWaiters.removeAll()
        eventsInput.finish()
    }

    private func rearm() {
        guard ended == nil else {
            timer.cancel()
            return
        }
        var deadline = dtls.nextDeadline
        func consider(_ next: Duration?) {
            guard let next else { return }
            deadline = deadline.map { min($0, next) } ?? next
        }
        consider(endpoint?.nextDeadline)
        consider(watch.nextDeadline(busy: isBusy))
        consider(openWaiters.values.lazy.map(\.deadline).min())
        timer.arm(at: deadline) { [self] in
            let now = self.now()
            dtls.advanceTime(now: now)
            endpoint?.advanceTime(now: now)
            pump()
            checkOnPeer(now: now)
        }
    }

    /// How often a silence left to ICE's recovery is looked at again.
    static let recoveryRecheck: Duration = .milliseconds(250)

    /// A channel is open or being opened, or data waits for acknowledgement.
    private var isBusy: Bool {
        !openStreams.isEmpty || !openWaiters.isEmpty || endpoint?.association.retransmissions.isEmpty == false
    }

    /// Ends the association if the peer let a stage run out or went silent
    /// (`PeerWatch`), and fails channel opens that were never acknowledged.
    private func checkOnPeer(now: Duration) {
        guard ended == nil else { return }
        if let reason = watch.verdict(now: now, busy: isBusy) {
            if watch.isSilenceVerdict(now: now, busy: isBusy), driver.recoversPath() {
                // ICE has not heard the peer either and is failing over or
                // will restart: its outcome decides (a restart that finds
                // nothing ends the session with its own sentence).
                watch.deferSilence(until: now + Self.recoveryRecheck)
            } else {
                finish(.connectionLost(reason))
                return
            }
        }
        for (stream, waiter) in openWaiters where now >= waiter.deadline {
            openWaiters[stream] = nil
            waiter.continuation.resume(throwing: SessionError.connectionLost(
                "the other side did not accept the data channel within \(PeerWatch.words(options.limits.channelOpen))"))
        }
        rearm()
    }

    private func now() -> Duration {
        .nanoseconds(Int64(clamping: NIODeadline.now().uptimeNanoseconds &- startedAt.uptimeNanoseconds))
    }

    private static func sessionError(_ error: Error) -> SessionError {
        if let error = error as? SessionError { return error }
        return .secureChannel("\(error)")
    }
}
