/// Every bound on what a peer's datagrams can make TernDTLS accept or hold,
/// with its value and why. The handshake's own state is OpenSSL's; these
/// bound what reaches it, what the own record layer keeps, and what a
/// peer's certificate can make us allocate. `ResourceLimitTests` drives
/// each from the wire.
public enum DTLSLimits {
    /// The largest datagram handed to OpenSSL, 2^14 bytes: its DTLS read
    /// buffer holds a bit more than 2^14 bytes plus overhead, a longer one
    /// could be cut short by it, and no peer sends one (browsers stay near
    /// 1200 bytes). A longer datagram is dropped and counted whole.
    public static let maximumDatagramLength = 1 << 14
    /// The largest record fragment a header may declare, 2^14 + 2048 bytes
    /// (RFC 6347 §4.1 keeps TLS 1.2's bound on a protected record,
    /// RFC 5246 §6.2.3).
    public static let maximumFragmentLength = (1 << 14) + 2048
    /// The largest handshake message length a plaintext fragment header may
    /// declare, 2^16 bytes. OpenSSL treats a larger one as fatal (its limit
    /// is about 100 KiB); a WebRTC peer's largest message, its Certificate,
    /// is a few hundred bytes to a few KiB.
    public static let maximumHandshakeMessageLength = 1 << 16
    /// The replay window of the own record layer, 64 records
    /// (RFC 6347 §4.1.2.6): a record 64 or more sequence numbers below the
    /// highest accepted is refused, seen or not.
    public static let replayWindowRecords = 64
    /// The largest certificate encoding accepted for the fingerprint check,
    /// 16 KiB: a P-256 certificate is about 400 bytes, browsers' a little
    /// more.
    public static let maximumCertificateLength = 16 * 1024
}
