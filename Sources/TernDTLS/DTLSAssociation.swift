import TernCollections

/// One DTLS 1.2 association (RFC 6347) between this side and one peer, as a
/// sans-IO core over OpenSSL: no socket and no thread inside. OpenSSL reads
/// and writes through a datagram BIO whose ends are this object's methods.
///
/// Time is a `Duration` since an origin the driver picks (the convention of
/// TernSTUN and TernTURN). The driver owns the UDP socket and pumps the
/// association:
///
///     let certificate = try DTLSCertificate.generate()     // fingerprint goes in our SDP
///     let dtls = try DTLSAssociation(configuration: .init(
///         role: role, certificate: certificate, expectedPeerFingerprint: peerFromSDP))
///     dtls.start(now: now)
///     loop {
///         while let datagram = dtls.pollTransmit() { socket.send(datagram) }
///         while let event = dtls.pollEvent() { handle(event) }
///         arm(timer: dtls.nextDeadline)
///         // on a DTLS datagram (first byte 20...63, RFC 7983): dtls.handleDatagram(bytes, now: now)
///         // on the timer: dtls.advanceTime(now: now)
///         // to send: try dtls.write(record)       // at most dtls.maximumPayload bytes
///         // to end: dtls.close()
///     }
///
/// The association is the coordinator of three parts, each in its own file:
/// - `DTLSHandshakeDriver`: OpenSSL's SSL object, the handshake, its
///   retransmission timer and the peer's certificate check, and application
///   data until the hand-over;
/// - `DTLSRecordLayer`: who protects application data, and the hand-over
///   from OpenSSL's record layer to this module's own (keys, nonce policy,
///   replay window, seal and open) as a state machine;
/// - `DTLSDatagramPacker`: the records written, cut into datagrams of at
///   most the MTU for the driver.
///
/// **Timers.** OpenSSL's retransmission timer runs on the real clock (see
/// `DTLSHandshakeDriver`): `nextDeadline` is `now` plus the time OpenSSL
/// says is left, and `advanceTime` asks OpenSSL to retransmit if its timer
/// has run out; if the driver's clock runs ahead of the real one, nothing
/// happens and a new deadline is given. With a driver whose clock is the
/// monotonic clock this is exact. The overall `handshakeTimeout` runs purely
/// on the driver's clock.
///
/// **Hostile input.** A datagram is checked before OpenSSL sees it: record
/// framing, and the shapes OpenSSL 3.0 would answer with a fatal alert
/// although RFC 6347 §4.1.2.7 says to discard them (a protected record
/// shorter than its cipher's nonce and tag, an unknown record type, a
/// broken plaintext record; see `DTLSRecordFraming.validPrefix`). What fails
/// is dropped and counted. Records that pass but do not authenticate, replay
/// an old sequence number or belong to another epoch are dropped silently by
/// OpenSSL, and dropped and counted by the own record layer (RFC 6347
/// §4.1.2.7). A well-formed handshake message that is wrong before the keys
/// exist, or an authenticated record that breaks the protocol, ends the
/// association with `.failed`, as DTLS 1.2 does.
///
/// **Own record layer.** Once the handshake is over, application data is
/// protected and checked by this module rather than by OpenSSL's record
/// layer, whose fixed cost per record around the cipher (BIO copies,
/// parameter lookups, error-queue work) was a large share of the data path
/// (docs/architecture.md, "DTLS"). The keys are the handshake's (RFC 5246
/// §6.3 key block, `DTLSRecordKeys`), the records are standard DTLS 1.2
/// AES-GCM records (RFC 5288, RFC 6347 §4.1), so the peer's stack cannot
/// tell. Handshake records and alerts still go to OpenSSL. Until the
/// hand-over OpenSSL is given one record per call, so every application
/// data record it delivers has a known sequence number; `DTLSRecordLayer`
/// says what the hand-over keeps. ChaCha20-Poly1305 stays with OpenSSL.
///
/// Not `Sendable`: it belongs to the one event loop that drives the session.
public final class DTLSAssociation {
    public struct Configuration: Sendable {
        /// Which end of the handshake we are (RFC 8842 §5, see `DTLSRole`).
        public var role: DTLSRole
        /// Our certificate; its fingerprint is in our session description.
        public var certificate: DTLSCertificate
        /// The fingerprint from the peer's (sealed) session description.
        public var expectedPeerFingerprint: DTLSFingerprint
        /// Largest UDP payload to send. 1200 bytes fits IPv6's 1280-byte
        /// minimum MTU with room for a TURN ChannelData header, which is what
        /// WebRTC stacks use.
        public var mtu = 1200
        /// RFC 6347 §4.2.4.1: "an initial timer value of 1 second".
        public var initialRetransmissionTimeout: Duration = .seconds(1)
        /// RFC 6347 §4.2.4.1: the timer doubles up to at least 60 seconds.
        public var maximumRetransmissionTimeout: Duration = .seconds(60)
        /// The handshake fails if it has not finished this long after `start`.
        /// ICE has already shown the path works, so this need not be long.
        public var handshakeTimeout: Duration = .seconds(30)
        /// Protect application data with this module's own AES-GCM record
        /// layer once the handshake is over (see "Own record layer" below);
        /// false leaves every record to OpenSSL's. Records are the standard
        /// ones either way: tests run one side of each kind against the other.
        public var protectsApplicationData = true
        /// SRTP protection profiles offered (client) or accepted (server) in
        /// the use_srtp extension, OpenSSL's names in preference order (see
        /// `srtpProtectionProfiles`); empty leaves the extension out.
        public var srtpProtectionProfiles = DTLSAssociation.srtpProtectionProfiles

        public init(role: DTLSRole, certificate: DTLSCertificate, expectedPeerFingerprint: DTLSFingerprint) {
            self.role = role
            self.certificate = certificate
            self.expectedPeerFingerprint = expectedPeerFingerprint
        }

        /// OpenSSL refuses a link MTU under 256 bytes (dtls1_link_min_mtu).
        public static let mtuRange = 256...DTLSRecordFraming.maximumDatagramLength

        func validate() throws(DTLSError) {
            guard Self.mtuRange.contains(mtu) else {
                throw .invalidConfiguration("MTU \(mtu) is outside \(Self.mtuRange.lowerBound)...\(Self.mtuRange.upperBound)")
            }
            guard initialRetransmissionTimeout >= .milliseconds(1),
                  initialRetransmissionTimeout <= maximumRetransmissionTimeout,
                  maximumRetransmissionTimeout <= .seconds(3600)
            else {
                throw .invalidConfiguration("retransmission timeouts must satisfy 1 ms <= initial <= maximum <= 1 hour")
            }
            guard handshakeTimeout > .zero else {
                throw .invalidConfiguration("the handshake timeout must be positive")
            }
            // OpenSSL splits the list at ':' and checks each name itself.
            guard srtpProtectionProfiles.allSatisfy({ !$0.isEmpty && !$0.contains(":") }) else {
                throw .invalidConfiguration("an SRTP protection profile name is empty or contains ':'")
            }
        }
    }

    /// The cipher suites offered and accepted: ECDHE with ECDSA and an AEAD,
    /// the ones browsers offer for DTLS 1.2. RFC 8827 §6.5 makes the first
    /// mandatory; CBC suites (Lucky 13) and RSA key transport are left out.
    public static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ]

    /// Key exchange groups, in preference order; both are what browsers offer.
    static let groups = "X25519:P-256"

    /// SRTP protection profiles for the use_srtp extension (RFC 5764
    /// §4.1.1), in preference order: SRTP_AEAD_AES_128_GCM (RFC 7714 §14.2,
    /// 0x0007) and SRTP_AES128_CM_HMAC_SHA1_80 (RFC 5764 §4.1.2, 0x0001),
    /// both offered by browsers and aiortc too. tern sends no media and never uses
    /// SRTP keys, but several stacks (aiortc, pion before pion/dtls#356) fail
    /// a handshake that negotiates no profile, so the client offers these
    /// and the server selects one when the client offers any (a client that
    /// offers none is still accepted). libdatachannel does the same.
    public static let srtpProtectionProfiles = ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"]

    public let configuration: Configuration
    /// The largest datagram sent: `configuration.mtu` until `setPathMTU`.
    public private(set) var pathMTU: Int
    public private(set) var counters = DTLSCounters()

    // MARK: State

    enum State {
        /// Before `start`.
        case idle
        /// Handshake flights in progress; fails at `deadline` (driver's clock).
        case handshaking(deadline: Duration)
        case connected(DTLSHandshakeDriver.Established)
        /// close_notify sent or received. Terminal.
        case closed
        /// Terminal.
        case failed(DTLSError)
    }

    private var state = State.idle
    /// OpenSSL: the handshake, and application data until the hand-over.
    private let openSSL: DTLSHandshakeDriver
    /// Who protects application data; the hand-over's state machine.
    private var recordLayer: DTLSRecordLayer
    /// Records written (to `openSSL.pipe.outbound`), cut into datagrams.
    private var packer = DTLSDatagramPacker()
    private var eventQueue = FIFO<DTLSEvent>()
    /// SSL_read's and the own layer's destination: one record's plaintext is
    /// at most 2^14 bytes (RFC 6347 §4.1 / RFC 5246 §6.2.1).
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 14)
    /// When set, a record of application data decrypted while no event is
    /// waiting goes straight to this handler, as bytes of the read buffer
    /// valid only during the call, instead of becoming a `.data` event (the
    /// data path: no array per record). Events stay in order: with an
    /// event waiting, records queue behind it as `.data`.
    public var applicationDataHandler: ((ArraySlice<UInt8>) -> Void)?

    /// When OpenSSL's retransmission timer runs out, on the driver's clock.
    private var timerDeadline: Duration?
    /// The sequence number of the record being handed to OpenSSL, while it
    /// is application data of epoch 1 not yet delivered.
    private var inboundApplicationSequence: UInt64?

    /// The OpenSSL connection (internal: the record keys are read from it).
    var ssl: OpaquePointer { openSSL.ssl }
    private var pipe: DatagramPipe { openSSL.pipe }

    public init(configuration: Configuration) throws(DTLSError) {
        try configuration.validate()
        self.configuration = configuration
        pathMTU = configuration.mtu
        openSSL = try DTLSHandshakeDriver(configuration: configuration)
        recordLayer = DTLSRecordLayer(enabled: configuration.protectsApplicationData)
    }

    // MARK: Observers

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    /// True once the association closed or failed: nothing more will happen.
    public var isFinished: Bool {
        switch state {
        case .closed, .failed: return true
        case .idle, .handshaking, .connected: return false
        }
    }

    /// The error that ended the association, if one did.
    public var failure: DTLSError? {
        if case .failed(let error) = state { return error }
        return nil
    }

    /// The peer's certificate fingerprint, once connected.
    public var peerFingerprint: DTLSFingerprint? {
        if case .connected(let established) = state { return established.peerFingerprint }
        return nil
    }

    /// OpenSSL's name of the negotiated cipher suite, once connected.
    public var cipherSuite: String? {
        if case .connected(let established) = state { return established.cipherSuite }
        return nil
    }

    /// OpenSSL's name of the SRTP protection profile negotiated in the
    /// use_srtp extension (RFC 5764 §4.1.1), once connected; nil when the
    /// peer offered or selected none.
    public var srtpProtectionProfile: String? {
        if case .connected(let established) = state { return established.srtpProtectionProfile }
        return nil
    }

    /// True once application data is protected by this module's own record
    /// layer rather than OpenSSL's.
    public var ownsRecordLayer: Bool { recordLayer.own != nil }

    /// The most bytes one `write` takes: one record's plaintext inside the
    /// MTU, after the record header and the cipher's nonce and tag
    /// (DTLS_get_data_mtu). Nil until connected.
    public var maximumPayload: Int? {
        if case .connected(let established) = state { return established.maximumPayload }
        return nil
    }

    /// When `advanceTime` must be called next; nil when nothing is scheduled
    /// (always nil once connected: DTLS 1.2 has no timers after the handshake).
    public var nextDeadline: Duration? {
        guard case .handshaking(let deadline) = state else { return nil }
        guard let timerDeadline else { return deadline }
        return min(timerDeadline, deadline)
    }

    // MARK: Driver interface

    /// Starts the handshake: a client sends its ClientHello (flight 1,
    /// RFC 6347 §4.2.4), a server waits for one. Does nothing after the first
    /// call. A server that receives a datagram before `start` starts then.
    public func start(now: Duration) {
        guard case .idle = state else { return }
        state = .handshaking(deadline: now + configuration.handshakeTimeout)
        if configuration.role == .client { continueHandshake() }
        flushOutbound()
        updateTimer(now: now)
    }

    /// One datagram from the peer. Never traps: anything malformed is
    /// dropped and counted, or ends the association with `.failed`.
    public func handleDatagram(_ datagram: some Collection<UInt8>, now: Duration) {
        guard datagram.count <= DTLSRecordFraming.maximumDatagramLength else {
            // Refused before it is copied anywhere.
            counters.datagramsReceived += 1
            counters.malformedDatagrams += 1
            return
        }
        let handled: Void? = datagram.withContiguousStorageIfAvailable { buffer in
            handleDatagram(bytes: UnsafeRawBufferPointer(buffer), now: now)
        }
        if handled == nil {
            Array(datagram).withUnsafeBytes { handleDatagram(bytes: $0, now: now) }
        }
    }

    /// One datagram from the peer, as raw bytes valid for the call.
    public func handleDatagram(bytes datagram: UnsafeRawBufferPointer, now: Duration) {
        counters.datagramsReceived += 1
        switch state {
        case .idle:
            guard configuration.role == .server else {
                counters.ignoredDatagrams += 1
                return
            }
            start(now: now)
        case .handshaking, .connected:
            break
        case .closed, .failed:
            counters.ignoredDatagrams += 1
            return
        }

        let (length, defect) = DTLSRecordFraming.validPrefix(
            of: datagram, minimumProtectedLength: minimumProtectedLength())
        if defect != nil { counters.malformedDatagrams += 1 }
        guard length > 0 else { return }
        let records = UnsafeRawBufferPointer(rebasing: datagram[..<length])

        if let layer = recordLayer.own {
            handleRecords(records, layer: layer)
            flushOutbound()
            return
        }
        // One record per call, as if each came in a datagram of its own: an
        // SSL_read that yields application data then yields the record just
        // given, whose sequence number is known (see "Replays are refused").
        DTLSRecordFraming.forEachRecord(in: records) { header, record in
            pipe.inbound = record
            switch state {
            case .handshaking:
                continueHandshake()
            case .connected:
                let isApplicationData = header.type == DTLSContentType.applicationData && header.epoch == OwnRecordLayer.epoch
                inboundApplicationSequence = isApplicationData ? header.sequence : nil
                readApplicationData()
                inboundApplicationSequence = nil
            case .idle, .closed, .failed:
                break
            }
            // OpenSSL reads the record at its first read; the pointer must
            // not outlive this call either way.
            pipe.inbound = nil
            switch state {
            case .handshaking, .connected: return true
            case .idle, .closed, .failed: return false
            }
        }
        flushOutbound()
        updateTimer(now: now)
        takeOverRecordsIfReady()
    }

    /// Encrypts `bytes` as one record; the datagram is then in
    /// `pollTransmit()`. At most `maximumPayload` bytes (RFC 6347 §4.1.1: a
    /// record does not span datagrams, and this module does not fragment).
    /// An `oversized` record (a path MTU probe from the layer above, or a
    /// packet cut before the path MTU went down) may be larger than
    /// `maximumPayload`, up to the largest datagram; it goes out alone.
    public func write(_ bytes: some Collection<UInt8>, oversized: Bool = false) throws(DTLSError) {
        let outcome = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(DTLSError) in try write(bytes: UnsafeRawBufferPointer(buffer), oversized: oversized) }
        } ?? Array(bytes).withUnsafeBytes { buffer in
            Result { () throws(DTLSError) in try write(bytes: buffer, oversized: oversized) }
        }
        try outcome.get()
    }

    /// `write(_:oversized:)` for bytes valid during the call: the data
    /// path's form (not generic, so a caller in another module calls it
    /// directly rather than through the unspecialized generic one).
    public func write(bytes: UnsafeRawBufferPointer, oversized: Bool = false) throws(DTLSError) {
        guard case .connected(let established) = state else { throw .notConnected }
        let count = bytes.count
        let limit = oversized ? DTLSRecordFraming.maximumDatagramLength - recordOverhead(established) : established.maximumPayload
        guard count <= limit else {
            throw .payloadTooLarge(size: count, maximum: limit)
        }
        guard count > 0 else { return }
        if oversized { flushOutbound() }
        if let layer = recordLayer.own {
            try seal(type: DTLSContentType.applicationData, bytes, layer: layer)
            flushOutbound(mtu: oversized ? DTLSRecordFraming.maximumDatagramLength : pathMTU)
            return
        }
        do {
            try openSSL.write(bytes)
        } catch {
            fail(error)
            throw error
        }
        flushOutbound(mtu: oversized ? DTLSRecordFraming.maximumDatagramLength : pathMTU)
    }

    /// Datagrams of up to `mtu` bytes from now on (after the layer above
    /// found, by probing, that the path carries them): `maximumPayload`
    /// follows. Only once connected (the handshake keeps the configured MTU).
    public func setPathMTU(_ mtu: Int) throws(DTLSError) {
        guard case .connected(var established) = state else { throw .notConnected }
        guard Configuration.mtuRange.contains(mtu) else {
            throw .invalidConfiguration("MTU \(mtu) is outside \(Configuration.mtuRange.lowerBound)...\(Configuration.mtuRange.upperBound)")
        }
        let overhead = recordOverhead(established)
        guard mtu > overhead else { throw .invalidConfiguration("MTU \(mtu) leaves no room for a record") }
        established.maximumPayload = mtu - overhead
        state = .connected(established)
        pathMTU = mtu
    }

    /// Bytes a record adds to its plaintext under the negotiated suite (what
    /// DTLS_get_data_mtu took off the configured MTU).
    private func recordOverhead(_ established: DTLSHandshakeDriver.Established) -> Int {
        pathMTU - established.maximumPayload
    }

    /// Ends the association. Once connected, sends close_notify (RFC 5246
    /// §7.2.1) without waiting for the peer's. Before that there are no keys
    /// to protect an alert with, so nothing is sent; the peer's own handshake
    /// timer ends its side. No event follows a local close.
    public func close() {
        switch state {
        case .connected:
            sendCloseNotify()
            state = .closed
            flushOutbound()
        case .idle, .handshaking:
            state = .closed
        case .closed, .failed:
            break
        }
        timerDeadline = nil
    }

    /// Runs the timers due at `now`: the handshake deadline, and OpenSSL's
    /// retransmission of the last flight (RFC 6347 §4.2.4).
    public func advanceTime(now: Duration) {
        guard case .handshaking(let deadline) = state else { return }
        guard now < deadline else {
            fail(.handshakeTimedOut)
            return
        }
        switch openSSL.handleTimeout() {
        case .retransmitted: counters.timerRetransmissions += 1
        case .notDue: break
        case .failed(let error): fail(error)
        }
        flushOutbound()
        updateTimer(now: now)
    }

    /// The next datagram to send to the peer, at most `configuration.mtu` bytes.
    public func pollTransmit() -> [UInt8]? {
        guard let datagram = packer.poll(&pipe.outbound) else { return nil }
        counters.datagramsSent += 1
        return datagram
    }

    /// Hands every datagram waiting to be sent to `body` at once: their
    /// bytes back to back and the length of each, in order, valid only
    /// during the call (the data path: the driver copies them into its own
    /// buffer once). Does not call `body` when there is nothing to send.
    public func drainTransmit(_ body: (_ datagrams: UnsafeRawBufferPointer, _ lengths: ArraySlice<Int>) -> Void) {
        counters.datagramsSent += packer.drain(&pipe.outbound, body)
    }

    public func pollEvent() -> DTLSEvent? {
        eventQueue.pop()
    }

    // MARK: Handshake

    private func continueHandshake() {
        switch openSSL.continueHandshake(mtu: configuration.mtu) {
        case .inProgress:
            return
        case .failed(let error):
            fail(error)
        case .finished(let established):
            state = .connected(established)
            timerDeadline = nil
            eventQueue.push(.connected(peerFingerprint: established.peerFingerprint))
            // The datagram that finished the handshake may carry application
            // data behind the Finished message.
            readApplicationData()
        }
    }

    // MARK: Application data through OpenSSL

    /// Reads every record OpenSSL has from the current datagram.
    private func readApplicationData() {
        while case .connected = state {
            let outcome = readBuffer.withUnsafeMutableBytes { openSSL.read(into: $0) }
            switch outcome {
            case .data(let count):
                // One record, one delivery: the sequence number of the record
                // just given, when that was application data.
                recordLayer.noteDelivered(sequence: inboundApplicationSequence)
                inboundApplicationSequence = nil
                deliverRead(count: count)
                // The datagram is read and OpenSSL holds nothing more from
                // it: skip the SSL_read that would only say "want read".
                if openSSL.isDrained { return }
            case .needMore:
                return
            case .peerClosed:
                // RFC 5246 §7.2.1: the peer's close_notify is answered with ours.
                sendCloseNotify()
                state = .closed
                eventQueue.push(.closed)
                return
            case .failed(let error):
                fail(error)
                return
            }
        }
    }

    /// Hands the first `count` bytes of the read buffer to the layer above.
    private func deliverRead(count: Int) {
        if let applicationDataHandler, eventQueue.isEmpty {
            applicationDataHandler(readBuffer[..<count])
        } else {
            eventQueue.push(.data(Array(readBuffer[..<count])))
        }
    }

    // MARK: Own record layer

    /// Asks the record layer to take application data over from OpenSSL
    /// when it is safe to (see `DTLSRecordLayer`): connected, and for a
    /// server once the client has sent application data.
    private func takeOverRecordsIfReady() {
        guard recordLayer.watchesOpenSSL, case .connected = state,
              configuration.role == .client || recordLayer.peerSentApplicationData
        else { return }
        let openSSL = self.openSSL
        recordLayer.takeOver(role: configuration.role) { () throws(DTLSError) in try openSSL.recordKeys() }
    }

    /// The records of one datagram once the layer is ours: application data
    /// of the current epoch is opened here, anything else (alerts, a
    /// repeated handshake flight) goes to OpenSSL.
    private func handleRecords(_ datagram: UnsafeRawBufferPointer, layer: OwnRecordLayer) {
        DTLSRecordFraming.forEachRecord(in: datagram) { header, record in
            if header.type == DTLSContentType.applicationData, header.epoch == OwnRecordLayer.epoch {
                openApplicationData(record, sequence: header.sequence, layer: layer)
            } else {
                pipe.inbound = record
                readApplicationData()
                pipe.inbound = nil
            }
            if case .connected = state { return true }
            return false
        }
    }

    private func openApplicationData(_ record: UnsafeRawBufferPointer, sequence: UInt64, layer: OwnRecordLayer) {
        let opened = readBuffer.withUnsafeMutableBytes { layer.open(record: record, sequence: sequence, into: $0) }
        switch opened {
        case .plaintext(let count):
            if count > 0 { deliverRead(count: count) }
        case .replay, .forged:
            counters.discardedRecords += 1
        }
    }

    /// Seals one record with the next sequence number and nonce into the
    /// outbound stream.
    private func seal(type: UInt8, _ bytes: UnsafeRawBufferPointer, layer: OwnRecordLayer) throws(DTLSError) {
        do {
            try layer.seal(type: type, bytes, appendingTo: &pipe.outbound)
        } catch {
            fail(error)
            throw error
        }
    }

    /// RFC 5246 §7.2.1: close_notify, protected by whichever layer owns the
    /// records (OpenSSL's sequence numbers are behind ours once we own them,
    /// and the peer would drop its alert as a replay).
    private func sendCloseNotify() {
        if let layer = recordLayer.own {
            let alert = [DTLSAlert.warningLevel, DTLSAlert.closeNotify]
            alert.withUnsafeBytes { try? seal(type: DTLSContentType.alert, $0, layer: layer) }
            return
        }
        openSSL.shutdown()
    }

    // MARK: Plumbing

    private func fail(_ error: DTLSError) {
        switch state {
        case .closed, .failed:
            return
        case .idle, .handshaking, .connected:
            break
        }
        state = .failed(error)
        timerDeadline = nil
        eventQueue.push(.failed(error))
        // Alerts OpenSSL wrote about the failure go out with this call's output.
        flushOutbound()
    }

    /// Cuts what was written into datagrams of at most the MTU; before the
    /// hand-over, the record layer notes OpenSSL's epoch-1 records first.
    private func flushOutbound(mtu: Int? = nil) {
        guard pipe.outbound.count > packer.packedBytes else { return }
        if recordLayer.watchesOpenSSL { recordLayer.noteWritten(pipe.outbound, from: packer.packedBytes) }
        counters.oversizedDatagrams += packer.pack(pipe.outbound, mtu: mtu ?? pathMTU)
    }

    /// The least a record of epoch 1 or later holds under the cipher suite
    /// negotiated, or under any suite we offer while none is.
    private func minimumProtectedLength() -> Int {
        if case .connected(let established) = state { return established.minimumProtectedLength }
        return openSSL.minimumProtectedLength()
    }

    /// Converts OpenSSL's real-clock retransmission timer to the driver's clock.
    private func updateTimer(now: Duration) {
        guard case .handshaking = state, let remaining = openSSL.remainingTimer() else {
            timerDeadline = nil
            return
        }
        timerDeadline = now + remaining
    }
}
