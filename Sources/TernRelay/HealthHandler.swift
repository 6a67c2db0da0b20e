import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Plain HTTP on the relay port: the health endpoint and the browser page
/// (`WebApp`, when the relay serves one); everything else that is not a
/// WebSocket upgrade to /v1 is a 404.
final class HealthHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "tern-health"

    private let state: NIOLoopBoundBox<RelayState>
    private let web: WebApp?
    private var head: HTTPRequestHead?
    /// The request asked for a WebSocket upgrade without valid headers.
    private var badUpgrade = false

    init(state: NIOLoopBoundBox<RelayState>, web: WebApp? = nil) {
        self.state = state
        self.web = web
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            // A WebSocket upgrade anywhere but /v1 is a 404 (docs/protocol.md
            // §2), the page's paths included.
            let asksUpgrade = head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
            if head.method == .GET || head.method == .HEAD, !asksUpgrade, let file = web?.file(for: head.uri) {
                respond(context: context, head: head, status: .ok, contentType: file.contentType,
                        body: head.method == .HEAD ? [] : file.bytes, length: file.bytes.count,
                        extraHeaders: WebApp.securityHeaders)
                badUpgrade = false
                return
            }
            let (status, body): (HTTPResponseStatus, String)
            if head.method == .GET && head.uri == "/health" {
                let stats = state.value.hub.statistics
                status = .ok
                let relay = state.value
                body = "{\"status\":\"ok\",\"connections\":\(stats.connections),\"mailboxes\":\(stats.mailboxes),\"nameplates\":\(stats.nameplates),\"messages\":\(stats.messagesRelayed),\"protocol_errors\":\(stats.protocolErrors),\"stun_answered\":\(relay.stunCounters.answered),\"stun_dropped\":\(relay.stunCounters.dropped),\"turn_issued\":\(relay.turnCredentialsIssued)}\n"
            } else if badUpgrade && head.uri == "/v1" {
                status = .badRequest
                body = "{\"status\":\"bad websocket upgrade\"}\n"
            } else {
                status = .notFound
                body = "{\"status\":\"not found\"}\n"
            }
            badUpgrade = false
            respond(context: context, head: head, status: status, contentType: "application/json",
                    body: Array(body.utf8), length: body.utf8.count)
        }
    }

    private func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, contentType: String,
        body: [UInt8], length: Int, extraHeaders: [(String, String)] = []
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(length))
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // The upgrader declined (another path, a query, bad upgrade headers):
        // the request comes next as plain HTTP and gets its answer
        // (docs/protocol.md §2.1); the connection stays.
        if let error = error as? NIOWebSocketUpgradeError {
            if error == .invalidUpgradeHeader { badUpgrade = true }
            return
        }
        context.close(promise: nil)
    }
}
