import Logging
import NIOCore
import NIOPosix
import TernICE
import TernPairing
import TernSTUN
import TernTLS
import TernTURN

/// One session's network side: the SwiftNIO shell over `ConnectivityCore`.
/// It owns the UDP socket (and a TCP connection per TURN-over-TCP server),
/// the event loop's timer and the syscalls around sending (route checks,
/// segmentation offload, router probes), and does only I/O: what arrives
/// goes to the core with the time, what the core outputs goes out
/// (design.md: one driver per session on one event loop, no locks on the
/// data path).
///
/// One fast path skips the core: DTLS between the socket and the selected
/// direct pair's remote address (`readArrived`, `sendApplication(_:lengths:)`),
/// matched against the address the core selected.
///
/// Signalling goes out through `signal` (the sealed mailbox): this side's
/// session description first, then each candidate as it is found, then
/// end-of-candidates, and `connected` once this side selected a pair.
/// What the peer signals comes in through `handle(_:)`.
///
/// Thread safety: all mutable state is touched on `loop` only; the public
/// methods hop there.
public final class ConnectivityDriver: @unchecked Sendable {
    public let loop: EventLoop
    private let options: ConnectivityOptions
    private let signal: @Sendable (PeerMessage) -> Void
    private let logger: Logger
    private let startedAt: NIODeadline
    /// For `turns:` servers: the system's trust store, or the pin the relay handed out.
    private let tlsContext: TLSContext?

    // Confined to `loop`.
    private var core: ConnectivityCore
    private var channel: Channel?
    private var dualStack = false
    /// TURN servers' TCP (or TLS) connections, by the core's slot.
    private var streams: [Int: Channel] = [:]
    private lazy var timer = LoopTimer(loop: loop, origin: startedAt)
    private var draining = false
    private var closed = false
    private let established: EventLoopPromise<ConnectedPath>
    /// The route MTU towards the selected direct pair's remote address.
    private var selectedRouteMTU: Int?

    /// Datagrams of kinds no layer takes yet, and ones from nobody known.
    public var droppedDatagrams: Int { core.droppedDatagrams }

    private init(
        loop: EventLoop, options: ConnectivityOptions, core: ConnectivityCore, tlsContext: TLSContext?,
        signal: @escaping @Sendable (PeerMessage) -> Void, logger: Logger
    ) {
        self.loop = loop
        self.options = options
        self.core = core
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

        let core = try ConnectivityCore(options: options, stunServers: stunServers, turnServers: turnServers, logger: logger)
        let loop = group.next()
        let driver = ConnectivityDriver(loop: loop, options: options, core: core, tlsContext: tlsContext, signal: signal, logger: logger)
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
        do {
            return try await bindSocket(dualStack: true, port: 0).get()
        } catch {
            do {
                return try await bindSocket(dualStack: false, port: 0).get()
            } catch {
                throw .localNetwork("cannot open a UDP socket: \(RelayConnection.describe(error))")
            }
        }
    }

    /// The session's socket with its options, on `port` (0: any).
    private func bindSocket(dualStack: Bool, port: Int) -> EventLoopFuture<Channel> {
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
                // The ECN field of each datagram (ExplicitCongestion), read
                // in both families: an IPv4 datagram on the dual-stack
                // socket reports IP_TOS, an IPv6 one IPV6_TCLASS.
                .channelOption(ExplicitCongestion.receiveTOS, value: 1)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DatagramReader(driver: self))
                    }
                }
        }
        guard dualStack else { return bootstrap().bind(host: "0.0.0.0", port: port) }
        return bootstrap()
            .channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0)
            .channelOption(ExplicitCongestion.receiveTrafficClass, value: 1)
            .bind(host: "::", port: port)
    }

    // MARK: - Send errors

    /// When SwiftNIO closed the socket under the session (below), most recent last.
    private var reopenings: [Duration] = []
    /// More reopenings than this within `reopeningWindow` end the session.
    static let maximumReopenings = 8
    static let reopeningWindow: Duration = .seconds(10)

    /// SwiftNIO closed the session's socket: a send failed with an error it
    /// does not forgive on a datagram socket (anything but EMSGSIZE,
    /// EHOSTUNREACH, ECONNREFUSED and ENOMEM: ENETUNREACH when a route
    /// vanished, EPERM from a firewall that drops output, EACCES, EINVAL,
    /// EIO). Such an error concerns one destination, not the session: the
    /// socket is opened again on the same port (the peer's checks and the
    /// TURN allocations know that port), what was queued in it is lost (DTLS
    /// and SCTP above resend), and each destination the session sends to is
    /// checked with a real send (`RouteCheck.sendRefusal`). One that is
    /// refused is not written to again until a check passes; when it is the
    /// selected direct pair's, the core is told the path's send failed and
    /// moves to a live backup pair at once (`ConnectivityCore.sendFailed`).
    fileprivate func socketClosed(_ closedChannel: Channel) {
        guard !closed, let current = channel, current === closedChannel else { return }
        channel = nil
        unflushed = false
        let now = self.now()
        reopenings.removeAll { now - $0 > Self.reopeningWindow }
        reopenings.append(now)
        guard reopenings.count <= Self.maximumReopenings, let port = current.localAddress?.port else {
            core.socketLost("the session's UDP socket kept failing on sends (\(reopenings.count) times in \(PeerWatch.words(Self.reopeningWindow)))",
                            now: now)
            drain()
            return
        }
        logger.info("the UDP socket closed on a send error; opening it again", metadata: ["port": "\(port)", "at_ms": "\(milliseconds(now))"])
        bindSocket(dualStack: dualStack, port: port).whenComplete { [self] result in
            switch result {
            case .success(let reopened):
                guard !closed else {
                    reopened.close(promise: nil)
                    return
                }
                channel = reopened
                // The new socket sends unmarked until asked (ECN).
                ecnMarking = false
                recheckDestinations()
                applyECNMarking()
            case .failure(let error):
                logger.info("the UDP socket could not be opened again", metadata: ["port": "\(port)", "reason": "\(RelayConnection.describe(error))"])
                core.socketLost("cannot open the UDP socket again on port \(port): \(RelayConnection.describe(error))", now: self.now())
            }
            drain()
        }
    }

    /// After a send error: every destination the session sent to, checked
    /// with a real send; the selected direct pair's, if refused, is a
    /// failed send on the path.
    private func recheckDestinations() {
        let now = self.now()
        let sendRefusal = routeChecks.sendRefusal
        let refused = routeChecks.recheck(now: now) { destination in
            SocketAddressConversion.socketAddress(destination, dualStack: dualStack).flatMap(sendRefusal)
        }
        for (destination, reason) in refused {
            logger.info("no datagram can go there any more", metadata: ["to": "\(destination)", "reason": "\(reason)"])
        }
        guard let peer = directPeer, refused.contains(where: { $0.destination == peer.stun }) else { return }
        // The data path goes the slow way (and is dropped there) until the
        // core selects another pair, or this one's destination passes its
        // route check again (`sendDatagram`).
        directPeer = nil
        segmentOffload = false
        refusedDirectPeer = peer.stun
        core.sendFailed(to: peer.stun, now: now)
    }

    /// The selected direct pair's remote address while sends to it are
    /// refused (its fast path, GSO and ECN marking off): with no other
    /// pair to move to, the pair stays selected, and its fast path comes
    /// back when the refusal is lifted.
    private var refusedDirectPeer: STUNAddress?

    /// The data path goes straight to `remote` from the socket: the fast
    /// path, and GSO where a segmented write towards it goes through.
    private func useDirectPath(to remote: STUNAddress) {
        refusedDirectPeer = nil
        directPeer = SocketAddressConversion.socketAddress(remote, dualStack: dualStack).map { ($0, remote) }
        segmentOffload = directPeer.map { SegmentationOffload.works(towards: $0.socket) } ?? false
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
    /// relayed one, a host pair instead of a server-reflexive one, a backup
    /// after the selected pair died, the pair an ICE restart found. The next
    /// datagram goes out on the new pair, and the old pair's stragglers are
    /// still taken; the path-changed handler (`setPathChangedHandler`) is
    /// told first. Ends when the driver closes.
    public let pathChanges: AsyncStream<ConnectedPath>
    private let pathChangesInput: AsyncStream<ConnectedPath>.Continuation

    /// Told on `loop` of each path `pathChanges` gets, before it gets it,
    /// with whether it is the same network path as the one before.
    private var pathChangedHandler: ((ConnectedPath, Bool) -> Void)?
    /// The path the session's datagrams take now, once connected.
    private var currentPath: ConnectedPath?

    /// Calls `handler` on `loop` each time the session's datagrams move to
    /// another pair after connecting (the paths `pathChanges` gets), with
    /// whether only the remote port changed (`ConnectedPath.isSameNetworkPath`):
    /// the layer above resends what was in flight on the old pair at once.
    public func setPathChangedHandler(_ handler: @escaping (_ path: ConnectedPath, _ sameNetworkPath: Bool) -> Void) {
        loop.preconditionInEventLoop()
        pathChangedHandler = handler
    }

    /// Calls `handler` on `loop` if the selected pair stops answering consent
    /// checks after the driver connected (the peer is gone or unreachable),
    /// or an ICE restart finds no new path.
    public func setPathLostHandler(_ handler: @escaping (String) -> Void) {
        loop.preconditionInEventLoop()
        pathLostHandler = handler
    }

    /// Told when an ICE restart begins (true) and when it ends with a new
    /// pair (false); one that finds nothing ends with the path-lost handler.
    private var restartHandler: ((Bool) -> Void)?
    /// An ICE restart is under way (`ConnectivityCore.Output.restarting`).
    private var restarting = false

    /// Whether ICE is recovering the selected path or will (a restart under
    /// way, or no answer from the peer with a restart still possible): the layer
    /// above then holds its silence limit (`ConnectivityCore.recoversPath`).
    public func recoversPath() -> Bool {
        loop.preconditionInEventLoop()
        return !closed && core.recoversPath(now: now())
    }

    /// Calls `handler` on `loop` when an ICE restart begins (true) and when
    /// it selected a new pair (false), at once if one is under way: the
    /// layer above holds its silence limit meanwhile (`PeerWatch`).
    public func setRestartHandler(_ handler: @escaping (Bool) -> Void) {
        loop.preconditionInEventLoop()
        restartHandler = handler
        if restarting { handler(true) }
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

    /// Whether the datagram being handed to the application handler arrived
    /// marked Congestion Experienced (ECN): valid during the handler's call,
    /// like its bytes. Only the data path reads it (DTLS straight from the
    /// selected direct peer); through TURN the mark would be the server's
    /// leg's, and is not read.
    public private(set) var datagramCongestionExperienced = false
    /// Datagrams of the data path that arrived ECN-capable (ECT(0), ECT(1)
    /// or CE), and those marked CE; a GRO aggregate counts once.
    public private(set) var ecnCapableDatagrams = 0
    public private(set) var markedDatagrams = 0

    private func countECN(_ state: NIOExplicitCongestionNotificationState?) -> Bool {
        guard let state, state != .transportNotCapable else { return false }
        ecnCapableDatagrams &+= 1
        guard state == .congestionExperienced else { return false }
        markedDatagrams &+= 1
        return true
    }

    /// Marks the session's datagrams ECT(0) (RFC 3168) while the selected
    /// pair is direct, or stops marking them: the layer above asks once its
    /// peer agreed to ECN (and reads `datagramCongestionExperienced`). The
    /// mark is the socket's (IP_TOS and IPV6_TCLASS), so the peer's
    /// consent checks carry it too; datagrams to a TURN server never do.
    public func setECNMarking(_ on: Bool) {
        loop.preconditionInEventLoop()
        ecnRequested = on
        applyECNMarking()
    }

    private var ecnRequested = false
    /// What the socket is set to send.
    private var ecnMarking = false

    private func applyECNMarking() {
        let on = ecnRequested && directPeer != nil && !closed
        guard on != ecnMarking, let options = channel?.syncOptions else { return }
        do {
            try ExplicitCongestion.setMarking(on, options: options, dualStack: dualStack)
            ecnMarking = on
            logger.debug("ECN marking", metadata: ["ect0": "\(on)"])
        } catch {
            logger.debug("ECN marking not set", metadata: ["reason": "\(error)"])
        }
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
        guard !closed else {
            core.countDropped()
            return
        }
        if case .direct(let destination) = core.routeApplication(bytes, now: now()) {
            sendDatagram(bytes, to: destination)
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
            // (The ECN state goes into a control message of its own: it must
            // say what the socket's option says, or it overrides it.)
            let metadata = count > 1
                ? AddressedEnvelope<ByteBuffer>.Metadata(
                    ecnState: ecnMarking ? .transportCapableFlag0 : .transportNotCapable, packetInfo: nil, segmentSize: segment) : nil
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
            guard !self.closed else { return false }
            self.core.handleSignal(message, now: self.now())
            self.drain()
            return self.core.isConnected
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
        guard let address = channel.localAddress, let port = address.port, let localPort = UInt16(exactly: port) else {
            throw .localNetwork("the UDP socket has no local port")
        }
        if case .v6 = address { dualStack = true }
        var addresses: [[UInt8]] = []
        if !options.forceRelay {
            do {
                addresses = try LocalAddresses.usable().map(\.ip)
            } catch {
                throw .localNetwork("cannot list the network interfaces: \(error)")
            }
        }
        core.start(localPort: localPort, dualStack: dualStack, addresses: addresses, now: now())
        // An ICE restart gathers from the addresses the machine has then.
        if !options.forceRelay { core.restart.currentAddresses = { (try? LocalAddresses.usable().map(\.ip)) ?? [] } }
        drain()
    }

    private func connectStream(slot index: Int, uri: ServerURI, server: STUNAddress) {
        guard let target = SocketAddressConversion.socketAddress(server, dualStack: server.ipBytes.count == 16) else {
            core.streamFailed(slot: index, reason: "no socket address for \(server)", now: now())
            return
        }
        let tls = uri.isSecure ? tlsContext : nil
        if uri.isSecure && tls == nil {
            core.streamFailed(slot: index, reason: "no TLS context for \(uri)", now: now())
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
                    self.streams[index] = stream
                    self.core.streamConnected(slot: index, now: self.now())
                case .failure(let error):
                    self.core.streamFailed(slot: index, reason: "the TCP connection failed: \(RelayConnection.describe(error))", now: self.now())
                }
                self.drain()
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
            // A GRO aggregate's datagrams all had the same ECN field (the
            // kernel does not merge datagrams whose IP headers differ).
            datagramCongestionExperienced = countECN(envelope.metadata?.ecnState)
            defer { datagramCongestionExperienced = false }
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
        guard !closed, let source = SocketAddressConversion.stunAddress(envelope.remoteAddress) else {
            core.countDropped()
            return
        }
        let destination = envelope.metadata?.packetInfo.flatMap { LocalAddresses.bytes(of: $0.destinationAddress) }
        core.handleDatagram(Array(envelope.data.readableBytesView), from: source, to: destination, now: now())
        drain()
    }

    /// The socket's batch of reads is over.
    fileprivate func readComplete() {
        applicationReadComplete?()
    }

    private func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    fileprivate func streamBytesArrived(slot: Int, _ buffer: ByteBuffer) {
        guard !closed else { return }
        core.handleStreamBytes(slot: slot, Array(buffer.readableBytesView), now: now())
        drain()
    }

    /// The TURN server's TCP (or TLS) connection failed: the reason goes to
    /// the failure sentence; the close that follows ends the TURN client.
    fileprivate func streamFailed(slot: Int, _ error: Error) {
        guard !closed else { return }
        let reason = (error as? TLSError).map { "TLS: \($0.reason)" } ?? "the TCP connection failed: \(RelayConnection.describe(error))"
        core.streamFailed(slot: slot, reason: reason, now: now())
        drain()
    }

    fileprivate func streamClosed(slot: Int) {
        guard !closed else { return }
        streams[slot] = nil
        core.streamClosed(slot: slot, now: now())
        drain()
    }

    /// Mapping-clash avoidance (ICEAgent+RemoteRouters.swift): asks the
    /// router at a remote server-reflexive address whether it answers
    /// unsolicited datagrams, and tells the core (RouterProbe).
    private func probeRouter(behind address: STUNAddress) {
        guard let probe = RouterProbe(towards: address) else { return }
        for (index, delay) in RouterProbe.polls.enumerated() {
            loop.scheduleTask(in: delay) { [self] in
                guard !closed else { return probe.close() }
                // A poll after the one that reported the answer.
                guard !probe.isClosed else { return }
                let answered = probe.answered()
                guard answered || index == RouterProbe.polls.count - 1 else { return }
                probe.close()
                core.routerProbed(address, answersUnsolicited: answered, now: now())
                drain()
            }
        }
    }

    // MARK: - Output

    /// Carries out what the core output, flushes the socket's writes
    /// (sendmmsg) and sets the timer for the core's next deadline. An
    /// output can feed the core again (a send that fails at once): the loop
    /// takes what that adds.
    private func drain() {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while let output = core.pollOutput() {
            perform(output)
        }
        flushSocket()
        if mappingOpenedDue {
            // Only once the check it speaks of is with the kernel, not just
            // queued behind the session's data in a full socket buffer: the
            // peer sends its own check when this arrives, and that check
            // must not reach our router first (a mapping clash; seen in 1
            // of 20 runs of docs/lab.md's cone-icmp-a while relayed data
            // filled the socket).
            mappingOpenedDue = false
            if let written = lastCheckWritten {
                written.whenComplete { [self] _ in signal(.mappingOpened) }
            } else {
                signal(.mappingOpened)
            }
        }
        rearmTimer()
    }

    /// The core asked for `mapping-opened` in this drain.
    private var mappingOpenedDue = false
    /// When the latest ICE agent datagram reached the kernel (or failed).
    private var lastCheckWritten: EventLoopFuture<Void>?

    private func perform(_ output: ConnectivityCore.Output) {
        switch output {
        case .datagram(let bytes, let destination, let onSelectedPath, let check):
            let written = check ? loop.makePromise(of: Void.self) : nil
            if let written { lastCheckWritten = written.futureResult }
            if onSelectedPath {
                sendDatagram(bytes, to: destination, written: written) { [self] in
                    if core.sendFailed(to: destination, now: now()) { drain() }
                }
            } else {
                sendDatagram(bytes, to: destination, written: written)
            }
        case .streamBytes(let bytes, let slot):
            sendStream(bytes, slot: slot)
        case .connectStream(let slot, let uri, let server):
            connectStream(slot: slot, uri: uri, server: server)
        case .signal(.mappingOpened):
            mappingOpenedDue = true
        case .signal(let message):
            signal(message)
        case .probeRouter(let address):
            probeRouter(behind: address)
        case .selected(let path, let directRemote):
            if let directRemote {
                useDirectPath(to: directRemote)
                // Asked in the peer's own family (the socket may be dual-stack).
                selectedRouteMTU = SocketAddressConversion.socketAddress(directRemote, dualStack: false).flatMap(RouteMTU.towards)
                logger.debug("data path", metadata: ["segmentation_offload": "\(segmentOffload)", "pair": "\(path.pair)"])
            } else {
                directPeer = nil
                refusedDirectPeer = nil
                segmentOffload = false
                selectedRouteMTU = nil
            }
            applyECNMarking()
        case .connected(var path):
            path.routeMTU = selectedRouteMTU
            currentPath = path
            established.succeed(path)
        case .pathChanged(var path):
            path.routeMTU = selectedRouteMTU
            let sameNetworkPath = currentPath.map(path.isSameNetworkPath) ?? false
            currentPath = path
            pathChangedHandler?(path, sameNetworkPath)
            pathChangesInput.yield(path)
        case .pathLost(let reason):
            pathLostHandler?(reason)
        case .restarting(let underway):
            restarting = underway
            restartHandler?(underway)
        case .failed(let error):
            established.fail(error)
        case .application(let bytes, let endsBatch):
            deliverApplication(bytes)
            if endsBatch { applicationReadComplete?() }
        }
    }

    private func deliverApplication(_ bytes: [UInt8]) {
        guard let applicationHandler else {
            // The peer's first DTLS flight can beat our own start by a few
            // milliseconds: keep a little of it rather than wait for its
            // retransmission (1 s).
            if earlyApplication.count < 16 { earlyApplication.append(bytes) } else { core.countDropped() }
            return
        }
        bytes.withUnsafeBytes { applicationHandler($0) }
    }

    private var earlyApplication: [[UInt8]] = []

    /// - Parameter unreachable: called on `loop` if the write fails because
    ///   the destination is unreachable (EHOSTUNREACH from the kernel), or
    ///   when the kernel has no route to it any more (asked afresh each time).
    private func sendDatagram(
        _ bytes: [UInt8], to destination: STUNAddress, written: EventLoopPromise<Void>? = nil, unreachable: (() -> Void)? = nil
    ) {
        let known = directPeer.flatMap { $0.stun == destination ? $0.socket : nil }
        guard let channel, let address = known ?? SocketAddressConversion.socketAddress(destination, dualStack: dualStack) else {
            core.countDropped()
            written?.succeed(())
            return
        }
        // A destination the kernel refuses (no route, a link-local address
        // without a zone) is never written to: SwiftNIO would close the
        // session's socket on that send error (RouteCheck).
        var route = routeChecks.refusal(to: destination, at: address, now: now())
        if route.reason == nil, let unreachable, let reason = RouteCheck.refusal(to: address) {
            // The selected pair's checks (about one a second) ask afresh: a
            // route that went away since the first datagram moves the
            // session to a backup pair.
            route = (reason, true)
            unreachable()
        }
        if let reason = route.reason {
            if route.new { logger.debug("no datagram can go there", metadata: ["to": "\(destination)", "reason": "\(reason)"]) }
            core.countDropped()
            written?.succeed(())
            return
        }
        if destination == refusedDirectPeer {
            // The selected direct pair's destination takes datagrams again
            // (its refusal was checked anew and lifted): its fast path, GSO
            // and ECN marking come back.
            useDirectPath(to: destination)
            applyECNMarking()
            logger.info("the selected direct path takes datagrams again", metadata: [
                "to": "\(destination)", "segmentation_offload": "\(segmentOffload)", "at_ms": "\(milliseconds(now()))",
            ])
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        // A send error the kernel reports later (an ICMP unreachable)
        // concerns one candidate pair; ICE's own timeouts deal with it.
        // Writes are flushed together (sendmmsg) at the end of a drain or by
        // `flushApplication`.
        if let unreachable {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenFailure { error in
                if case ChannelError.writeHostUnreachable = error { unreachable() }
            }
            if let written { promise.futureResult.cascade(to: written) }
            channel.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: promise)
        } else {
            channel.write(AddressedEnvelope(remoteAddress: address, data: buffer), promise: written)
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
        if core.hasRelayedCandidate {
            // TURN-wrapped data waits in the clients.
            core.pump(now: now())
            drain()
        }
        flushSocket()
    }

    private func sendStream(_ bytes: [UInt8], slot index: Int) {
        guard let stream = streams[index] else { return }
        var buffer = stream.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        stream.writeAndFlush(buffer, promise: nil)
    }

    // MARK: - Time

    /// The cores' clock: time since the driver started.
    private func now() -> Duration {
        .nanoseconds(Int64(clamping: NIODeadline.now().uptimeNanoseconds &- startedAt.uptimeNanoseconds))
    }

    private func rearmTimer() {
        guard !closed else {
            timer.cancel()
            return
        }
        timer.arm(at: core.nextDeadline) { [self] in
            core.advanceTime(now: now())
            drain()
        }
    }

    // MARK: - Closing

    private func shutDown(done: EventLoopPromise<Void>) {
        guard !closed else {
            done.succeed()
            return
        }
        let waiting = core.close(now: now())
        drain()
        closed = true
        timer.cancel()
        pathChangesInput.finish()
        // The layer above's handlers hold it (SecureChannels holds this
        // driver): let both go.
        applicationHandler = nil
        applicationReadComplete = nil
        pathLostHandler = nil
        pathChangedHandler = nil
        restartHandler = nil
        // The Refresh with lifetime 0 has left; give the server a moment to
        // see it before the socket goes away.
        if waiting {
            loop.scheduleTask(in: .milliseconds(50)) { self.closeSockets(done: done) }
        } else {
            closeSockets(done: done)
        }
    }

    private func closeSockets(done: EventLoopPromise<Void>) {
        for stream in streams.values { stream.close(promise: nil) }
        if let channel {
            channel.close().whenComplete { _ in done.succeed() }
        } else {
            done.succeed()
        }
    }
}

// MARK: - For tests (internal)

extension ConnectivityDriver {
    /// Whether the data path goes straight to the peer from the socket (the
    /// fast path), and with GSO.
    func dataPath() async -> (direct: Bool, segmentationOffload: Bool) {
        (try? await loop.submit { (self.directPeer != nil, self.segmentOffload) }.get()) ?? (false, false)
    }

    /// Stands in for the kernel's route and send checks (RouteCheck): a test
    /// can refuse a destination and lift the refusal.
    func setRouteChecks(route: @escaping (SocketAddress) -> String?, send: @escaping (SocketAddress) -> String?) async {
        try? await loop.submit {
            self.routeChecks.routeRefusal = route
            self.routeChecks.sendRefusal = send
        }.get()
    }

    /// Closes the session's socket, as SwiftNIO does after a send error it
    /// does not forgive on a datagram socket: the driver's own handling
    /// (`socketClosed`) follows.
    func closeSocket() async {
        let channel = try? await loop.submit { self.channel }.get()
        try? await channel?.close()
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

    func channelInactive(context: ChannelHandlerContext) {
        driver.socketClosed(context.channel)
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
