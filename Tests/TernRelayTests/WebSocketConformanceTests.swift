import Foundation
import Testing
import TernRendezvous
import TernTestSupport

/// RFC 6455 as a real `tern relay` process applies it, seen from a raw
/// client that breaks each rule on purpose.
@Suite struct WebSocketConformanceTests {
    /// Upgrades, reads the welcome, sends `bytes`, and returns what follows.
    static func afterSending(_ bytes: [UInt8], to relay: RelayProcess) throws -> [RawWebSocket.Event] {
        let client = try RawWebSocket(port: relay.port)
        #expect(try client.upgrade().contains("101"))
        guard case .text(let welcome) = try client.next(), welcome.contains(#""type":"welcome""#) else {
            Issue.record("no welcome")
            return []
        }
        try client.write(bytes)
        return try client.drain()
    }

    /// The relay's error code in a text event.
    static func errorCode(_ event: RawWebSocket.Event?) -> RelayErrorCode? {
        guard case .text(let text)? = event, case .error(let code, _) = try? RelayFrame(decoding: Array(text.utf8)) else { return nil }
        return code
    }

    @Test func anOversizeFrameGetsTooLargeThenClose1009AndNoReset() async throws {
        let relay = try await RelayProcess.start(["--max-message-bytes", "1024"])
        // 1 MiB, far over the 5460-byte frame limit, sent whole: the relay
        // reads and drops the rest of it instead of resetting the connection.
        let events = try Self.afterSending(RawWebSocket.frame(opcode: 1, payload: [UInt8](repeating: 0x41, count: 1 << 20)), to: relay)
        #expect(Self.errorCode(events.first) == .tooLarge, "\(events)")
        #expect(events.dropFirst().first == .close(code: 1009), "\(events)")
        #expect(events.last == .endOfStream, "\(events)")
        try await relay.stop()
    }

    @Test(arguments: [
        ("unmasked", RawWebSocket.frame(opcode: 1, payload: Array(#"{"type":"close","mood":"happy"}"#.utf8), masked: false)),
        ("rsv1", RawWebSocket.frame(opcode: 1, payload: Array("{}".utf8), rsv: 0b100)),
        ("rsv3", RawWebSocket.frame(opcode: 1, payload: Array("{}".utf8), rsv: 0b001)),
        ("opcode 3", RawWebSocket.frame(opcode: 3, payload: [])),
        ("opcode 0xB", RawWebSocket.frame(opcode: 0xB, payload: [])),
        ("continuation with no start", RawWebSocket.frame(opcode: 0, payload: Array("{}".utf8))),
        ("fragmented ping", RawWebSocket.frame(opcode: 9, payload: [], fin: false)),
    ])
    func aFrameThatBreaksTheRulesFailsTheConnectionWith1002(_ name: String, _ bytes: [UInt8]) async throws {
        let relay = try await RelayProcess.start()
        let events = try Self.afterSending(bytes, to: relay)
        #expect(Self.errorCode(events.first) == .malformed, "\(name): \(events)")
        #expect(events.dropFirst().first == .close(code: 1002), "\(name): \(events)")
        #expect(events.last == .endOfStream, "\(name): \(events)")
        try await relay.stop()
    }

    @Test func aBinaryFrameIsMalformedAndClosedNormally() async throws {
        let relay = try await RelayProcess.start()
        let events = try Self.afterSending(RawWebSocket.frame(opcode: 2, payload: [1, 2, 3]), to: relay)
        #expect(Self.errorCode(events.first) == .malformed, "\(events)")
        #expect(events.dropFirst().first == .close(code: 1000), "\(events)")
        try await relay.stop()
    }

    @Test func anUpgradeToAnotherPathOrWithAQueryIsA404AndBadHeadersA400() async throws {
        let relay = try await RelayProcess.start()
        for path in ["/v2", "/v1?x=1", "/", "/v1/"] {
            let client = try RawWebSocket(port: relay.port)
            let status = try client.upgrade(path: path)
            #expect(status.hasPrefix("HTTP/1.1 404"), "\(path): \(status)")
        }
        let noKey = try RawWebSocket(port: relay.port)
        let status = try noKey.upgrade(headers: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"])
        #expect(status.hasPrefix("HTTP/1.1 400"), "\(status)")
        try await relay.stop()
    }

    @Test func shuttingDownTellsConnectedClientsToGoElsewhereWith1001() async throws {
        let relay = try await RelayProcess.start()
        let client = try RawWebSocket(port: relay.port)
        #expect(try client.upgrade().contains("101"))
        guard case .text = try client.next() else { Issue.record("no welcome"); return }
        relay.running.signal(SIGTERM)
        #expect(try client.next() == .close(code: 1001))
        #expect(try await relay.running.wait(timeout: 10) == 0)
    }

    @Test func idleConnectionsAreClosedBeforeTheUpgradeAndBeforeAClaim() async throws {
        let relay = try await RelayProcess.start(["--handshake-timeout", "0.5", "--claim-timeout", "1"])
        let start = Date()
        let silent = try RawWebSocket(port: relay.port)
        #expect(try silent.next() == .endOfStream)
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.4 && waited < 5, "\(waited)")
        // Upgraded, but never claims: `expired`, then a normal close.
        let idle = try RawWebSocket(port: relay.port)
        #expect(try idle.upgrade().contains("101"))
        let events = try idle.drain()
        #expect(events.count >= 3, "\(events)")
        #expect(Self.errorCode(events.dropFirst().first) == .expired, "\(events)")
        #expect(events.contains(.close(code: 1000)), "\(events)")
        try await relay.stop()
    }

    @Test func connectionsPerAddressAreCountedAtAcceptTime() async throws {
        let relay = try await RelayProcess.start(["--max-connections-per-address", "3"])
        let held = try (0..<3).map { _ in try RawWebSocket(port: relay.port, source: "127.0.0.2") }
        try await Task.sleep(for: .milliseconds(200))
        // The fourth from that address is closed at once, before any HTTP.
        let refused = try RawWebSocket(port: relay.port, source: "127.0.0.2", timeoutSeconds: 3)
        let event = try refused.next()
        #expect(event == .endOfStream || event == .reset, "\(event)")
        // Another address is not affected.
        let other = try RawWebSocket(port: relay.port, source: "127.0.0.3")
        #expect(try other.upgrade().contains("101"))
        _ = held
        try await relay.stop()
    }
}
