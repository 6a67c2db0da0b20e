import TernCollections
import TernSTUN

/// A sans-IO TURN client (RFC 8656) for one allocation on one server, over UDP
/// or TCP. It relays UDP to peers.
///
/// No sockets, clocks or threads: time is a `Duration` since an origin the
/// driver picks (the convention of `STUNTransaction`). The driver owns one UDP
/// socket (or one TCP connection) to the server and pumps the client:
///
///     var client = TURNClient(configuration: configuration)
///     client.start(now: now)
///     loop {
///         while let bytes = client.pollTransmit() { socket.write(bytes) }
///         while let event = client.pollEvent() { handle(event) }
///         arm(timer: client.nextDeadline)
///         // on a datagram from the server: client.handleDatagram(bytes, now: now)
///         // on TCP bytes: client.handleStreamBytes(bytes, now: now)
///         // on the timer: client.advanceTime(now: now)
///         // to relay data: try client.send(data, to: peer, now: now)
///     }
///
/// What it does: Allocate with the 401 challenge and long-term credentials
/// (RFC 8656 §7, RFC 8489 §9.2), 438 Stale Nonce retries on every request
/// (a new transaction with the 438's NONCE), a fresh allocation when the
/// server lost the old one (437, or refusals after a 438), Refresh before
/// expiry (§8), CreatePermission on demand with data queued until it succeeds
/// and refreshed every 4 minutes (§9), Send and Data indications (§10),
/// ChannelBind and ChannelData once a permission exists, refreshed every 9
/// minutes (§11, §12), and Refresh with LIFETIME 0 to deallocate (§8).
public struct TURNClient: Sendable {
    public let configuration: Configuration
    /// What was dropped and why; never reset.
    public private(set) var counters = TURNCounters()

    /// RFC 8656 §12.4: ChannelData carries at most 65535 bytes; a Send
    /// indication (RFC 8656 §10.1) has a 0xFFFC-byte body, of which
    /// XOR-PEER-ADDRESS (IPv6) and the DATA header take 28.
    public static let maximumPayload = 0xFFFC - 24 - 4

    // MARK: State

    enum State: Sendable {
        /// Before `start`.
        case idle
        /// An Allocate is in flight (RFC 8656 §7.1).
        case allocating
        case allocated(Allocation)
        /// The Refresh with LIFETIME 0 is in flight (RFC 8656 §8).
        case deallocating
        /// Deallocated. Terminal.
        case closed
        /// Terminal.
        case failed(TURNError)
    }

    struct Allocation: Sendable {
        var relayed: STUNAddress
        var mapped: STUNAddress
        var expiresAt: Duration
        /// Nil while a Refresh is in flight.
        var refreshAt: Duration?
    }

    /// The long-term credential state (RFC 8489 §9.2): learned from the first
    /// 401, updated by 438.
    struct Credentials: Sendable {
        var realm: String
        var nonce: String
        var key: STUNKey
        /// The server's PASSWORD-ALGORITHMS, echoed in every request with
        /// PASSWORD-ALGORITHM MD5, when its nonce cookie asks for them
        /// (RFC 8489 §9.2.4); nil otherwise (coturn 4.6.1).
        var passwordAlgorithms: [UInt8]?
    }

    enum Purpose: Hashable, Sendable {
        case allocate
        /// A Refresh with LIFETIME 0 sent because an Allocate got 437: the
        /// server still holds an allocation for this 5-tuple, which is given
        /// up before asking again (RFC 8656 §7.2, §8).
        case release
        case refresh(lifetime: UInt32)
        /// A Refresh sent to learn whether the allocation still lives
        /// (`checkAllocation`): any refusal, or no answer, means it does not.
        case check
        case createPermission(peer: STUNAddress)
        case channelBind(channel: UInt16, peer: STUNAddress)

        var method: STUNMethod {
            switch self {
            case .allocate: return .allocate
            case .release, .refresh, .check: return .refresh
            case .createPermission: return .createPermission
            case .channelBind: return .channelBind
            }
        }
    }

    /// One request in flight.
    struct Request: Sendable {
        var purpose: Purpose
        var bytes: [UInt8]
        var transaction: STUNTransaction
        /// The key the request was signed with; the response must verify with it.
        var key: STUNKey?
        var staleNonceRetries: Int
    }

    /// A permission for one peer IP (RFC 8656 §9: the port is ignored).
    struct Permission: Sendable {
        /// The peer that caused it, for CreatePermission and events.
        var peer: STUNAddress
        /// Nil until the first CreatePermission succeeds.
        var expiresAt: Duration?
        /// When to refresh; nil while a CreatePermission is in flight or
        /// before the allocation exists.
        var refreshAt: Duration?
        var inFlight = false
        /// Data waiting for the permission, bounded by the configuration.
        var queue: [(peer: STUNAddress, data: [UInt8])] = []
        var queuedBytes = 0
    }

    /// A channel bound or being bound to one peer transport address (RFC 8656 §11).
    struct Channel: Sendable {
        var number: UInt16
        var bound = false
        var refreshAt: Duration?
        var inFlight = true
    }

    private var state: State = .idle
    private var credentials: Credentials?
    private var requests: [STUNTransactionID: Request] = [:]
    private var permissions: [STUNAddress.Family: Permission] = [:]
    private var channels: [STUNAddress: Channel] = [:]
    private var channelPeers: [UInt16: STUNAddress] = [:]
    /// Peers whose ChannelBind failed: they keep using Send indications.
    private var channelRefused: Set<STUNAddress> = []
    /// Channels are never reused (RFC 8656 §11: not for 5 minutes after expiry).
    private var nextChannel: UInt16 = ChannelData.validChannels.lowerBound
    private var framer = TURNStreamFramer()
    /// Fresh allocations since the last successful Refresh.
    private var reallocations = 0
    /// Refusals of requests on the allocation since its last success.
    private var refusalsSinceSuccess = 0
    /// Whether the current Allocate attempt already released an allocation
    /// the server held for this 5-tuple.
    private var released = false
    private var transmitQueue = FIFO<[UInt8]>()
    private var eventQueue = FIFO<TURNEvent>()

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Observers

    /// The relayed transport address, once allocated.
    public var relayedAddress: STUNAddress? {
        if case .allocated(let allocation) = state { return allocation.relayed }
        return nil
    }

    /// The client's transport address as the server saw it, once allocated.
    public var mappedAddress: STUNAddress? {
        if case .allocated(let allocation) = state { return allocation.mapped }
        return nil
    }

    public var isAllocated: Bool { relayedAddress != nil }

    /// True once the client failed or deallocated: nothing more will happen.
    public var isFinished: Bool {
        switch state {
        case .closed, .failed: return true
        case .idle, .allocating, .allocated, .deallocating: return false
        }
    }

    /// The error that ended the allocation, if one did.
    public var failure: TURNError? {
        if case .failed(let error) = state { return error }
        return nil
    }

    /// The channel bound to `peer`, once the ChannelBind succeeded.
    public func boundChannel(for peer: STUNAddress) -> UInt16? {
        guard let channel = channels[peer], channel.bound else { return nil }
        return channel.number
    }

    /// Whether a permission for `peer`'s IP is installed at `now`.
    public func hasPermission(for peer: STUNAddress, now: Duration) -> Bool {
        guard let expiresAt = permissions[peer.family]?.expiresAt else { return false }
        return expiresAt > now
    }

    // MARK: Driver interface

    /// Sends the first Allocate (RFC 8656 §7.1). Does nothing after the first call.
    public mutating func start(now: Duration) {
        guard case .idle = state else { return }
        state = .allocating
        sendRequest(.allocate, staleNonceRetries: 0, now: now)
    }

    /// The next message to write to the server's socket (one datagram over UDP;
    /// bytes to append to the stream over TCP).
    public mutating func pollTransmit() -> [UInt8]? {
        transmitQueue.pop()
    }

    public mutating func pollEvent() -> TURNEvent? {
        eventQueue.pop()
    }

    /// When `advanceTime` must be called next; nil when nothing is scheduled.
    public var nextDeadline: Duration? {
        switch state {
        case .idle, .closed, .failed:
            return nil
        case .allocating, .allocated, .deallocating:
            break
        }
        var earliest: Duration?
        func consider(_ time: Duration?) {
            guard let time else { return }
            if let current = earliest, current <= time { return }
            earliest = time
        }
        for request in requests.values { consider(request.transaction.deadline) }
        if case .allocated(let allocation) = state {
            consider(allocation.refreshAt)
            consider(allocation.expiresAt)
            for permission in permissions.values { consider(permission.refreshAt) }
            for channel in channels.values { consider(channel.refreshAt) }
        }
        return earliest
    }

    /// Runs the timers due at `now`: retransmissions and timeouts (RFC 8489
    /// §6.2), and the refreshes of the allocation, permissions and channels.
    public mutating func advanceTime(now: Duration) {
        for id in Array(requests.keys) {
            guard !isFinished, var request = requests[id] else { continue }
            switch request.transaction.poll(now: now) {
            case .transmit:
                counters.retransmissions += 1
                transmitQueue.push(request.bytes)
                requests[id] = request
            case .timedOut:
                requests[id] = nil
                requestFailed(request, error: .timedOut(request.purpose.method), now: now)
            case .wait, .completed:
                requests[id] = request
            }
        }

        guard case .allocated(var allocation) = state else { return }
        // RFC 8656 §8: without a successful Refresh the allocation is gone.
        guard now < allocation.expiresAt else {
            fail(.allocationExpired)
            return
        }
        if let refreshAt = allocation.refreshAt, now >= refreshAt {
            allocation.refreshAt = nil
            state = .allocated(allocation)
            sendRequest(.refresh(lifetime: configuration.requestedLifetimeSeconds), staleNonceRetries: 0, now: now)
        }

        // RFC 8656 §9: refresh permissions before their 5 minutes run out.
        for (ip, var permission) in permissions {
            guard !isFinished else { return }
            guard let refreshAt = permission.refreshAt, now >= refreshAt, !permission.inFlight else { continue }
            permission.refreshAt = nil
            permission.inFlight = true
            permissions[ip] = permission
            sendRequest(.createPermission(peer: permission.peer), staleNonceRetries: 0, now: now)
        }
        // RFC 8656 §11: refresh channel bindings before their 10 minutes run out.
        for (peer, var channel) in channels {
            guard !isFinished else { return }
            guard let refreshAt = channel.refreshAt, now >= refreshAt, !channel.inFlight else { continue }
            channel.refreshAt = nil
            channel.inFlight = true
            channels[peer] = channel
            sendRequest(.channelBind(channel: channel.number, peer: peer), staleNonceRetries: 0, now: now)
        }
    }

    /// One datagram from the server (UDP). Malformed or unexpected datagrams
    /// are counted and dropped.
    public mutating func handleDatagram(_ datagram: ArraySlice<UInt8>, now: Duration) {
        guard !isFinished else { return }
        process(datagram, now: now)
    }

    public mutating func handleDatagram(_ datagram: [UInt8], now: Duration) {
        handleDatagram(datagram[...], now: now)
    }

    /// Bytes from the TCP connection to the server, in chunks of any size
    /// (RFC 8656 §12.5). A stream that cannot be framed fails the client with
    /// `.streamCorrupted`: close the connection.
    public mutating func handleStreamBytes(_ bytes: ArraySlice<UInt8>, now: Duration) {
        guard !isFinished else { return }
        framer.append(bytes)
        while !isFinished {
            let frame: ArraySlice<UInt8>?
            do {
                frame = try framer.nextFrame()
            } catch {
                fail(error)
                return
            }
            guard let frame else { return }
            process(frame, now: now)
        }
    }

    public mutating func handleStreamBytes(_ bytes: [UInt8], now: Duration) {
        handleStreamBytes(bytes[...], now: now)
    }

    /// The driver's TCP connection to the server closed. Over TCP the
    /// allocation lives and dies with the connection (RFC 8656 §3.1).
    public mutating func handleConnectionClosed(now: Duration) {
        switch state {
        case .deallocating:
            finishDeallocation()
        case .idle, .allocating, .allocated:
            fail(.connectionClosed)
        case .closed, .failed:
            break
        }
    }

    /// Relays `data` to `peer` through the allocation.
    ///
    /// With a permission for the peer's IP, the data leaves at once: as
    /// ChannelData when a channel is bound, otherwise as a Send indication
    /// (RFC 8656 §10.1), which also starts a ChannelBind. Without one, the
    /// data waits in a bounded queue and a CreatePermission goes out (RFC 8656
    /// §9); before the allocation exists, it waits for that too.
    public mutating func send(_ data: [UInt8], to peer: STUNAddress, now: Duration) throws(TURNError) {
        var allocated = false
        switch state {
        case .idle, .allocating:
            break
        case .allocated(let allocation):
            // RFC 8656 §9.1 / §10.1: the peer must be of the relayed address's family (443).
            guard allocation.relayed.family.code == peer.family.code else { throw .peerFamilyMismatch(peer) }
            allocated = true
        case .deallocating, .closed, .failed:
            throw .notAllocated
        }
        guard data.count <= Self.maximumPayload else { throw .payloadTooLarge(data.count) }

        let ip = peer.family
        if allocated, let expiresAt = permissions[ip]?.expiresAt, expiresAt > now {
            transmitData(data, to: peer, now: now)
            return
        }

        var permission: Permission
        if let existing = permissions[ip] {
            permission = existing
        } else {
            guard permissions.count < configuration.maximumPeers else { throw .tooManyPeers }
            permission = Permission(peer: peer)
        }
        guard permission.queue.count < configuration.maximumQueuedMessagesPerPeer,
              permission.queuedBytes + data.count <= configuration.maximumQueuedBytesPerPeer
        else {
            counters.droppedSends += 1
            if permissions[ip] == nil { permissions[ip] = permission }
            throw .peerQueueFull(peer)
        }
        permission.queue.append((peer, data))
        permission.queuedBytes += data.count
        let needsRequest = allocated && !permission.inFlight
        if needsRequest {
            permission.inFlight = true
            permission.refreshAt = nil
        }
        permissions[ip] = permission
        if needsRequest {
            sendRequest(.createPermission(peer: peer), staleNonceRetries: 0, now: now)
        }
    }

    /// Asks the server at once whether the allocation still lives: a
    /// Refresh (RFC 8656 §8) with the usual lifetime. An answer refreshes it
    /// (`.refreshed`); a refusal other than of the credentials, or no answer
    /// within the transaction's timeout, gives it up for a fresh allocation
    /// (`.allocationLost`, then `.allocated`), unlike a scheduled Refresh,
    /// which keeps trying until the allocation expires. For the ICE restart
    /// after a path died: the path to the TURN server may have died with it
    /// (a NAT that lost its mapping, a route that moved). Does nothing unless
    /// allocated.
    public mutating func checkAllocation(now: Duration) {
        guard case .allocated = state else { return }
        sendRequest(.check, staleNonceRetries: 0, now: now)
    }

    /// Gives the allocation up and asks for a fresh one at once, without
    /// asking the server about the old one: the local address it was made
    /// from went away (the machine moved to another network), so its
    /// 5-tuple (RFC 8656 §2) is gone and nothing the server relays to it
    /// arrives. The old allocation expires on the server. `.allocationLost`
    /// then `.allocated` follow, as when the server lost it. Does nothing
    /// unless allocated.
    public mutating func allocateAfresh(now: Duration) {
        guard case .allocated(let allocation) = state else { return }
        counters.reallocations += 1
        allocateAgain(losing: allocation, because: .localAddressGone, now: now)
    }

    /// Ends the allocation with a Refresh whose LIFETIME is 0 (RFC 8656 §8);
    /// `.deallocated` follows when it is answered or times out. Before the
    /// allocation exists this only stops the client (an allocation the server
    /// may have made then expires on its own, or with the TCP connection).
    public mutating func deallocate(now: Duration) {
        switch state {
        case .allocated:
            dropAllPeerState()
            requests.removeAll()
            state = .deallocating
            sendRequest(.refresh(lifetime: 0), staleNonceRetries: 0, now: now)
        case .idle, .allocating:
            dropAllPeerState()
            finishDeallocation()
        case .deallocating, .closed, .failed:
            break
        }
    }

    // MARK: Receiving

    private mutating func process(_ message: ArraySlice<UInt8>, now: Duration) {
        guard let first = message.first else {
            counters.malformed += 1
            return
        }
        // RFC 8656 §12: 0b00 starts STUN, 0b01 ChannelData.
        switch first >> 6 {
        case 0b00: processSTUN(message, now: now)
        case 0b01: processChannelData(message)
        default: counters.malformed += 1
        }
    }

    /// RFC 8656 §12.6: ChannelData on a bound channel is data from its peer.
    private mutating func processChannelData(_ bytes: ArraySlice<UInt8>) {
        let message: ChannelData
        do {
            // Over TCP the frame includes up to three bytes of padding, which
            // the datagram decoder accepts (RFC 8656 §12.5).
            message = try ChannelData.decode(datagram: bytes)
        } catch {
            counters.malformed += 1
            return
        }
        guard case .allocated = state, let peer = channelPeers[message.channel] else {
            counters.unexpected += 1
            return
        }
        eventQueue.push(.received(data: Array(message.payload), from: peer))
    }

    private mutating func processSTUN(_ bytes: ArraySlice<UInt8>, now: Duration) {
        let message: STUNMessage
        do {
            message = try STUNMessage.decode(bytes)
        } catch {
            counters.malformed += 1
            return
        }
        switch message.messageClass {
        case .request:
            counters.unexpected += 1
        case .indication:
            processIndication(message)
        case .successResponse, .errorResponse:
            guard let request = requests[message.transactionID], request.purpose.method == message.method else {
                counters.unexpected += 1
                return
            }
            // RFC 8489 §9.2.5: a response to an authenticated request must
            // verify with the same key. Error responses often cannot carry
            // one (401, 438), but one that does must verify too.
            if let key = request.key, message.messageClass == .successResponse || message.messageIntegrity != nil {
                do {
                    try STUNMessage.checkIntegrity(of: bytes, key: key)
                } catch {
                    counters.integrityFailures += 1
                    return
                }
            }
            requests[message.transactionID] = nil
            if message.messageClass == .successResponse {
                requestSucceeded(request.purpose, response: message, now: now)
            } else {
                requestRefused(request, response: message, now: now)
            }
        }
    }

    /// RFC 8656 §10.4: a Data indication from a peer we hold a permission for.
    private mutating func processIndication(_ message: STUNMessage) {
        guard message.method == .data, case .allocated = state,
              let peer = message.xorPeerAddresses.first, let data = message.data,
              permissions[peer.family] != nil
        else {
            counters.unexpected += 1
            return
        }
        eventQueue.push(.received(data: data, from: peer))
    }

    // MARK: Responses

    private mutating func requestSucceeded(_ purpose: Purpose, response: STUNMessage, now: Duration) {
        refusalsSinceSuccess = 0
        switch purpose {
        case .allocate:
            guard case .allocating = state else { return }
            // RFC 8656 §7.3: the success response carries both addresses and LIFETIME.
            guard let relayed = response.xorRelayedAddress else {
                fail(.malformedResponse(method: .allocate, missing: "XOR-RELAYED-ADDRESS"))
                return
            }
            guard let mapped = response.xorMappedAddress else {
                fail(.malformedResponse(method: .allocate, missing: "XOR-MAPPED-ADDRESS"))
                return
            }
            let seconds = response.lifetime ?? configuration.requestedLifetimeSeconds
            guard seconds > 0 else {
                fail(.malformedResponse(method: .allocate, missing: "a non-zero LIFETIME"))
                return
            }
            let lifetime = Duration.seconds(Int64(seconds))
            state = .allocated(Allocation(
                relayed: relayed, mapped: mapped, expiresAt: now + lifetime,
                refreshAt: now + TURNTimers.allocationRefreshDelay(lifetime: lifetime)))
            eventQueue.push(.allocated(relayed: relayed, mapped: mapped, lifetime: lifetime))
            requestQueuedPermissions(relayed: relayed, now: now)

        case .release:
            guard case .allocating = state else { return }
            sendRequest(.allocate, staleNonceRetries: 0, now: now)

        case .refresh(lifetime: 0):
            finishDeallocation()

        case .refresh, .check:
            guard case .allocated(var allocation) = state else { return }
            // The allocation lives on: a later loss may be met afresh again.
            reallocations = 0
            // RFC 8656 §8.3: LIFETIME in the response is the new lifetime.
            let seconds = response.lifetime ?? configuration.requestedLifetimeSeconds
            guard seconds > 0 else {
                fail(.allocationExpired)
                return
            }
            let lifetime = Duration.seconds(Int64(seconds))
            allocation.expiresAt = now + lifetime
            allocation.refreshAt = now + TURNTimers.allocationRefreshDelay(lifetime: lifetime)
            state = .allocated(allocation)
            eventQueue.push(.refreshed(lifetime: lifetime))

        case .createPermission(let peer):
            guard case .allocated = state, var permission = permissions[peer.family] else { return }
            let first = permission.expiresAt == nil
            // RFC 8656 §9: a permission lasts 300 s from the last success.
            permission.expiresAt = now + TURNTimers.permissionLifetime
            permission.refreshAt = now + TURNTimers.permissionRefresh
            permission.inFlight = false
            let queued = permission.queue
            permission.queue = []
            permission.queuedBytes = 0
            permissions[peer.family] = permission
            if first { eventQueue.push(.permissionCreated(peer: permission.peer)) }
            for item in queued { transmitData(item.data, to: item.peer, now: now) }

        case .channelBind(let number, let peer):
            guard case .allocated = state, var channel = channels[peer], channel.number == number else { return }
            let first = !channel.bound
            channel.bound = true
            channel.inFlight = false
            channel.refreshAt = now + TURNTimers.channelRefresh
            channels[peer] = channel
            if first { eventQueue.push(.channelBound(channel: number, peer: peer)) }
        }
    }

    /// An error response: retry 401 and 438 with credentials (RFC 8489
    /// §9.2.5), fail on anything else.
    private mutating func requestRefused(_ request: Request, response: STUNMessage, now: Duration) {
        let method = request.purpose.method
        guard let wireCode = response.errorCode else {
            requestFailed(request, error: .malformedResponse(method: method, missing: "ERROR-CODE"), now: now)
            return
        }
        let code = TURNError.displayable(wireCode)
        switch code.code {
        case 401 where request.key == nil:
            // RFC 8489 §9.2.4 / RFC 8656 §7.2: the challenge gives REALM and
            // NONCE; retry with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
            guard let realm = response.realm, let nonce = response.nonce else {
                requestFailed(request, error: .challengeWithoutRealmOrNonce(code), now: now)
                return
            }
            do {
                try learnCredentials(realm: realm, nonce: nonce, response: response)
            } catch {
                requestFailed(request, error: error, now: now)
                return
            }
            sendRequest(request.purpose, staleNonceRetries: request.staleNonceRetries, now: now)

        case 438:
            // RFC 8489 §9.2.5: retry with the NONCE of the 438 (and its REALM,
            // should it have changed) as a new transaction (RFC 8489 §6.2: a
            // new request, so a new transaction ID), a bounded number of
            // times in a row. coturn answers 438 both when the nonce it gave
            // expired ("Stale nonce", its --stale-nonce) and when it has no
            // session for this 5-tuple any more ("Wrong nonce"); in the second
            // case the retry is authenticated but finds no allocation, which
            // `requestFailed` recognises.
            guard let nonce = response.nonce, let realm = response.realm ?? credentials?.realm else {
                requestFailed(request, error: .challengeWithoutRealmOrNonce(code), now: now)
                return
            }
            guard request.staleNonceRetries < configuration.maximumStaleNonceRetries else {
                requestFailed(request, error: .staleNonceLoop(method: method, retries: request.staleNonceRetries), now: now)
                return
            }
            do {
                try learnCredentials(realm: realm, nonce: nonce, response: response)
            } catch {
                requestFailed(request, error: error, now: now)
                return
            }
            counters.staleNonceRetries += 1
            sendRequest(request.purpose, staleNonceRetries: request.staleNonceRetries + 1, now: now)

        default:
            // A 401 to a request that had credentials: they are wrong or expired.
            requestFailed(request, error: .from(code, method: method, alternate: response.alternateServer), now: now)
        }
    }

    /// The REALM and NONCE of a 401 or 438, and what the nonce cookie asks
    /// for (RFC 8489 §9.2.5). Throws when the request must not be retried.
    private mutating func learnCredentials(realm: String, nonce: String, response: STUNMessage) throws(TURNError) {
        var algorithms: [UInt8]?
        if let features = NonceCookie.features(of: nonce), features & NonceCookie.passwordAlgorithmsBit != 0 {
            // RFC 8489 §9.2.5: "Password algorithms" set but no
            // PASSWORD-ALGORITHMS: the client MUST NOT retry.
            let offered = response.attributes.lazy.compactMap { if case .passwordAlgorithms(let value) = $0 { value } else { nil } }.first
            guard let offered else { throw .securityFeatureUnmet("its nonce asks for a password algorithm but lists none") }
            // Keys are derived with MD5 only (RFC 8489 §18.5.1.1).
            guard NonceCookie.offersMD5(offered) else { throw .securityFeatureUnmet("it does not offer the MD5 password algorithm") }
            algorithms = offered
        }
        if let current = credentials, current.realm == realm {
            credentials?.nonce = nonce
            credentials?.passwordAlgorithms = algorithms
            return
        }
        // RFC 8489 §9.2.2: key = MD5(username ":" realm ":" password).
        let key: STUNKey
        do {
            key = try STUNKey.longTerm(username: configuration.username, realm: realm, password: configuration.password)
        } catch {
            throw .codec(error)
        }
        credentials = Credentials(realm: realm, nonce: nonce, key: key, passwordAlgorithms: algorithms)
    }

    /// A request that got an error response (after retries) or timed out.
    private mutating func requestFailed(_ request: Request, error: TURNError, now: Duration) {
        switch request.purpose {
        case .allocate:
            // RFC 8656 §7.2: 437 to an Allocate means the server still holds an
            // allocation for this 5-tuple (coturn: "Mismatched allocation:
            // wrong transaction ID"). Release it once and ask again.
            if case .allocationMismatch = error, case .allocating = state, !released {
                released = true
                sendRequest(.release, staleNonceRetries: 0, now: now)
                return
            }
            fail(error)
        case .release:
            // Whatever the answer (437: there was nothing to release), ask again.
            guard case .allocating = state else { return }
            sendRequest(.allocate, staleNonceRetries: 0, now: now)
        case .refresh(lifetime: 0):
            // Whether or not the server answered, the client is done.
            finishDeallocation()
        case .refresh:
            guard case .allocated(let allocation) = state else { return }
            // A lost Refresh is not a lost allocation: it lives until it
            // expires (RFC 8656 §8), so keep trying until then; the expiry
            // timer in `advanceTime` ends it.
            if case .timedOut = error, now < allocation.expiresAt {
                sendRequest(.refresh(lifetime: configuration.requestedLifetimeSeconds), staleNonceRetries: 0, now: now)
                return
            }
            // Credentials the server refuses would be refused for a new
            // allocation too.
            if case .credentialsRejected = error {
                fail(error)
                return
            }
            // Any other refusal: this allocation cannot be kept alive.
            reallocate(after: error, now: now)
        case .check:
            guard case .allocated = state else { return }
            if case .credentialsRejected = error {
                fail(error)
                return
            }
            // Refused, or no answer: the server no longer relays for this
            // 5-tuple, or cannot be reached through it.
            reallocate(after: error, now: now)
        case .createPermission(let peer):
            guard case .allocated = state else { return }
            if allocationUnusable(after: error, request: request) {
                reallocate(after: error, now: now)
                return
            }
            // RFC 8656 §9: without a permission, data to this IP is dropped by
            // the server; drop what waited and let the next send try again.
            let permission = permissions.removeValue(forKey: peer.family)
            counters.droppedSends += permission?.queue.count ?? 0
            eventQueue.push(.permissionFailed(peer: permission?.peer ?? peer, error: error))
        case .channelBind(let number, let peer):
            guard case .allocated = state else { return }
            if allocationUnusable(after: error, request: request) {
                reallocate(after: error, now: now)
                return
            }
            if channels[peer]?.number == number {
                channels[peer] = nil
                channelPeers[number] = nil
            }
            channelRefused.insert(peer)
            eventQueue.push(.channelBindFailed(peer: peer, error: error))
        }
    }

    /// Whether a failed CreatePermission or ChannelBind shows that the
    /// allocation itself is gone, rather than one peer being refused:
    /// - 437: the server has no allocation for this 5-tuple (RFC 8656 §18);
    /// - a refusal of a retry after 438: coturn answers 438 "Wrong nonce"
    ///   when a request reaches a session that never issued a nonce, i.e. a
    ///   new session for this 5-tuple without the allocation, and then 400
    ///   Bad Request to every request that needs one;
    /// - `refusalsBeforeReallocation` refusals in a row.
    /// Refusals about the peer (403 Forbidden IP, 440/443 family) and
    /// timeouts (the server may only be unreachable for a moment) do not count.
    private mutating func allocationUnusable(after error: TURNError, request: Request) -> Bool {
        switch error {
        case .allocationMismatch:
            return true
        case .forbidden, .addressFamilyNotSupported, .peerFamilyMismatch, .timedOut, .codec, .credentialsRejected:
            return false
        default:
            refusalsSinceSuccess += 1
            return request.staleNonceRetries > 0 || refusalsSinceSuccess >= configuration.refusalsBeforeReallocation
        }
    }

    /// Gives up the allocation the server lost and asks for a fresh one on the
    /// same 5-tuple (RFC 8656 §7.1), rather than keeping a relayed address
    /// nothing reaches any more. Permissions are asked for again once it
    /// exists; channels are bound again as data flows. Bounded by
    /// `maximumReallocations` between successful Refreshes.
    private mutating func reallocate(after error: TURNError, now: Duration) {
        guard case .allocated(let allocation) = state else { return }
        guard reallocations < configuration.maximumReallocations else {
            fail(error)
            return
        }
        reallocations += 1
        counters.reallocations += 1
        allocateAgain(losing: allocation, because: error, now: now)
    }

    /// Forgets `allocation` and everything bound to it, and sends an Allocate.
    private mutating func allocateAgain(losing allocation: Allocation, because error: TURNError, now: Duration) {
        refusalsSinceSuccess = 0
        released = false
        requests.removeAll()
        for (ip, var permission) in permissions {
            permission.expiresAt = nil
            permission.refreshAt = nil
            permission.inFlight = false
            permissions[ip] = permission
        }
        // Channel numbers keep their sequence (RFC 8656 §11).
        channels.removeAll()
        channelPeers.removeAll()
        channelRefused.removeAll()
        state = .allocating
        eventQueue.push(.allocationLost(relayed: allocation.relayed, error: error))
        sendRequest(.allocate, staleNonceRetries: 0, now: now)
    }

    // MARK: Sending

    /// Builds, signs and sends a request as a new transaction (RFC 8489 §6.2).
    private mutating func sendRequest(_ purpose: Purpose, staleNonceRetries: Int, now: Duration) {
        var attributes: [STUNAttribute]
        switch purpose {
        case .allocate:
            // RFC 8656 §7.1: REQUESTED-TRANSPORT is UDP (17); LIFETIME is a wish.
            attributes = [.requestedTransport(17), .lifetime(configuration.requestedLifetimeSeconds)]
        case .release:
            attributes = [.lifetime(0)]
        case .refresh(let lifetime):
            attributes = [.lifetime(lifetime)]
        case .check:
            attributes = [.lifetime(configuration.requestedLifetimeSeconds)]
        case .createPermission(let peer):
            attributes = [.xorPeerAddress(peer)]
        case .channelBind(let channel, let peer):
            attributes = [.channelNumber(channel), .xorPeerAddress(peer)]
        }
        if let software = configuration.software { attributes.append(.software(software)) }
        if let credentials {
            // RFC 8489 §9.2.4: USERNAME, REALM, NONCE, then MESSAGE-INTEGRITY.
            attributes.append(.username(configuration.username))
            attributes.append(.realm(credentials.realm))
            attributes.append(.nonce(credentials.nonce))
            if let algorithms = credentials.passwordAlgorithms {
                attributes.append(.passwordAlgorithms(algorithms))
                attributes.append(.passwordAlgorithm(NonceCookie.md5Algorithm))
            }
        }
        let id = STUNTransactionID.random()
        let message = STUNMessage(.request, purpose.method, transactionID: id, attributes: attributes)
        var request = Request(
            purpose: purpose, bytes: [],
            transaction: STUNTransaction(now: now, configuration: configuration.transactionConfiguration),
            key: credentials?.key, staleNonceRetries: staleNonceRetries)
        do {
            request.bytes = try message.encode(integrity: credentials?.key, fingerprint: configuration.fingerprint)
        } catch {
            requestFailed(request, error: .codec(error), now: now)
            return
        }
        // A new transaction is due at `now`: this is its first transmission.
        _ = request.transaction.poll(now: now)
        transmitQueue.push(request.bytes)
        requests[id] = request
    }

    /// Sends data to a peer whose IP has a permission: ChannelData on a bound
    /// channel (RFC 8656 §12.5), otherwise a Send indication (RFC 8656 §10.1)
    /// and, the first time, a ChannelBind (RFC 8656 §11.1).
    private mutating func transmitData(_ data: [UInt8], to peer: STUNAddress, now: Duration) {
        if let channel = channels[peer], channel.bound {
            var bytes: [UInt8] = []
            do {
                // RFC 8656 §12.5: padded to four bytes over TCP, not over UDP.
                try ChannelData(channel: channel.number, payload: data).encode(padded: configuration.transport == .tcp, into: &bytes)
            } catch {
                counters.droppedSends += 1
                return
            }
            transmitQueue.push(bytes)
            return
        }
        // RFC 8656 §10.1: XOR-PEER-ADDRESS and DATA, no credentials.
        let indication = STUNMessage(.indication, .send, transactionID: .random(), attributes: [.xorPeerAddress(peer), .data(data)])
        do {
            transmitQueue.push(try indication.encode())
        } catch {
            counters.droppedSends += 1
            return
        }
        bindChannelIfUseful(to: peer, now: now)
    }

    private mutating func bindChannelIfUseful(to peer: STUNAddress, now: Duration) {
        guard configuration.useChannels, channels[peer] == nil, !channelRefused.contains(peer),
              ChannelData.validChannels.contains(nextChannel)
        else { return }
        let number = nextChannel
        nextChannel &+= 1
        channels[peer] = Channel(number: number)
        channelPeers[number] = peer
        sendRequest(.channelBind(channel: number, peer: peer), staleNonceRetries: 0, now: now)
    }

    /// After the Allocate: CreatePermission for every IP that has data waiting.
    private mutating func requestQueuedPermissions(relayed: STUNAddress, now: Duration) {
        for (ip, var permission) in permissions {
            guard !isFinished else { return }
            guard relayed.family.code == permission.peer.family.code else {
                permissions[ip] = nil
                counters.droppedSends += permission.queue.count
                eventQueue.push(.permissionFailed(peer: permission.peer, error: .peerFamilyMismatch(permission.peer)))
                continue
            }
            guard !permission.inFlight else { continue }
            permission.inFlight = true
            permissions[ip] = permission
            sendRequest(.createPermission(peer: permission.peer), staleNonceRetries: 0, now: now)
        }
    }

    // MARK: Ending

    private mutating func fail(_ error: TURNError) {
        guard !isFinished else { return }
        state = .failed(error)
        requests.removeAll()
        dropAllPeerState()
        eventQueue.push(.failed(error))
    }

    private mutating func finishDeallocation() {
        guard !isFinished else { return }
        state = .closed
        requests.removeAll()
        eventQueue.push(.deallocated)
    }

    private mutating func dropAllPeerState() {
        // Keep the number sequence: a number is not reused for another peer
        // soon after (RFC 8656 §11), even across a deallocation.
        for permission in permissions.values { counters.droppedSends += permission.queue.count }
        permissions.removeAll()
        channels.removeAll()
        channelPeers.removeAll()
    }
}

extension TURNClient: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// A summary without credentials (the password and key are never printed).
    public var description: String {
        let phase: String
        switch state {
        case .idle: phase = "idle"
        case .allocating: phase = "allocating"
        case .allocated(let allocation): phase = "allocated \(allocation.relayed)"
        case .deallocating: phase = "deallocating"
        case .closed: phase = "closed"
        case .failed(let error): phase = "failed: \(error.reason)"
        }
        return "TURNClient(\(configuration), \(phase), \(permissions.count) permissions, \(channels.count) channels, \(requests.count) requests)"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["description": description, "counters": counters])
    }
}
