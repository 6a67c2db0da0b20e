import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client over a blocking TCP socket that writes whatever frame
/// it is told to (unmasked, reserved bits, reserved opcodes, any length) and
/// reads the relay's frames byte by byte: what a hostile client sees.
final class RawWebSocket {
    enum Failure: Error, CustomStringConvertible {
        case system(String, Int32)
        case closedEarly
        var description: String {
            switch self {
            case .system(let call, let code): "\(call): \(String(cString: strerror(code)))"
            case .closedEarly: "the relay closed the connection in the middle of a frame"
            }
        }
    }

    /// What one read of the connection found.
    enum Event: Equatable {
        case text(String)
        case close(code: UInt16?)
        case ping
        case other(opcode: UInt8)
        /// The relay closed its side cleanly (FIN).
        case endOfStream
        /// The connection was reset (RST): the relay closed with data unread.
        case reset
        case timedOut
    }

    let fd: Int32

    /// Connects from `source` (another loopback address makes another
    /// client address for the relay) to 127.0.0.1:`port`.
    init(port: Int, source: String = "127.0.0.1", timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.system("socket", errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = Self.address(source, port: 0)
        var remote = Self.address("127.0.0.1", port: port)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { let code = errno; close(fd); throw Failure.system("bind", code) }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { let code = errno; close(fd); throw Failure.system("connect", code) }
    }

    deinit { close(fd) }

    static func address(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr(host)
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// Sends an HTTP upgrade request for `path`; returns the status line.
    @discardableResult
    func upgrade(path: String = "/v1", headers: [String] = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]) throws -> String {
        let request = (["GET \(path) HTTP/1.1", "Host: 127.0.0.1"] + headers).joined(separator: "\r\n") + "\r\n\r\n"
        try write(Array(request.utf8))
        // The response head, byte by byte up to the blank line (a frame may follow it).
        var head: [UInt8] = []
        while !head.ends(with: [13, 10, 13, 10]) {
            guard let byte = try readByte() else { break }
            head.append(byte)
        }
        let text = String(decoding: head, as: UTF8.self)
        return text.components(separatedBy: "\r\n").first ?? ""
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw Failure.system("send", errno) }
            offset += sent
        }
    }

    /// One frame as a client writes it; `masked: false`, `rsv` and any
    /// opcode make it break the rules on purpose.
    static func frame(opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, masked: Bool = true) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x7) << 4 | (opcode & 0xf)]
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch payload.count {
        case ..<126: out.append(maskBit | UInt8(payload.count))
        case ..<65536: out += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        default: out += [maskBit | 127] + (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xff) }
        }
        guard masked else { return out + payload }
        let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        return out + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    func send(text: String) throws {
        try write(Self.frame(opcode: 1, payload: Array(text.utf8)))
    }

    /// Reads the next frame (or the end of the connection).
    func next() throws -> Event {
        let first: UInt8
        switch readByteOrEvent() {
        case .success(let byte): first = byte
        case .failure(let box): return box.event
        }
        guard let second = try readByte() else { throw Failure.closedEarly }
        var length = Int(second & 0x7f)
        if length == 126 { length = try readBytes(2).reduce(0) { $0 << 8 | Int($1) } }
        if length == 127 { length = try readBytes(8).reduce(0) { $0 << 8 | Int($1) } }
        let payload = try readBytes(length)
        switch first & 0x0f {
        case 1: return .text(String(decoding: payload, as: UTF8.self))
        case 8: return .close(code: payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil)
        case 9: return .ping
        case let opcode: return .other(opcode: opcode)
        }
    }

    /// Every event up to and including the end of the connection (at most `limit`).
    func drain(limit: Int = 16) throws -> [Event] {
        var events: [Event] = []
        while events.count < limit {
            let event = try next()
            events.append(event)
            if event == .endOfStream || event == .reset || event == .timedOut { break }
        }
        return events
    }

    private func readByteOrEvent() -> Result<UInt8, EventBox> {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, 0)
        if count == 1 { return .success(byte) }
        if count == 0 { return .failure(EventBox(.endOfStream)) }
        switch errno {
        case ECONNRESET: return .failure(EventBox(.reset))
        case EAGAIN, EWOULDBLOCK: return .failure(EventBox(.timedOut))
        default: return .failure(EventBox(.reset))
        }
    }

    private func readByte() throws -> UInt8? {
        switch readByteOrEvent() {
        case .success(let byte): return byte
        case .failure(let box) where box.event == .endOfStream: return nil
        case .failure: throw Failure.closedEarly
        }
    }

    private func readBytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = out[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard got > 0 else { throw Failure.closedEarly }
            offset += got
        }
        return out
    }

    struct EventBox: Error { let event: Event; init(_ event: Event) { self.event = event } }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
