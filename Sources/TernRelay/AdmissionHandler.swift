import NIOCore

/// The first handler of every accepted TCP connection: it holds the
/// connection's place in the per-address and total counts until the
/// connection closes, and closes a connection that has not completed its
/// WebSocket upgrade within the handshake timeout (slow or idle clients
/// would otherwise hold descriptors for as long as they like).
final class AdmissionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let state: NIOLoopBoundBox<RelayState>
    private let key: AddressKey
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var released = false

    init(state: NIOLoopBoundBox<RelayState>, key: AddressKey, timeout: TimeAmount) {
        self.state = state
        self.key = key
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let state = self.state
        timer = context.eventLoop.scheduleTask(in: timeout) {
            state.value.handshakeTimeouts += 1
            channel.close(promise: nil)
        }
    }

    /// The upgrade completed: from now on the rendezvous handler's own
    /// timeouts apply.
    func upgraded() {
        timer?.cancel()
        timer = nil
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        guard !released else { return }
        released = true
        state.value.release(key)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }
}
