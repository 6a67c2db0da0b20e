import Foundation
import Testing
import TernTestSupport

/// The browser page receiving from `tern send --force-relay` through Debian's
/// coturn, with the TURN credentials a real `tern relay --turn-uri
/// --turn-secret` hands to both sides. Tests/browser/receive.html opens the
/// page with `relayed=1`, so the page's RTCPeerConnection gathers relay
/// candidates only (`iceTransportPolicy: "relay"`): both ends of the chosen
/// pair are coturn allocations.
@Suite(.serialized) struct BrowserRelayedHeavyTests {
    typealias Page = BrowserPageHeavyTests

    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    /// Runs receive.html with `cases` and returns the page's end report.
    static func runPage(_ cases: [String: Any]) async throws -> Page.PageEnd {
        try #require(
            FileManager.default.fileExists(atPath: Page.web.appendingPathComponent("sodium.wasm").path),
            "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
        let browser = try await HeadlessBrowser(page: "receive.html", webDirectory: Page.web)
        let body = try JSONSerialization.data(withJSONObject: cases)
        try await browser.put("/cases", String(decoding: body, as: UTF8.self))
        var reports: [[String: String]] = []
        for _ in 0..<900 {
            reports = try await browser.reports()
            if let end = reports.first(where: { $0["what"] == "end" })?["detail"] {
                return try JSONDecoder().decode(Page.PageEnd.self, from: Data(end.utf8))
            }
            if reports.contains(where: { $0["what"] == "error" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the page did not finish: \(reports) \(browser.chromium.stderr.text.suffix(1500))")
        throw SocketFailure(description: "no end report from the page")
    }

    @Test func receivesThroughCoturnWithBothSidesRelayed() async throws {
        let coturn = try await CoturnProcess()
        let relay = try await RelayProcess.start(["--turn-uri", coturn.uri(), "--turn-secret", coturn.secret])
        let directory = try directories.make("page-relayed")
        let data = Page.randomData(2_000_000)
        let file = directory.appendingPathComponent("through-turn.bin")
        try data.write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Page.startSender(relay: relay, arguments: ["--force-relay", file.path])
        let end = try await Self.runPage(["relay": relay.url, "code": code, "action": "accept", "relayed": true])
        #expect(end.state == "done", "\(end.status ?? "") \(sender.stderr.text)")
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")

        let connected = try #require(PairingCLITests.events(sender, named: "connected").first, "\(sender.stdout.text)")
        #expect(connected["path"] as? String == "relayed", "\(connected)")
        #expect(connected["local"] as? String == "relay", "\(connected)")
        // The page offered coturn allocations only: the pair's far end is one too.
        #expect(connected["remote"] as? String == "relay", "\(connected)")
        #expect(connected["relay_protocol"] as? String == "udp", "\(connected)")

        #expect(end.files?["through-turn.bin"]?.size == data.count)
        let expected = try await Page.sha256(data)
        #expect(end.files?["through-turn.bin"]?.sha256 == expected)
        #expect(end.hash != nil && end.hash == Page.doneHash(sender), "the page's transfer hash is the sender's")
        try await relay.stop()
    }
}
