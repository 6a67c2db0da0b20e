import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import TernRendezvous
import TernTLS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `tern relay` serves and how; each field is a flag.
public struct RelayConfiguration: Sendable {
    public var host = "0.0.0.0"
    public var port = 4747
    /// The STUN binding responder's UDP address; nil port turns it off.
    public var stunHost = "0.0.0.0"
    public var stunPort: Int? = 3478
    /// STUN URIs to announce instead of "stun:<host the client dialled>:<stunPort>".
    public var stunAdvertise: [String] = []
    public var turn: TURNConfiguration?
    public var limits = RelayLimits()
    /// Serve wss:// (TLS on the rendezvous port) with this context.
    public var tls: TLSContext?
    /// Where to serve `/metrics` (Prometheus text format); nil port: nowhere.
    public var metricsHost = "127.0.0.1"
    public var metricsPort: Int?
    /// The browser page served at `/`; nil serves none.
    public var web: WebApp?

    public init() {}
}

/// A running relay: the rendezvous WebSocket and health endpoint on TCP, the
/// STUN responder on UDP. Everything runs on one event loop, which owns the
/// hub, so no state is shared between threads.
public final class RelayServer: Sendable {
    public struct Addresses: Sendable {
        public var rendezvous: SocketAddress
        public var stun: SocketAddress?
        public var metrics: SocketAddress?
    }

    private let configuration: RelayConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let loop: EventLoop
    /// The STUN responder's own thread: a flood of datagrams keeps it busy,
    /// not the loop that serves the WebSocket clients.
    private let stunGroup: MultiThreadedEventLoopGroup
    private let state: NIOLoopBoundBox<RelayState>
    private let channels = NIOLockedValueBox<[Channel]>([])

    public init(configuration: RelayConfiguration, logger: Logger) {
        var configuration = configuration
        configuration.limits.maxConnections = Self.connectionCap(for: configuration.limits)
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.loop = group.next()
        self.stunGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = RelayState(configuration: configuration, logger: logger)
        self.state = NIOLoopBoundBox.makeBoxSendingValue(state, eventLoop: loop)
    }

    /// Binds the sockets and starts serving.
    public func start() async throws -> Addresses {
        let state = self.state
        let configuration = self.configuration
        let frameLimit = FrameLimits.maxFrameBytes(forBody: configuration.limits.maxMessageBytes)
        let tls = configuration.tls
        let server = try await ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let key = AddressKey(channel.remoteAddress)
                guard state.value.admit(key) else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.inputClosed)
                }
                let admission = AdmissionHandler(state: state, key: key, timeout: configuration.limits.handshakeTimeout)
                let http = HealthHandler(state: state, web: configuration.web)
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: frameLimit,
                    automaticErrorHandling: false,
                    shouldUpgrade: { channel, head in
                        channel.eventLoop.makeSucceededFuture(head.uri == "/v1" ? HTTPHeaders() : nil)
                    },
                    upgradePipelineHandler: { channel, head in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(WebSocketConformanceHandler())
                            try sync.addHandler(NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 256, maxAccumulatedFrameCount: 256, maxAccumulatedFrameSize: frameLimit))
                            try sync.addHandler(RendezvousHandler(state: state, host: head.headers.first(name: "host")))
                        }
                    })
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(admission)
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            admission.upgraded()
                            context.pipeline.removeHandler(name: HealthHandler.name, promise: nil)
                        }))
                    try channel.pipeline.syncOperations.addHandler(http, name: HealthHandler.name)
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        var bound = [server]
        var stunAddress: SocketAddress?
        if let stunPort = configuration.stunPort {
            let counters = try await loop.submit { state.value.stunCounters }.get()
            let udp = try await DatagramBootstrap(group: stunGroup)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(STUNResponderHandler(counters: counters))
                    }
                }
                .bind(host: configuration.stunHost, port: stunPort).get()
            stunAddress = udp.localAddress
            let port = udp.localAddress?.port
            try await loop.submit { state.value.stunPort = port }.get()
            bound.append(udp)
        }
        var metricsAddress: SocketAddress?
        if let metricsPort = configuration.metricsPort {
            let metrics = try await ServerBootstrap(group: loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(MetricsHandler(state: state))
                    }
                }
                .bind(host: configuration.metricsHost, port: metricsPort).get()
            metricsAddress = metrics.localAddress
            bound.append(metrics)
        }
        channels.withLockedValue { $0 = bound }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            state.value.tick()
        }
        guard let address = server.localAddress else { throw ChannelError.inappropriateOperationForState }
        logger.info("relay listening", metadata: [
            "rendezvous_host": "\(address.ipAddress ?? configuration.host)",
            "rendezvous_port": "\(address.port ?? configuration.port)",
            "stun_port": "\(stunAddress?.port.map(String.init) ?? "off")",
            "turn_uris": "\(configuration.turn?.uris.count ?? 0)",
            "tls": "\(configuration.tls != nil)",
            "max_connections": "\(configuration.limits.maxConnections)",
            "metrics_port": "\(metricsAddress?.port.map(String.init) ?? "off")",
        ])
        return Addresses(rendezvous: address, stun: stunAddress, metrics: metricsAddress)
    }

    /// `limits.maxConnections`, lowered to fit the process's descriptor
    /// limit; the soft limit is first raised towards the hard one (as far as
    /// the connections and the reserve need), where the system allows.
    static func connectionCap(for limits: RelayLimits) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return limits.maxConnections }
        let wanted = rlim_t(max(0, limits.maxConnections + limits.descriptorReserve))
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = min(wanted, limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(clamping: limit.rlim_cur) - limits.descriptorReserve
        return max(1, min(limits.maxConnections, available))
    }

    /// Stops accepting, tells every client the relay is going away, and stops.
    public func shutdown() async {
        let bound = channels.withLockedValue { $0 }
        for channel in bound { try? await channel.close() }
        let state = self.state
        try? await loop.submit { state.value.closeAll() }.get()
        try? await Task.sleep(for: .milliseconds(100))
        try? await group.shutdownGracefully()
        try? await stunGroup.shutdownGracefully()
        logger.info("relay stopped")
    }
}

/// The relay's mutable state, confined to its event loop.
final class RelayState {
    var hub: RendezvousHub
    var connections: [ConnectionID: Channel] = [:]
    /// When each connection last sent anything (a frame or a pong).
    var lastHeard: [ConnectionID: NIODeadline] = [:]
    /// The relay pings every connection this often and drops one silent for
    /// three intervals, so a paired mailbox lives exactly as long as a side is there.
    static let pingInterval: TimeAmount = .seconds(20)
    var nextID: UInt64 = 1
    var stunPort: Int?
    /// TCP connections open now (before and after the upgrade), per address and in total.
    var openByAddress: [AddressKey: Int] = [:]
    var openTotal = 0
    /// Connections refused at accept time, by limit; connections closed by the handshake timeout.
    var acceptRefusals: [String: Int] = [:]
    var turnCredentialsIssued = 0
    /// The Prometheus metrics, when `/metrics` is served.
    let metrics: RelayMetrics?
    var handshakeTimeouts = 0
    let configuration: RelayConfiguration
    let logger: Logger
    let turnMinter: TURNCredentialMinter?
    /// STUN datagrams answered, and dropped as malformed or not a Binding request.
    let stunCounters = STUNCounters()

    init(configuration: RelayConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.hub = RendezvousHub(limits: configuration.limits)
        self.turnMinter = configuration.turn.map(TURNCredentialMinter.init)
        self.metrics = configuration.metricsPort == nil ? nil : RelayMetrics()
    }

    /// Counts a new TCP connection, or refuses it (false: close it at once).
    func admit(_ key: AddressKey) -> Bool {
        guard openTotal < configuration.limits.maxConnections else {
            acceptRefusals["connections", default: 0] += 1
            return false
        }
        guard openByAddress[key, default: 0] < configuration.limits.maxConnectionsPerAddress else {
            acceptRefusals["connections_per_address", default: 0] += 1
            return false
        }
        openByAddress[key, default: 0] += 1
        openTotal += 1
        return true
    }

    func release(_ key: AddressKey) {
        openTotal -= 1
        let left = openByAddress[key, default: 0] - 1
        openByAddress[key] = left > 0 ? left : nil
    }

    func welcome(host: String?) -> Welcome {
        var stun = configuration.stunAdvertise
        if stun.isEmpty, let port = stunPort, let host = host.flatMap(Self.hostWithoutPort) {
            stun = ["stun:\(host):\(port)"]
        }
        return Welcome(
            maxMessageBytes: configuration.limits.maxMessageBytes,
            stun: stun,
            turn: nil)
    }

    /// "example.org:4747" -> "example.org"; "[::1]:4747" -> "[::1]".
    static func hostWithoutPort(_ host: String) -> String? {
        guard !host.isEmpty, host.utf8.count <= 255 else { return nil }
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            return String(host[...close])
        }
        return host.split(separator: ":", maxSplits: 1).first.map(String.init)
    }

    /// Carries out the hub's actions; `closeCode` is the WebSocket close
    /// code for the connections they close.
    func perform(_ actions: [RendezvousHub.Action], closeCode: WebSocketErrorCode = .normalClosure) {
        for action in actions {
            switch action {
            case .send(let id, let frame):
                guard let channel = connections[id] else { continue }
                switch frame {
                case .error(let code, let message):
                    logger.notice("refused client frame", metadata: ["connection": "\(id)", "code": "\(code.rawValue)", "reason": "\(message)"])
                case .allocated(let nameplate, _):
                    logger.info("nameplate allocated", metadata: ["connection": "\(id)", "nameplate": "\(nameplate)"])
                case .claimed(let nameplate, _):
                    logger.info("nameplate claimed", metadata: ["connection": "\(id)", "nameplate": "\(nameplate)"])
                case .closed:
                    logger.info("side closed its mailbox", metadata: ["connection": "\(id)"])
                default:
                    break
                }
                Self.write(frame, to: channel)
            case .close(let id):
                guard let channel = connections[id] else { continue }
                forget(id)
                Self.closeWebSocket(channel, code: closeCode)
            case .joined(let latency):
                metrics?.recordPairing(after: latency)
            case .grantTURN(let id):
                guard let turnMinter, let channel = connections[id] else { continue }
                turnCredentialsIssued += 1
                Self.write(.turn(turnMinter.mint()), to: channel)
            }
        }
        var flushed = Set<ConnectionID>()
        for action in actions {
            switch action {
            case .send(let id, _), .grantTURN(let id):
                if flushed.insert(id).inserted { connections[id]?.flush() }
            case .close, .joined:
                break
            }
        }
    }

    static func write(_ frame: RelayFrame, to channel: Channel) {
        let text = frame.encoded()
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        channel.write(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: nil)
    }

    /// How long a closing connection may keep sending (the rest of an
    /// oversize frame, its own close frame) before the relay closes it.
    static let closeLinger: TimeAmount = .seconds(2)

    /// Sends a close frame with `code`, then closes the relay's half of the
    /// TCP connection and reads (and drops) what the client still sends
    /// until it closes too, for at most `closeLinger`. Closing the socket at
    /// once with unread data in it would send the client a TCP reset, which
    /// can destroy the close frame and the error before them on its side
    /// (RFC 6455 §7.1.1: the server closes the TCP connection first, cleanly).
    static func closeWebSocket(_ channel: Channel, code: WebSocketErrorCode) {
        var buffer = channel.allocator.buffer(capacity: 2)
        buffer.write(webSocketErrorCode: code)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)).whenComplete { _ in
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: closeLinger) { channel.close(promise: nil) }
        }
    }

    func tick() {
        let now = NIODeadline.now()
        var silent: [RendezvousHub.Action] = []
        for (id, heard) in lastHeard where connections[id] != nil {
            if now - heard >= Self.pingInterval * 3 {
                logger.info("dropping a silent connection", metadata: ["connection": "\(id)"])
                silent.append(.close(id))
            } else if now - heard >= Self.pingInterval, let channel = connections[id] {
                channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: channel.allocator.buffer(capacity: 0)), promise: nil)
            }
        }
        perform(silent)
        perform(hub.tick(now: now))
    }

    func heard(_ id: ConnectionID) {
        lastHeard[id] = .now()
    }

    func forget(_ id: ConnectionID) {
        connections[id] = nil
        lastHeard[id] = nil
        hub.disconnected(id, now: .now())
    }

    func closeAll() {
        for (id, channel) in connections {
            forget(id)
            Self.closeWebSocket(channel, code: .goingAway)
        }
    }
}
