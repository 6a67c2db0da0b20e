import NIOCore
import NIOHTTP1

/// The metrics listener's HTTP: `GET /metrics` answers the Prometheus text
/// exposition; everything else is a 404. It listens only where the operator
/// said (`--metrics-listen`), never on the public rendezvous port.
final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: NIOLoopBoundBox<RelayState>
    private var head: HTTPRequestHead?

    init(state: NIOLoopBoundBox<RelayState>) {
        self.state = state
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
            var headers = HTTPHeaders()
            let status: HTTPResponseStatus
            var buffer: ByteBuffer
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            if head.method == .GET, path == "/metrics", let metrics = state.value.metrics {
                status = .ok
                let text = metrics.scrape(state.value)
                buffer = context.channel.allocator.buffer(capacity: text.count)
                buffer.writeBytes(text)
                headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
            } else {
                status = .notFound
                buffer = context.channel.allocator.buffer(string: "not found\n")
                headers.add(name: "content-type", value: "text/plain")
            }
            headers.add(name: "content-length", value: String(buffer.readableBytes))
            let keepAlive = head.isKeepAlive
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
