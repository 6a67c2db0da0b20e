import Logging
import NIOCore
import NIOPosix
import TernICE
import TernPairing
import TernRendezvous
import TernSDP
import TernSTUN
import TernTLS
import TernTURN
import TernCollections

/// One session's network side: it owns a UDP socket (and a TCP connection
/// per TURN-over-TCP server) and the timers, and pumps the sans-IO ICE agent
/// and TURN clients on one SwiftNIO event loop (design.md: one driver per
/// session, no locks on the data path).
///
/// Every datagram on the socket is demultiplexed by its first byte (RFC
/// 7983): STUN from the TURN server (other than Binding) and ChannelData go
/// to that TURN client, other STUN to the ICE agent, DTLS (next layer) is
/// counted and dropped for now.
///
/// Signalling goes out through `signal` (the sealed mailbox): this side's
/// session description first, then each candidate as it is found, then
/// end-of-candidates, and `connected` once this side selected a pair.
/// What the peer signals comes in through `handle(_:)`.
///
/// Thread safety: all mutable state is touched on `loop` only; the public
/// methods hop there.
public final class ConnectivityDriver: @unchecked Sendable {
    /// The ICE option token (in `a=ice-options`) by which a tern peer says it
    /// sends and understands `PeerMessage.mappingOpened`.
    static let mappingOpenedOption = "tern-mapping-opened"
    /// How long ordinary checks wait for the answer of a remote router's probe.
    static let routerProbeWait: Duration = .milliseconds(50)
    public let loop: EventLoop
    private let options: ConnectivityOptions
    private let signal: @Sendable (PeerMessage) -> Void
    private let logger: Logger
    private let startedAt: NIODeadline
    private let stunServers: [STUNAddress]
    private let turnServers: [(uri: ServerURI, address: STUNAddress)]
    /// For `turns:` servers: the system's trust store, or the pin the relay handed out.
    private let tlsContext: TLSContext?

    // Confined to `loop`.
    private var agent: ICEAgent
    private var channel: Channel?
    private var dualStack = false
    private var localPort: UInt16 = 0
    private var hostBases: [STUNAddress] = []
    private var turns: [TURNSlot] = []
    private lazy var timer = LoopTimer(loop: loop, origin: startedAt)
    private var pumping = false
    private var signalledEnd = false
    private var signalledConnected = false
    private var peerConnected = false
    private var selected: ConnectedPath?
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
    private var finished = false
    private var closed = false
    private let established: EventLoopPromise<ConnectedPath>
    /// Datagrams of kinds no layer takes yet, and ones from nobody known.
    public private(set) var droppedDatagrams = 0

    private struct TURNSlot {
        var uri: ServerURI
        var server: STUNAddress
        var client: TURNClient
        var stream: Channel?
        var relayed: STUNAddress?
        /// Relayed addresses the server lost (`TURNEvent.allocationLost`):
        /// nothing goes out from them any more, neither checks nor data.
        var retired: Set<STUNAddress> = []
        /// Why this server gave no relayed candidate, for the failure sentence.
        var failure: String?
        var settled: Bool { relayed != nil || failure != nil }
    }

    private init(
        loop: EventLoop, options: ConnectivityOptions, agent: ICEAgent, stunServers: [STUNAddress],
        turnServers: [(uri: ServerURI, address: STUNAddress)], tlsContext: TLSContext?,
        signal: @escaping @Sendable (PeerMessage) -> Void, logger: Logger
    ) {
        self.loop = loop
        self.options = options
        self.agent = agent
        self.stunServers = stunServers
        self.turnServers = turnServers
        self.tlsContext = tlsContext
        self.signal = signal
        self.logger = logger
        self.startedAt = .now()
        self.established = loop.makePromise()
        (pathChanges, pathChangesInput) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(8))
    }

    /// Opens the socket, signals this side's session description and starts
    /// gathering. Candidates are signalled as they are found.
    public static func start(
        options: ConnectivityOptions, signal: @escaping @Sendable (PeerMessage) -> Void,
        logger: Logger = Logger(label: "tern.connect"), group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(SessionError) -> ConnectivityDriver {
        // The relay's addresses are hostile input like everything else: a
        // malformed one is skipped (and logged), not fatal.
        var stunServers: [STUNAddress] = []
        if !options.forceRelay {
            for text in options.stun.prefix(4) {
                do {
                    let uri = try ServerURI(parsing: text)
                    guard uri.scheme == .stun else { continue }
                    stunServers.append(try uri.resolve())
                } catch {
                    logger.warning("skipping STUN server", metadata: ["uri": "\(DisplayText.escaped(text))", "reason": "\(error.message)"])
                }
            }
        }
        var turnServers: [(uri: ServerURI, address: STUNAddress)] = []
        for text in (options.turn?.uris ?? []).prefix(4) {
            do {
                let uri = try ServerURI(parsing: text)
                guard uri.scheme != .stun else { continue }
                turnServers.append((uri, try uri.resolve()))
            } catch {
                logger.warning("skipping TURN server", metadata: ["uri": "\(DisplayText.escaped(text))", "reason": "\(error.message)"])
            }
        }
        var tlsContext: TLSContext?
        if turnServers.contains(where: \.uri.isSecure) {
            do {
                if let pin = options.turn?.tlsPin {
                    tlsContext = try .client(pinning: TLSCertificatePin(parsing: pin))
                } else {
                    tlsContext = try .client()
                }
            } catch {
                logger.warning("skipping TURN over TLS", metadata: ["reason": "\(error.reason)"])
                turnServers.removeAll { $0.uri.isSecure }
            }
        }
        if options.forceRelay && turnServers.isEmpty {
            throw .noPath("--force-relay needs a TURN server, and the relay offers none")
        }

        var agent: ICEAgent
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
        let loop = group.next()
        let driver = ConnectivityDriver(
            loop: loop, options: options, agent: agent, stunServers: stunServers, turnServers: turnServers, tlsContext: tlsContext,
            signal: signal, logger: logger)
        let channel = try await driver.bindSocket()
        do {
            try await loop.submit { try driver.begin(channel: channel) }.get()
        } catch {
            try? await channel.close()
            throw error as? SessionError ?? .localNetwork("cannot start connectivity: \(error)")
        }
        return driver
    }

    /// One socket for the session: dual-stack where the host has IPv6,
    /// IPv4 otherwise. Arrival addresses (IP_PKTINFO) tell which host
    /// candidate a datagram came to.
    private func bindSocket() async throws(SessionError) -> Channel {
        // UDP GRO: the kernel hands a run of datagrams of one size from one
        // sender over as one read (with the segment size); a GSO peer's
        // writes then cross loopback or a GRO-capable NIC whole. Each read
        // slot must then hold 64 KiB, or an aggregate would be cut short.
        let receiveOffload = System.supportsUDPReceiveOffload
        let readSlots = receiveOffload ? 32 : 64
        let slotSize = receiveOffload ? 65_536 : 2048
        func bootstrap() -> DatagramBootstrap {
            let bootstrap = DatagramBootstrap(group: loop)
                .channelOption(.receivePacketInfo, value: true)
                // The data path is packet-rate bound (design.md): read up to
                // 64 datagrams (or 32 aggregates) per system call (recvmmsg),
                // and give the kernel room to queue a burst on either side.
                .channelOption(.datagramVectorReadMessageCount, value: readSlots)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: readSlots * slotSize))
            return (receiveOffload
                ? bootstrap.channelOption(.datagramReceiveOffload, value: true).channelOption(.datagramReceiveSegmentSize, value: true)
                : bootstrap)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DatagramReader(driver: self))
                    }
                }
        }
        do {
            return try await bootstrap()
                .channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0)
                .bind(host: "::", port: 0).get()
        } catch {
            do {
                return try await bootstrap().bind(host: "0.0.0.0", port: 0).get()
            } catch {
                throw .localNetwork("cannot open a UDP socket: \(RelayConnection.describe(error))")
            }
        }
    }

    // MARK: - The layer above (on `loop`)

    /// Where DTLS datagrams from the selected pair go; set on `loop` once
    /// connected. Called on `loop`, with bytes valid for the call only.
    private var applicationHandler: ((UnsafeRawBufferPointer) -> Void)?

    private var applicationReadComplete: (() -> Void)?

    /// Told when the selected pair loses consent (RFC 7675) after connecting.
    private var pathLostHandler: ((String) -> Void)?

    /// Each time the session's datagrams move to another pair after
    /// `connected()` returned (`upgradesPath`): a direct pair instead of a
    /// relayed one, a host pair instead of a server-reflexive one. The layers
    /// above notice nothing: the next datagram goes out on the new pair, and
    /// the old pair's stragglers are still taken. Ends when the driver closes.
    public let pathChanges: AsyncStream<ConnectedPath>
    private let pathChangesInput: AsyncStream<ConnectedPath>.Continuation

    /// Calls `handler` on `loop` if the selected pair stops answering consent
    /// checks after the driver connected (the peer is gone or unreachable).
    public func setPathLostHandler(_ handler: @escaping (String) -> Void) {
        loop.preconditionInEventLoop()
        pathLostHandler = handler
    }

    /// The selected pair's remote address as the socket reports it, while
    /// the local candidate is not relayed: the data path's datagrams are
    /// matched against it and sent to it without converting addresses.
    private var directPeer: (socket: SocketAddress, stun: STUNAddress)?

    /// Hands DTLS datagrams arriving on the selected pair to `handler`, and
    /// calls `readComplete` after each batch of them, on `loop`.
    public func setApplicationHandler(_ handler: @escaping ([UInt8]) -> Void, readComplete: @escaping () -> Void = {}) {
        setApplicationHandler(bytes: { handler(Array($0)) }, readComplete: readComplete)
    }

    /// Hands DTLS datagrams arriving on the selected pair to `handler` as
    /// bytes valid only during the call (the data path: no copy), and calls
    /// `readComplete` after each batch of them, on `loop`.
    public func setApplicationHandler(bytes handler: @escaping (UnsafeRawBufferPointer) -> Void, readComplete: @escaping () -> Void = {}) {
        loop.preconditionInEventLoop()
        applicationHandler = handler
        applicationReadComplete = readComplete
        let early = earlyApplication
        earlyApplication.removeAll()
        for datagram in early { datagram.withUnsafeBytes { handler($0) } }
        if !early.isEmpty { readComplete() }
    }

    /// Sends one datagram of the layer above on the selected pair: straight
    /// to the peer, or through this side's TURN allocation when the local
    /// candidate is relayed. Call on `loop`; dropped before a pair is selected.
    public func sendApplication(_ bytes: [UInt8]) {
        loop.preconditionInEventLoop()
        guard !closed, let pair = selected?.pair else {
            droppedDatagrams += 1
            return
        }
        if let slot = turns.firstIndex(where: { $0.relayed == pair.localBase }) {
            do {
                try turns[slot].client.send(bytes, to: pair.remote.address, now: now())
            } catch {
                droppedDatagrams += 1
            }
        } else if turns.contains(where: { $0.retired.contains(pair.localBase) }) {
            droppedDatagrams += 1
        } else {
            sendDatagram(bytes, to: pair.remote.address)
        }
    }

    /// Sends datagrams of the layer above on the selected pair, as
    /// `sendApplication(_:)` does for each, from one buffer: `lengths` cuts
    /// `datagrams` into consecutive datagrams. Call on `loop`.
    public func sendApplication(_ datagrams: ByteBuffer, lengths: some Collection<Int>) {
        loop.preconditionInEventLoop()
        guard let channel, let peer = directPeer, !closed else {
            // Through TURN (or before a pair is selected): one at a time.
            var rest = datagrams
            for length in lengths {
                guard let bytes = rest.readBytes(length: length) else { break }
                sendApplication(bytes)
            }
            return
        }
        var rest = datagrams
        guard segmentOffload else {
            for length in lengths {
                guard let slice = rest.readSlice(length: length) else { break }
                channel.write(AddressedEnvelope(remoteAddress: peer.socket, data: slice), promise: nil)
                unflushed = true
            }
            return
        }
        // GSO: runs of datagrams of one size (the last of a run may be
        // shorter) go out as one write each.
        var segment = 0, count = 0, bytes = 0
        func writeRun() {
            guard count > 0, let slice = rest.readSlice(length: bytes) else { return }
            let metadata = count > 1
                ? AddressedEnvelope<ByteBuffer>.Metadata(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: segment) : nil
            channel.write(AddressedEnvelope(remoteAddress: peer.socket, data: slice, metadata: metadata), promise: nil)
            unflushed = true
            count = 0
            bytes = 0
        }
        for length in lengths {
            if count > 0, length > segment || count == SegmentationOffload.maximumSegments
                || bytes + length > SegmentationOffload.maximumBytes {
                writeRun()
            }
            if count == 0 { segment = length }
            count += 1
            bytes += length
            if length < segment { writeRun() }  // a shorter datagram ends its run
        }
        writeRun()
    }

    /// Whether the data path writes runs of datagrams with GSO (probed
    /// when a direct pair is selected).
    private var segmentOffload = false

    /// A buffer for `sendApplication(_:lengths:)`.
    public func allocateBuffer(capacity: Int) -> ByteBuffer {
        (channel?.allocator ?? ByteBufferAllocator()).buffer(capacity: capacity)
    }

    // MARK: - Public API (any thread)

    /// Feeds what the peer signalled: its session description, candidates,
    /// end-of-candidates and `connected`. Other messages are ignored.
    /// Returns true once both sides have selected a pair (`connected()`
    /// then returns at once), so the caller can stop reading signals before
    /// the peer's next mailbox event.
    @discardableResult
    public func handle(_ message: PeerMessage) async -> Bool {
        (try? await loop.submit { () -> Bool in
            self.receiveSignal(message)
            return self.finished && self.selected != nil && self.peerConnected
        }.get()) ?? false
    }

    /// Returns once this side selected a pair and the peer said it did too;
    /// throws `.noPath` when ICE fails.
    public func connected() async throws(SessionError) -> ConnectedPath {
        do {
            return try await established.futureResult.get()
        } catch let error as SessionError {
            throw error
        } catch {
            throw .noPath("\(error)")
        }
    }

    /// Releases TURN allocations (waiting briefly for the server to agree)
    /// and closes the socket and connections.
    public func close() async {
        let done = loop.makePromise(of: Void.self)
        loop.execute { self.shutDown(done: done) }
        try? await done.futureResult.get()
    }

    // MARK: - Start

    private func begin(channel: Channel) throws(SessionError) {
        self.channel = channel
        guard let address = channel.localAddress, let port = address.port, let port16 = UInt16(exactly: port) else {
            throw .localNetwork("the UDP socket has no local port")
        }
        localPort = port16
        if case .v6 = address { dualStack = true }
        let now = self.now()

        var media = MediaDescription.dataChannel(
            iceUfrag: agent.configuration.localCredentials.ufrag, icePwd: agent.configuration.localCredentials.password,
            fingerprint: options.fingerprint, setup: options.role == .controlling ? .actpass : .active)
        // An ICE option token (RFC 8839 §5.6): others ignore tokens they do not know.
        media.iceOptions.append(Self.mappingOpenedOption)
        var description = SessionDescription(sessionID: UInt64.random(in: 1...UInt64(Int64.max)), media: [media])
        description.sessionVersion = 2
        signal(.sessionDescription(kind: options.role == .controlling ? .offer : .answer, sdp: description.formatted()))

        if !options.forceRelay {
            let addresses: [LocalAddresses.Address]
            do {
                addresses = try LocalAddresses.usable()
            } catch {
                throw .localNetwork("cannot list the network interfaces: \(error)")
            }
            for local in addresses where dualStack || local.ip.count == 4 {
                guard let base = STUNAddress(ipBytes: local.ip, port: localPort) else { continue }
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
                connectStream(slot: index)
            }
        }
        pump()
    }

    private func connectStream(slot index: Int) {
        guard let target = SocketAddressConversion.socketAddress(turns[index].server, dualStack: turns[index].server.ipBytes.count == 16) else {
            settleTURN(index, "no socket address for \(turns[index].server)")
            return
        }
        let uri = turns[index].uri
        let tls = uri.isSecure ? tlsContext : nil
        if uri.isSecure && tls == nil {
            settleTURN(index, "no TLS context for \(uri)")
            return
        }
        let (seconds, attoseconds) = options.tlsHandshakeTimeout.components
        let handshakeTimeout = TimeAmount.nanoseconds(Int64(clamping: seconds) &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // RFC 8656 §3.1: TLS over TCP, the server's name
                        // (SNI and the certificate's name) from the URI.
                        try channel.pipeline.syncOperations.addHandler(
                            TLSHandler(context: tls, serverName: uri.host, handshakeTimeout: handshakeTimeout))
                    }
                    try channel.pipeline.syncOperations.addHandler(StreamReader(driver: self, slot: index))
                }
            }
            .connect(to: target)
            .whenComplete { result in
                self.loop.preconditionInEventLoop()
                switch result {
                case .success(let stream):
                    if self.closed {
                        stream.close(promise: nil)
                        return
                    }
                    self.turns[index].stream = stream
                    self.turns[index].client.start(now: self.now())
                    self.pump()
                case .failure(let error):
                    self.settleTURN(index, "the TCP connection failed: \(RelayConnection.describe(error))")
                    self.pump()
                }
            }
    }

    // MARK: - Input

    /// A read from the socket: one datagram, or with GRO a run of datagrams
    /// of `segmentSize` bytes each (the last may be shorter).
    fileprivate func readArrived(_ envelope: AddressedEnvelope<ByteBuffer>) {
        let segment = envelope.metadata?.segmentSize ?? 0
        // The data path: DTLS from the selected pair's remote address, one
        // datagram or a GRO aggregate of them, handed up as views of the read
        // buffer. The address is compared once per read, and no envelope is
        // made per datagram (each would retain the buffer and the address).
        if !closed, let peer = directPeer, let applicationHandler, envelope.remoteAddress == peer.socket {
            let handled = envelope.data.withUnsafeReadableBytes { bytes -> Int in
                let step = segment > 0 ? segment : bytes.count
                var offset = 0
                while offset < bytes.count {
                    let end = min(offset + step, bytes.count)
                    guard PacketKind.classify(bytes[offset]) == .dtls else { break }
                    applicationHandler(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                    offset = end
                }
                return offset
            }
            if handled > 0 {
                // A datagram in the aggregate that is not DTLS (not expected
                // from a peer): it and the rest go the general way.
                guard handled < envelope.data.readableBytes else { return }
                var rest = envelope.data
                rest.moveReaderIndex(forwardBy: handled)
                readSegments(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: rest, metadata: envelope.metadata), segment: segment)
                return
            }
        }
        readSegments(envelope, segment: segment)
    }

    private func readSegments(_ envelope: AddressedEnvelope<ByteBuffer>, segment: Int) {
        guard segment > 0, envelope.data.readableBytes > segment else {
            datagramArrived(envelope)
            return
        }
        var rest = envelope.data
        while rest.readableBytes > 0, let slice = rest.readSlice(length: min(segment, rest.readableBytes)) {
            datagramArrived(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: slice, metadata: envelope.metadata))
        }
    }

    private func datagramArrived(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard !closed, let first = envelope.data.readableBytesView.first else {
            droppedDatagrams += 1
            return
        }
        guard let source = SocketAddressConversion.stunAddress(envelope.remoteAddress) else {
            droppedDatagrams += 1
            return
        }
        let bytes = Array(envelope.data.readableBytesView)
        let now = self.now()
        if let slot = turns.firstIndex(where: { $0.uri.transport == .udp && $0.server == source }) {
            // From the TURN server: its answers, Data indications and
            // ChannelData; a Binding answer is the STUN gathering's (a server
            // can be both).
            let kind = PacketKind.classify(first)
            if kind == .turnChannelData || (kind == .stun && !STUN.isBinding(bytes)) {
                turns[slot].client.handleDatagram(bytes, now: now)
                pump()
                return
            }
        }
        switch PacketKind.classify(first) {
        case .stun:
            let base = arrivalBase(envelope)
            guard let base else {
                droppedDatagrams += 1
                return
            }
            if case .dropped(let why) = agent.handleDatagram(bytes, from: source, toBase: base, now: now) {
                logger.trace("ICE dropped a datagram", metadata: ["from": "\(source)", "reason": "\(why.reason)"])
            }
        case .dtls:
            // The data path: no ICE work to do; the layer above runs once per
            // batch of reads (`readComplete`).
            deliverApplication(bytes, from: source)
            return
        default:
            droppedDatagrams += 1
        }
        pump()
    }

    /// The socket's batch of reads is over.
    fileprivate func readComplete() {
        applicationReadComplete?()
    }

    /// DTLS from the selected pair's remote address, or from the remote end
    /// of another pair whose checks succeeded, goes to the layer above;
    /// anything else (DTLS from an address ICE never checked) is dropped.
    /// RFC 8445 §12.2: an agent must be ready to receive data on pairs
    /// other than the one it sends on. A peer can pick another pair than
    /// ours: aiortc, controlling, nominates every pair it checks and sends on
    /// the last to succeed, where tern uses the highest-priority one.
    private func deliverApplication(_ bytes: [UInt8], from source: STUNAddress) {
        guard let selected else {
            droppedDatagrams += 1
            return
        }
        guard selected.pair.remote.address == source || agent.validPairs.contains(where: { $0.remote.address == source }) else {
            droppedDatagrams += 1
            return
        }
        guard let applicationHandler else {
            // The peer's first DTLS flight can beat our own start by a few
            // milliseconds: keep a little of it rather than wait for its
            // retransmission (1 s).
            if earlyApplication.count < 16 { earlyApplication.append(bytes) } else { droppedDatagrams += 1 }
            return
        }
        bytes.withUnsafeBytes { applicationHandler($0) }
    }

    private var earlyApplication: [[UInt8]] = []

    /// The host candidate a datagram arrived at: its destination address
    /// (from IP_PKTINFO) and the socket's port.
    private func arrivalBase(_ envelope: AddressedEnvelope<ByteBuffer>) -> STUNAddress? {
        if let destination = envelope.metadata?.packetInfo?.destinationAddress,
           let ip = LocalAddresses.bytes(of: destination),
           let base = SocketAddressConversion.stunAddress(ip: ip, port: localPort),
           hostBases.contains(base) {
            return base
        }
        // Without packet info, the only host base of the source's family.
        guard let source = SocketAddressConversion.stunAddress(envelope.remoteAddress) else { return nil }
        let sameFamily = hostBases.filter { $0.family.code == source.family.code }
        return sameFamily.count == 1 ? sameFamily[0] : nil
    }

    fileprivate func streamBytesArrived(slot: Int, _ buffer: ByteBuffer) {
        guard !closed, turns.indices.contains(slot) else { return }
        turns[slot].client.handleStreamBytes(Array(buffer.readableBytesView), now: now())
        pump()
    }

    /// The TURN server's TCP (or TLS) connection failed: the reason goes to
    /// the failure sentence; the close that follows ends the TURN client.
    fileprivate func streamFailed(slot: Int, _ error: Error) {
        guard !closed, turns.indices.contains(slot), turns[slot].relayed == nil else { return }
        let reason = (error as? TLSError).map { "TLS: \($0.reason)" } ?? "the TCP connection failed: \(RelayConnection.describe(error))"
        settleTURN(slot, reason)
    }

    fileprivate func streamClosed(slot: Int) {
        guard !closed, turns.indices.contains(slot) else { return }
        turns[slot].stream = nil
        turns[slot].client.handleConnectionClosed(now: now())
        pump()
    }

    private func receiveSignal(_ message: PeerMessage) {
        guard !closed else { return }
        let now = self.now()
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
            remoteFingerprints = media.fingerprints
            remoteSetup = media.setup
            remoteMaxMessageSize = media.maxMessageSize
            for line in media.candidates { addRemote(line, now: now) }
            if media.endOfCandidates { agent.remoteCandidatesComplete(now: now) }
        case .candidate(_, let line):
            addRemote(line, now: now)
        case .endOfCandidates:
            agent.remoteCandidatesComplete(now: now)
        case .connected:
            peerConnected = true
            completeIfDone()
        case .mappingOpened:
            agent.peerOpenedMapping(now: now)
        default:
            break
        }
        pump()
    }

    private func addRemote(_ line: String, now: Duration) {
        do {
            switch try ICECandidate.parse(line) {
            case .candidate(let candidate):
                if candidate.type == .serverReflexive { probeRouter(behind: candidate.address, now: now) }
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

    /// Mapping-clash avoidance (ICEAgent+RemoteRouters.swift): asks the
    /// router at a remote server-reflexive address whether it answers
    /// unsolicited datagrams, and tells the agent (RouterProbe).
    private func probeRouter(behind address: STUNAddress, now: Duration) {
        guard agent.probingRemoteRouter(address, now: now) else { return }
        guard let probe = RouterProbe(towards: address) else { return }
        for (index, delay) in RouterProbe.polls.enumerated() {
            loop.scheduleTask(in: delay) { [self] in
                guard !closed else { return probe.close() }
                let answered = probe.answered()
                guard answered || index == RouterProbe.polls.count - 1 else { return }
                probe.close()
                logger.debug("remote router probed", metadata: ["address": "\(address)", "answers_unsolicited": "\(answered)"])
                agent.remoteRouter(address, answersUnsolicited: answered, now: self.now())
                pump()
            }
        }
    }

    // MARK: - Pumping the cores

    /// Moves everything the cores want to send to the network, acts on their
    /// events, and sets the timer for the earliest deadline. Events can feed
    /// one core from another (TURN hands ICE its relayed datagrams), so it
    /// loops until nothing moves.
    private func pump() {
        guard !pumping, !closed else { return }
        pumping = true
        defer { pumping = false }
        var moved = true
        while moved {
            moved = false
            let now = self.now()
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
                } else if let pair = selected?.pair, pair.localBase == transmit.from, pair.remote.address == transmit.to {
                    // A check on the selected direct pair: a hard send error
                    // (no route to the peer) moves to a backup pair at once.
                    sendDatagram(transmit.bytes, to: transmit.to) { [self] in
                        if !closed, agent.selectedPairUnreachable(now: self.now()) { pump() }
                    }
                } else {
                    sendDatagram(transmit.bytes, to: transmit.to)
                }
            }
            for index in turns.indices {
                while let bytes = turns[index].client.pollTransmit() {
                    moved = true
                    switch turns[index].uri.transport {
                    case .udp: sendDatagram(bytes, to: turns[index].server)
                    case .tcp: sendStream(bytes, slot: index)
                    }
                }
                while let event = turns[index].client.pollEvent() {
                    moved = true
                    handleTURN(event, slot: index, now: now)
                }
            }
            while let event = agent.pollEvent() {
                moved = true
                handleICE(event)
            }
        }
        flushSocket()
        if !signalledEnd, !agent.isGathering, turns.allSatisfy(\.settled) {
            signalledEnd = true
            signal(.endOfCandidates)
            if options.forceRelay && turns.allSatisfy({ $0.relayed == nil }) {
                // Nothing to check with: say so now rather than after the ICE timeout.
                fail(.noPath(failureSentence(.connectivityFailed(agent.failureReport()))))
            }
        }
        rearmTimer()
    }

    private func handleTURN(_ event: TURNEvent, slot index: Int, now: Duration) {
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
            guard let relayed = turns[index].relayed, let first = data.first else {
                droppedDatagrams += 1
                return
            }
            switch PacketKind.classify(first) {
            case .stun: _ = agent.handleDatagram(data, from: peer, toBase: relayed, now: now)
            case .dtls where selected != nil:
                // On the selected pair, or a straggler from the pair it replaced.
                deliverApplication(data, from: peer)
                applicationReadComplete?()
            default: droppedDatagrams += 1
            }
        case .allocationLost(let relayed, let error):
            // The TURN client is already allocating afresh; `.allocated` adds
            // the new relayed candidate (trickled to the peer).
            logger.debug("TURN allocation lost", metadata: ["server": "\(turns[index].uri)", "relayed": "\(relayed)", "reason": "\(error.reason)"])
            turns[index].retired.insert(relayed)
            if turns[index].relayed == relayed { turns[index].relayed = nil }
        case .failed(let error):
            settleTURN(index, error.reason)
        case .permissionFailed(let peer, let error), .channelBindFailed(let peer, let error):
            logger.debug("TURN refused", metadata: ["peer": "\(peer)", "reason": "\(error.reason)"])
        case .refreshed, .permissionCreated, .channelBound, .deallocated:
            break
        }
    }

    private func settleTURN(_ index: Int, _ reason: String) {
        if turns[index].failure == nil { turns[index].failure = reason }
        logger.debug("TURN unavailable", metadata: ["server": "\(turns[index].uri)", "reason": "\(reason)"])
    }

    private func handleICE(_ event: ICEEvent) {
        switch event {
        case .localCandidate(let candidate):
            if options.forceRelay && candidate.type != .relayed { return }
            logger.debug("local candidate", metadata: ["candidate": "\(candidate)", "at_ms": "\(milliseconds(now()))"])
            signal(.candidate(mid: "0", candidate: candidate.sdpAttribute))
        case .selectedPair(let pair):
            logger.debug("selected pair", metadata: ["pair": "\(pair)", "at_ms": "\(milliseconds(now()))"])
            if selectedAt == nil { selectedAt = now() }
            let relayURI = turns.first { $0.relayed == pair.localBase }?.uri
            selected = ConnectedPath(pair: pair, roundTrip: agent.selectedRoundTrip, relayTransport: relayURI?.transport)
            selected?.replacedLostPath = replacingLostPath
            replacingLostPath = false
            selected?.relayOverTLS = relayURI?.isSecure ?? false
            if turns.contains(where: { $0.relayed == pair.localBase || $0.retired.contains(pair.localBase) }) {
                directPeer = nil
                segmentOffload = false
            } else {
                directPeer = SocketAddressConversion.socketAddress(pair.remote.address, dualStack: dualStack).map { ($0, pair.remote.address) }
                segmentOffload = directPeer.map { SegmentationOffload.works(towards: $0.socket) } ?? false
                // Asked in the peer's own family (the socket may be dual-stack).
                selected?.routeMTU = SocketAddressConversion.socketAddress(pair.remote.address, dualStack: false).flatMap(RouteMTU.towards)
                logger.debug("data path", metadata: ["segmentation_offload": "\(segmentOffload)"])
            }
            if !signalledConnected {
                signalledConnected = true
                signal(.connected)
            }
            if finished, let path = selected {
                var changed = path
                changed.remoteFingerprints = remoteFingerprints
                changed.remoteSetup = remoteSetup
                changed.remoteMaxMessageSize = remoteMaxMessageSize
                pathChangesInput.yield(changed)
            }
            completeIfDone()
        case .selectedPairLost(let pair):
            // Another valid pair takes over (`.selectedPair` follows).
            logger.info("selected pair stopped answering", metadata: ["pair": "\(pair)", "at_ms": "\(milliseconds(now()))"])
            replacingLostPath = true
        case .stateChanged(.failed(let error)):
            fail(.noPath(failureSentence(error)))
        case .consentLost:
            if !finished {
                fail(.noPath("the path to the other side stopped answering"))
            } else {
                // RFC 7675 §5.1: no answer to the consent checks for 30 s.
                pathLostHandler?("the other side stopped answering connectivity checks (nothing for 30 s)")
            }
        case .gatheringFailed(let error):
            logger.debug("server-reflexive gathering failed", metadata: ["reason": "\(error.reason)"])
        case .stateChanged(let state):
            logger.debug("ICE state", metadata: ["state": "\(state)", "at_ms": "\(milliseconds(now()))"])
        case .roleChanged(let role):
            logger.debug("ICE role conflict resolved", metadata: ["role": "\(role)"])
        case .gatheringComplete:
            break
        case .mappingOpened(let address):
            guard peerSignalsMappings else { return }
            logger.debug("first check to the peer's router sent", metadata: ["address": "\(address)", "at_ms": "\(milliseconds(now()))"])
            signal(.mappingOpened)
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

    private func completeIfDone() {
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
        established.succeed(path)
    }

    private func fail(_ error: SessionError) {
        guard !finished else { return }
        finished = true
        established.fail(error)
    }

    // MARK: - Output

    /// - Parameter unreachable: called on `loop` if the write fails because
    ///   the destination is unreachable (EHOSTUNREACH from the kernel), or
    ///   when the kernel has no route to it any more (asked afresh each time).
    private func sendDatagram(_ bytes: [UInt8], to destination: STUNAddress, unreachable: (() -> Void)? = nil) {
        let known = directPeer.flatMap { $0.stun == destination ? $0.socket : nil }
        guard let channel, let address = known ?? SocketAddressConversion.socketAddress(destination, dualStack: dualStack) else {
            droppedDatagrams += 1
            return
        }
        // A destination the kernel refuses (no route, a link-local address
        // without a zone) is never written to: SwiftNIO would close the
        // session's socket on that send error (RouteCheck).
        var route = routeChecks.refusal(to: destination, at: address)
        if route.reason == nil, let unreachable, let reason = RouteCheck.refusal(to: address) {
            // The selected pair's checks (about one a second) ask afresh: a
            // route that went away since the first datagram moves the
            // session to a backup pair.
            route = (reason, true)
            unreachable()
        }
        if let reason = route.reason {
            if route.new { logger.debug("no datagram can go there", metadata: ["to": "\(destination)", "reason": "\(reason)"]) }
            droppedDatagrams += 1
            return
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        // A send error the kernel reports later (an ICMP unreachable)
        // concerns one candidate pair; ICE's own timeouts deal with it.
        // Writes are flushed together (sendmmsg) at the end of a pump or by
        // `flushApplication`.
        if let unreachable {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenFailure { error in
                if case ChannelError.writeHostUnreachable = error { unreachable() }
            }
            channel.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: promise)
        } else {
            channel.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
        }
        unflushed = true
    }

    private var unflushed = false

    /// Destinations checked before their first datagram (RouteCheck).
    private var routeChecks = RouteCheckCache()

    private func flushSocket() {
        guard unflushed, let channel else { return }
        unflushed = false
        channel.flush()
    }

    /// Sends what `sendApplication` queued. Call on `loop` after a batch.
    public func flushApplication() {
        loop.preconditionInEventLoop()
        if turns.contains(where: { $0.relayed != nil }) { pump() }  // TURN-wrapped data waits in the clients
        flushSocket()
    }

    private func sendStream(_ bytes: [UInt8], slot index: Int) {
        guard let stream = turns[index].stream else { return }
        var buffer = stream.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        stream.writeAndFlush(buffer, promise: nil)
    }

    // MARK: - Time

    private func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    private func now() -> Duration {
        .nanoseconds(Int64(clamping: NIODeadline.now().uptimeNanoseconds &- startedAt.uptimeNanoseconds))
    }

    private func rearmTimer() {
        guard !closed else {
            timer.cancel()
            return
        }
        var deadline = agent.nextDeadline
        for slot in turns {
            if let next = slot.client.nextDeadline { deadline = deadline.map { min($0, next) } ?? next }
        }
        if let next = signallingDeadline { deadline = deadline.map { min($0, next) } ?? next }
        timer.arm(at: deadline) { [self] in
            let now = self.now()
            agent.advanceTime(now: now)
            for index in turns.indices { turns[index].client.advanceTime(now: now) }
            pump()
            if let limit = signallingDeadline, now >= limit {
                let seconds = PeerWatch.words(options.signallingTimeout)
                fail(.noPath(remoteDescribed
                    ? "the other side did not confirm the connection within \(seconds)"
                    : "the other side sent no connection details within \(seconds)"))
            }
        }
    }

    /// When the peer's next signal is overdue (see `signallingTimeout`).
    private var signallingDeadline: Duration? {
        guard !finished else { return nil }
        if !remoteDescribed { return options.signallingTimeout }  // since the start
        if let selectedAt, !peerConnected { return selectedAt + options.signallingTimeout }
        return nil
    }

    // MARK: - Closing

    private func shutDown(done: EventLoopPromise<Void>) {
        guard !closed else {
            done.succeed()
            return
        }
        let now = self.now()
        var waiting = false
        for index in turns.indices where turns[index].relayed != nil && !turns[index].client.isFinished {
            turns[index].client.deallocate(now: now)
            waiting = true
        }
        fail(.noPath("the session closed"))
        pump()
        closed = true
        timer.cancel()
        pathChangesInput.finish()
        // The layer above's handlers hold it (SecureChannels holds this
        // driver): let both go.
        applicationHandler = nil
        applicationReadComplete = nil
        pathLostHandler = nil
        // The Refresh with lifetime 0 has left; give the server a moment to
        // see it before the socket goes away.
        if waiting {
            loop.scheduleTask(in: .milliseconds(50)) { self.closeSockets(done: done) }
        } else {
            closeSockets(done: done)
        }
    }

    private func closeSockets(done: EventLoopPromise<Void>) {
        for slot in turns { slot.stream?.close(promise: nil) }
        if let channel {
            channel.close().whenComplete { _ in done.succeed() }
        } else {
            done.succeed()
        }
    }
}

/// Hands the session socket's datagrams to the driver.
private final class DatagramReader: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let driver: ConnectivityDriver

    init(driver: ConnectivityDriver) {
        self.driver = driver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.readArrived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        driver.readComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP errors reported on the socket concern one destination; ICE's
        // timeouts handle them. The socket stays open.
    }
}

/// Hands a TURN-over-TCP connection's bytes to the driver.
private final class StreamReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let driver: ConnectivityDriver
    private let slot: Int

    init(driver: ConnectivityDriver, slot: Int) {
        self.driver = driver
        self.slot = slot
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.streamBytesArrived(slot: slot, unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver.streamClosed(slot: slot)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        driver.streamFailed(slot: slot, error)
        context.close(promise: nil)
    }
}
