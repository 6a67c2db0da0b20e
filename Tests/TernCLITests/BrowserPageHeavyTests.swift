import Foundation
import Testing
import TernTestSupport

/// The browser page (web/, built into .build/web by scripts/build-web.sh) in
/// headless Chromium receiving from a real `tern send` through a real
/// `tern relay`, both run as an unprivileged user. Tests/browser/receive.html
/// opens the page's link with the code in a same-origin frame, clicks Accept
/// or Decline as a person would, and reports what the page saved in the
/// origin's private file system (the page's `?save=private`).
@Suite(.serialized) struct BrowserPageHeavyTests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    struct PageEnd: Decodable {
        struct SavedFile: Decodable {
            var size: Int
            var sha256: String
        }

        var state: String
        var status: String?
        var failure: String?
        var hash: String?
        var result: String?
        var files: [String: SavedFile]?
        var directories: [String]?
    }

    static let web = PackagePaths.root.appendingPathComponent(".build/web")

    /// Runs the page on `code` and returns how it ended and the offer it showed.
    static func runPage(relay: RelayProcess, code: String, action: String = "accept") async throws -> (PageEnd, [String]) {
        try #require(
            FileManager.default.fileExists(atPath: web.appendingPathComponent("sodium.wasm").path),
            "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
        let browser = try await HeadlessBrowser(page: "receive.html", webDirectory: web)
        let cases = try JSONSerialization.data(withJSONObject: ["relay": relay.url, "code": code, "action": action])
        try await browser.put("/cases", String(decoding: cases, as: UTF8.self))
        var reports: [[String: String]] = []
        for _ in 0..<1200 {
            reports = try await browser.reports()
            if let end = reports.first(where: { $0["what"] == "end" })?["detail"] {
                let offer = reports.first(where: { $0["what"] == "offer" })?["detail"] ?? "[]"
                let items = (try? JSONSerialization.jsonObject(with: Data(offer.utf8))) as? [String] ?? []
                return (try JSONDecoder().decode(PageEnd.self, from: Data(end.utf8)), items)
            }
            if reports.contains(where: { $0["what"] == "error" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the page did not finish: \(reports) \(browser.chromium.stderr.text.suffix(1500))")
        throw SocketFailure(description: "no end report from the page")
    }

    static func startSender(relay: RelayProcess, arguments: [String]) async throws -> (RunningProcess, String) {
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--json"] + arguments)
        let line = try await sender.waitForLine(in: \.stdout) { $0.contains(#""event":"code""#) }
        let event = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])
        return (sender, try #require(event["code"] as? String))
    }

    static func doneHash(_ sender: RunningProcess) -> String? {
        for line in sender.stdout.lines {
            if let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
               event["event"] as? String == "done" {
                return event["hash"] as? String
            }
        }
        return nil
    }

    static func sha256(_ data: Data) async throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tern-hash-\(UUID().uuidString)")
        try data.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/sha256sum"), arguments: [file.path])
        _ = try await process.wait()
        return String(process.stdout.text.prefix(64))
    }

    static func randomData(_ count: Int) -> Data {
        Data((0..<count).map { _ in UInt8.random(in: 0...255) })
    }

    @Test func receivesAFileFromTernSendByteForByte() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-send")
        let data = Self.randomData(3_000_000)
        let file = directory.appendingPathComponent("payload.bin")
        try data.write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        let (end, offer) = try await Self.runPage(relay: relay, code: code)
        #expect(end.state == "done", "\(end.status ?? "")")
        #expect(offer == ["payload.bin (3.00 MB)"])
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        #expect(end.files?["payload.bin"]?.size == data.count)
        let expected = try await Self.sha256(data)
        #expect(end.files?["payload.bin"]?.sha256 == expected)
        #expect(end.hash != nil && end.hash == Self.doneHash(sender), "the page's transfer hash is the sender's")
    }

    /// A text's lines and tabs are kept on the page; what could hide or
    /// rewrite it (a carriage return, an escape, a bidi override) is escaped.
    @Test func aTextKeepsItsLinesOnThePage() async throws {
        let relay = try await RelayProcess.start()
        let (sender, code) = try await Self.startSender(relay: relay, arguments: ["--text", "line one\n\tline two\r\u{1b}[2J\u{202e}gone"])
        let (end, _) = try await Self.runPage(relay: relay, code: code)
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        #expect(end.state == "done", "\(end.status ?? "")")
        #expect(end.result == "line one\n\tline two\\u{d}\\u{1b}[2J\\u{202e}gone")
    }

    @Test func receivesADirectoryTree() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-tree")
        let tree = directory.appendingPathComponent("photos")
        let contents: [String: Data] = [
            "photos/a.txt": Data("hello\n".utf8),
            "photos/empty": Data(),
            "photos/2024/big.bin": Self.randomData(700_000),
            "photos/2024/summer/c.bin": Self.randomData(5000),
        ]
        for (path, data) in contents {
            let url = directory.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
        }
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("nothing-here"), withIntermediateDirectories: true)
        try TestUser.give(tree)
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [tree.path])
        let (end, offer) = try await Self.runPage(relay: relay, code: code)
        #expect(end.state == "done", "\(end.status ?? "")")
        #expect(offer.first?.hasPrefix("photos/ (4 files, 3 folders") == true, "\(offer)")
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        #expect(Set(end.directories ?? []) == ["photos", "photos/2024", "photos/2024/summer", "photos/nothing-here"])
        #expect(end.files?.count == contents.count)
        for (path, data) in contents {
            let expected = try await Self.sha256(data)
            #expect(end.files?[path]?.sha256 == expected, "\(path)")
        }
    }

    @Test func aDeclinedOfferReceivesNothingAndTheSenderSaysSo() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-decline")
        let file = directory.appendingPathComponent("secret.txt")
        try Data("not wanted\n".utf8).write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        let (end, _) = try await Self.runPage(relay: relay, code: code, action: "decline")
        #expect(end.state == "declined")
        #expect(end.files?.isEmpty == true)
        #expect(try await sender.wait() == 6, "declined is exit 6: \(sender.stderr.text)")
    }

    @Test func aWrongCodeFailsOnBothSides() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-wrong")
        let file = directory.appendingPathComponent("a.txt")
        try Data("a\n".utf8).write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        // Same nameplate, other words: one PAKE guess, which fails.
        let parts = code.split(separator: "-")
        let wrong = "\(parts[0])-\(parts[1] == "acme" ? "adroitness" : "acme")-\(parts[2])"
        let (end, _) = try await Self.runPage(relay: relay, code: wrong)
        #expect(end.state == "failed")
        #expect(end.failure == "wrongCode", "\(end.status ?? "")")
        #expect(end.status?.contains("code is wrong") == true, "\(end.status ?? "")")
        #expect(try await sender.wait() == 3, "a wrong code is exit 3: \(sender.stderr.text)")
    }

    @Test func namesFromTheSenderAreShownEscaped() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-names")
        let file = directory.appendingPathComponent("report\u{202e}fdp.exe")
        try Data("x".utf8).write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        let (end, offer) = try await Self.runPage(relay: relay, code: code, action: "decline")
        #expect(end.state == "declined")
        #expect(offer.first?.hasPrefix("report\\u{202e}fdp.exe") == true, "\(offer)")
        #expect(offer.allSatisfy { !$0.unicodeScalars.contains { $0.value == 0x202e } })
        _ = try await sender.wait()
    }
}
