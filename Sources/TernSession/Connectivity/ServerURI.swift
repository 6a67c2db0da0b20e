#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import TernSTUN
import TernTURN
import TernCollections

/// A STUN or TURN server from the relay's welcome: `stun:host[:port]`
/// (RFC 7064), `turn:host[:port][?transport=udp|tcp]` (RFC 7065) or
/// `turns:host[:port][?transport=tcp]`, TURN over TLS over TCP (RFC 8656
/// §3.1; port 5349 unless given, 443 where a network lets nothing else
/// out). `stuns:` and `turns:` over DTLS (`?transport=udp`) are refused.
public struct ServerURI: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case stun, turn, turns
    }

    public var scheme: Scheme
    public var host: String
    public var port: UInt16
    public var transport: TURNTransport

    public static let defaultPort: UInt16 = 3478
    /// RFC 7065 §3: `turns:` without a port.
    public static let defaultTLSPort: UInt16 = 5349
    static let maximumLength = 512

    /// TURN over TLS: the stream to the server is a TLS connection.
    public var isSecure: Bool { scheme == .turns }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let suffix = scheme == .stun ? "" : "?transport=\(transport == .tcp ? "tcp" : "udp")"
        return "\(scheme.rawValue):\(shownHost):\(port)\(suffix)"
    }

    public init(parsing text: String) throws(SessionError) {
        guard text.utf8.count <= Self.maximumLength, text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw .relayProtocol("the relay announced a malformed STUN/TURN address")
        }
        guard let colon = text.firstIndex(of: ":") else { throw Self.bad(text) }
        switch text[..<colon].lowercased() {
        case "stun": scheme = .stun
        case "turn": scheme = .turn
        case "turns": scheme = .turns
        case "stuns": throw .relayProtocol("TLS to STUN servers is not supported: \(DisplayText.escaped(text))")
        default: throw Self.bad(text)
        }
        var rest = text[text.index(after: colon)...]
        transport = scheme == .turns ? .tcp : .udp
        if let question = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: question)...].lowercased()
            rest = rest[..<question]
            guard scheme != .stun else { throw Self.bad(text) }
            switch query {
            case "transport=udp" where scheme == .turn: transport = .udp
            case "transport=tcp": transport = .tcp
            default: throw .relayProtocol("unsupported TURN transport in \(DisplayText.escaped(text))")
            }
        }
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Self.bad(text) }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Self.bad(text) }
                portText = after.dropFirst()
            }
        } else if let portColon = rest.lastIndex(of: ":") {
            host = String(rest[..<portColon])
            portText = rest[rest.index(after: portColon)...]
        } else {
            host = String(rest)
        }
        guard !host.isEmpty, !host.contains("/"), !host.contains("@") else { throw Self.bad(text) }
        if let portText {
            guard let port = UInt16(portText), port > 0 else { throw Self.bad(text) }
            self.port = port
        } else {
            self.port = scheme == .turns ? Self.defaultTLSPort : Self.defaultPort
        }
    }

    private static func bad(_ text: String) -> SessionError {
        .relayProtocol("the relay announced a malformed STUN/TURN address: \(DisplayText.escaped(String(text.prefix(100))))")
    }

    /// The server's address: the host as an IP literal, or resolved with the
    /// system resolver (which may block briefly).
    public func resolve() throws(SessionError) -> STUNAddress {
        do {
            let address = try SocketAddress.makeAddressResolvingHost(host, port: Int(port))
            guard let resolved = SocketAddressConversion.stunAddress(address) else {
                throw SessionError.noPath("\(self) did not resolve to an IP address")
            }
            return resolved
        } catch let error as SessionError {
            throw error
        } catch {
            throw .noPath("cannot resolve \(DisplayText.escaped(host)) (from \(self))")
        }
    }
}

/// Between NIO's socket addresses and the cores' STUN addresses, with
/// IPv4-mapped IPv6 addresses (what a dual-stack socket reports for IPv4
/// peers) turned back into IPv4.
enum SocketAddressConversion {
    static func stunAddress(_ address: SocketAddress) -> STUNAddress? {
        guard let port = address.port, let port16 = UInt16(exactly: port), let ip = LocalAddresses.bytes(of: address) else {
            return nil
        }
        return stunAddress(ip: ip, port: port16)
    }

    static func stunAddress(ip: [UInt8], port: UInt16) -> STUNAddress? {
        if ip.count == 16, ip[0..<10].allSatisfy({ $0 == 0 }), ip[10] == 0xff, ip[11] == 0xff {
            return STUNAddress(ipBytes: ip[12...], port: port)
        }
        return STUNAddress(ipBytes: ip, port: port)
    }

    /// The socket address to send to from a socket of the given family.
    static func socketAddress(_ address: STUNAddress, dualStack: Bool) -> SocketAddress? {
        var ip = address.ipBytes
        if dualStack && ip.count == 4 {
            ip = [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + ip
        }
        if ip.count == 4 {
            guard !dualStack else { return nil }
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin_addr) { $0.copyBytes(from: ip) }
            return SocketAddress(raw, host: "")
        }
        guard ip.count == 16, dualStack else { return nil }
        var raw = sockaddr_in6()
        raw.sin6_family = sa_family_t(AF_INET6)
        raw.sin6_port = address.port.bigEndian
        withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: ip) }
        return SocketAddress(raw, host: "")
    }
}
