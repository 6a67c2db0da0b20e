import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A message heard on the beacon port, with the address it came from.
public struct LANHeard: Sendable {
    public var message: LANMessage
    public var from: SocketAddress
}

/// The beacon's sockets: UDP `port` on IPv4 and IPv6, each joined to tern's
/// link-local multicast group on every interface that can carry it. A thin
/// shell over `LANMessage`: datagrams that do not parse are dropped and
/// counted; everything else arrives on `heard`.
///
/// The port is bound with SO_REUSEADDR, so several tern processes on one
/// host (a sender and a receiver, two senders) each get every multicast
/// datagram.
public final class LANBeacon: Sendable {
    /// UDP port of the beacon, next to the relay's 4747.
    public static let port = 4748
    /// In the link-local block 224.0.0.0/24, which routers never forward.
    public static let ipv4Group = "224.0.0.74"
    /// Link-local scope (ff02::/16).
    public static let ipv6Group = "ff02::74:6e"

    public let heard: AsyncStream<LANHeard>
    private let sockets: [Socket]
    private let counters: Counters

    /// One family's sockets: `channel` listens on the beacon port (joined to
    /// the group); `sender` sends. They are apart because SwiftNIO closes a
    /// datagram channel whose write fails with most errors (EPERM from a
    /// firewall, ENETUNREACH): a sender that dies that way is made again
    /// for the next datagram, and listening goes on.
    struct Socket: Sendable {
        var channel: Channel
        var family: Family
        var group: SocketAddress
        /// Where multicast goes out: IPv4 addresses or IPv6 interface indexes.
        var interfaces: [Interface]
        let sender = NIOLockedValueBox<Channel?>(nil)
    }

    enum Interface: Sendable {
        case v4(in_addr)
        case v6(UInt32)
    }

    /// Opens the beacon. `port` 0 (tests, or a `--from` receiver whose port
    /// is taken) binds an ephemeral port. Throws when neither family works.
    public static func open(port: Int = LANBeacon.port, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws(LANError) -> LANBeacon {
        let (stream, continuation) = AsyncStream<LANHeard>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let counters = Counters()
        let devices = (try? System.enumerateDevices()) ?? []
        var sockets: [Socket] = []
        var failures: [String] = []
        for family in [Family.v4, .v6] {
            do {
                if let socket = try await openSocket(family, port: port, devices: devices, group: group, continuation: continuation, counters: counters) {
                    sockets.append(socket)
                }
            } catch {
                failures.append("\(family == .v4 ? "IPv4" : "IPv6"): \(error)")
            }
        }
        guard !sockets.isEmpty else {
            continuation.finish()
            throw .socket(failures.isEmpty ? "no interface can carry multicast" : failures.joined(separator: "; "))
        }
        return LANBeacon(heard: stream, continuation: continuation, sockets: sockets, counters: counters, group: group)
    }

    private let continuation: AsyncStream<LANHeard>.Continuation
    private let group: EventLoopGroup

    private init(heard: AsyncStream<LANHeard>, continuation: AsyncStream<LANHeard>.Continuation, sockets: [Socket], counters: Counters,
                 group: EventLoopGroup) {
        self.heard = heard
        self.continuation = continuation
        self.sockets = sockets
        self.counters = counters
        self.group = group
    }

    /// The family's sending socket, made (again) when there is none alive:
    /// an ephemeral port, link-local reach (TTL / hop limit 1), and copies
    /// to this host's own listeners. What it receives (answers to a unicast
    /// query) joins `heard` too.
    private func sender(for socket: Socket) async throws -> Channel {
        if let channel = socket.sender.withLockedValue({ $0 }), channel.isActive { return channel }
        let continuation = self.continuation
        let counters = self.counters
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BeaconHandler(continuation: continuation, counters: counters))
                }
            }
            .bind(host: socket.family == .v4 ? "0.0.0.0" : "::", port: 0).get()
        let provider = channel as? SocketOptionProvider
        do {
            if socket.family == .v4 {
                try await provider?.setIPMulticastTTL(1).get()
                try await provider?.setIPMulticastLoop(1).get()
            } else {
                try await provider?.setIPv6MulticastHops(1).get()
                try await provider?.setIPv6MulticastLoop(1).get()
            }
        } catch {
            try? await channel.close()
            throw error
        }
        socket.sender.withLockedValue { $0 = channel }
        return channel
    }

    /// The port bound (the same on both families when `open` was given one).
    public var boundPort: Int? { sockets.first?.channel.localAddress?.port }

    /// Datagrams dropped because they did not parse.
    public var dropped: Int { counters.dropped.withLockedValue { $0 } }

    /// Sends `message` to the group on every interface of both families.
    /// An interface that refuses (no route, down) is skipped.
    public func sendToGroups(_ message: LANMessage) async {
        guard let bytes = try? message.encoded() else { return }
        for socket in sockets {
            for interface in socket.interfaces {
                guard let channel = try? await sender(for: socket) else { continue }
                let provider = channel as? SocketOptionProvider
                let selected: EventLoopFuture<Void>?
                switch interface {
                case .v4(let address): selected = provider?.setIPMulticastIF(address)
                case .v6(let index): selected = provider?.setIPv6MulticastIF(CUnsignedInt(index))
                }
                do {
                    try await selected?.get()
                    try await write(bytes, to: socket.group, on: channel)
                } catch {
                    continue
                }
            }
        }
    }

    /// Sends `message` to one address (a unicast query or answer).
    public func send(_ message: LANMessage, to address: SocketAddress) async throws {
        let bytes = try message.encoded()
        guard let socket = sockets.first(where: { $0.group.protocol == address.protocol }) else {
            throw LANError.socket("no socket for that address family")
        }
        try await write(bytes, to: address, on: sender(for: socket))
    }

    private func write(_ bytes: [UInt8], to address: SocketAddress, on channel: Channel) async throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer)).get()
    }

    /// Closes every socket; `heard` ends.
    public func close() async {
        for socket in sockets {
            try? await socket.channel.close()
            if let sender = socket.sender.withLockedValue({ $0 }) { try? await sender.close() }
        }
        continuation.finish()
    }

    enum Family { case v4, v6 }

    private static func openSocket(
        _ family: Family, port: Int, devices: [NIONetworkDevice], group: EventLoopGroup,
        continuation: AsyncStream<LANHeard>.Continuation, counters: Counters
    ) async throws -> Socket? {
        let groupAddress = try SocketAddress(ipAddress: family == .v4 ? ipv4Group : ipv6Group, port: port == 0 ? LANBeacon.port : port)
        var bootstrap = DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BeaconHandler(continuation: continuation, counters: counters))
                }
            }
        if family == .v6 {
            // At IPPROTO_IPV6: `.socketOption(_:)` would set it at SOL_SOCKET.
            bootstrap = bootstrap.channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        let channel = try await bootstrap.bind(host: family == .v4 ? "0.0.0.0" : "::", port: port).get()
        let provider = channel as? SocketOptionProvider
        var interfaces: [Interface] = []
        var joined = Set<Int>()
        let usable = devices.filter { device in
            guard let address = device.address else { return false }
            switch (family, address) {
            case (.v4, .v4): return device.multicastSupported
            case (.v6, .v6): return device.multicastSupported
            default: return false
            }
        }
        // A host whose only network is loopback (a namespace, a laptop in
        // flight mode) still finds a sender on itself through lo.
        let chosen = usable.isEmpty && family == .v4
            ? devices.filter { if case .v4(let address) = $0.address { return address.address.sin_addr.s_addr == in_addr_t(0x0100007f) } else { return false } }
            : usable
        for device in chosen where joined.insert(device.interfaceIndex).inserted {
            // Joined with setsockopt directly: NIO's joinGroup refuses an
            // interface without IFF_MULTICAST, and loopback has none.
            do {
                switch (device.address, groupAddress) {
                case (.v4(let address)?, .v4(let group)):
                    let request = ip_mreq(imr_multiaddr: group.address.sin_addr, imr_interface: address.address.sin_addr)
                    try await provider?.unsafeSetSocketOption(level: .ip, name: .ip_add_membership, value: request).get()
                    interfaces.append(.v4(address.address.sin_addr))
                case (.v6?, .v6(let group)):
                    let request = ipv6_mreq(ipv6mr_multiaddr: group.address.sin6_addr, ipv6mr_interface: UInt32(device.interfaceIndex))
                    try await provider?.unsafeSetSocketOption(level: .ipv6, name: .ipv6_join_group, value: request).get()
                    interfaces.append(.v6(UInt32(device.interfaceIndex)))
                default:
                    continue
                }
            } catch {
                continue
            }
        }
        guard !interfaces.isEmpty else {
            try? await channel.close()
            return nil
        }
        return Socket(channel: channel, family: family, group: groupAddress, interfaces: interfaces)
    }
}

final class Counters: Sendable {
    let dropped = NIOLockedValueBox(0)
}

/// Parses each datagram; a bad one is dropped and counted, never fatal.
final class BeaconHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let continuation: AsyncStream<LANHeard>.Continuation
    private let counters: Counters

    init(continuation: AsyncStream<LANHeard>.Continuation, counters: Counters) {
        self.continuation = continuation
        self.counters = counters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        do {
            let message = try LANMessage(parsing: envelope.data.readableBytesView)
            continuation.yield(LANHeard(message: message, from: envelope.remoteAddress))
        } catch {
            counters.dropped.withLockedValue { $0 += 1 }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An ICMP error for an earlier datagram: nothing to do.
    }
}
