import NIOConcurrencyHelpers
import NIOCore
import TernSTUN

/// Datagrams the STUN responder answered and dropped. The responder runs on
/// its own event loop (a UDP flood must not slow the WebSocket clients), so
/// its counts are shared under a lock rather than kept in `RelayState`.
final class STUNCounters: Sendable {
    private let counts = NIOLockedValueBox<(answered: Int, dropped: Int)>((0, 0))

    var answered: Int { counts.withLockedValue { $0.answered } }
    var dropped: Int { counts.withLockedValue { $0.dropped } }

    func count(answered: Bool) {
        counts.withLockedValue { if answered { $0.answered += 1 } else { $0.dropped += 1 } }
    }
}

/// Answers STUN Binding requests on the relay's UDP port so clients learn
/// their server-reflexive address (RFC 8489 §3); everything else is dropped
/// and counted.
final class STUNResponderHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let counters: STUNCounters

    init(counters: STUNCounters) {
        self.counters = counters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        guard let source = Self.stunAddress(envelope.remoteAddress),
              let response = STUNBindingResponder.respond(to: bytes, from: source)
        else {
            counters.count(answered: false)
            return
        }
        counters.count(answered: true)
        var buffer = context.channel.allocator.buffer(capacity: response.count)
        buffer.writeBytes(response)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A UDP error (an ICMP unreachable reported on the socket) concerns one
        // peer only; the responder keeps serving.
    }

    static func stunAddress(_ address: SocketAddress) -> STUNAddress? {
        guard let port = address.port, let port16 = UInt16(exactly: port) else { return nil }
        switch address {
        case .v4(let v4):
            var addr = v4.address.sin_addr.s_addr
            let bytes = withUnsafeBytes(of: &addr) { Array($0) }
            return STUNAddress(ipBytes: bytes, port: port16)
        case .v6(let v6):
            var addr = v6.address.sin6_addr
            let bytes = withUnsafeBytes(of: &addr) { Array($0) }
            return STUNAddress(ipBytes: bytes, port: port16)
        default:
            return nil
        }
    }
}
