import Logging
import TernICE
import TernPairing
import TernSDP
import TernSTUN
import TernTURN

/// One session's connectivity without I/O: the ICE agent, one TURN client
/// per server, the peer's signals and the session's deadlines, driven by
/// explicit inputs and read through explicit outputs (style.md, "Protocol
/// cores"; the model is swift-nio-ssh's `NIOSSHHandler` over its state
/// machine). `ConnectivityDriver` is its SwiftNIO shell: it owns the socket,
/// the TURN servers' TCP connections, the event loop's timer and the
/// syscalls (route checks, segmentation offload, router probes), and feeds
/// the core what happened.
///
/// Inputs carry the time (`now`, a duration since the session started):
/// `start`, `handleDatagram` (a datagram from an address, at a host
/// candidate's address), `handleSignal` (the peer's mailbox messages),
/// `advanceTime` (the timer fired), `sendFailed` (a send on the selected
/// path failed), the TURN servers' stream events, `routerProbed`.
/// Outputs: `pollOutput()` (datagrams and stream bytes to send, signals,
/// and events: selected, connected, path changed, failed), and
/// `nextDeadline` (when to call `advanceTime`). Nothing here reads a clock
/// or touches a socket, so tests drive two cores on a virtual clock.
public struct ConnectivityCore {
    /// The ICE option token (in `a=ice-options`) by which a tern peer says it
    /// sends and understands `PeerMessage.mappingOpened`.
    static let mappingOpenedOption = "tern-mapping-opened"
    /// How long ordinary checks wait for the answer of a remote router's probe.
    static let routerProbeWait: Duration = .milliseconds(50)

    /// What the shell must do or know, in order.
    public enum Output {
        /// A datagram for the session's UDP socket. `onSelectedPath`: a check
        /// on the selected direct pair, whose send error (or a route that
        /// went away) the shell reports with `sendFailed`. `check`: an ICE
        /// agent's datagram (a check, an answer, a gathering request), not
        /// TURN's; a `mapping-opened` signal waits until these are written.
        case datagram([UInt8], to: STUNAddress, onSelectedPath: Bool, check: Bool)
        /// Bytes for TURN server `slot`'s TCP (or TLS) connection.
        case streamBytes([UInt8], slot: Int)
        /// Open TURN server `slot`'s TCP (or TLS) connection; answer with
        /// `streamConnected` or `streamFailed`.
        case connectStream(slot: Int, uri: ServerURI, server: STUNAddress)
        /// A message for the peer's mailbox.
        case signal(PeerMessage)
        /// Ask the router at `address` whether it answers unsolicited
        /// datagrams (RouterProbe); answer with `routerProbed`.
        case probeRouter(STUNAddress)
        /// The session's datagrams now go on `path`: straight to
        /// `directRemote` from the socket, or through a TURN allocation when
        /// it is nil.
        case selected(ConnectedPath, directRemote: STUNAddress?)
        /// Both sides selected a pair (or this side did, for a browser peer).
        case connected(ConnectedPath)
        /// The session moved to another pair after `connected`.
        case pathChanged(ConnectedPath)
        /// The selected pair stopped answering consent checks after `connected`,
        /// or an ICE restart found no new path.
        case pathLost(String)
        /// An ICE restart began (true), or ended with a new selected pair
        /// (false). Meanwhile the old pair is silent, and the layer above
        /// does not take that silence for the peer's end: the restart's own
        /// deadline (the agent's failure timeout) decides, with `pathLost`.
        case restarting(Bool)
        /// No path: ICE failed, the peer's signals were unusable or late, or the session closed.
        case failed(SessionError)
        /// A DTLS datagram from the peer for the layer above; `endsBatch`
        /// when no read batch follows it (it came through TURN).
        case application([UInt8], endsBatch: Bool)
    }

    /// Where a datagram of the layer above goes (`routeApplication`).
    public enum ApplicationRoute: Equatable {
        /// To the peer from the socket.
        case direct(STUNAddress)
        /// Wrapped by a TURN client: it leaves with the next `pump`.
        case relayed
        case dropped
    }

    public let options: ConnectivityOptions
    let logger: Logger
    private let turnServers: [(uri: ServerURI, address: STUNAddress)]
    let stunServers: [STUNAddress]

    public internal(set) var agent: ICEAgent
    var dualStack = false
    var localPort: UInt16 = 0
    var hostBases: [STUNAddress] = []
    var turns: [TURNSlot] = []
    var outputs: [Output] = []
    private var outputIndex = 0
    var signalledEnd = false
    private var signalledConnected = false
    private var peerConnected = false
    public private(set) var selected: ConnectedPath?
    /// The agent reported the selected pair lost; the next selection replaces it.
    private var replacingLostPath = false
    private var remoteFingerprints: [Fingerprint] = []
    private var remoteSetup: DTLSSetup?
    private var remoteMaxMessageSize: UInt64?
    /// The peer's session description arrived.
    private var remoteDescribed = false
    /// The peer's description names `mappingOpenedOption`: it tells us when
    /// its first check to our server-reflexive address has left, and we tell it.
    private var peerSignalsMappings = false
    /// When this side selected a pair.
    private var selectedAt: Duration?
    /// ICE restarts through the mailbox (ConnectivityCore+Restart.swift).
    var restart = ConnectivityRestart()
    /// `connected` or `failed` went out.
    public private(set) var finished = false
    public private(set) var closed = false
    /// Datagrams of kinds no layer takes, and ones from nobody known.
    public private(set) var droppedDatagrams = 0

    struct TURNSlot {
        var uri: ServerURI
        var server: STUNAddress
        var client: TURNClient
        var relayed: STUNAddress?
        /// Relayed addresses the server lost (`TURNEvent.allocationLost`):
        /// nothing goes out from them any more, neither checks nor data.
        var retired: Set<STUNAddress> = []
        /// Why this server gave no relayed candidate, for the failure sentence.
        var failure: String?
        var settled: Bool { relayed != nil || failure != nil }
    }

    /// - Parameters:
    ///   - stunServers: resolved `stun:` servers (none with `forceRelay`).
    ///   - turnServers: resolved `turn:`/`turns:` servers.
    public init(
        options: ConnectivityOptions, stunServers: [STUNAddress], turnServers: [(uri: ServerURI, address: STUNAddress)],
        logger: Logger = Logger(label: "tern.connect")
    ) throws(SessionError) {
        self.options = options
        self.stunServers = stunServers
        self.turnServers = turnServers
        self.logger = logger
        do {
            // Ta = 10 ms rather than the default 50 (RFC 8445 §14.2 leaves it
            // to configuration, not below 5 ms): a data-channel session has a
            // handful of pairs, and every paced check before the nomination
            // (which waits for the next slot) is time before the first byte
            // (docs/architecture.md, "Measurements behind constants").
            agent = try ICEAgent(configuration: ICEConfiguration(
                role: options.role, localCredentials: .random(), tieBreaker: ICEConfiguration.randomTieBreaker(),
                pacing: .milliseconds(10), failureTimeout: options.failureTimeout,
                nominationDelay: options.upgradesPath ? .zero : .seconds(1)).upgrading(options.upgradesPath))
            // Checks to a peer behind a router that answers unsolicited
            // datagrams wait 200 ms (its probe answers in a round trip; 50 ms
            // at most is waited for it): docs/lab.md, cone-icmp-a/-b. A peer
            // that says when its own first check has left (`mappingOpened`)
            // ends the wait sooner. (Not longer when it does: where both
            // routers answer, both sides hold and neither sends first, and
            // behind routers that REJECT, or one router that hairpins, the
            // two sides' checks after 200 ms make a direct path.)
            agent.avoidMappingClashes(probeWait: Self.routerProbeWait, hold: .milliseconds(200))
        } catch {
            throw .localNetwork("cannot start ICE: \(error.reason)")
        }
    }

    // MARK: - Outputs

    /// The next thing for the shell to do, in order.
    public mutating func pollOutput() -> Output? {
        guard outputIndex < outputs.count else {
            if !outputs.isEmpty {
                outputs.removeAll(keepingCapacity: true)
                outputIndex = 0
            }
            return nil
        }
        defer { outputIndex += 1 }
        return outputs[outputIndex]
    }

    /// When `advanceTime` must run next: the agent's, the TURN clients' and
    /// the signalling deadline, whichever comes first.
    public var nextDeadline: Duration? {
        guard !closed else { return nil }
        var deadline = agent.nextDeadline
        for slot in turns {
            if let next = slot.client.nextDeadline { deadline = deadline.map { min($0, next) } ?? next }
        }
        if let next = signallingDeadline { deadline = deadline.map { min($0, next) } ?? next }
        if let next = restartDeadline { deadline = deadline.map { min($0, next) } ?? next }
        return deadline
    }

    /// Both sides have selected a pair (`connected` went out).
    public var isConnected: Bool { finished && selected != nil && peerConnected }

    /// True while some TURN allocation is up (data for it waits in its client until `pump`).
    public var hasRelayedCandidate: Bool { turns.contains { $0.relayed != nil } }

    // MARK: - Start

    /// Signals this side's session description and starts gathering from
    /// the socket bound at `localPort` (`dualStack` when it takes IPv6 and
    /// IPv4) on the machine's usable addresses.
    public mutating func start(localPort: UInt16, dualStack: Bool, addresses: [[UInt8]], now: Duration) {
        self.localPort = localPort
        self.dualStack = dualStack
        var media = MediaDescription.dataChannel(
            iceUfrag: agent.configuration.localCredentials.ufrag, icePwd: agent.configuration.localCredentials.password,
            fingerprint: options.fingerprint, setup: options.role == .controlling ? .actpass : .active)
        // An ICE option token (RFC 8839 §5.6): others ignore tokens they do not know.
        media.iceOptions.append(Self.mappingOpenedOption)
        media.iceOptions.append(MediaDescription.ternICERestartOption)
        var description = SessionDescription(sessionID: UInt64.random(in: 1...UInt64(Int64.max)), media: [media])
        description.sessionVersion = 2
        outputs.append(.signal(.sessionDescription(kind: options.role == .controlling ? .offer : .answer, sdp: description.formatted())))

        if !options.forceRelay {
            for ip in addresses where dualStack || ip.count == 4 {
                guard let base = STUNAddress(ipBytes: ip, port: localPort) else { continue }
                do {
                    try agent.addHostCandidate(base, now: now)
                    hostBases.append(base)
                } catch {
                    logger.debug("host candidate skipped", metadata: ["address": "\(base)", "reason": "\(error.reason)"])
                }
            }
            for server in stunServers {
                for base in hostBases where base.family.code == server.family.code {
                    try? agent.gatherServerReflexive(from: server, base: base, now: now)
                }
            }
        }
        for (uri, server) in turnServers {
            guard let credentials = options.turn else { break }
            if !dualStack && server.ipBytes.count == 16 && uri.transport == .udp { continue }
            let client = TURNClient(configuration: .init(
                server: server, transport: uri.transport, username: credentials.username, password: credentials.credential))
            turns.append(TURNSlot(uri: uri, server: server, client: client))
            let index = turns.count - 1
            switch uri.transport {
            case .udp:
                turns[index].client.start(now: now)
            case .tcp:
                outputs.append(.connectStream(slot: index, uri: uri, server: server))
            }
        }
        pump(now: now)
    }

    // MARK: - Inputs

    /// A datagram from `source` arrived on the socket, at the local address
    /// `destination` (IP_PKTINFO) when known. `DatagramDemultiplexer` (RFC
    /// 7983) says who takes it: a TURN client, the ICE agent, or the layer
    /// above when it comes from a pair ICE validated; the rest is dropped.
    public mutating func handleDatagram(_ bytes: [UInt8], from source: STUNAddress, to destination: [UInt8]?, now: Duration) {
        guard !closed else {
            droppedDatagrams += 1
            return
        }
        let turnSlot = turns.firstIndex { $0.uri.transport == .udp && $0.server == source }
        switch DatagramDemultiplexer.route(bytes, fromTURNServer: turnSlot) {
        case .turn(let slot):
            turns[slot].client.handleDatagram(bytes, now: now)
        case .ice:
            guard let base = arrivalBase(destination: destination, source: source) else {
                droppedDatagrams += 1
                return
            }
            if case .dropped(let why) = agent.handleDatagram(bytes, from: source, toBase: base, now: now) {
                logger.trace("ICE dropped a datagram", metadata: ["from": "\(source)", "reason": "\(why.reason)"])
            }
        case .application:
            // The data path: no ICE work to do.
            deliverApplication(bytes, from: source, endsBatch: false)
            return
        case .drop:
            droppedDatagrams += 1
        }
        pump(now: now)
    }

    /// Whether DTLS from `source` is for the layer above: from the selected
    /// pair's remote address, or from the remote end of another pair whose
    /// checks succeeded. RFC 8445 §12.2: an agent must be ready to receive
    /// data on pairs other than the one it sends on. A peer can pick
    /// another pair than ours: aiortc, controlling, nominates every pair it
    /// checks and sends on the last to succeed, where tern uses the
    /// highest-priority one.
    public func acceptsApplication(from source: STUNAddress) -> Bool {
        guard let selected else { return false }
        return selected.pair.remote.address == source || agent.validPairs.contains { $0.remote.address == source }
    }

    private mutating func deliverApplication(_ bytes: [UInt8], from source: STUNAddress, endsBatch: Bool) {
        guard acceptsApplication(from: source) else {
            droppedDatagrams += 1
            return
        }
        outputs.append(.application(bytes, endsBatch: endsBatch))
    }

    /// The host candidate a datagram arrived at: its destination address
    /// (from IP_PKTINFO) and the socket's port; without packet info, the
    /// only host base of the source's family.
    private func arrivalBase(destination: [UInt8]?, source: STUNAddress) -> STUNAddress? {
        if let destination, let base = SocketAddressConversion.stunAddress(ip: destination, port: localPort), hostBases.contains(base) {
            return base
        }
        let sameFamily = hostBases.filter { $0.family.code == source.family.code }
        return sameFamily.count == 1 ? sameFamily[0] : nil
    }

    /// Where a datagram of the layer above goes on the selected pair.
    public mutating func routeApplication(_ bytes: [UInt8], now: Duration) -> ApplicationRoute {
        guard !closed, let pair = selected?.pair else {
            droppedDatagrams += 1
            return .dropped
        }
        if let slot = turns.firstIndex(where: { $0.relayed == pair.localBase }) {
            do {
                try turns[slot].client.send(bytes, to: pair.remote.address, now: now)
                return .relayed
            } catch {
                droppedDatagrams += 1
                return .dropped
            }
        }
        if turns.contains(where: { $0.retired.contains(pair.localBase) }) {
            droppedDatagrams += 1
            return .dropped
        }
        return .direct(pair.remote.address)
    }

    /// Counts a datagram the shell could not send or hand anywhere.
    public mutating func countDropped() {
        droppedDatagrams += 1
    }

    /// TURN server `slot`'s TCP (or TLS) connection is up.
    public mutating func streamConnected(slot: Int, now: Duration) {
        guard !closed, turns.indices.contains(slot) else { return }
        turns[slot].client.start(now: now)
        pump(now: now)
    }

    public mutating func handleStreamBytes(slot: Int, _ bytes: [UInt8], now: Duration) {
        guard !closed, turns.indices.contains(slot) else { return }
        turns[slot].client.handleStreamBytes(bytes, now: now)
        pump(now: now)
    }

    /// TURN server `slot`'s connection could not be made or failed before
    /// an allocation: `reason` goes to the failure sentence.
    public mutating func streamFailed(slot: Int, reason: String, now: Duration) {
        guard !closed, turns.indices.contains(slot), turns[slot].relayed == nil else { return }
        settleTURN(slot, reason)
        pump(now: now)
    }

    /// The close that follows a stream's failure ends the TURN client.
    public mutating func streamClosed(slot: Int, now: Duration) {
        guard !closed, turns.indices.contains(slot) else { return }
        turns[slot].client.handleConnectionClosed(now: now)
        pump(now: now)
    }

    /// The router at `address` answers unsolicited datagrams, or not (RouterProbe).
    public mutating func routerProbed(_ address: STUNAddress, answersUnsolicited: Bool, now: Duration) {
        guard !closed else { return }
        logger.debug("remote router probed", metadata: ["address": "\(address)", "answers_unsolicited": "\(answersUnsolicited)"])
        agent.remoteRouter(address, answersUnsolicited: answersUnsolicited, now: now)
        pump(now: now)
    }

    /// A send to `destination` failed with a hard error (no route, the
    /// local address went away, a firewall refused it): on the selected
    /// direct pair the session moves to a live backup pair at once rather
    /// than after the failover timeout's silence. Elsewhere ICE's own
    /// timeouts deal with it. Returns whether the selected pair changed.
    @discardableResult
    public mutating func sendFailed(to destination: STUNAddress, now: Duration) -> Bool {
        guard !closed, let pair = selected?.pair, pair.remote.address == destination,
              !turns.contains(where: { $0.relayed == pair.localBase || $0.retired.contains(pair.localBase) })
        else { return false }
        guard agent.selectedPairUnreachable(now: now) else {
            // No live backup: an ICE restart through the mailbox, if the peer takes one.
            restartAfterSendError(now: now)
            return false
        }
        pump(now: now)
        return true
    }

    /// The shell lost the session's socket for good (it could not open it
    /// again): the session has no path. Before `connected` that fails it;
    /// after, the layer above is told the path is lost.
    public mutating func socketLost(_ reason: String, now: Duration) {
        guard !closed else { return }
        if finished {
            outputs.append(.pathLost(reason))
        } else {
            fail(.localNetwork(reason))
        }
    }

    /// What the peer signalled: its session description, candidates,
    /// end-of-candidates and `connected`. Other messages are ignored.
    public mutating func handleSignal(_ message: PeerMessage, now: Duration) {
        guard !closed else { return }
        switch message {
        case .sessionDescription(let kind, let sdp):
            // The controlling side offered, so it takes an answer; the controlled side an offer.
            guard kind == (options.role == .controlling ? .answer : .offer) else {
                fail(.noPath("the peer sent a session description of the wrong kind (\(kind.rawValue))"))
                return
            }
            let description: SessionDescription
            do {
                description = try SessionDescription(parsing: sdp)
            } catch {
                fail(.noPath("the peer's session description is malformed: \(error)"))
                return
            }
            guard let media = description.dataChannel, let ufrag = media.iceUfrag, let password = media.icePwd else {
                fail(.noPath("the peer's session description has no data channel with ICE credentials"))
                return
            }
            do {
                try agent.setRemoteCredentials(ufrag: ufrag, password: password, now: now)
            } catch {
                fail(.noPath("the peer's ICE credentials are unusable: \(error.reason)"))
                return
            }
            remoteDescribed = true
            if media.iceOptions.contains(Self.mappingOpenedOption) { peerSignalsMappings = true }
            restart.peerRestarts = media.restartsICEThroughMailbox
            remoteFingerprints = media.fingerprints
            remoteSetup = media.setup
            remoteMaxMessageSize = media.maxMessageSize
            for line in media.candidates { addRemote(line, now: now) }
            if media.endOfCandidates { agent.remoteCandidatesComplete(now: now) }
        case .candidate(_, let line):
            // After this side restarted, the peer's candidates of the old generation are stale.
            if restart.generations.peerIsCurrent { addRemote(line, now: now) }
        case .endOfCandidates:
            if restart.generations.peerIsCurrent { agent.remoteCandidatesComplete(now: now) }
        case .iceRestart(let message):
            handlePeerRestart(message, now: now)
        case .connected:
            peerConnected = true
            completeIfDone()
        case .mappingOpened:
            agent.peerOpenedMapping(now: now)
        default:
            break
        }
        pump(now: now)
    }

    mutating func addRemote(_ line: String, now: Duration) {
        do {
            switch try ICECandidate.parse(line) {
            case .candidate(let candidate):
                if candidate.type == .serverReflexive, agent.probingRemoteRouter(candidate.address, now: now) {
                    // Mapping-clash avoidance (ICEAgent+RemoteRouters.swift).
                    outputs.append(.probeRouter(candidate.address))
                }
                try agent.addRemoteCandidate(candidate, now: now)
                logger.debug("remote candidate", metadata: ["candidate": "\(candidate)", "at_ms": "\(milliseconds(now))"])
            case .unresolved(let unresolved):
                // mDNS names (browsers hide host addresses): skipped; the
                // peer's checks still reach us as peer-reflexive candidates.
                logger.debug("skipping a candidate with a host name", metadata: ["name": "\(DisplayText.escaped(unresolved.hostname))"])
            }
        } catch {
            logger.debug("ignoring a remote candidate", metadata: ["reason": "\(error.reason)"])
        }
    }

    /// The timer fired: the cores' retransmissions, checks and timeouts,
    /// and the signalling deadline.
    public mutating func advanceTime(now: Duration) {
        guard !closed else { return }
        agent.advanceTime(now: now)
        for index in turns.indices { turns[index].client.advanceTime(now: now) }
        pump(now: now)
        // After the old generation's events are handled.
        restartIfAdvised(now: now)
        endIfPeerDidNotAnswer(now: now)
        if let limit = signallingDeadline, now >= limit {
            let seconds = PeerWatch.words(options.signallingTimeout)
            fail(.noPath(remoteDescribed
                ? "the other side did not confirm the connection within \(seconds)"
                : "the other side sent no connection details within \(seconds)"))
        }
    }

    /// When the peer's next signal is overdue (see `signallingTimeout`).
    private var signallingDeadline: Duration? {
        guard !finished else { return nil }
        if !remoteDescribed { return options.signallingTimeout }  // since the start
        if let selectedAt, !peerConnected { return selectedAt + options.signallingTimeout }
        return nil
    }

    /// Releases the TURN allocations (their Refresh with lifetime 0 goes
    /// out with the outputs) and fails a pending `connected`. Returns
    /// whether some allocation was released (the shell then gives the
    /// server a moment before closing the socket).
    public mutating func close(now: Duration) -> Bool {
        guard !closed else { return false }
        var waiting = false
        for index in turns.indices where turns[index].relayed != nil && !turns[index].client.isFinished {
            turns[index].client.deallocate(now: now)
            waiting = true
        }
        fail(.noPath("the session closed"))
        pump(now: now)
        closed = true
        return waiting
    }

    // MARK: - Pumping the cores

    /// Moves everything the agent and the TURN clients want to send to the
    /// outputs and acts on their events. Events can feed one core from
    /// another (TURN hands ICE its relayed datagrams), so it loops until
    /// nothing moves.
    public mutating func pump(now: Duration) {
        guard !closed else { return }
        var moved = true
        while moved {
            moved = false
            while let transmit = agent.pollTransmit(now: now) {
                moved = true
                if let slot = turns.firstIndex(where: { $0.relayed == transmit.from }) {
                    do {
                        try turns[slot].client.send(transmit.bytes, to: transmit.to, now: now)
                    } catch {
                        logger.debug("TURN send failed", metadata: ["to": "\(transmit.to)", "reason": "\(error.reason)"])
                    }
                } else if turns.contains(where: { $0.retired.contains(transmit.from) }) {
                    // A check from a relayed candidate whose allocation is gone:
                    // it can only fail (sent from the host socket it would be
                    // mistaken for a check from the host candidate).
                    droppedDatagrams += 1
                } else {
                    // A check on the selected direct pair: a hard send error
                    // (no route to the peer) moves to a backup pair at once.
                    let onSelected = selected.map { $0.pair.localBase == transmit.from && $0.pair.remote.address == transmit.to } ?? false
                    outputs.append(.datagram(transmit.bytes, to: transmit.to, onSelectedPath: onSelected, check: true))
                }
            }
            for index in turns.indices {
                while let bytes = turns[index].client.pollTransmit() {
                    moved = true
                    switch turns[index].uri.transport {
                    case .udp: outputs.append(.datagram(bytes, to: turns[index].server, onSelectedPath: false, check: false))
                    case .tcp: outputs.append(.streamBytes(bytes, slot: index))
                    }
                }
                while let event = turns[index].client.pollEvent() {
                    moved = true
                    handleTURN(event, slot: index, now: now)
                }
            }
            while let event = agent.pollEvent() {
                moved = true
                handleICE(event, now: now)
            }
        }
        if !signalledEnd, !agent.isGathering, turns.allSatisfy(\.settled) {
            signalledEnd = true
            outputs.append(.signal(.endOfCandidates))
            if options.forceRelay && turns.allSatisfy({ $0.relayed == nil }) {
                // Nothing to check with: say so now rather than after the ICE timeout.
                fail(.noPath(failureSentence(.connectivityFailed(agent.failureReport()))))
            }
        }
    }

    private mutating func handleTURN(_ event: TURNEvent, slot index: Int, now: Duration) {
        switch event {
        case .allocated(let relayed, let mapped, _):
            logger.debug("TURN allocation", metadata: ["server": "\(turns[index].uri)", "relayed": "\(relayed)", "at_ms": "\(milliseconds(now))"])
            turns[index].relayed = relayed
            do {
                try agent.addRelayedCandidate(
                    relayed, mappedAddress: mapped, server: turns[index].server, overTCP: turns[index].uri.transport == .tcp, now: now)
            } catch {
                logger.debug("relayed candidate skipped", metadata: ["reason": "\(error.reason)"])
            }
        case .received(let data, let peer):
            guard let relayed = turns[index].relayed else {
                droppedDatagrams += 1
                return
            }
            switch DatagramDemultiplexer.route(data, fromTURNServer: nil) {
            case .ice: _ = agent.handleDatagram(data, from: peer, toBase: relayed, now: now)
            case .application where selected != nil:
                // On the selected pair, or a straggler from the pair it replaced.
                deliverApplication(data, from: peer, endsBatch: true)
            default: droppedDatagrams += 1
            }
        case .allocationLost(let relayed, let error):
            // The TURN client is already allocating afresh; `.allocated` adds
            // the new relayed candidate (trickled to the peer).
            logger.debug("TURN allocation lost", metadata: ["server": "\(turns[index].uri)", "relayed": "\(relayed)", "reason": "\(error.reason)"])
            turns[index].retired.insert(relayed)
            if turns[index].relayed == relayed { turns[index].relayed = nil }
            agent.localCandidateGone(base: relayed, now: now)
        case .failed(let error):
            settleTURN(index, error.reason)
        case .permissionFailed(let peer, let error), .channelBindFailed(let peer, let error):
            logger.debug("TURN refused", metadata: ["peer": "\(peer)", "reason": "\(error.reason)"])
        case .refreshed, .permissionCreated, .channelBound, .deallocated:
            break
        }
    }

    private mutating func settleTURN(_ index: Int, _ reason: String) {
        if turns[index].failure == nil { turns[index].failure = reason }
        logger.debug("TURN unavailable", metadata: ["server": "\(turns[index].uri)", "reason": "\(reason)"])
    }

    private mutating func handleICE(_ event: ICEEvent, now: Duration) {
        switch event {
        case .localCandidate(let candidate):
            if options.forceRelay && candidate.type != .relayed { return }
            // Sent inside this side's `ice-restart` already.
            if restart.announced.remove(candidate.sdpAttribute) != nil { return }
            logger.debug("local candidate", metadata: ["candidate": "\(candidate)", "at_ms": "\(milliseconds(now))"])
            outputs.append(.signal(.candidate(mid: "0", candidate: candidate.sdpAttribute)))
        case .selectedPair(let pair):
            logger.debug("selected pair", metadata: ["pair": "\(pair)", "at_ms": "\(milliseconds(now))"])
            if selectedAt == nil { selectedAt = now }
            let relayURI = turns.first { $0.relayed == pair.localBase }?.uri
            var path = ConnectedPath(pair: pair, roundTrip: agent.selectedRoundTrip, relayTransport: relayURI?.transport)
            path.replacedLostPath = replacingLostPath
            replacingLostPath = false
            path.afterRestart = restart.selectionEndsRestart
            if restart.selectionEndsRestart { outputs.append(.restarting(false)) }
            restart.selectionEndsRestart = false
            path.relayOverTLS = relayURI?.isSecure ?? false
            selected = path
            let throughTURN = turns.contains { $0.relayed == pair.localBase || $0.retired.contains(pair.localBase) }
            outputs.append(.selected(path, directRemote: throughTURN ? nil : pair.remote.address))
            if !signalledConnected {
                signalledConnected = true
                outputs.append(.signal(.connected))
            }
            if finished {
                var changed = path
                changed.remoteFingerprints = remoteFingerprints
                changed.remoteSetup = remoteSetup
                changed.remoteMaxMessageSize = remoteMaxMessageSize
                outputs.append(.pathChanged(changed))
            }
            completeIfDone()
        case .selectedPairLost(let pair):
            // Another valid pair takes over (`.selectedPair` follows).
            logger.info("selected pair stopped answering", metadata: ["pair": "\(pair)", "at_ms": "\(milliseconds(now))"])
            replacingLostPath = true
        case .stateChanged(.failed(let error)):
            if finished, agent.restarts > 0, !restart.peerGone {
                // A restart's checks found no new path (ICEAgent+Restart.swift):
                // the session ends here, not on the layer above's silence limit.
                logger.info("ICE restart failed", metadata: ["reason": "\(failureSentence(error))", "at_ms": "\(milliseconds(now))"])
                outputs.append(.pathLost(Self.restartFoundNothing))
            }
            fail(.noPath(failureSentence(error)))
        case .consentLost:
            if !finished {
                fail(.noPath("the path to the other side stopped answering"))
            } else {
                // RFC 7675 §5.1: no answer to the consent checks for 30 s.
                outputs.append(.pathLost("the other side stopped answering connectivity checks (nothing for 30 s)"))
            }
        case .gatheringFailed(let error):
            logger.debug("server-reflexive gathering failed", metadata: ["reason": "\(error.reason)"])
        case .stateChanged(let state):
            logger.debug("ICE state", metadata: ["state": "\(state)", "at_ms": "\(milliseconds(now))"])
        case .roleChanged(let role):
            logger.debug("ICE role conflict resolved", metadata: ["role": "\(role)"])
        case .gatheringComplete:
            break
        case .mappingOpened(let address):
            guard peerSignalsMappings else { return }
            logger.debug("first check to the peer's router sent", metadata: ["address": "\(address)", "at_ms": "\(milliseconds(now))"])
            outputs.append(.signal(.mappingOpened))
        }
    }

    private func failureSentence(_ error: ICEError) -> String {
        var sentence: String
        if case .connectivityFailed(let report) = error {
            sentence = report.description
        } else {
            sentence = error.reason
        }
        let turnErrors = turns.compactMap { slot in slot.failure.map { "TURN \(slot.uri): \($0)" } }
        if !turnErrors.isEmpty { sentence += "; " + turnErrors.joined(separator: "; ") }
        if turnServers.isEmpty { sentence += "; the relay offered no TURN server" }
        return sentence
    }

    private mutating func completeIfDone() {
        guard !finished, let selected, peerConnected || !options.awaitPeerConnected else { return }
        finished = true
        var path = selected
        // The peer's candidates all came before its `connected`: a remote end
        // first known as peer reflexive (its check beat its candidate) now
        // has the type the peer signalled (RFC 8445 §7.3.1.3, RFC 8838 §11).
        if let current = agent.selectedPair, current.localBase == selected.pair.localBase,
           current.remote.address == selected.pair.remote.address {
            path.pair = current
        }
        path.roundTrip = agent.selectedRoundTrip ?? selected.roundTrip
        path.remoteFingerprints = remoteFingerprints
        path.remoteSetup = remoteSetup
        path.remoteMaxMessageSize = remoteMaxMessageSize
        outputs.append(.connected(path))
    }

    private mutating func fail(_ error: SessionError) {
        guard !finished else { return }
        finished = true
        outputs.append(.failed(error))
    }

    func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
