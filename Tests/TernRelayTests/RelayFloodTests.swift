import Foundation
import Testing
import TernRendezvous
import TernSession
import TernTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One address floods a real relay with allocations and claims; another
/// address (127.0.0.1 against the flood's 127.0.0.2) still pairs.
@Suite struct RelayFloodTests {
    /// Upgrades from `source`, reads the welcome, sends `frame`, and returns
    /// the relay's answer.
    static func request(_ frame: ClientFrame, port: Int, source: String) throws -> (RawWebSocket, RelayFrame?) {
        let client = try RawWebSocket(port: port, source: source)
        guard try client.upgrade().contains("101"), case .text = try client.next() else { return (client, nil) }
        try client.send(text: frame.encoded())
        guard case .text(let text) = try client.next() else { return (client, nil) }
        return (client, try? RelayFrame(decoding: Array(text.utf8)))
    }

    @Test func allocationAndClaimFloodsFromOneAddressAreLimitedWhileOthersPair() async throws {
        let relay = try await RelayProcess.start()
        var held: [RawWebSocket] = []
        var allocated = 0, refused = 0
        let start = Date()
        for _ in 0..<50 {
            let (client, reply) = try Self.request(.allocate(side: .random()), port: relay.port, source: "127.0.0.2")
            switch reply {
            case .allocated?: allocated += 1
            case .error(.limit, _)?: refused += 1
            default: Issue.record("unexpected answer \(String(describing: reply))")
            }
            held.append(client)
        }
        // Claims come out of the same bucket: guessing nameplates is refused too.
        var claimsRefused = 0
        for nameplate in 1...5 {
            let (_, reply) = try Self.request(.claim(nameplate: String(100_000 + nameplate), side: .random()), port: relay.port, source: "127.0.0.2")
            if case .error(.limit, _)? = reply { claimsRefused += 1 }
        }
        // 30 at once, then one every 2 s (however slowly this loop ran).
        let allowed = 30 + Int(Date().timeIntervalSince(start) / 2) + 1
        #expect(allocated >= 30 && allocated + (5 - claimsRefused) <= allowed, "\(allocated) allocated, \(5 - claimsRefused) claims passed, \(allowed) allowed")
        #expect(refused == 50 - allocated)
        #expect(claimsRefused >= 5 - (allowed - allocated), "\(claimsRefused) claims refused")
        // Meanwhile another address pairs.
        try await RelayProcessTests.pairOnce(relay: try RelayURL(parsing: relay.url), label: "during-flood")
        held.removeAll()
        try await relay.stop()
    }
}
