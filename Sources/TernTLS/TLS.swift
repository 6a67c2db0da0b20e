import COpenSSL
import NIOCore
import TernCrypto

/// A TLS failure, with OpenSSL's own words for it.
public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(_ reason: String) {
        self.reason = reason
    }

    /// Drains OpenSSL's error queue into one sentence (TernCrypto).
    static func fromQueue(_ what: String) -> TLSError {
        TLSError(OpenSSLErrorQueue.describe(what))
    }
}

/// An OpenSSL `SSL_CTX`: the configuration shared by connections.
public final class TLSContext: @unchecked Sendable {
    // Immutable after init; OpenSSL contexts are safe to share between threads
    // once configured.
    let pointer: OpaquePointer
    public let isServer: Bool
    /// For a client: the one server certificate it accepts, instead of a
    /// chain to the trust store.
    public let pin: TLSCertificatePin?

    /// A client context that verifies the server against the system's trust
    /// store (OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR).
    public static func client() throws(TLSError) -> TLSContext {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new failed") }
        let tls = TLSContext(pointer: context, isServer: false)
        try tls.requireTLS12()
        guard SSL_CTX_set_default_verify_paths(context) == 1 else { throw TLSError.fromQueue("cannot load the trust store") }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        return tls
    }

    /// A client context that accepts the one server certificate `pin`
    /// names, whoever signed it (a self-signed one included), and no other:
    /// the digest is compared when the handshake ends (`TLSConnection`).
    public static func client(pinning pin: TLSCertificatePin) throws(TLSError) -> TLSContext {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new failed") }
        let tls = TLSContext(pointer: context, isServer: false, pin: pin)
        try tls.requireTLS12()
        // The chain is not checked: the pin decides, before any byte of
        // the application is sent or read.
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        return tls
    }

    /// A server context with a PEM certificate chain and private key.
    public static func server(certificateChainFile: String, privateKeyFile: String) throws(TLSError) -> TLSContext {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError.fromQueue("SSL_CTX_new failed") }
        let tls = TLSContext(pointer: context, isServer: true)
        try tls.requireTLS12()
        guard SSL_CTX_use_certificate_chain_file(context, certificateChainFile) == 1 else {
            throw TLSError.fromQueue("cannot load the certificate chain \(certificateChainFile)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, privateKeyFile, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.fromQueue("cannot load the private key \(privateKeyFile)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else { throw TLSError.fromQueue("the private key does not match the certificate") }
        return tls
    }

    private init(pointer: OpaquePointer, isServer: Bool, pin: TLSCertificatePin? = nil) {
        self.pointer = pointer
        self.isServer = isServer
        self.pin = pin
    }

    private func requireTLS12() throws(TLSError) {
        // SSL_CTX_set_min_proto_version is a macro over SSL_CTX_ctrl.
        guard SSL_CTX_ctrl(pointer, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil) == 1 else {
            throw TLSError.fromQueue("cannot require TLS 1.2")
        }
    }

    deinit { SSL_CTX_free(pointer) }
}

/// One TLS connection driven through memory BIOs: ciphertext in and out as
/// bytes, no socket inside OpenSSL. Confined to the channel's event loop.
final class TLSConnection {
    private let ssl: OpaquePointer
    private let incoming: OpaquePointer
    private let outgoing: OpaquePointer
    private let pin: TLSCertificatePin?

    enum Progress: Equatable { case done, needMore, failed(TLSError) }

    init(context: TLSContext, serverName: String?) throws(TLSError) {
        guard let ssl = SSL_new(context.pointer) else { throw TLSError.fromQueue("SSL_new failed") }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.fromQueue("BIO_new failed")
        }
        // The SSL object owns both BIOs from here on.
        SSL_set_bio(ssl, incoming, outgoing)
        self.ssl = ssl
        self.incoming = incoming
        self.outgoing = outgoing
        self.pin = context.pin
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            if let serverName {
                if Self.isIPAddress(serverName) {
                    guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                        throw TLSError.fromQueue("bad server address \(serverName)")
                    }
                } else {
                    // SNI (SSL_set_tlsext_host_name is a macro over SSL_ctrl) and name checking.
                    let sni = serverName.withCString { name in
                        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: name))
                    }
                    guard sni == 1, SSL_set1_host(ssl, serverName) == 1 else {
                        throw TLSError.fromQueue("bad server name \(serverName)")
                    }
                }
            }
        }
    }

    deinit { SSL_free(ssl) }

    static func isIPAddress(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }
    }

    /// Ciphertext from the peer.
    func feed(_ bytes: ByteBufferView) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = BIO_write(incoming, raw.baseAddress?.advanced(by: offset), Int32(min(raw.count - offset, Int(Int32.max))))
                if written <= 0 { break }
                offset += Int(written)
            }
        }
    }

    func handshake() -> Progress {
        let result = SSL_do_handshake(ssl)
        if result == 1 { return checkPin() }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needMore
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK, let text = X509_verify_cert_error_string(verify) {
                ERR_clear_error()
                return .failed(TLSError("the certificate was not accepted: \(String(cString: text))"))
            }
            return .failed(TLSError.fromQueue("the TLS handshake failed"))
        }
    }

    /// With a pin, the server's certificate must be the pinned one.
    private func checkPin() -> Progress {
        guard let pin else { return .done }
        guard let certificate = SSL_get1_peer_certificate(ssl) else {
            return .failed(TLSError("the server sent no certificate"))
        }
        defer { X509_free(certificate) }
        guard let presented = TLSCertificatePin.of(certificate: certificate), pin.matches(presented) else {
            return .failed(TLSError("the server's certificate is not the pinned one (\(pin))"))
        }
        return .done
    }

    enum ReadResult { case nothing, data, peerClosed }

    /// Appends the plaintext that has arrived to `buffer`.
    func readPlaintext(into buffer: inout ByteBuffer) throws(TLSError) -> ReadResult {
        var result = ReadResult.nothing
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = SSL_read(ssl, &chunk, Int32(chunk.count))
            if count > 0 {
                buffer.writeBytes(chunk[..<Int(count)])
                result = .data
                continue
            }
            switch SSL_get_error(ssl, count) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return result
            case SSL_ERROR_ZERO_RETURN:
                return result == .data ? .data : .peerClosed
            default:
                throw TLSError.fromQueue("TLS read failed")
            }
        }
    }

    func writePlaintext(_ bytes: ByteBufferView) throws(TLSError) {
        try bytes.withUnsafeBytes { (raw) throws(TLSError) in
            var offset = 0
            while offset < raw.count {
                let written = SSL_write(ssl, raw.baseAddress?.advanced(by: offset), Int32(min(raw.count - offset, 16 * 1024)))
                guard written > 0 else { throw TLSError.fromQueue("TLS write failed") }
                offset += Int(written)
            }
        }
    }

    func shutdown() {
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Ciphertext waiting to go to the peer.
    func takeOutgoing(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let pending = BIO_ctrl_pending(outgoing)
        guard pending > 0 else { return nil }
        var buffer = allocator.buffer(capacity: Int(pending))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(pending)) { raw in
            Int(max(0, BIO_read(outgoing, raw.baseAddress, Int32(pending))))
        }
        return buffer
    }
}

/// Puts TLS under everything above it in a channel pipeline: ciphertext
/// below, plaintext above. Writes made before the handshake finishes wait
/// for it.
public final class TLSHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let connection: TLSConnection
    private var handshakeDone = false
    private var failed = false
    private var waiting: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private let handshakeTimeout: TimeAmount?
    private var handshakeTimer: Scheduled<Void>?

    /// - Parameters:
    ///   - serverName: for a client, the name (or address) the server's
    ///     certificate must carry.
    ///   - handshakeTimeout: how long the handshake may take from the
    ///     connection's start; past it the handler fails with a `TLSError`
    ///     and closes the channel (a server that accepts and says nothing).
    public init(context: TLSContext, serverName: String? = nil, handshakeTimeout: TimeAmount? = nil) throws(TLSError) {
        connection = try TLSConnection(context: context, serverName: serverName)
        self.handshakeTimeout = handshakeTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        if let handshakeTimeout, handshakeTimer == nil, !handshakeDone {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            handshakeTimer = context.eventLoop.scheduleTask(in: handshakeTimeout) {
                let (handler, context) = loopBound.value
                guard !handler.handshakeDone else { return }
                let milliseconds = handshakeTimeout.nanoseconds / 1_000_000
                handler.fail(TLSError("the TLS handshake took longer than \(milliseconds) ms"), context: context)
            }
        }
        advance(context: context)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let buffer = unwrapInboundIn(data)
        connection.feed(buffer.readableBytesView)
        advance(context: context)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        guard handshakeDone else {
            waiting.append((buffer, promise))
            return
        }
        encrypt(buffer, context: context, promise: promise)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if handshakeDone && !failed {
            connection.shutdown()
            sendCiphertext(context: context, promise: nil)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    private func advance(context: ChannelHandlerContext) {
        if !handshakeDone {
            switch connection.handshake() {
            case .needMore:
                sendCiphertext(context: context, promise: nil)
                context.flush()
                return
            case .failed(let error):
                fail(error, context: context)
                return
            case .done:
                handshakeDone = true
                handshakeTimer?.cancel()
                handshakeTimer = nil
                sendCiphertext(context: context, promise: nil)
                let queued = waiting
                waiting = []
                for (buffer, promise) in queued { encrypt(buffer, context: context, promise: promise) }
                context.flush()
            }
        }
        var plaintext = context.channel.allocator.buffer(capacity: 0)
        do {
            switch try connection.readPlaintext(into: &plaintext) {
            case .data:
                context.fireChannelRead(wrapInboundOut(plaintext))
                context.fireChannelReadComplete()
            case .peerClosed:
                // close_notify: a clean end of the session.
                connection.shutdown()
                sendCiphertext(context: context, promise: nil)
                context.flush()
                context.close(promise: nil)
                return
            case .nothing:
                break
            }
        } catch {
            sendCiphertext(context: context, promise: nil)
            context.flush()
            fail(error, context: context)
            return
        }
        // Reading can produce records to send (alerts, session tickets).
        sendCiphertext(context: context, promise: nil)
        context.flush()
    }

    private func encrypt(_ buffer: ByteBuffer, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        do {
            try connection.writePlaintext(buffer.readableBytesView)
            sendCiphertext(context: context, promise: promise)
        } catch {
            promise?.fail(error)
            fail(error, context: context)
        }
    }

    private func sendCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if let ciphertext = connection.takeOutgoing(allocator: context.channel.allocator) {
            context.write(wrapOutboundOut(ciphertext), promise: promise)
        } else {
            promise?.succeed()
        }
    }

    private func fail(_ error: TLSError, context: ChannelHandlerContext) {
        guard !failed else { return }
        failed = true
        handshakeTimer?.cancel()
        handshakeTimer = nil
        for (_, promise) in waiting { promise?.fail(error) }
        waiting = []
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
