import TernSTUN

/// How the client reaches the TURN server. The relayed transport towards peers
/// is always UDP (REQUESTED-TRANSPORT 17, RFC 8656 §7.1).
public enum TURNTransport: Hashable, Sendable {
    /// One STUN message or ChannelData message per datagram; requests are
    /// retransmitted (RFC 8489 §6.2.1).
    case udp
    /// A byte stream: messages back to back, ChannelData padded to four bytes
    /// (RFC 8656 §12.5); requests are sent once (RFC 8489 §6.2.2).
    case tcp
}

extension TURNClient {
    public struct Configuration: Sendable {
        /// The server's transport address (for the driver and for logs; the
        /// client itself sends only to "the server").
        public var server: STUNAddress
        public var transport: TURNTransport
        /// For coturn's REST scheme, "expiry:user".
        public var username: String
        /// For coturn's REST scheme, base64(HMAC-SHA1(secret, username)), used
        /// as is (RFC 8489 §9.2.2 key = MD5(username:realm:password)).
        public var password: String
        /// The LIFETIME asked for in Allocate and Refresh (RFC 8656 §7.1); the
        /// server may grant less. Whole seconds.
        public var requestedLifetime: Duration
        /// SOFTWARE in requests (RFC 8489 §14.14); nil leaves it out.
        public var software: String?
        /// Add FINGERPRINT to requests (RFC 8489 §14.7). Indications and
        /// ChannelData never carry one (hot path).
        public var fingerprint: Bool
        /// Retransmission timing over UDP; over TCP only `reliableTimeout` is
        /// used (RFC 8489 §6.2.2).
        public var transaction: STUNTransaction.Configuration
        /// How many 438 Stale Nonce answers one request may get before the
        /// client gives up (RFC 8489 §9.2.5 leaves the bound to the client).
        public var maximumStaleNonceRetries: Int
        /// How many fresh allocations the client may make after the server
        /// lost one (437, or refusals showing its session is gone) before it
        /// gives up; the count starts again after a successful Refresh.
        public var maximumReallocations: Int
        /// Refusals in a row (without a success in between) of requests on
        /// the allocation, other than those about one peer (403, 443), after
        /// which the allocation is taken as unusable and made afresh.
        public var refusalsBeforeReallocation: Int
        /// Bind a channel (RFC 8656 §11) to each peer once its permission is
        /// installed, and send ChannelData from then on.
        public var useChannels: Bool
        /// Peers with a permission or queued data at once (distinct IPs).
        public var maximumPeers: Int
        /// Bound on data waiting for one peer IP's permission: messages, bytes.
        public var maximumQueuedMessagesPerPeer: Int
        public var maximumQueuedBytesPerPeer: Int

        public init(
            server: STUNAddress,
            transport: TURNTransport = .udp,
            username: String,
            password: String,
            requestedLifetime: Duration = .seconds(600),
            software: String? = "tern",
            fingerprint: Bool = true,
            transaction: STUNTransaction.Configuration = STUNTransaction.Configuration(),
            maximumStaleNonceRetries: Int = 3,
            maximumReallocations: Int = 3,
            refusalsBeforeReallocation: Int = 2,
            useChannels: Bool = true,
            maximumPeers: Int = 64,
            maximumQueuedMessagesPerPeer: Int = 64,
            maximumQueuedBytesPerPeer: Int = 256 * 1024
        ) {
            self.server = server
            self.transport = transport
            self.username = username
            self.password = password
            self.requestedLifetime = requestedLifetime
            self.software = software
            self.fingerprint = fingerprint
            self.transaction = transaction
            self.maximumStaleNonceRetries = max(0, maximumStaleNonceRetries)
            self.maximumReallocations = max(0, maximumReallocations)
            self.refusalsBeforeReallocation = max(1, refusalsBeforeReallocation)
            self.useChannels = useChannels
            self.maximumPeers = max(1, maximumPeers)
            self.maximumQueuedMessagesPerPeer = max(0, maximumQueuedMessagesPerPeer)
            self.maximumQueuedBytesPerPeer = max(0, maximumQueuedBytesPerPeer)
        }

        /// The LIFETIME attribute value: whole seconds, clamped to 32 bits.
        var requestedLifetimeSeconds: UInt32 {
            let seconds = requestedLifetime.components.seconds
            return UInt32(clamping: max(0, seconds))
        }

        /// The per-request timing, with `reliable` set from the transport.
        var transactionConfiguration: STUNTransaction.Configuration {
            var configuration = transaction
            configuration.reliable = transport == .tcp
            return configuration
        }
    }
}

extension TURNClient.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Everything but the password, so that logging a configuration (or a
    /// client, or a failed test expectation) never prints it.
    public var description: String {
        "TURN \(transport) \(server) user \(username) lifetime \(requestedLifetime)"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "server": server, "transport": transport, "username": username, "password": "<redacted>",
            "requestedLifetime": requestedLifetime,
        ])
    }
}

/// Timer values from RFC 8656.
public enum TURNTimers {
    /// RFC 8656 §9: "The Permission Lifetime MUST be 300 seconds (= 5 minutes)."
    public static let permissionLifetime: Duration = .seconds(300)
    /// Refresh a permission a minute early: RFC 8656 §9 only says "before it
    /// expires"; 60 s covers the 39.5 s a UDP transaction may take.
    public static let permissionRefresh: Duration = .seconds(240)
    /// RFC 8656 §11: a channel binding lasts 10 minutes.
    public static let channelLifetime: Duration = .seconds(600)
    /// RFC 8656 §11: refresh "before the channel binding expires"; 9 minutes
    /// leaves the same minute of slack as for permissions.
    public static let channelRefresh: Duration = .seconds(540)
    /// Refresh the allocation this long before it expires (RFC 8656 §8), or
    /// at half the lifetime when that is shorter.
    public static let allocationRefreshMargin: Duration = .seconds(60)

    /// When to refresh an allocation granted `lifetime` (RFC 8656 §8).
    public static func allocationRefreshDelay(lifetime: Duration) -> Duration {
        lifetime >= allocationRefreshMargin * 2 ? lifetime - allocationRefreshMargin : lifetime / 2
    }
}
