#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import TernSTUN

/// Asks the router behind a remote server-reflexive candidate whether it
/// answers an unsolicited datagram (ICEAgent+RemoteRouters.swift says why
/// that decides who must send the first check).
///
/// One STUN Binding indication (which nothing answers) goes to the discard
/// port of the candidate's IP address from a connected UDP socket of its
/// own, never the session's socket: a connected socket reports an ICMP port
/// unreachable answer as ECONNREFUSED on its next receive, and whatever
/// entry the router's conntrack confirms for this flow concerns a port the
/// session never uses. Non-blocking; `answered()` is polled from the
/// driver's event loop, which owns the probe.
final class RouterProbe: @unchecked Sendable {
    /// RFC 863 discard: nothing listens there on a home router.
    static let port: UInt16 = 9
    /// When the driver looks for the answer, after sending. The last one
    /// settles it (silent), before the agent's own probe wait ends.
    static let polls: [TimeAmount] = [.milliseconds(2), .milliseconds(6), .milliseconds(15), .milliseconds(30), .milliseconds(45)]

    private var descriptor: CInt

    /// Nil when the socket cannot be made or the datagram cannot be sent
    /// (the router's behaviour then stays unknown).
    init?(towards candidate: STUNAddress) {
        guard let target = STUNAddress(ipBytes: candidate.ipBytes, port: Self.port) else { return nil }
        let ipv6 = candidate.ipBytes.count == 16
        guard let address = SocketAddressConversion.socketAddress(target, dualStack: ipv6) else { return nil }
        #if canImport(Darwin)
        let type = SOCK_DGRAM
        #else
        let type = Int32(SOCK_DGRAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        #endif
        descriptor = socket(ipv6 ? AF_INET6 : AF_INET, type, 0)
        guard descriptor >= 0 else { return nil }
        #if canImport(Darwin)
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        #endif
        let connected = address.withSockAddr { pointer, length in connect(descriptor, pointer, socklen_t(length)) }
        let message = STUNMessage(.indication, .binding, transactionID: .random())
        guard connected == 0, let bytes = try? message.encode(fingerprint: true),
            bytes.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, 0) }) == bytes.count
        else {
            close()
            return nil
        }
    }

    deinit { close() }

    /// True once the kernel reported an ICMP port unreachable for the probe.
    func answered() -> Bool {
        guard descriptor >= 0 else { return false }
        var byte: UInt8 = 0
        let received = recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT))
        return received < 0 && errno == ECONNREFUSED
    }

    /// Closed: its result was reported (or it failed); later polls do nothing.
    var isClosed: Bool { descriptor < 0 }

    func close() {
        guard descriptor >= 0 else { return }
        #if canImport(Glibc)
        _ = Glibc.close(descriptor)
        #elseif canImport(Musl)
        _ = Musl.close(descriptor)
        #else
        _ = Darwin.close(descriptor)
        #endif
        descriptor = -1
    }
}
