import Testing
import TernTestSupport
import TernICE
import TernSTUN

// A small, deterministic model of the Internet for ICE tests: LANs with
// agents on them, NAT boxes between LANs and the public side, a STUN server
// on the public side, and links with delay, jitter, loss, reordering and
// duplication drawn from a seeded generator. Two agents exchange their
// credentials and trickled candidates through a signalling channel with its
// own delay (as SDP lines, so the codec is exercised too). Time is virtual.

/// How every datagram is treated on its way.
struct LinkProfile {
    /// One-way delay, end to end.
    var delay: Duration = .milliseconds(20)
    /// Extra delay, uniform in 0 ... jitter.
    var jitter: Duration = .zero
    var loss: Double = 0
    var duplication: Double = 0
    /// Probability that a datagram is held back (by up to `reorderDelay`) so later ones overtake it.
    var reordering: Double = 0
    var reorderDelay: Duration = .milliseconds(40)
}

/// RFC 4787 NAT behaviours, for mapping (§4.1) and for filtering (§5).
enum NATBehavior {
    case endpointIndependent
    case addressDependent
    case addressAndPortDependent
}

struct NATType: CustomStringConvertible {
    var mapping: NATBehavior
    var filtering: NATBehavior

    /// Endpoint-independent mapping and filtering ("full cone").
    static let fullCone = NATType(mapping: .endpointIndependent, filtering: .endpointIndependent)
    static let addressRestrictedCone = NATType(mapping: .endpointIndependent, filtering: .addressDependent)
    /// The common home router ("port-restricted cone").
    static let portRestrictedCone = NATType(mapping: .endpointIndependent, filtering: .addressAndPortDependent)
    /// Address-and-port-dependent mapping and filtering.
    static let symmetric = NATType(mapping: .addressAndPortDependent, filtering: .addressAndPortDependent)

    var description: String { "mapping \(mapping), filtering \(filtering)" }
}

/// One NAT box: translates a LAN's addresses to its public IP.
struct NATBox {
    struct Mapping {
        var inside: STUNAddress
        /// The destination the mapping is keyed on (nil for endpoint-independent).
        var keyIP: STUNAddress.Family?
        var keyPort: UInt16?
        var externalPort: UInt16
        /// Destinations the inside host has sent to through this mapping (for filtering).
        var contacted: [STUNAddress] = []
        /// Made for one destination because its flow clashed (see `answersUnsolicited`).
        var clash = false
    }

    var type: NATType
    /// A Linux router with nothing filtering its input: a datagram no
    /// mapping lets in is answered (ICMP) and conntrack confirms an entry
    /// for its flow; a later outgoing flow between the same two addresses
    /// clashes with it and gets a fresh port (ICEAgent+RemoteRouters.swift).
    var answersUnsolicited = false
    /// Flows confirmed by unsolicited datagrams: their source and the port they came to.
    var confirmedInbound: [(source: STUNAddress, port: UInt16)] = []
    var publicIP: STUNAddress.Family
    var mappings: [Mapping] = []
    var nextPort: UInt16

    /// RFC 4787 §4.1: find or create the mapping for a datagram going out.
    mutating func outbound(from inside: STUNAddress, to destination: STUNAddress) -> STUNAddress {
        if let clashed = mappings.first(where: { $0.clash && $0.inside == inside && $0.contacted == [destination] }) {
            return STUNAddress(family: publicIP, port: clashed.externalPort)
        }
        let keyIP: STUNAddress.Family? = type.mapping == .endpointIndependent ? nil : destination.family
        let keyPort: UInt16? = type.mapping == .addressAndPortDependent ? destination.port : nil
        let index: Int
        if let known = mappings.firstIndex(where: { $0.inside == inside && $0.keyIP == keyIP && $0.keyPort == keyPort }) {
            index = known
        } else {
            mappings.append(Mapping(inside: inside, keyIP: keyIP, keyPort: keyPort, externalPort: nextPort))
            nextPort &+= 1
            index = mappings.count - 1
        }
        let port = mappings[index].externalPort
        if !mappings[index].contacted.contains(destination),
            confirmedInbound.contains(where: { $0.source == destination && $0.port == port }) {
            mappings.append(Mapping(inside: inside, keyIP: nil, keyPort: nil, externalPort: nextPort, contacted: [destination], clash: true))
            nextPort &+= 1
            return STUNAddress(family: publicIP, port: mappings[mappings.count - 1].externalPort)
        }
        if !mappings[index].contacted.contains(destination) { mappings[index].contacted.append(destination) }
        return STUNAddress(family: publicIP, port: mappings[index].externalPort)
    }

    /// RFC 4787 §5: the inside address for a datagram coming in, or nil if filtered.
    func inbound(port: UInt16, from source: STUNAddress) -> STUNAddress? {
        guard let mapping = mappings.first(where: { $0.externalPort == port }) else { return nil }
        switch type.filtering {
        case .endpointIndependent:
            return mapping.inside
        case .addressDependent:
            return mapping.contacted.contains { $0.family == source.family } ? mapping.inside : nil
        case .addressAndPortDependent:
            return mapping.contacted.contains(source) ? mapping.inside : nil
        }
    }
}

/// One agent on the network, with what it reported.
struct SimulatedPeer {
    var name: String
    var agent: ICEAgent
    /// Its socket's address (a host candidate).
    var host: STUNAddress
    /// The LAN it sits on; nil on the public side.
    var lan: Int?
    var alive = true
    var events: [(time: Duration, event: ICEEvent)] = []
    var connectedAt: Duration?
    var failedAt: Duration?
    var consentLostAt: Duration?
    /// Last time a STUN success response reached this peer.
    var lastResponseAt: Duration?

    var selectedPairs: [ICECandidatePair] {
        events.compactMap { if case .selectedPair(let pair) = $0.event { pair } else { nil } }
    }

    var failure: ICEError? {
        if case .failed(let error) = agent.state { return error }
        return nil
    }
}

/// The simulated world: two peers, their LANs, NATs, a STUN server, the
/// links and the signalling channel, driven by a virtual clock.
struct SimulatedNetwork {
    struct Datagram {
        var deliverAt: Duration
        var sequence: Int
        var bytes: [UInt8]
        var from: STUNAddress
        var to: STUNAddress
        /// The LAN it travels on (nil: the public side).
        var lan: Int?
    }

    enum Signal {
        case credentials(ufrag: String, password: String)
        case candidateLine(String)
        case endOfCandidates
        /// `ICEEvent.mappingOpened`, passed on when `signalsMappings` is on.
        case mappingOpened
    }

    var now: Duration = .zero
    var random: SplitMix64
    var link = LinkProfile()
    var signallingDelay: Duration = .milliseconds(60)
    /// Extra signalling delay towards a peer (one that learns the other's candidates later).
    var lateSignalling: [Int: Duration] = [:]
    var peers: [SimulatedPeer] = []
    var nats: [Int: NATBox] = [:]
    var stunServer: STUNAddress? = STUNAddress.ipv4(198, 51, 100, 1, port: 3478)
    var datagrams: [Datagram] = []
    /// The drivers probe the router behind each remote server-reflexive
    /// candidate (as ConnectivityDriver does): the answer takes a round trip.
    var probeRouters = false
    /// The drivers pass `mappingOpened` to each other (between tern peers).
    var signalsMappings = false
    var probeAnswers: [(deliverAt: Duration, peer: Int, address: STUNAddress, answers: Bool)] = []
    var signals: [(deliverAt: Duration, sequence: Int, to: Int, signal: Signal)] = []
    var sequence = 0
    /// Counters for the test output.
    var delivered = 0
    var dropped = 0

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    // MARK: Building the topology

    /// Puts a NAT of `type` between LAN `lan` and the public side.
    mutating func addNAT(lan: Int, type: NATType) {
        nats[lan] = NATBox(
            type: type, publicIP: STUNAddress.ipv4(203, 0, 113, UInt8(lan), port: 0).family,
            nextPort: UInt16(40000 + random.next() % 10000)
        )
    }

    /// Adds an agent with a host address on `lan` (10.0.lan.x) or on the public side (nil).
    @discardableResult
    mutating func addPeer(_ name: String, role: ICERole, lan: Int?, configure: (inout ICEConfiguration) -> Void = { _ in }) throws -> Int {
        let index = peers.count
        let host = lan.map { STUNAddress.ipv4(10, 0, UInt8($0), UInt8(10 + index), port: 5000 + UInt16(index)) }
            ?? STUNAddress.ipv4(198, 51, 100, UInt8(10 + index), port: 5000 + UInt16(index))
        var credentialsRandom = SplitMix64(seed: random.next())
        var configuration = ICEConfiguration(
            role: role,
            localCredentials: ICECredentials.random(using: &credentialsRandom),
            tieBreaker: random.next(),
            randomness: .seeded(random.next())
        )
        configure(&configuration)
        let agent = try ICEAgent(configuration: configuration)
        peers.append(SimulatedPeer(name: name, agent: agent, host: host, lan: lan))
        return index
    }

    /// At the current time: each peer adds its host candidate and, if there
    /// is a STUN server, gathers a server-reflexive one; credentials go to
    /// the other side through signalling. With `wrongPasswordFor: n`, the
    /// other peer is told a wrong password for peer n.
    mutating func start(gather: Bool = true, wrongPasswordFor: Int? = nil) throws {
        for index in peers.indices {
            let host = peers[index].host
            try peers[index].agent.addHostCandidate(host, now: now)
            if gather, let stunServer {
                try peers[index].agent.gatherServerReflexive(from: stunServer, base: host, now: now)
            }
            let credentials = peers[index].agent.configuration.localCredentials
            var password = credentials.password
            if wrongPasswordFor == index { password = String(password.reversed()) }
            signal(.credentials(ufrag: credentials.ufrag, password: password), to: 1 - index)
            if !gather || stunServer == nil { signal(.endOfCandidates, to: 1 - index) }
        }
    }

    mutating func signal(_ signal: Signal, to peer: Int) {
        sequence += 1
        signals.append((now + signallingDelay + (lateSignalling[peer] ?? .zero), sequence, peer, signal))
    }

    // MARK: Moving datagrams

    /// A datagram leaving `peer` (already NAT-translated if needed), onto its way.
    mutating func send(_ transmit: ICETransmit, fromPeer peer: Int) {
        guard peers[peer].alive else { return }
        let lan = peers[peer].lan
        // Same LAN: straight to the neighbour.
        if let lan, peers.contains(where: { $0.lan == lan && $0.host.family == transmit.to.family }) {
            schedule(bytes: transmit.bytes, from: transmit.from, to: transmit.to, lan: lan)
            return
        }
        var source = transmit.from
        if let lan {
            guard var nat = nats[lan] else {
                dropped += 1  // A LAN without a NAT has no way out.
                return
            }
            source = nat.outbound(from: transmit.from, to: transmit.to)
            nats[lan] = nat
        }
        schedule(bytes: transmit.bytes, from: source, to: transmit.to, lan: nil)
    }

    /// Applies the link profile: loss, duplication, delay, jitter, reordering.
    mutating func schedule(bytes: [UInt8], from: STUNAddress, to: STUNAddress, lan: Int?) {
        let copies = random.chance(link.duplication) ? 2 : 1
        for _ in 0..<copies {
            if random.chance(link.loss) {
                dropped += 1
                continue
            }
            var delay = link.delay + random.duration(upTo: link.jitter)
            if random.chance(link.reordering) { delay += random.duration(upTo: link.reorderDelay) }
            sequence += 1
            datagrams.append(Datagram(deliverAt: now + delay, sequence: sequence, bytes: bytes, from: from, to: to, lan: lan))
        }
    }

    /// Delivers one datagram that has arrived.
    mutating func deliver(_ datagram: Datagram) {
        if let lan = datagram.lan {
            guard let peer = peers.firstIndex(where: { $0.lan == lan && $0.host == datagram.to }) else {
                dropped += 1
                return
            }
            hand(datagram.bytes, from: datagram.from, toPeer: peer, base: datagram.to)
            return
        }
        // The public side.
        if datagram.to == stunServer {
            if let answer = STUNBindingResponder.respond(to: datagram.bytes, from: datagram.from), let stunServer {
                schedule(bytes: answer, from: stunServer, to: datagram.from, lan: nil)
            }
            return
        }
        if let peer = peers.firstIndex(where: { $0.lan == nil && $0.host == datagram.to }) {
            hand(datagram.bytes, from: datagram.from, toPeer: peer, base: datagram.to)
            return
        }
        for (lan, nat) in nats where nat.publicIP == datagram.to.family {
            guard let inside = nat.inbound(port: datagram.to.port, from: datagram.from),
                let peer = peers.firstIndex(where: { $0.lan == lan && $0.host == inside })
            else {
                if nat.answersUnsolicited { nats[lan]?.confirmedInbound.append((datagram.from, datagram.to.port)) }
                dropped += 1
                return
            }
            hand(datagram.bytes, from: datagram.from, toPeer: peer, base: inside)
            return
        }
        dropped += 1  // A private address seen from the public side, or nobody there.
    }

    mutating func hand(_ bytes: [UInt8], from source: STUNAddress, toPeer peer: Int, base: STUNAddress) {
        guard peers[peer].alive else {
            dropped += 1
            return
        }
        delivered += 1
        if let header = try? STUNHeader.decode(bytes), header.messageClass == .successResponse {
            peers[peer].lastResponseAt = now
        }
        peers[peer].agent.handleDatagram(bytes, from: source, toBase: base, now: now)
    }

    mutating func deliverSignal(_ signal: Signal, to peer: Int) throws {
        guard peers[peer].alive else { return }
        switch signal {
        case .credentials(let ufrag, let password):
            try peers[peer].agent.setRemoteCredentials(ufrag: ufrag, password: password, now: now)
        case .candidateLine(let line):
            if case .candidate(let candidate) = try ICECandidate.parse(line) {
                if probeRouters, candidate.type == .serverReflexive, peers[peer].agent.probingRemoteRouter(candidate.address, now: now) {
                    let answers = nats.values.contains { $0.publicIP == candidate.address.family && $0.answersUnsolicited }
                    probeAnswers.append((now + link.delay * 2, peer, candidate.address, answers))
                }
                try peers[peer].agent.addRemoteCandidate(candidate, now: now)
            }
        case .endOfCandidates:
            peers[peer].agent.remoteCandidatesComplete(now: now)
        case .mappingOpened:
            peers[peer].agent.peerOpenedMapping(now: now)
        }
    }

    // MARK: The clock

    /// Drains every alive agent's output: datagrams onto the network, events
    /// into the peer's log, trickled candidates into signalling.
    mutating func pump() {
        for index in peers.indices where peers[index].alive {
            while let transmit = peers[index].agent.pollTransmit(now: now) {
                send(transmit, fromPeer: index)
            }
            while let event = peers[index].agent.pollEvent() {
                peers[index].events.append((now, event))
                switch event {
                case .localCandidate(let candidate):
                    signal(.candidateLine(candidate.sdpLine), to: 1 - index)
                case .gatheringComplete:
                    signal(.endOfCandidates, to: 1 - index)
                case .mappingOpened:
                    if signalsMappings { signal(.mappingOpened, to: 1 - index) }
                case .selectedPair:
                    if peers[index].connectedAt == nil { peers[index].connectedAt = now }
                case .stateChanged(.failed):
                    peers[index].failedAt = now
                case .consentLost:
                    peers[index].consentLostAt = now
                default:
                    break
                }
            }
        }
    }

    /// Runs until `until` or until `stop` holds, whichever comes first.
    /// Returns false if the clock got stuck (a deadline that never moves).
    @discardableResult
    mutating func run(until limit: Duration, stop: (SimulatedNetwork) -> Bool = { _ in false }) throws -> Bool {
        var stuck = 0
        while true {
            pump()
            if stop(self) { return true }
            var next: Duration?
            func consider(_ time: Duration?) {
                guard let time else { return }
                next = min(next ?? time, time)
            }
            for datagram in datagrams { consider(datagram.deliverAt) }
            for signal in signals { consider(signal.deliverAt) }
            for answer in probeAnswers { consider(answer.deliverAt) }
            for peer in peers where peer.alive { consider(peer.agent.nextDeadline) }
            guard let next, next <= limit else {
                now = limit
                pump()
                return true
            }
            if next <= now {
                stuck += 1
                if stuck > 10_000 {
                    Issue.record("the clock is stuck at \(now.seconds): a deadline that never moves")
                    return false
                }
            } else {
                stuck = 0
            }
            now = max(now, next)

            // Everything due now, in order of sending.
            let dueSignals = signals.filter { $0.deliverAt <= now }.sorted { $0.sequence < $1.sequence }
            signals.removeAll { $0.deliverAt <= now }
            for signal in dueSignals { try deliverSignal(signal.signal, to: signal.to) }
            for answer in probeAnswers where answer.deliverAt <= now {
                peers[answer.peer].agent.remoteRouter(answer.address, answersUnsolicited: answer.answers, now: now)
            }
            probeAnswers.removeAll { $0.deliverAt <= now }
            let due = datagrams.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.sequence) < ($1.deliverAt, $1.sequence) }
            datagrams.removeAll { $0.deliverAt <= now }
            for datagram in due { deliver(datagram) }
            for index in peers.indices where peers[index].alive { peers[index].agent.advanceTime(now: now) }
        }
    }

    var bothConnected: Bool {
        peers.allSatisfy { $0.connectedAt != nil }
    }

    var bothDone: Bool {
        peers.allSatisfy { $0.connectedAt != nil || $0.failedAt != nil }
    }
}

extension Duration {
    /// "1.234 s" for test output.
    var seconds: String {
        let (s, atto) = components
        let millis = atto / 1_000_000_000_000_000
        return "\(s).\(String(repeating: "0", count: 3 - String(millis).count))\(millis) s"
    }

    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension SplitMix64 {
    /// True with probability `probability` (0 never, 1 always).
    mutating func chance(_ probability: Double) -> Bool {
        guard probability > 0 else { return false }
        return Double(next() >> 11) / Double(UInt64(1) << 53) < probability
    }

    /// A duration uniform in 0 ... `limit`.
    mutating func duration(upTo limit: Duration) -> Duration {
        let nanoseconds = limit.components.seconds * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64(next() % UInt64(nanoseconds + 1)))
    }
}
