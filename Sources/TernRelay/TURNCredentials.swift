import TernCrypto
import Foundation
import TernRendezvous

/// The TURN servers the relay announces and the secret it shares with them.
public struct TURNConfiguration: Sendable {
    public var uris: [String]
    public var secret: [UInt8]
    /// How long minted credentials stay valid, in seconds.
    public var ttl: Int
    /// The name part of minted usernames.
    public var user: String
    /// The `turns:` servers' certificate pin to hand out (`--turn-tls-cert`).
    public var tlsPin: String?

    public init(uris: [String], secret: [UInt8], ttl: Int = 12 * 3600, user: String = "tern") {
        self.uris = uris
        self.secret = secret
        self.ttl = ttl
        self.user = user
    }
}

/// Mints short-lived TURN credentials in coturn's shared-secret REST scheme
/// (`use-auth-secret`): username "<unix expiry>:<user>", password
/// base64(HMAC-SHA1(secret, username)). coturn recomputes the password from
/// the username and refuses it once the expiry has passed.
public struct TURNCredentialMinter: Sendable {
    public let configuration: TURNConfiguration

    public init(_ configuration: TURNConfiguration) {
        self.configuration = configuration
    }

    public func mint(now: Date = Date()) -> TURNCredentials {
        let expiry = Int(now.timeIntervalSince1970) + configuration.ttl
        let username = "\(expiry):\(configuration.user)"
        // HMAC fails only on allocation failure; an empty password makes
        // coturn refuse, which the client reports.
        let mac = (try? HashFunction.sha1.authenticationCode(key: configuration.secret, message: Array(username.utf8))) ?? []
        return TURNCredentials(
            uris: configuration.uris, username: username,
            credential: Data(mac).base64EncodedString(), ttl: configuration.ttl, tlsPin: configuration.tlsPin)
    }
}
