import COpenSSL
import TernCrypto
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
/// **Timers.** OpenSSL 3.0 times DTLS retransmissions with the real clock
/// (gettimeofday) and offers no way to feed it another. So the retransmission
/// timer is OpenSSL's: `nextDeadline` is `now` plus the time OpenSSL says is
/// left (DTLSv1_get_timeout), and `advanceTime` asks OpenSSL to retransmit if
/// its timer has run out (DTLSv1_handle_timeout); if the driver's clock runs
/// ahead of the real one, nothing happens and a new deadline is given. With a
/// driver whose clock is the monotonic clock this is exact. The timer
/// *values* are ours (a timer callback: RFC 6347 §4.2.4.1 doubling from
/// `initialRetransmissionTimeout` up to `maximumRetransmissionTimeout`), and
/// the overall `handshakeTimeout` runs purely on the driver's clock.
///
/// **The peer's identity.** OpenSSL's chain verification is replaced by a
/// callback (SSL_CTX_set_cert_verify_callback) that accepts the peer's
/// certificate only if its SHA-256 fingerprint equals the expected one,
/// compared in constant time. Checking inside the handshake rather than after
/// it means a wrong certificate stops the handshake before this side sends
/// its Finished: no keys are confirmed, no application data can be sent or
/// accepted, and the peer is told with a bad_certificate alert. After the
/// handshake the fingerprint is checked once more before `.connected` is
/// reported, so the guarantee does not rest on OpenSSL calling back (session
/// resumption, which skips the callback, is off anyway).
///
/// **Hostile input.** A datagram is checked before OpenSSL sees it: record
/// framing, and the shapes OpenSSL 3.0 would answer with a fatal alert
/// although RFC 6347 §4.1.2.7 says to discard them (a protected record
/// shorter than its cipher's nonce and tag, an unknown record type, a
/// broken plaintext record; see `DTLSRecordFraming.validPrefix`). What fails
/// is dropped and counted. Records that pass but do not authenticate, replay
/// an old sequence number or belong to another epoch are dropped silently by
/// OpenSSL. A well-formed handshake message that is wrong before the keys
/// exist, or an authenticated record that breaks the protocol, ends the
/// association with `.failed`, as DTLS 1.2 does.
///
/// **Own record layer.** Once the handshake is over, application data is
/// protected and checked here rather than by OpenSSL's record layer, which
/// cost about a third of the data path's CPU (a fixed cost per record on
/// top of the cipher: BIO copies, parameter lookups, error-queue work). The
/// keys are the handshake's (RFC 5246 §6.3 key block, `DTLSRecordKeys`), the
/// records are standard DTLS 1.2 AES-GCM records (RFC 5288, RFC 6347 §4.1),
/// so the peer's stack cannot tell. Handshake records and alerts still go
/// to OpenSSL. The hand-over keeps the rules GCM and DTLS depend on:
/// - *Nonces never repeat under a key.* OpenSSL draws its explicit nonces
///   from a counter it starts at a random value; ours start half the
///   counter's range (2^63) away from the last one OpenSSL wrote, so the
///   few records OpenSSL may still write (a repeated final flight, an alert)
///   can never meet ours.
/// - *Sequence numbers go on* from OpenSSL's last, and stop at 2^48.
/// - *Replays are refused* (RFC 6347 §4.1.2.6): a 64-record window that
///   starts with exactly the application data records OpenSSL delivered
///   counted as seen, and moves only for records that authenticated. Until
///   the hand-over OpenSSL is given one record per call, so each record it
///   delivers is known; should it deliver one that is not (records it held
///   back while the handshake finished, when application data overtook the
///   Finished), the records stay with OpenSSL.
/// - *OpenSSL is not needed any more* when the hand-over happens: the client
///   hands over as soon as it is connected (nothing it could be asked to
///   resend protects application data); the server only once application
///   data from the client shows that the client has the server's final
///   flight, which OpenSSL must be able to resend until then.
/// Records that do not authenticate or are replays are dropped and counted
/// (RFC 6347 §4.1.2.7). ChaCha20-Poly1305 stays with OpenSSL.
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
        case connected(Established)
        /// close_notify sent or received. Terminal.
        case closed
        /// Terminal.
        case failed(DTLSError)
    }

    struct Established {
        var peerFingerprint: DTLSFingerprint
        var cipherSuite: String
        /// The use_srtp profile the handshake settled on, if any.
        var srtpProtectionProfile: String?
        /// Largest plaintext that fits one record inside the MTU.
        var maximumPayload: Int
        /// Shortest valid protected record under the negotiated suite.
        var minimumProtectedLength: Int
    }

    private var state = State.idle
    // Kept for its lifetime: the connection holds a reference too, but the
    // verify callback's argument points at `pipe`, which lives here.
    private let context: ContextHandle
    private let connection: ConnectionHandle
    private let pipe: DatagramPipe
    /// Datagrams waiting for the driver are the first `packedBytes` of
    /// `pipe.outbound` (records as OpenSSL wrote them, cut at datagram
    /// boundaries without moving them), with their lengths from
    /// `transmitHead` on: reused storage, no copy or allocation per datagram.
    private var packedBytes = 0
    private var transmitLengths: [Int] = []
    private var transmitHead = 0
    private var transmitOffset = 0
    private var eventQueue = FIFO<DTLSEvent>()
    /// SSL_read's destination: one record's plaintext is at most 2^14 bytes
    /// (RFC 6347 §4.1 / RFC 5246 §6.2.1).
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 14)
    /// When set, a record of application data decrypted while no event is
    /// waiting goes straight to this handler, as bytes of the read buffer
    /// valid only during the call, instead of becoming a `.data` event (the
    /// data path: no array per record). Events stay in order: with an
    /// event waiting, records queue behind it as `.data`.
    public var applicationDataHandler: ((ArraySlice<UInt8>) -> Void)?

    /// When OpenSSL's retransmission timer runs out, on the driver's clock.
    private var timerDeadline: Duration?

    /// Application data's record layer, once taken over from OpenSSL.
    private var records: OwnRecordLayer?
    /// Set when the hand-over cannot happen (another cipher, no key
    /// material): OpenSSL keeps the records, and nobody asks again.
    private var recordsStayWithOpenSSL = false
    /// The sequence number and explicit nonce of the last epoch-1 record
    /// OpenSSL wrote: ours go on from them.
    private var lastOpenSSLRecord: (sequence: UInt64, explicitNonce: UInt64)?
    /// The application data records OpenSSL delivered, by sequence number:
    /// the own record layer's replay window starts as this.
    private var openSSLReads = DTLSReplayWindow()
    /// OpenSSL delivered application data that was not from the record it
    /// was just given, so its sequence number is unknown: the records then
    /// stay with OpenSSL, whose window knows it.
    private var unattributedOpenSSLRead = false
    /// The sequence number of the record being handed to OpenSSL, while it
    /// is application data of epoch 1 not yet delivered.
    private var inboundApplicationSequence: UInt64?
    /// OpenSSL decrypted application data from the peer: for a server, the
    /// sign that the client has its final flight.
    private var peerSentApplicationData = false

    /// The OpenSSL connection (internal: the record keys are read from it).
    var ssl: OpaquePointer { connection.pointer }

    public init(configuration: Configuration) throws(DTLSError) {
        try configuration.validate()
        self.configuration = configuration
        pathMTU = configuration.mtu
        let method: DatagramBIOMethod
        switch DatagramBIOMethod.shared {
        case .success(let shared): method = shared
        case .failure(let error): throw error
        }
        pipe = DatagramPipe(
            expectedPeer: configuration.expectedPeerFingerprint,
            initialTimeout: configuration.initialRetransmissionTimeout,
            maximumTimeout: configuration.maximumRetransmissionTimeout
        )

        ERR_clear_error()
        guard let dtlsMethod = DTLS_method(), let rawContext = SSL_CTX_new(dtlsMethod) else {
            throw OpenSSLErrorQueue.setupError("SSL_CTX_new failed")
        }
        context = ContextHandle(taking: rawContext)
        try Self.configure(
            context: context.pointer, certificate: configuration.certificate,
            srtpProfiles: configuration.srtpProtectionProfiles, pipe: pipe)

        guard let rawConnection = SSL_new(context.pointer) else { throw OpenSSLErrorQueue.setupError("SSL_new failed") }
        connection = ConnectionHandle(taking: rawConnection)
        guard let bio = BIO_new(method.pointer) else { throw OpenSSLErrorQueue.setupError("BIO_new failed") }
        BIO_set_data(bio, pipe.opaque)
        // One BIO for both directions; the SSL takes over its one reference.
        SSL_set_bio(connection.pointer, bio, bio)

        switch configuration.role {
        case .client: SSL_set_connect_state(connection.pointer)
        case .server: SSL_set_accept_state(connection.pointer)
        }
        // RFC 6347 §4.1.1.1: records sized to the path MTU. The value is the
        // UDP payload; the BIO reports no further overhead, and
        // SSL_OP_NO_QUERY_MTU (set on the context) keeps OpenSSL from
        // replacing it with a guess of its own.
        guard SSL_ctrl(connection.pointer, DTLS_CTRL_SET_LINK_MTU, configuration.mtu, nil) == 1 else {
            throw OpenSSLErrorQueue.setupError("DTLS_set_link_mtu(\(configuration.mtu)) failed")
        }
        DTLS_set_timer_cb(connection.pointer, retransmissionTimeout)
    }

    private static func configure(
        context: OpaquePointer, certificate: DTLSCertificate, srtpProfiles: [String], pipe: DatagramPipe
    ) throws(DTLSError) {
        // DTLS 1.2 only (RFC 8827 §6.5; OpenSSL 3.0 has no DTLS 1.3, and
        // DTLS 1.0 is obsolete, RFC 8996).
        guard SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(DTLS1_2_VERSION), nil) == 1,
              SSL_CTX_ctrl(context, SSL_CTRL_SET_MAX_PROTO_VERSION, Int(DTLS1_2_VERSION), nil) == 1
        else { throw OpenSSLErrorQueue.setupError("cannot restrict the protocol to DTLS 1.2") }

        // RFC 8827 §6.5: no renegotiation. No tickets or session cache: each
        // association is one full handshake with certificates made for it.
        _ = SSL_CTX_set_options(
            context,
            SSLOption.noQueryMTU | SSLOption.noTicket | SSLOption.noCompression | SSLOption.noRenegotiation
        )
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_OFF), nil)

        guard SSL_CTX_set_cipher_list(context, cipherSuites.joined(separator: ":")) == 1 else {
            throw OpenSSLErrorQueue.setupError("cannot set the cipher suites")
        }
        let groupsSet = groups.withCString { names in
            SSL_CTX_ctrl(context, SSL_CTRL_SET_GROUPS_LIST, 0, UnsafeMutableRawPointer(mutating: names))
        }
        guard groupsSet == 1 else { throw OpenSSLErrorQueue.setupError("cannot set the key exchange groups") }

        // RFC 5764 §4.1.1: the client lists the profiles in its ClientHello;
        // the server picks the first of its own list that the client offered,
        // and answers without the extension when there is none. The
        // extension changes nothing else: the record keys are still the
        // handshake's, and the SRTP keys (RFC 5764 §4.2) are never exported.
        if !srtpProfiles.isEmpty {
            // Unlike most of OpenSSL, this returns 0 on success.
            guard SSL_CTX_set_tlsext_use_srtp(context, srtpProfiles.joined(separator: ":")) == 0 else {
                throw OpenSSLErrorQueue.setupError("cannot set the SRTP protection profiles \(srtpProfiles)")
            }
        }

        guard SSL_CTX_use_certificate(context, certificate.certificate.pointer) == 1,
              SSL_CTX_use_PrivateKey(context, certificate.privateKey.pointer) == 1,
              SSL_CTX_check_private_key(context) == 1
        else { throw OpenSSLErrorQueue.setupError("cannot use the certificate") }

        // Both sides present a certificate and both check the other's: the
        // server asks for the client's (CertificateRequest) and fails the
        // handshake without one.
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        SSL_CTX_set_cert_verify_callback(context, verifyPeerCertificate, pipe.opaque)
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
    public var ownsRecordLayer: Bool { records != nil }

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

        if let layer = self.records {
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
        if let records {
            try seal(type: DTLSContentType.applicationData, bytes, layer: records)
            flushOutbound(mtu: oversized ? DTLSRecordFraming.maximumDatagramLength : pathMTU)
            return
        }
        clearErrorQueue()
        let written = SSL_write(ssl, bytes.baseAddress, Int32(count))
        guard written == Int32(count) else {
            let error = DTLSError.internalFailure(OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: "SSL_write failed"))
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
    private func recordOverhead(_ established: Established) -> Int {
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
        ERR_clear_error()
        let result = SSL_ctrl(ssl, DTLS_CTRL_HANDLE_TIMEOUT, 0, nil)
        if result > 0 {
            counters.timerRetransmissions += 1
        } else if result < 0 {
            fail(handshakeError(fallback: "DTLSv1_handle_timeout failed"))
        } else {
            ERR_clear_error()
        }
        flushOutbound()
        updateTimer(now: now)
    }

    /// The next datagram to send to the peer, at most `configuration.mtu` bytes.
    public func pollTransmit() -> [UInt8]? {
        guard transmitHead < transmitLengths.count else { return nil }
        let length = transmitLengths[transmitHead]
        let datagram = Array(pipe.outbound[transmitOffset..<(transmitOffset + length)])
        transmitHead += 1
        transmitOffset += length
        if transmitHead == transmitLengths.count { clearTransmitted() }
        counters.datagramsSent += 1
        return datagram
    }

    /// Hands every datagram waiting to be sent to `body` at once: their
    /// bytes back to back and the length of each, in order, valid only
    /// during the call (the data path: the driver copies them into its own
    /// buffer once). Does not call `body` when there is nothing to send.
    public func drainTransmit(_ body: (_ datagrams: UnsafeRawBufferPointer, _ lengths: ArraySlice<Int>) -> Void) {
        guard transmitHead < transmitLengths.count else { return }
        counters.datagramsSent += transmitLengths.count - transmitHead
        pipe.outbound.withUnsafeBytes { bytes in
            body(UnsafeRawBufferPointer(rebasing: bytes[transmitOffset..<packedBytes]), transmitLengths[transmitHead...])
        }
        clearTransmitted()
    }

    private func clearTransmitted() {
        if packedBytes == pipe.outbound.count {
            pipe.outbound.removeAll(keepingCapacity: true)
        } else {
            pipe.outbound.removeFirst(packedBytes)  // a record OpenSSL has not finished stays
        }
        packedBytes = 0
        transmitLengths.removeAll(keepingCapacity: true)
        transmitHead = 0
        transmitOffset = 0
    }

    public func pollEvent() -> DTLSEvent? {
        eventQueue.pop()
    }

    // MARK: Handshake

    private func continueHandshake() {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            handshakeFinished()
            return
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return
        case SSL_ERROR_ZERO_RETURN:
            // close_notify in the middle of the handshake.
            ERR_clear_error()
            fail(.peerAlert(DTLSAlert.closeNotify))
        default:
            fail(handshakeError(fallback: "SSL_do_handshake failed"))
        }
    }

    private func handshakeFinished() {
        guard let raw = SSL_get1_peer_certificate(ssl) else {
            fail(.peerCertificateMissing)
            return
        }
        let peer = CertificateHandle(taking: raw)
        guard let digest = DTLSFingerprint.digest(of: peer.pointer),
              let fingerprint = try? DTLSFingerprint(bytes: digest)
        else {
            fail(.internalFailure(OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: "cannot digest the peer's certificate")))
            return
        }
        // RFC 8842 §5.1 / RFC 8122 §5: the certificate must match the
        // fingerprint from the session description. The verify callback has
        // already refused any other; this second look costs one SHA-256.
        guard configuration.expectedPeerFingerprint.matches(digest: digest) else {
            fail(.fingerprintMismatch(received: fingerprint))
            return
        }
        let current = SSL_get_current_cipher(ssl)
        let cipher = current.flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "unknown"
        let maximumPayload = Int(DTLS_get_data_mtu(ssl))
        guard maximumPayload > 0 else {
            fail(.internalFailure("no room for application data in a \(configuration.mtu)-byte MTU"))
            return
        }
        state = .connected(Established(
            peerFingerprint: fingerprint,
            cipherSuite: cipher,
            srtpProtectionProfile: SSL_get_selected_srtp_profile(ssl).flatMap { $0.pointee.name }.map { String(cString: $0) },
            maximumPayload: maximumPayload,
            minimumProtectedLength: Self.minimumProtectedLength(of: current)
        ))
        timerDeadline = nil
        eventQueue.push(.connected(peerFingerprint: fingerprint))
        // The datagram that finished the handshake may carry application
        // data behind the Finished message.
        readApplicationData()
    }

    /// The error a failed handshake step stands for; drains the queue.
    private func handshakeError(fallback: String) -> DTLSError {
        let entries = OpenSSLErrorQueue.drain()
        switch pipe.verification {
        case .mismatched(let received):
            return .fingerprintMismatch(received: received)
        case .noCertificate:
            return .peerCertificateMissing
        case .notYet, .matched:
            break
        }
        if let alert = OpenSSLErrorQueue.receivedAlert(in: entries) { return .peerAlert(alert) }
        if OpenSSLErrorQueue.timedOut(entries) { return .handshakeTimedOut }
        // SSL_VERIFY_FAIL_IF_NO_PEER_CERT: a client that sent an empty
        // Certificate never reaches the verify callback.
        if OpenSSLErrorQueue.peerSentNoCertificate(entries) { return .peerCertificateMissing }
        return .handshakeFailed(OpenSSLErrorQueue.text(entries, fallback: fallback))
    }

    // MARK: Application data

    /// Reads every record OpenSSL has from the current datagram.
    private func readApplicationData() {
        let ssl = self.ssl
        while case .connected = state {
            clearErrorQueue()
            let count = readBuffer.withUnsafeMutableBytes { buffer in
                SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
            }
            if count > 0 {
                peerSentApplicationData = true
                if let sequence = inboundApplicationSequence {
                    // One record, one delivery.
                    openSSLReads.accept(sequence)
                    inboundApplicationSequence = nil
                } else if records == nil {
                    unattributedOpenSSLRead = true
                }
                deliverRead(count: Int(count))
                // The datagram is read and OpenSSL holds nothing more from
                // it (no record left in its buffer, none held back): another
                // SSL_read would only say "want read". Skipping that call
                // saves about 15% of the decrypt cost (measured here).
                if pipe.inbound == nil, SSL_has_pending(ssl) == 0 { return }
                continue
            }
            switch SSL_get_error(ssl, count) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                // RFC 5246 §7.2.1: the peer's close_notify is answered with ours.
                ERR_clear_error()
                sendCloseNotify()
                state = .closed
                eventQueue.push(.closed)
                return
            default:
                let entries = OpenSSLErrorQueue.drain()
                if let alert = OpenSSLErrorQueue.receivedAlert(in: entries) {
                    fail(.peerAlert(alert))
                } else {
                    fail(.protocolViolation(OpenSSLErrorQueue.text(entries, fallback: "SSL_read failed")))
                }
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

    /// Takes application data over from OpenSSL when it is safe to (see the
    /// type's comment): connected, AES-GCM, and for a server once the client
    /// has sent application data.
    private func takeOverRecordsIfReady() {
        guard records == nil, !recordsStayWithOpenSSL, configuration.protectsApplicationData,
              case .connected = state,
              configuration.role == .client || peerSentApplicationData
        else { return }
        guard !unattributedOpenSSLRead else {
            // A replay window without that record would let its replay in.
            recordsStayWithOpenSSL = true
            return
        }
        guard let last = lastOpenSSLRecord else {
            // OpenSSL wrote its Finished in epoch 1, so this does not happen;
            // without it the nonces could not be kept apart.
            recordsStayWithOpenSSL = true
            return
        }
        do {
            guard var keys = try DTLSRecordKeys.derive(from: ssl) else {
                recordsStayWithOpenSSL = true
                return
            }
            defer { keys.wipe() }
            let peer: DTLSRole = configuration.role == .client ? .server : .client
            records = OwnRecordLayer(
                sealer: try keys.cipher(sentBy: configuration.role),
                opener: try keys.cipher(sentBy: peer),
                nextSequence: last.sequence + 1,
                nextExplicitNonce: last.explicitNonce &+ OwnRecordLayer.nonceDistance,
                window: openSSLReads)
        } catch {
            recordsStayWithOpenSSL = true
        }
    }

    /// The records of one datagram once the layer is ours: application data
    /// of the current epoch is opened here, anything else (alerts, a
    /// repeated handshake flight) goes to OpenSSL.
    private func handleRecords(_ datagram: UnsafeRawBufferPointer, layer: OwnRecordLayer) {
        var offset = 0
        while datagram.count - offset >= DTLSRecordFraming.headerLength, case .connected = state {
            let header = DTLSRecordFraming.Header(datagram, at: offset)
            let end = offset + DTLSRecordFraming.headerLength + header.length
            guard end <= datagram.count else { return }  // validPrefix has made sure
            let record = UnsafeRawBufferPointer(rebasing: datagram[offset..<end])
            if header.type == DTLSContentType.applicationData, header.epoch == OwnRecordLayer.epoch {
                openApplicationData(record, sequence: header.sequence, layer: layer)
            } else {
                pipe.inbound = record
                readApplicationData()
                pipe.inbound = nil
            }
            offset = end
        }
    }

    private func openApplicationData(_ record: UnsafeRawBufferPointer, sequence: UInt64, layer: OwnRecordLayer) {
        guard layer.window.isFresh(sequence) else {
            counters.discardedRecords += 1
            return
        }
        let opener = layer.opener
        let opened = readBuffer.withUnsafeMutableBytes { opener.open(record: record, into: $0) }
        guard let count = opened else {
            counters.discardedRecords += 1
            return
        }
        layer.window.accept(sequence)
        if count > 0 { deliverRead(count: count) }
    }

    /// Seals one record with the next sequence number and nonce into the
    /// outbound stream.
    private func seal(type: UInt8, _ bytes: UnsafeRawBufferPointer, layer: OwnRecordLayer) throws(DTLSError) {
        let sequence = layer.nextSequence, nonce = layer.nextExplicitNonce
        do {
            try layer.sealer.seal(
                type: type, epoch: OwnRecordLayer.epoch, sequence: sequence, explicitNonce: nonce,
                plaintext: bytes, appendingTo: &pipe.outbound)
        } catch {
            fail(error)
            throw error
        }
        layer.nextSequence = sequence + 1
        layer.nextExplicitNonce = nonce &+ 1
    }

    /// RFC 5246 §7.2.1: close_notify, protected by whichever layer owns the
    /// records (OpenSSL's sequence numbers are behind ours once we own them,
    /// and the peer would drop its alert as a replay).
    private func sendCloseNotify() {
        if let records {
            let alert = [DTLSAlert.warningLevel, DTLSAlert.closeNotify]
            alert.withUnsafeBytes { try? seal(type: DTLSContentType.alert, $0, layer: records) }
            return
        }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Notes the sequence number and explicit nonce of each epoch-1 record
    /// OpenSSL wrote from `start` on (before the hand-over: afterwards ours
    /// are apart from its by construction).
    private func noteOpenSSLRecords(from start: Int) {
        pipe.outbound.withUnsafeBytes { stream in
            var offset = start
            while stream.count - offset >= DTLSRecordFraming.headerLength {
                let header = DTLSRecordFraming.Header(stream, at: offset)
                let end = offset + DTLSRecordFraming.headerLength + header.length
                guard end <= stream.count else { return }
                if header.epoch == OwnRecordLayer.epoch, header.length >= DTLSRecordCipher.explicitNonceLength {
                    var nonce: UInt64 = 0
                    for index in 0..<8 { nonce = nonce << 8 | UInt64(stream[offset + DTLSRecordFraming.headerLength + index]) }
                    lastOpenSSLRecord = (header.sequence, nonce)
                }
                offset = end
            }
        }
    }

    // MARK: Plumbing

    /// ERR_clear_error before an SSL call on the data path, skipped when the
    /// queue is already empty (the usual case): clearing walks every slot
    /// of the thread's queue, which cost about 1.5% of the data path.
    @inline(__always)
    private func clearErrorQueue() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

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

    /// Cuts what OpenSSL wrote into datagrams of at most the MTU
    /// (RFC 6347 §4.1.1: whole records, several to a datagram if they fit).
    private func flushOutbound(mtu: Int? = nil) {
        guard pipe.outbound.count > packedBytes else { return }
        let mtu = mtu ?? pathMTU
        let start = packedBytes
        if records == nil { noteOpenSSLRecords(from: start) }
        var oversized = 0
        let used = pipe.outbound.withUnsafeBytes { stream in
            DTLSRecordFraming.packDatagrams(UnsafeRawBufferPointer(rebasing: stream[start...]), mtu: mtu, oversized: &oversized) { datagram in
                transmitLengths.append(datagram.count)
            }
        }
        counters.oversizedDatagrams += oversized
        packedBytes += used
    }

    /// The least a record of epoch 1 or later holds under the cipher suite
    /// negotiated (pending during the handshake, current after), or under
    /// any suite we offer while none is.
    private func minimumProtectedLength() -> Int {
        if case .connected(let established) = state { return established.minimumProtectedLength }
        return Self.minimumProtectedLength(of: SSL_get_current_cipher(ssl) ?? SSL_get_pending_cipher(ssl))
    }

    /// RFC 5288 §3: AES-GCM records carry an 8-byte explicit nonce and a
    /// 16-byte tag; RFC 7905 §2: ChaCha20-Poly1305 records only the tag.
    static func minimumProtectedLength(of cipher: OpaquePointer?) -> Int {
        guard let cipher, let name = SSL_CIPHER_get_name(cipher) else {
            return DTLSRecordFraming.largestProtectionOverhead
        }
        return String(cString: name).contains("CHACHA20") ? 16 : DTLSRecordFraming.largestProtectionOverhead
    }

    /// Converts OpenSSL's real-clock retransmission timer to the driver's clock.
    private func updateTimer(now: Duration) {
        guard case .handshaking = state else {
            timerDeadline = nil
            return
        }
        var remaining = timeval()
        if SSL_ctrl(ssl, DTLS_CTRL_GET_TIMEOUT, 0, &remaining) == 1 {
            timerDeadline = now + .seconds(remaining.tv_sec) + .microseconds(remaining.tv_usec)
        } else {
            timerDeadline = nil
        }
    }
}

// MARK: OpenSSL callbacks

/// The certificate check (SSL_CTX_set_cert_verify_callback), in place of
/// OpenSSL's chain building, which has nothing to say about a self-signed
/// certificate: accept exactly the certificate whose SHA-256 fingerprint is
/// the expected one (RFC 8122 §5, RFC 8842 §5.1). Returning 0 makes OpenSSL
/// send bad_certificate and fail the handshake.
private func verifyPeerCertificate(_ store: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let store else { return 0 }
    guard let pipe = DatagramPipe.from(argument) else {
        X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED)
        return 0
    }
    guard let certificate = X509_STORE_CTX_get0_cert(store) else {
        pipe.verification = .noCertificate
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
        return 0
    }
    guard let digest = DTLSFingerprint.digest(of: certificate),
          let received = try? DTLSFingerprint(bytes: digest)
    else {
        X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED)
        return 0
    }
    guard pipe.expectedPeer.matches(digest: digest) else {
        pipe.verification = .mismatched(received)
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
        return 0
    }
    pipe.verification = .matched(received)
    X509_STORE_CTX_set_error(store, X509_V_OK)
    return 1
}

/// The retransmission timer values (DTLS_set_timer_cb): OpenSSL passes the
/// last value (0 for a new flight) and arms its timer with the answer.
/// RFC 6347 §4.2.4.1: start at the initial value, double on each expiry, stop
/// doubling at the maximum.
private func retransmissionTimeout(_ ssl: OpaquePointer?, _ previous: UInt32) -> UInt32 {
    guard let ssl, let pipe = DatagramPipe.from(bio: SSL_get_rbio(ssl)) else { return 1_000_000 }
    guard previous > 0 else { return pipe.initialTimeoutMicroseconds }
    let doubled = previous.multipliedReportingOverflow(by: 2)
    if doubled.overflow { return pipe.maximumTimeoutMicroseconds }
    return min(doubled.partialValue, pipe.maximumTimeoutMicroseconds)
}

/// The state of application data's record layer once it is ours: a cipher
/// per direction, the next sequence number and explicit nonce to send, and
/// the replay window of what arrives. A class so that the data path updates
/// it in place.
final class OwnRecordLayer {
    /// Application data travels in epoch 1: DTLS 1.2 here never renegotiates.
    static let epoch: UInt16 = 1
    /// How far our first explicit nonce is from OpenSSL's last: half the
    /// 64-bit counter's range, which neither side's counter can cross.
    static let nonceDistance: UInt64 = 1 << 63

    let sealer: DTLSRecordCipher
    let opener: DTLSRecordCipher
    var nextSequence: UInt64
    var nextExplicitNonce: UInt64
    var window: DTLSReplayWindow

    init(sealer: DTLSRecordCipher, opener: DTLSRecordCipher, nextSequence: UInt64, nextExplicitNonce: UInt64, window: DTLSReplayWindow) {
        self.sealer = sealer
        self.opener = opener
        self.nextSequence = nextSequence
        self.nextExplicitNonce = nextExplicitNonce
        self.window = window
    }
}
