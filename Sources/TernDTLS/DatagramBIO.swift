import COpenSSL
import TernCrypto

/// What OpenSSL's callbacks share with the association: the datagram being
/// handled, the records OpenSSL has written, the retransmission timer
/// settings, and the outcome of the certificate check.
///
/// The callbacks reach it through an unretained pointer (BIO data, and the
/// SSL_CTX verify argument). The association holds it strongly, and OpenSSL
/// only calls back from inside SSL_* calls the association makes, so it is
/// alive whenever a callback runs. Freeing the SSL (which frees the BIO) does
/// not call back into it: the destroy callback ignores the data pointer.
final class DatagramPipe {
    /// The datagram being handed to OpenSSL, valid only during
    /// `handleDatagram`; nil once OpenSSL has read it.
    var inbound: UnsafeRawBufferPointer?
    /// Records written by OpenSSL, back to back, waiting to be cut into
    /// datagrams.
    var outbound: [UInt8] = []

    /// RFC 6347 §4.2.4.1 timer values, in microseconds, for the timer callback.
    let initialTimeoutMicroseconds: UInt32
    let maximumTimeoutMicroseconds: UInt32

    /// The fingerprint the peer's certificate must have.
    let expectedPeer: DTLSFingerprint

    enum Verification: Equatable {
        case notYet
        case matched(DTLSFingerprint)
        case mismatched(DTLSFingerprint)
        case noCertificate
    }
    /// What the certificate callback concluded, for the error report.
    var verification = Verification.notYet

    init(expectedPeer: DTLSFingerprint, initialTimeout: Duration, maximumTimeout: Duration) {
        self.expectedPeer = expectedPeer
        initialTimeoutMicroseconds = initialTimeout.clampedMicroseconds
        maximumTimeoutMicroseconds = maximumTimeout.clampedMicroseconds
        outbound.reserveCapacity(4096)
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> DatagramPipe? {
        guard let opaque else { return nil }
        return Unmanaged<DatagramPipe>.fromOpaque(opaque).takeUnretainedValue()
    }

    static func from(bio: OpaquePointer?) -> DatagramPipe? {
        guard let bio else { return nil }
        return from(BIO_get_data(bio))
    }
}

/// A BIO_METHOD with datagram semantics over `DatagramPipe`: a read returns
/// one whole datagram (or "retry" when there is none), a write appends one
/// record. Unlike a memory BIO it never joins two received datagrams, and it
/// reports nothing pending, so OpenSSL sizes every handshake fragment to the
/// full MTU instead of to what is left after the records already buffered
/// (ssl/statem/statem_dtls.c, dtls1_do_write, subtracts BIO_wpending).
/// Packing records into datagrams is done afterwards, in Swift.
final class DatagramBIOMethod: @unchecked Sendable {
    // Made once per process and never freed; OpenSSL only reads a BIO_METHOD
    // after it is set up, from any thread. Hence `@unchecked Sendable`.
    let pointer: OpaquePointer

    /// The method, or why it could not be made (only on allocation failure).
    static let shared: Result<DatagramBIOMethod, DTLSError> = make()

    private init(pointer: OpaquePointer) { self.pointer = pointer }

    private static func make() -> Result<DatagramBIOMethod, DTLSError> {
        let index = BIO_get_new_index()
        guard index > 0, let method = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "tern DTLS datagram") else {
            return .failure(OpenSSLErrorQueue.setupError("cannot create the datagram BIO method"))
        }
        guard BIO_meth_set_write(method, datagramWrite) == 1,
              BIO_meth_set_read(method, datagramRead) == 1,
              BIO_meth_set_ctrl(method, datagramControl) == 1,
              BIO_meth_set_create(method, datagramCreate) == 1,
              BIO_meth_set_destroy(method, datagramDestroy) == 1
        else {
            BIO_meth_free(method)
            return .failure(OpenSSLErrorQueue.setupError("cannot set up the datagram BIO method"))
        }
        return .success(DatagramBIOMethod(pointer: method))
    }
}

// BIO_FLAGS_RWS is a macro over other macros; spelled out here.
private let retryFlags = Int32(BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)

private func datagramWrite(_ bio: OpaquePointer?, _ data: UnsafePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let opaque = BIO_get_data(bio) else { return -1 }
    BIO_clear_flags(bio, retryFlags)
    guard length > 0, let data else { return 0 }
    // Once per record on the data path: the pipe is used without a retain
    // and release (the association holds it for as long as OpenSSL can call
    // back, see DatagramPipe).
    Unmanaged<DatagramPipe>.fromOpaque(opaque)._withUnsafeGuaranteedRef { pipe in
        pipe.outbound.append(contentsOf: UnsafeRawBufferPointer(start: data, count: Int(length)))
    }
    return length
}

private func datagramRead(_ bio: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let opaque = BIO_get_data(bio) else { return -1 }
    BIO_clear_flags(bio, retryFlags)
    // Without a retain and release, as in datagramWrite.
    let taken = Unmanaged<DatagramPipe>.fromOpaque(opaque)._withUnsafeGuaranteedRef { pipe -> UnsafeRawBufferPointer? in
        defer { pipe.inbound = nil }
        return pipe.inbound
    }
    guard let datagram = taken else {
        // Nothing now; OpenSSL returns SSL_ERROR_WANT_READ.
        BIO_set_flags(bio, Int32(BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY))
        return -1
    }
    guard let buffer, length > 0 else { return 0 }
    // Should OpenSSL offer less room than the datagram holds, the rest is
    // lost, as with recvfrom. It does not: its DTLS read buffer is larger
    // than the largest datagram the framing check lets through.
    let count = min(datagram.count, Int(length))
    if count > 0, let source = datagram.baseAddress {
        UnsafeMutableRawPointer(buffer).copyMemory(from: source, byteCount: count)
    }
    return Int32(count)
}

private func datagramControl(_ bio: OpaquePointer?, _ command: Int32, _ argument: Int, _ pointer: UnsafeMutableRawPointer?) -> Int {
    switch command {
    case BIO_CTRL_FLUSH:
        // Every record is already "sent" (queued for the driver).
        return 1
    default:
        // Nothing pending either way (BIO_CTRL_PENDING, BIO_CTRL_WPENDING),
        // no MTU to query and no per-datagram overhead (the MTU we set is
        // the UDP payload size), no peer address, no timeout to arm: the
        // driver owns the socket and the timers.
        return 0
    }
}

private func datagramCreate(_ bio: OpaquePointer?) -> Int32 {
    guard let bio else { return 0 }
    BIO_set_init(bio, 1)
    return 1
}

private func datagramDestroy(_ bio: OpaquePointer?) -> Int32 {
    // The pipe belongs to the association, not to the BIO.
    if let bio { BIO_set_data(bio, nil) }
    return 1
}

extension Duration {
    /// Whole microseconds, clamped to what OpenSSL's timer callback takes.
    var clampedMicroseconds: UInt32 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let micros = seconds.multipliedReportingOverflow(by: 1_000_000)
        guard !micros.overflow else { return UInt32.max }
        let total = micros.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000_000)
        guard !total.overflow else { return UInt32.max }
        return UInt32(clamping: total.partialValue)
    }
}
