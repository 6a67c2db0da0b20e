import COpenSSL
import TernCrypto

/// OpenSSL's side of a DTLS 1.2 association: the SSL_CTX and SSL set up for
/// one role and one expected peer, driven through the datagram BIO
/// (`DatagramPipe`). It runs the handshake, and until the own record layer
/// takes over (`DTLSRecordLayer`) it protects application data too. Every
/// call returns what happened as a value; the association decides what that
/// means for its state, its events and its counters.
///
/// **Timers.** OpenSSL 3.0 times DTLS retransmissions with the real clock
/// (gettimeofday) and offers no way to feed it another. So the
/// retransmission timer is OpenSSL's: `remainingTimer` is what OpenSSL says
/// is left (DTLSv1_get_timeout), and `handleTimeout` asks it to retransmit if
/// its timer has run out (DTLSv1_handle_timeout). The timer *values* are
/// ours (a timer callback: RFC 6347 §4.2.4.1 doubling from the initial
/// retransmission timeout up to the maximum).
///
/// **The peer's identity.** OpenSSL's chain verification is replaced by a
/// callback (SSL_CTX_set_cert_verify_callback) that accepts the peer's
/// certificate only if its SHA-256 fingerprint equals the expected one,
/// compared in constant time. Checking inside the handshake rather than after
/// it means a wrong certificate stops the handshake before this side sends
/// its Finished: no keys are confirmed, no application data can be sent or
/// accepted, and the peer is told with a bad_certificate alert. When the
/// handshake finishes the fingerprint is checked once more, so the guarantee
/// does not rest on OpenSSL calling back (session resumption, which skips
/// the callback, is off anyway).
final class DTLSHandshakeDriver {
    // Kept for its lifetime: the connection holds a reference too, but the
    // verify callback's argument points at `pipe`, which lives here.
    private let context: ContextHandle
    private let connection: ConnectionHandle
    /// What the BIO and the callbacks share with this side: the record
    /// being handed in, the records written, the certificate check's outcome.
    let pipe: DatagramPipe
    private let expectedPeer: DTLSFingerprint

    /// The OpenSSL connection (internal: the record keys are read from it).
    var ssl: OpaquePointer { connection.pointer }

    init(configuration: DTLSAssociation.Configuration) throws(DTLSError) {
        let method: DatagramBIOMethod
        switch DatagramBIOMethod.shared {
        case .success(let shared): method = shared
        case .failure(let error): throw error
        }
        expectedPeer = configuration.expectedPeerFingerprint
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

        guard SSL_CTX_set_cipher_list(context, DTLSAssociation.cipherSuites.joined(separator: ":")) == 1 else {
            throw OpenSSLErrorQueue.setupError("cannot set the cipher suites")
        }
        let groupsSet = DTLSAssociation.groups.withCString { names in
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

    // MARK: Handshake

    /// What the handshake knows once it is over.
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

    enum Step {
        /// Waiting for the peer's next flight.
        case inProgress
        case finished(Established)
        case failed(DTLSError)
    }

    /// Lets OpenSSL take the handshake as far as it can with what it has.
    func continueHandshake(mtu: Int) -> Step {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return handshakeFinished(mtu: mtu) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .inProgress
        case SSL_ERROR_ZERO_RETURN:
            // close_notify in the middle of the handshake.
            ERR_clear_error()
            return .failed(.peerAlert(DTLSAlert.closeNotify))
        default:
            return .failed(handshakeError(fallback: "SSL_do_handshake failed"))
        }
    }

    private func handshakeFinished(mtu: Int) -> Step {
        guard let raw = SSL_get1_peer_certificate(ssl) else { return .failed(.peerCertificateMissing) }
        let peer = CertificateHandle(taking: raw)
        guard let digest = DTLSFingerprint.digest(of: peer.pointer),
              let fingerprint = try? DTLSFingerprint(bytes: digest)
        else {
            return .failed(.internalFailure(OpenSSLErrorQueue.describe("cannot digest the peer's certificate")))
        }
        // RFC 8842 §5.1 / RFC 8122 §5: the certificate must match the
        // fingerprint from the session description. The verify callback has
        // already refused any other; this second look costs one SHA-256.
        guard expectedPeer.matches(digest: digest) else { return .failed(.fingerprintMismatch(received: fingerprint)) }
        let current = SSL_get_current_cipher(ssl)
        let cipher = current.flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "unknown"
        let maximumPayload = Int(DTLS_get_data_mtu(ssl))
        guard maximumPayload > 0 else {
            return .failed(.internalFailure("no room for application data in a \(mtu)-byte MTU"))
        }
        return .finished(Established(
            peerFingerprint: fingerprint,
            cipherSuite: cipher,
            srtpProtectionProfile: SSL_get_selected_srtp_profile(ssl).flatMap { $0.pointee.name }.map { String(cString: $0) },
            maximumPayload: maximumPayload,
            minimumProtectedLength: Self.minimumProtectedLength(of: current)
        ))
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

    // MARK: Timer

    enum TimerOutcome {
        /// OpenSSL's timer had run out and it resent its last flight.
        case retransmitted
        /// Nothing was due yet.
        case notDue
        case failed(DTLSError)
    }

    /// RFC 6347 §4.2.4: OpenSSL resends its last flight if its timer ran out.
    func handleTimeout() -> TimerOutcome {
        ERR_clear_error()
        let result = SSL_ctrl(ssl, DTLS_CTRL_HANDLE_TIMEOUT, 0, nil)
        if result > 0 { return .retransmitted }
        if result < 0 { return .failed(handshakeError(fallback: "DTLSv1_handle_timeout failed")) }
        ERR_clear_error()
        return .notDue
    }

    /// How long OpenSSL's retransmission timer has left (on its real clock),
    /// nil when it is not running.
    func remainingTimer() -> Duration? {
        var remaining = timeval()
        guard SSL_ctrl(ssl, DTLS_CTRL_GET_TIMEOUT, 0, &remaining) == 1 else { return nil }
        return .seconds(remaining.tv_sec) + .microseconds(remaining.tv_usec)
    }

    // MARK: Records through OpenSSL

    enum Read {
        /// This many bytes of application data at the front of the buffer.
        case data(Int)
        /// Nothing more from what OpenSSL was given.
        case needMore
        /// The peer's close_notify (RFC 5246 §7.2.1).
        case peerClosed
        case failed(DTLSError)
    }

    /// One SSL_read into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Read {
        OpenSSLErrorQueue.clear()
        let count = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
        if count > 0 { return .data(Int(count)) }
        switch SSL_get_error(ssl, count) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needMore
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .peerClosed
        default:
            let entries = OpenSSLErrorQueue.drain()
            if let alert = OpenSSLErrorQueue.receivedAlert(in: entries) { return .failed(.peerAlert(alert)) }
            return .failed(.protocolViolation(OpenSSLErrorQueue.text(entries, fallback: "SSL_read failed")))
        }
    }

    /// Whether OpenSSL holds no more of what it was given: nothing left of
    /// the record handed in, nothing held back. Another SSL_read would only
    /// say "want read", so the association skips it.
    var isDrained: Bool { pipe.inbound == nil && SSL_has_pending(ssl) == 0 }

    /// One record of application data through OpenSSL's record layer.
    func write(_ bytes: UnsafeRawBufferPointer) throws(DTLSError) {
        OpenSSLErrorQueue.clear()
        let written = SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))
        guard written == Int32(bytes.count) else {
            throw .internalFailure(OpenSSLErrorQueue.describe("SSL_write failed"))
        }
    }

    /// OpenSSL's close_notify (RFC 5246 §7.2.1), without waiting for the peer's.
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    // MARK: For the record layer

    /// The record keys of the finished handshake (nil: not an AES-GCM suite).
    func recordKeys() throws(DTLSError) -> DTLSRecordKeys? {
        try DTLSRecordKeys.derive(from: ssl)
    }

    /// The least a record of epoch 1 or later holds under the suite being
    /// negotiated (pending during the handshake, current after), or under
    /// any suite we offer while none is.
    func minimumProtectedLength() -> Int {
        Self.minimumProtectedLength(of: SSL_get_current_cipher(ssl) ?? SSL_get_pending_cipher(ssl))
    }

    /// RFC 5288 §3: AES-GCM records carry an 8-byte explicit nonce and a
    /// 16-byte tag; RFC 7905 §2: ChaCha20-Poly1305 records only the tag.
    static func minimumProtectedLength(of cipher: OpaquePointer?) -> Int {
        guard let cipher, let name = SSL_CIPHER_get_name(cipher) else {
            return DTLSRecordFraming.largestProtectionOverhead
        }
        return String(cString: name).contains("CHACHA20") ? 16 : DTLSRecordFraming.largestProtectionOverhead
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
