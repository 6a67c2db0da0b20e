import TernSTUN
import TernTURN

/// An in-process TURN server for one client, modelled on coturn with
/// `use-auth-secret` (the REST scheme tern's relay hands out):
///
/// - a request without MESSAGE-INTEGRITY gets 401 with REALM and NONCE;
/// - a wrong REALM or an expired or malformed REST username gets 401;
/// - a USERNAME other than the one the session started with gets 441 (437
///   to an Allocate);
/// - the session has one NONCE at a time: a request with another gets 438
///   "Stale nonce" carrying the current one; the nonce is replaced when it
///   is `nonceLifetime` old (coturn's --stale-nonce), and a session that
///   never issued one (`loseSession()`) answers 438 "Wrong nonce" first;
/// - the key is MD5(username:realm:base64(HMAC-SHA1(secret, username))) and
///   MESSAGE-INTEGRITY must verify with it, else 401;
/// - CreatePermission and ChannelBind without an allocation get 400 Bad
///   Request, Refresh gets 437, Allocate with one alive gets 437;
/// - reason phrases carry coturn's trailing NUL; success responses carry
///   MESSAGE-INTEGRITY and FINGERPRINT.
///
/// coturn 4.6.1, src/server/ns_turn_server.c: check_stun_auth (3302-3541)
/// for the order of the checks, handle_turn_command (3907-3935) for the 400
/// a request gets when its handler finds no allocation.
///
/// It keeps the allocation, permissions (300 s) and channels (600 s) on its own
/// copy of the virtual clock, relays between the client and fake peers, and
/// records what it saw for the tests to check.
struct FakeTURNServer {
    enum Via: Hashable {
        case sendIndication
        case channelData
    }

    struct Delivery: Hashable {
        var peer: STUNAddress
        var data: [UInt8]
        var via: Via
    }

    struct Seen {
        var at: Duration
        var message: STUNMessage
    }

    let secret: String
    let realm: String
    let transport: TURNTransport
    /// Unix time at virtual time zero, for the REST expiry check.
    var unixTimeAtZero: Int
    /// RFC 8656 §7.2: the granted lifetime is max(min(requested, maximum), default).
    var defaultLifetime: UInt32 = 600
    var maximumLifetime: UInt32 = 3600

    static let clientMapped = STUNAddress.ipv4(198, 51, 100, 7, port: 40_000)
    static let relayed = relayed(1)

    /// The relayed address of the `number`th allocation (from 1).
    static func relayed(_ number: Int) -> STUNAddress {
        .ipv4(203, 0, 113, 9, port: UInt16(clamping: 49_151 + number))
    }

    // MARK: Fault injection

    /// Answer the next N requests that carry a valid current nonce with 438
    /// and a new nonce anyway (coturn's nonce expiry).
    var staleNonceAnswers = 0
    /// Replace the nonce once it is this old (coturn's --stale-nonce).
    var nonceLifetime: Duration?
    /// Methods whose first authenticated request with the current nonce gets
    /// 438 and a new nonce, as if the nonce had just expired.
    var staleNonceOnFirst: Set<STUNMethod> = []
    /// RFC 8489 §9.2: nonces start with this cookie (e.g. "obMatJos2AAAB",
    /// "Password algorithms" set); "" for coturn's plain nonces.
    var nonceCookie = ""
    /// PASSWORD-ALGORITHMS sent in 401 and 438 and required back in every
    /// authenticated request with PASSWORD-ALGORITHM MD5 (else 400); nil: none.
    var passwordAlgorithms: [UInt8]?
    /// Drop the next N requests without answering.
    var dropRequests = 0
    /// Answer an authenticated request of this method with this error.
    var forcedErrors: [STUNMethod: STUNErrorCode] = [:]
    /// The same for the next such request only.
    var forcedOnce: [STUNMethod: STUNErrorCode] = [:]
    /// Sign success responses with a wrong key.
    var forgeIntegrity = false

    // MARK: State

    var nonce: String { nonceCookie + "nonce-\(nonceCounter)" }
    private var nonceCounter = 0
    private var nonceIssuedAt: Duration = .zero
    /// False in a session that has not issued a nonce yet (coturn's empty ss->nonce).
    private var nonceIssued = true
    /// The USERNAME the session authenticated first.
    private var sessionUser: String?
    /// 438s this server sent, with the reason phrase.
    private(set) var staleNonceReasons: [String] = []
    private(set) var allocationExpiresAt: Duration?
    /// Allocations made so far; each gets a relayed port of its own,
    /// `relayed` for the first.
    private(set) var allocationCount = 0
    private(set) var permissions: [STUNAddress.Family: Duration] = [:]
    private(set) var channels: [UInt16: (peer: STUNAddress, expiresAt: Duration)] = [:]
    private var framer = TURNStreamFramer()

    // MARK: Records

    /// Every request that was not dropped, in order, with its arrival time.
    private(set) var requests: [Seen] = []
    /// Data the client relayed to peers.
    private(set) var deliveries: [Delivery] = []
    /// Sends and ChannelData the server dropped (no permission, unbound channel).
    private(set) var droppedData = 0
    /// Every message the server sent to the client (one per entry).
    private(set) var sent: [[UInt8]] = []

    init(secret: String = "s3cr3t", realm: String = "tern.test", transport: TURNTransport = .udp, unixTimeAtZero: Int = 1_700_000_000) {
        self.secret = secret
        self.realm = realm
        self.transport = transport
        self.unixTimeAtZero = unixTimeAtZero
    }

    func allocationAlive(at now: Duration) -> Bool {
        guard let expiresAt = allocationExpiresAt else { return false }
        return now < expiresAt
    }

    func permissionAlive(for peer: STUNAddress, at now: Duration) -> Bool {
        guard let expiresAt = permissions[peer.family] else { return false }
        return now < expiresAt
    }

    func channel(for peer: STUNAddress, at now: Duration) -> UInt16? {
        channels.first { $0.value.peer == peer && now < $0.value.expiresAt }?.key
    }

    /// Forgets the client's session as coturn does when a request from the
    /// client's 5-tuple reaches a new session object: no allocation, no
    /// permissions or channels, no nonce issued, no user.
    mutating func loseSession() {
        allocationExpiresAt = nil
        permissions.removeAll()
        channels.removeAll()
        nonceIssued = false
        sessionUser = nil
    }

    /// Requests of one method, in order.
    func requests(_ method: STUNMethod) -> [Seen] {
        requests.filter { $0.message.method == method }
    }

    // MARK: Input from the client

    /// One datagram from the client (UDP); returns the datagrams to send back.
    mutating func receive(datagram: [UInt8], now: Duration) -> [[UInt8]] {
        let replies = handle(datagram[...], now: now)
        sent.append(contentsOf: replies)
        return replies
    }

    /// Bytes from the client's TCP stream; returns the bytes to send back.
    mutating func receive(stream bytes: [UInt8], now: Duration) -> [UInt8] {
        framer.append(bytes)
        var out: [UInt8] = []
        while let frame = try? framer.nextFrame() {
            for reply in handle(frame, now: now) {
                sent.append(reply)
                out.append(contentsOf: reply)
            }
        }
        return out
    }

    /// A fake peer sends `data` to the relayed address; returns the message
    /// for the client, or nil when the server drops it (no permission, RFC 8656 §10.3).
    mutating func peerSend(_ data: [UInt8], from peer: STUNAddress, now: Duration) -> [UInt8]? {
        expireIfDue(now: now)
        guard allocationAlive(at: now), permissionAlive(for: peer, at: now) else {
            droppedData += 1
            return nil
        }
        let bytes: [UInt8]
        if let channel = channel(for: peer, at: now) {
            // RFC 8656 §11.5 / §12.5: ChannelData, padded over TCP.
            bytes = (try? ChannelData(channel: channel, payload: data).encode(padded: transport == .tcp)) ?? []
        } else {
            // RFC 8656 §11.3: a Data indication.
            let indication = STUNMessage(.indication, .data, transactionID: .random(), attributes: [.xorPeerAddress(peer), .data(data)])
            bytes = (try? indication.encode()) ?? []
        }
        sent.append(bytes)
        return bytes
    }

    // MARK: Processing

    private mutating func expireIfDue(now: Duration) {
        if let expiresAt = allocationExpiresAt, now >= expiresAt {
            allocationExpiresAt = nil
            permissions.removeAll()
            channels.removeAll()
        }
    }

    private mutating func handle(_ bytes: ArraySlice<UInt8>, now: Duration) -> [[UInt8]] {
        expireIfDue(now: now)
        guard let first = bytes.first else { return [] }
        if first >> 6 == 0b01 {
            relayChannelData(bytes, now: now)
            return []
        }
        guard let message = try? STUNMessage.decode(bytes) else { return [] }
        switch message.messageClass {
        case .indication:
            relaySendIndication(message, now: now)
            return []
        case .request:
            if dropRequests > 0 {
                dropRequests -= 1
                return []
            }
            requests.append(Seen(at: now, message: message))
            return [answer(message, bytes: bytes, now: now)]
        case .successResponse, .errorResponse:
            return []
        }
    }

    private mutating func relaySendIndication(_ message: STUNMessage, now: Duration) {
        guard message.method == .send, allocationAlive(at: now), let peer = message.xorPeerAddresses.first,
              let data = message.data, permissionAlive(for: peer, at: now)
        else {
            droppedData += 1
            return
        }
        deliveries.append(Delivery(peer: peer, data: data, via: .sendIndication))
    }

    private mutating func relayChannelData(_ bytes: ArraySlice<UInt8>, now: Duration) {
        // Over TCP the frame includes the padding; the datagram decoder allows it.
        guard let message = try? ChannelData.decode(datagram: bytes), allocationAlive(at: now),
              let binding = channels[message.channel], now < binding.expiresAt, permissionAlive(for: binding.peer, at: now)
        else {
            droppedData += 1
            return
        }
        deliveries.append(Delivery(peer: binding.peer, data: Array(message.payload), via: .channelData))
    }

    private mutating func rotateNonce(now: Duration) {
        nonceCounter += 1
        nonceIssuedAt = now
    }

    /// coturn's order (check_stun_auth): a new nonce if none was issued or it
    /// expired, integrity present, realm, username, nonce (438), then the
    /// user's key (REST expiry), then the HMAC.
    private mutating func answer(_ request: STUNMessage, bytes: ArraySlice<UInt8>, now: Duration) -> [UInt8] {
        let newNonce = !nonceIssued
        if newNonce || nonceLifetime.map({ now - nonceIssuedAt > $0 }) == true {
            rotateNonce(now: now)
            nonceIssued = true
        }
        guard request.messageIntegrity != nil else {
            return error(request, .unauthenticated, challenge: true)
        }
        guard let username = request.username, let realm = request.realm, let nonce = request.nonce else {
            return error(request, .badRequest)
        }
        guard realm == self.realm else { return error(request, .unauthenticated, challenge: true) }
        if let sessionUser, sessionUser != username {
            return error(request, request.method == .allocate ? .allocationMismatch : .wrongCredentials)
        }
        sessionUser = username
        if newNonce {
            return staleNonce(request, reason: "Wrong nonce")
        }
        if nonce != self.nonce {
            return staleNonce(request, reason: "Stale nonce")
        }
        if staleNonceAnswers > 0 || staleNonceOnFirst.contains(request.method) {
            if staleNonceAnswers > 0 { staleNonceAnswers -= 1 }
            staleNonceOnFirst.remove(request.method)
            rotateNonce(now: now)
            return staleNonce(request, reason: "Stale nonce")
        }
        // REST scheme: "expiry:user" with the expiry in Unix seconds.
        let unixNow = unixTimeAtZero + Int(now.components.seconds)
        guard let colon = username.firstIndex(of: ":"), let expiry = Int(username[..<colon]), expiry >= unixNow else {
            return error(request, .unauthenticated, challenge: true)
        }
        let password = TestCrypto.base64(TestCrypto.hmacSHA1(key: Array(secret.utf8), message: Array(username.utf8)))
        let key = STUNKey(bytes: TestCrypto.md5(Array("\(username):\(realm):\(password)".utf8)))
        guard (try? STUNMessage.checkIntegrity(of: bytes, key: key)) != nil else {
            return error(request, .unauthenticated, challenge: true)
        }
        if let passwordAlgorithms {
            // RFC 8489 §9.2.4: the list as the server sent it, and the choice.
            guard request.attributes.contains(.passwordAlgorithms(passwordAlgorithms)),
                  request.attributes.contains(.passwordAlgorithm([0x00, 0x01, 0x00, 0x00]))
            else { return error(request, .badRequest, key: key) }
        }
        if let forced = forcedOnce.removeValue(forKey: request.method) ?? forcedErrors[request.method] {
            return error(request, forced, key: key)
        }
        switch request.method {
        case .allocate: return allocate(request, key: key, now: now)
        case .refresh: return refresh(request, key: key, now: now)
        case .createPermission: return createPermission(request, key: key, now: now)
        case .channelBind: return channelBind(request, key: key, now: now)
        default: return error(request, .badRequest, key: key)
        }
    }

    private func grantedLifetime(_ requested: UInt32?) -> UInt32 {
        max(min(requested ?? defaultLifetime, maximumLifetime), defaultLifetime)
    }

    private mutating func allocate(_ request: STUNMessage, key: STUNKey, now: Duration) -> [UInt8] {
        guard !allocationAlive(at: now) else { return error(request, .allocationMismatch, key: key) }
        guard request.attributes.contains(.requestedTransport(17)) else {
            return error(request, .unsupportedTransportProtocol, key: key)
        }
        let lifetime = grantedLifetime(request.lifetime)
        allocationExpiresAt = now + .seconds(Int64(lifetime))
        allocationCount += 1
        return success(request, key: key, [
            .xorRelayedAddress(Self.relayed(allocationCount)), .xorMappedAddress(Self.clientMapped), .lifetime(lifetime),
        ])
    }

    private mutating func refresh(_ request: STUNMessage, key: STUNKey, now: Duration) -> [UInt8] {
        guard allocationAlive(at: now) else { return error(request, .allocationMismatch, key: key) }
        if request.lifetime == 0 {
            allocationExpiresAt = nil
            permissions.removeAll()
            channels.removeAll()
            return success(request, key: key, [.lifetime(0)])
        }
        let lifetime = grantedLifetime(request.lifetime)
        allocationExpiresAt = now + .seconds(Int64(lifetime))
        return success(request, key: key, [.lifetime(lifetime)])
    }

    private mutating func createPermission(_ request: STUNMessage, key: STUNKey, now: Duration) -> [UInt8] {
        guard allocationAlive(at: now) else { return error(request, .badRequest, key: key) }
        let peers = request.xorPeerAddresses
        guard !peers.isEmpty else { return error(request, .badRequest, key: key) }
        guard peers.allSatisfy({ $0.family.code == Self.relayed.family.code }) else {
            return error(request, .peerAddressFamilyMismatch, key: key)
        }
        for peer in peers { permissions[peer.family] = now + TURNTimers.permissionLifetime }
        return success(request, key: key, [])
    }

    private mutating func channelBind(_ request: STUNMessage, key: STUNKey, now: Duration) -> [UInt8] {
        guard allocationAlive(at: now) else { return error(request, .badRequest, key: key) }
        guard let number = request.channelNumber, ChannelData.validChannels.contains(number),
              let peer = request.xorPeerAddresses.first
        else { return error(request, .badRequest, key: key) }
        // RFC 8656 §11.2: a channel is bound to one peer and a peer to one channel.
        if let existing = channels[number], existing.peer != peer, now < existing.expiresAt {
            return error(request, .badRequest, key: key)
        }
        if let other = channel(for: peer, at: now), other != number {
            return error(request, .badRequest, key: key)
        }
        channels[number] = (peer, now + TURNTimers.channelLifetime)
        // RFC 8656 §11.2: binding also installs or refreshes the permission.
        permissions[peer.family] = now + TURNTimers.permissionLifetime
        return success(request, key: key, [])
    }

    private func success(_ request: STUNMessage, key: STUNKey, _ attributes: [STUNAttribute]) -> [UInt8] {
        let response = STUNMessage(.successResponse, request.method, transactionID: request.transactionID,
                                   attributes: attributes + [.software("fake-coturn")])
        let signingKey = forgeIntegrity ? STUNKey(bytes: [UInt8](repeating: 0x42, count: 16)) : key
        return (try? response.encode(integrity: signingKey, fingerprint: true)) ?? []
    }

    private mutating func staleNonce(_ request: STUNMessage, reason: String) -> [UInt8] {
        staleNonceReasons.append(reason)
        return error(request, STUNErrorCode(code: 438, reason: reason), challenge: true)
    }

    private func error(_ request: STUNMessage, _ code: STUNErrorCode, challenge: Bool = false, key: STUNKey? = nil) -> [UInt8] {
        // coturn counts the C string's terminating NUL in the reason phrase.
        var attributes: [STUNAttribute] = [.errorCode(STUNErrorCode(code: code.code, reason: code.reason + "\0"))]
        if challenge {
            attributes += [.realm(realm), .nonce(nonce)]
            if let passwordAlgorithms { attributes.append(.passwordAlgorithms(passwordAlgorithms)) }
        }
        attributes.append(.software("fake-coturn"))
        let response = STUNMessage(.errorResponse, request.method, transactionID: request.transactionID, attributes: attributes)
        return (try? response.encode(integrity: key, fingerprint: true)) ?? []
    }
}
