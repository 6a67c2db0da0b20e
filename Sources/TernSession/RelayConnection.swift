import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import TernRendezvous
import TernTLS

/// Where the relay is: parsed from a `ws://host[:port]` base URL.
public struct RelayURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var secure: Bool

    public var description: String { "\(secure ? "wss" : "ws")://\(hostForURL):\(port)" }
    var hostForURL: String { host.contains(":") ? "[\(host)]" : host }

    public init(parsing text: String) throws(SessionError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased(),
              let host = components.host, !host.isEmpty
        else { throw .badRelayURL("'\(trimmed.prefix(200))' is not a URL like ws://relay.example:4747 or wss://relay.example") }
        switch scheme {
        case "ws": secure = false
        case "wss": secure = true
        default: throw .badRelayURL("the relay URL must start with ws:// or wss://")
        }
        guard components.path.isEmpty || components.path == "/" else {
            throw .badRelayURL("give the relay's base URL, without a path")
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? (secure ? 443 : 4747)
        guard (1...65535).contains(port) else { throw .badRelayURL("port out of range") }
    }
}

/// One WebSocket connection to a relay, speaking the rendezvous protocol.
/// Frames from the relay arrive, decoded and checked, on `frames`.
public final class RelayConnection: Sendable {
    public let frames: AsyncThrowingStream<RelayFrame, Error>
    private let channel: Channel
    /// Succeeds when the relay acknowledges a `close` (its `closed` frame)
    /// or the connection ends.
    private let released: EventLoopFuture<Void>

    private init(channel: Channel, frames: AsyncThrowingStream<RelayFrame, Error>, released: EventLoopFuture<Void>) {
        self.channel = channel
        self.frames = frames
        self.released = released
    }

    /// Connects and completes the WebSocket upgrade; the relay's welcome is the first frame.
    public static func connect(to url: RelayURL, timeout: TimeAmount = .seconds(10)) async throws(SessionError) -> RelayConnection {
        let (frames, continuation) = AsyncThrowingStream<RelayFrame, Error>.makeStream()
        let group = MultiThreadedEventLoopGroup.singleton
        let upgraded = group.next().makePromise(of: Void.self)
        let hostHeader = "\(url.hostForURL):\(url.port)"
        let tls: TLSContext?
        do {
            tls = url.secure ? try TLSContext.client() : nil
        } catch {
            throw .relayUnreachable("cannot set up TLS: \(error.reason)")
        }
        let released = group.next().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: FrameLimits.maxFrameBytes(forBody: FrameLimits.maxBodyBytes),
                    automaticErrorHandling: false,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 1024,
                                maxAccumulatedFrameSize: FrameLimits.maxFrameBytes(forBody: FrameLimits.maxBodyBytes)))
                            try sync.addHandler(RelayFrameHandler(continuation: continuation, released: released))
                            upgraded.succeed()
                        }
                    })
                let request = UpgradeRequester(host: hostHeader, upgraded: upgraded)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls, serverName: url.host))
                    }
                    // The relay's welcome can arrive in the same read as the
                    // 101 response: keep those bytes for the WebSocket decoder.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            context.pipeline.removeHandler(name: UpgradeRequester.name, promise: nil)
                        }))
                    try channel.pipeline.syncOperations.addHandler(request, name: UpgradeRequester.name)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: url.host, port: url.port).get()
        } catch {
            upgraded.fail(error)
            released.succeed()
            throw .relayUnreachable("could not connect to the relay at \(url): \(Self.describe(error))")
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) { upgraded.fail(SessionError.relayUnreachable("the relay did not answer in time")) }
        do {
            try await upgraded.futureResult.get()
            timer.cancel()
        } catch {
            timer.cancel()
            channel.close(promise: nil)
            released.succeed()
            if let error = error as? SessionError { throw error }
            if let error = error as? TLSError { throw .relayUnreachable("TLS with the relay at \(url) failed: \(error.reason)") }
            throw .relayUnreachable("the relay at \(url) refused the WebSocket connection: \(Self.describe(error))")
        }
        let connection = RelayConnection(channel: channel, frames: frames, released: released.futureResult)
        live.withLockedValue { $0[ObjectIdentifier(connection)] = connection }
        return connection
    }

    /// Connections that are open, so an interrupted process can leave its
    /// mailbox properly (`leaveAll`) before it exits.
    private static let live = NIOLockedValueBox<[ObjectIdentifier: RelayConnection]>([:])

    /// Closes the mailbox of every open connection with `mood` and waits up
    /// to `timeout` for the relay to acknowledge each; for Ctrl-C, SIGTERM
    /// and --timeout, so the other side learns at once, and the nameplate
    /// is released (a pre-agreed code can be used again right away),
    /// instead of waiting for the relay to notice the dropped connection.
    public static func leaveAll(mood: Mood, timeout: TimeAmount = .milliseconds(500)) async {
        let connections = live.withLockedValue { Array($0.values) }
        guard !connections.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { each in
                    for connection in connections {
                        each.addTask { await connection.leave(mood: mood) }
                    }
                }
            }
            group.addTask { try? await Task.sleep(for: .nanoseconds(timeout.nanoseconds)) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Sends `close` and waits for the relay's `closed` (or the end of the
    /// connection), then closes the connection.
    private func leave(mood: Mood) async {
        do {
            try await send(.close(mood: mood))
            try await released.get()
        } catch {
            // Lost already: nothing more to tell.
        }
        await close()
    }

    public func send(_ frame: ClientFrame) async throws(SessionError) {
        let text = frame.encoded()
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        do {
            try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer))
        } catch {
            throw .relayLost("lost the connection to the relay")
        }
    }

    /// Sends a raw text frame, bypassing the encoder (for tests of the relay's defences).
    public func sendRaw(_ text: String, opcode: WebSocketOpcode = .text) async throws {
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: buffer))
    }

    public func close() async {
        _ = RelayConnection.live.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(self)) }
        var buffer = channel.allocator.buffer(capacity: 2)
        buffer.write(webSocketErrorCode: .normalClosure)
        try? await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer))
        try? await channel.close()
    }

    static func describe(_ error: Error) -> String {
        ErrorText.describe(error)
    }
}

/// Sends the HTTP upgrade request once connected, and fails the upgrade if
/// the server answers with anything but 101.
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    static let name = "tern-upgrade-requester"

    private let host: String
    private let upgraded: EventLoopPromise<Void>

    init(host: String, upgraded: EventLoopPromise<Void>) {
        self.host = host
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1", headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let response) = unwrapInboundIn(data) {
            upgraded.fail(SessionError.relayUnreachable("the relay answered HTTP \(response.status.code) instead of upgrading"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed before any answer: not a WebSocket server (a TLS relay
        // spoken to in plain text hangs up here).
        upgraded.fail(SessionError.relayUnreachable("the relay closed the connection without answering (is it wss://?)"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        upgraded.fail(error)
        context.close(promise: nil)
    }
}

/// Decodes the relay's frames into the stream; the relay is untrusted, so a
/// bad frame ends the connection with an error.
private final class RelayFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let continuation: AsyncThrowingStream<RelayFrame, Error>.Continuation
    private let released: EventLoopPromise<Void>

    init(continuation: AsyncThrowingStream<RelayFrame, Error>.Continuation, released: EventLoopPromise<Void>) {
        self.continuation = continuation
        self.released = released
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            do {
                let decoded = try RelayFrame(decoding: frame.unmaskedData.readableBytesView)
                if case .closed = decoded { released.succeed() }
                continuation.yield(decoded)
            } catch {
                continuation.finish(throwing: SessionError.relayProtocol(error.reason))
                context.close(promise: nil)
            }
        case .ping:
            var payload = frame.unmaskedData
            let slice = payload.readSlice(length: min(payload.readableBytes, 125)) ?? payload
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: slice)), promise: nil)
        case .connectionClose:
            continuation.finish()
            context.close(promise: nil)
        case .binary:
            continuation.finish(throwing: SessionError.relayProtocol("the relay sent a binary frame"))
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        released.succeed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case is IOError, is ChannelError:
            continuation.finish(throwing: SessionError.relayLost("lost the connection to the relay: \(ErrorText.describe(error))"))
        default:
            continuation.finish(throwing: SessionError.relayProtocol("websocket error: \(error)"))
        }
        context.close(promise: nil)
    }
}
