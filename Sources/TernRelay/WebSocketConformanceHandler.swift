import NIOCore
import NIOWebSocket

/// A client frame that breaks RFC 6455 in a way SwiftNIO's decoder lets
/// through (its decoder leaves these to the application, which may have
/// negotiated extensions; the relay negotiates none).
enum WebSocketViolation: Error, Equatable {
    /// RFC 6455 §5.1: a server must close the connection on an unmasked client frame.
    case unmaskedClientFrame
    /// RFC 6455 §5.2: RSV1-3 must be 0 unless an extension defines them.
    case reservedBitsSet
    /// RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    case reservedOpcode(UInt8)
}

/// Checks each frame from the client as it leaves SwiftNIO's decoder (before
/// the aggregator), and fails the connection on the first violation; what
/// follows on that connection is ignored.
final class WebSocketConformanceHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    private var failed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let frame = unwrapInboundIn(data)
        let violation: WebSocketViolation?
        if frame.maskKey == nil {
            violation = .unmaskedClientFrame
        } else if frame.rsv1 || frame.rsv2 || frame.rsv3 {
            violation = .reservedBitsSet
        } else if !Self.knownOpcodes.contains(frame.opcode) {
            violation = .reservedOpcode(UInt8(webSocketOpcode: frame.opcode))
        } else {
            violation = nil
        }
        guard let violation else {
            context.fireChannelRead(data)
            return
        }
        failed = true
        context.fireErrorCaught(violation)
    }

    static let knownOpcodes: [WebSocketOpcode] = [.continuation, .text, .binary, .connectionClose, .ping, .pong]
}
