/// What the association tells its driver, in order, through `pollEvent()`.
public enum DTLSEvent: Hashable, Sendable {
    /// The handshake finished and the peer's certificate has the expected
    /// fingerprint. Application data may flow from here on.
    case connected(peerFingerprint: DTLSFingerprint)
    /// One record of application data from the peer (for SCTP over DTLS,
    /// one SCTP packet, RFC 8261 §3).
    case data([UInt8])
    /// The peer closed the association cleanly with close_notify (RFC 5246
    /// §7.2.1); ours went back. Terminal.
    case closed
    /// The association ended with an error. Terminal. If OpenSSL had an
    /// alert to send about it, that alert is in `pollTransmit()`.
    case failed(DTLSError)
}

/// Which end of the handshake this side plays.
///
/// RFC 8842 §5.2/§5.3 (after RFC 4145 §4): the side whose `a=setup` is
/// `active` sends the ClientHello; `passive` waits for it. An offer says
/// `actpass` and lets the answer choose; tern's receiver answers `active`
/// (design.md), so the sender ends up the server.
public enum DTLSRole: String, Hashable, Sendable {
    case client
    case server

    /// The role for our `a=setup` value given the peer's, or nil for a pair
    /// that does not decide one (both active, both passive, an answer that
    /// says `actpass`, or `holdconn`). Values are compared without regard to
    /// case, as SDP tokens are.
    public init?(localSetup: String, remoteSetup: String) {
        switch (localSetup.lowercased(), remoteSetup.lowercased()) {
        case ("active", "passive"), ("active", "actpass"), ("actpass", "passive"):
            self = .client
        case ("passive", "active"), ("passive", "actpass"), ("actpass", "active"):
            self = .server
        default:
            return nil
        }
    }
}

/// Counters for what the association dropped or repeated; never reset.
public struct DTLSCounters: Hashable, Sendable {
    /// Datagrams given to `handleDatagram`.
    public var datagramsReceived = 0
    /// Datagrams handed out by `pollTransmit`.
    public var datagramsSent = 0
    /// Datagrams (or their tails) that were not well-framed DTLS records and
    /// never reached OpenSSL (RFC 6347 §4.1.2.7: discarded).
    public var malformedDatagrams = 0
    /// Datagrams that arrived when nothing could use them: before a client
    /// started, or after the association ended.
    public var ignoredDatagrams = 0
    /// Flights retransmitted because their timer ran out (RFC 6347 §4.2.4).
    /// Retransmissions OpenSSL makes in answer to a repeated flight from the
    /// peer are not counted: OpenSSL does not report them.
    public var timerRetransmissions = 0
    /// Records longer than the MTU that had to go alone in a datagram. Stays
    /// zero with this module's settings; a test checks it.
    public var oversizedDatagrams = 0
    /// Application-data records dropped by the own record layer (see
    /// DTLSAssociation): they did not authenticate, or replayed a sequence
    /// number (RFC 6347 §4.1.2.6). OpenSSL drops such records without a count.
    public var discardedRecords = 0

    public init() {}
}
