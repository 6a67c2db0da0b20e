import NIOCore
import NIOWebSocket
import TernRendezvous

/// One WebSocket client of the rendezvous protocol.
final class RendezvousHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let state: NIOLoopBoundBox<RelayState>
    private let host: String?
    private var id: ConnectionID?

    init(state: NIOLoopBoundBox<RelayState>, host: String?) {
        self.state = state
        self.host = host
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let state = self.state.value
        let id = ConnectionID(state.nextID)
        state.nextID += 1
        let address = AddressKey(context.channel.remoteAddress).description
        guard state.hub.connected(id, address: address, now: .now()) else {
            state.logger.warning("refused connection: the relay is full", metadata: ["address": "\(address)"])
            RelayState.closeWebSocket(context.channel, code: .policyViolation)
            return
        }
        self.id = id
        state.connections[id] = context.channel
        state.heard(id)
        state.logger.debug("client connected", metadata: ["connection": "\(id)", "address": "\(address)"])
        state.perform([.send(id, .welcome(state.welcome(host: host)))])
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let id else { return }
        let frame = unwrapInboundIn(data)
        let state = self.state.value
        state.heard(id)
        switch frame.opcode {
        case .text:
            state.perform(state.hub.received(frame.unmaskedData.readableBytesView, from: id, now: .now()))
        case .binary, .continuation:
            state.perform([.send(id, .error(code: .malformed, message: "frames are JSON text")), .close(id)])
        case .ping:
            var payload = frame.unmaskedData
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: payload.readSlice(length: min(payload.readableBytes, 125)) ?? payload)), promise: nil)
        case .connectionClose:
            state.forget(id)
            RelayState.closeWebSocket(context.channel, code: .normalClosure)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard let id else { return }
        let state = self.state.value
        state.forget(id)
        state.logger.debug("client disconnected", metadata: ["connection": "\(id)"])
        self.id = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // What the decoder reads after its own error (the rest of an
        // oversize frame, drained before the close) is reported like this.
        if case ByteToMessageDecoderError.dataReceivedInErrorState = error { return }
        guard let id else {
            context.close(promise: nil)
            return
        }
        let state = self.state.value
        // A bad frame from this client: tell it why and close it with the
        // close code RFC 6455 §7.4.1 gives; nobody else is affected.
        guard let (code, closeCode, message) = Self.refusal(for: error) else {
            // Not a protocol error (the socket failed): the connection is gone.
            state.forget(id)
            self.id = nil
            context.close(promise: nil)
            return
        }
        let refusal = code == .tooLarge ? state.hub.receivedOversize(from: id) : state.hub.receivedInvalid(from: id, code, message)
        state.perform(refusal, closeCode: closeCode)
    }

    /// The rendezvous error and WebSocket close code for an error from the
    /// WebSocket handlers; nil for one that is not the client's fault.
    static func refusal(for error: Error) -> (RelayErrorCode, WebSocketErrorCode, String)? {
        switch error {
        case NIOWebSocketError.invalidFrameLength:
            return (.tooLarge, .messageTooLarge, "")
        case NIOWebSocketError.fragmentedControlFrame:
            return (.malformed, .protocolError, "a control frame may not be fragmented")
        case NIOWebSocketError.multiByteControlFrameLength:
            return (.malformed, .protocolError, "a control frame may carry at most 125 bytes")
        case let error as NIOWebSocketFrameAggregator.Error:
            switch error {
            case .accumulatedFrameSizeIsTooLarge, .tooManyFragments:
                return (.tooLarge, .messageTooLarge, "")
            case .nonFinalFragmentSizeIsTooSmall:
                return (.malformed, .policyViolation, "fragments must be at least 256 bytes")
            case .didReceiveFragmentBeforeReceivingTextOrBinaryFrame:
                return (.malformed, .protocolError, "a continuation frame with no message to continue")
            case .receivedNewFrameWithoutFinishingPrevious:
                return (.malformed, .protocolError, "a new message before the last one was finished")
            }
        case let violation as WebSocketViolation:
            switch violation {
            case .unmaskedClientFrame: return (.malformed, .protocolError, "client frames must be masked")
            case .reservedBitsSet: return (.malformed, .protocolError, "reserved bits set with no extension negotiated")
            case .reservedOpcode(let opcode): return (.malformed, .protocolError, "reserved opcode \(opcode)")
            }
        default:
            return nil
        }
    }
}
