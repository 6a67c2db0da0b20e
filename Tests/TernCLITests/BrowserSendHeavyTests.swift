import Foundation
import Testing
import TernTestSupport

/// The browser page (web/, built into .build/web by scripts/build-web.sh) in
/// headless Chromium SENDING to a real `tern receive` through a real `tern
/// relay`, both run as an unprivileged user. Tests/browser/send.html makes
/// the files (contents from a seed), hands them to the page's file or folder
/// input as a person's pick would, clicks Send and reports the code the page
/// shows; the test runs `tern receive` on that code and compares what it
/// wrote with the page's sources.
@Suite(.serialized) struct BrowserSendHeavyTests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    struct PageEnd: Decodable {
        var state: String
        var status: String?
        var failure: String?
        var hash: String?
        var result: String?
    }

    struct Shown: Decodable {
        var code: String
        var command: String
        var link: String
    }

    struct Source {
        var path: String
        var size: Int
        var seed: UInt32
    }

    /// A page that sends `files` (mode: files or folder) through `relay`.
    final class SendingPage {
        let browser: HeadlessBrowser

        /// - Parameter relayed: the page gathers relay candidates only (`iceTransportPolicy: "relay"`).
        init(relay: RelayProcess, files: [Source], mode: String = "files", again: Bool = false, relayed: Bool = false) async throws {
            let web = PackagePaths.root.appendingPathComponent(".build/web")
            try #require(
                FileManager.default.fileExists(atPath: web.appendingPathComponent("sodium.wasm").path),
                "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
            browser = try await HeadlessBrowser(page: "send.html", webDirectory: web)
            let cases: [String: Any] = [
                "relay": relay.url, "mode": mode, "again": again, "relayed": relayed,
                "files": files.map { ["path": $0.path, "size": $0.size, "seed": $0.seed] },
            ]
            try await browser.put("/cases", String(decoding: try JSONSerialization.data(withJSONObject: cases), as: UTF8.self))
        }

        /// The details of the `number`th report of kind `what` (from 1), waiting up to `seconds`.
        func report(_ what: String, number: Int = 1, seconds: Double = 60) async throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            var reports: [[String: String]] = []
            while Date() < deadline {
                reports = try await browser.reports()
                let matching = reports.filter { $0["what"] == what }
                if matching.count >= number, let detail = matching[number - 1]["detail"] { return detail }
                if let error = reports.first(where: { $0["what"] == "error" }) {
                    Issue.record("the harness failed: \(error["detail"] ?? "")")
                    break
                }
                if what != "end", let end = reports.first(where: { $0["what"] == "end" }) {
                    Issue.record("the page ended before \(what): \(end["detail"] ?? "")")
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("no \(what) report: \(reports) \(browser.chromium.stderr.text.suffix(1500))")
            throw SocketFailure(description: "no \(what) report from the page")
        }

        func code(number: Int = 1) async throws -> Shown {
            try JSONDecoder().decode(Shown.self, from: Data(try await report("code", number: number).utf8))
        }

        func end() async throws -> PageEnd {
            try JSONDecoder().decode(PageEnd.self, from: Data(try await report("end", seconds: 90).utf8))
        }

        func sources() async throws -> [String: String] {
            try JSONDecoder().decode([String: String].self, from: Data(try await report("sources").utf8))
        }

        func items() async throws -> [String] {
            try JSONDecoder().decode([String].self, from: Data(try await report("items").utf8))
        }
    }

    enum Tests {
        static let browser = PackagePaths.root.appendingPathComponent("Tests/browser")
    }

    static func receiver(relay: RelayProcess, code: String, into directory: URL, yes: Bool = true) throws -> RunningProcess {
        try RunningProcess(arguments: ["receive", "--relay", relay.url, "--json"] + (yes ? ["--yes"] : []) + ["-o", directory.path, code])
    }

    static func events(_ process: RunningProcess, _ name: String) -> [[String: Any]] {
        process.stdout.lines.compactMap { line in
            guard let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  event["event"] as? String == name else { return nil }
            return event
        }
    }

    static func sha256(_ file: URL) async throws -> String {
        let process = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/sha256sum"), arguments: [file.path], privileged: true)
        _ = try await process.wait()
        return String(process.stdout.text.prefix(64))
    }

    @Test func sendsAFileToTernReceiveByteForByte() async throws {
        let relay = try await RelayProcess.start()
        let page = try await SendingPage(relay: relay, files: [Source(path: "payload.bin", size: 5_000_000, seed: 7)])
        let shown = try await page.code()
        #expect(shown.code.range(of: #"^[1-9][0-9]{0,5}-[a-z]{4,11}-[a-z]{4,11}$"#, options: .regularExpression) != nil, "\(shown.code)")
        #expect(shown.command == "tern receive \(shown.code)")
        #expect(shown.link.hasSuffix("#\(shown.code)"), "\(shown.link)")
        #expect(try await page.items() == ["payload.bin (5.00 MB)"])
        let target = try directories.make("page-to-cli")
        let receiver = try Self.receiver(relay: relay, code: shown.code, into: target)
        #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
        let end = try await page.end()
        #expect(end.state == "done", "\(end.status ?? "")")
        let sources = try await page.sources()
        let received = target.appendingPathComponent("payload.bin")
        #expect((try? FileManager.default.attributesOfItem(atPath: received.path)[.size] as? Int) == 5_000_000)
        #expect(try await Self.sha256(received) == sources["payload.bin"])
        let done = try #require(Self.events(receiver, "done").first)
        #expect(end.hash != nil && end.hash == done["hash"] as? String, "the page's transfer hash is the receiver's")
        #expect(done["bytes"] as? Int == 5_000_000)
        #expect(Self.events(receiver, "file").count == 1)
        #expect(end.result?.contains("Sent 1 file") == true, "\(end.result ?? "")")
    }

    @Test func sendsAFolderTreeWithItsStructure() async throws {
        let relay = try await RelayProcess.start()
        let files = [
            Source(path: "photos/a.txt", size: 6, seed: 1),
            Source(path: "photos/empty", size: 0, seed: 2),
            Source(path: "photos/2024/big.bin", size: 700_000, seed: 3),
            Source(path: "photos/2024/summer/c.bin", size: 5000, seed: 4),
            Source(path: "photos/2024/summer/d.bin", size: 262_099, seed: 5),
        ]
        let page = try await SendingPage(relay: relay, files: files, mode: "folder")
        let shown = try await page.code()
        #expect(try await page.items() == ["photos/ (5 files, 967 kB)"])
        let target = try directories.make("page-tree-to-cli")
        let receiver = try Self.receiver(relay: relay, code: shown.code, into: target)
        #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
        let end = try await page.end()
        #expect(end.state == "done", "\(end.status ?? "")")
        let offer = try #require(Self.events(receiver, "offer").first)
        let entries = try #require(offer["entries"] as? [[String: Any]])
        #expect(entries.count == 1)
        #expect(entries.first?["name"] as? String == "photos")
        #expect(entries.first?["kind"] as? String == "directory")
        #expect(entries.first?["files"] as? Int == 5)
        #expect(entries.first?["directories"] as? Int == 2)
        let sources = try await page.sources()
        for file in files {
            #expect(try await Self.sha256(target.appendingPathComponent(file.path)) == sources[file.path], "\(file.path)")
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: target.appendingPathComponent("photos/2024/summer").path, isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(end.hash == Self.events(receiver, "done").first?["hash"] as? String)
    }

    /// A real drag from a file manager: Tests/browser/drop.py drops a folder
    /// (with an empty folder inside) and a file on the page through
    /// Chromium's DevTools protocol, so the page reads them through
    /// webkitGetAsEntry as it would a person's drop.
    @Test func aDroppedFolderArrivesWithItsStructureAndEmptyFolders() async throws {
        let relay = try await RelayProcess.start()
        let source = try directories.make("page-drag-source")
        let album = source.appendingPathComponent("album")
        let contents: [String: Data] = [
            "album/a.txt": Data("hello\n".utf8),
            "album/inner/b.bin": Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }),
            "loose.txt": Data("x\n".utf8),
        ]
        for (path, data) in contents {
            let url = source.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
        }
        try FileManager.default.createDirectory(at: album.appendingPathComponent("empty"), withIntermediateDirectories: true)
        try TestUser.give(source)

        let relayQuery = relay.url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? relay.url
        let chromium = try await HeadlessBrowser(
            page: "web/index.html?relay=\(relayQuery)", webDirectory: PackagePaths.root.appendingPathComponent(".build/web"),
            chromiumArguments: ["--remote-debugging-port=0"])
        defer { withExtendedLifetime(chromium) {} }  // running until drop.py is done with it
        let drop = try RunningProcess(
            executable: URL(fileURLWithPath: "/usr/bin/python3"),
            arguments: [Tests.browser.appendingPathComponent("drop.py").path, chromium.profile.path, album.path,
                        source.appendingPathComponent("loose.txt").path])
        let first = try await drop.waitForLine(in: \.stdout, timeout: 30) { $0.contains(#""code""#) }
        let shown = try #require((try JSONSerialization.jsonObject(with: Data(first.utf8))) as? [String: Any])
        #expect(shown["items"] as? [String] == ["album/ (2 files, 300 kB)", "loose.txt (2 B)"])
        let target = try directories.make("page-drag-target")
        let receiver = try Self.receiver(relay: relay, code: try #require(shown["code"] as? String), into: target)
        #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
        let last = try await drop.waitForLine(in: \.stdout, timeout: 60) { $0.contains(#""state""#) }
        let end = try #require((try JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any])
        #expect(end["state"] as? String == "done", "\(end) \(drop.stderr.text)")
        #expect(end["hash"] as? String == Self.events(receiver, "done").first?["hash"] as? String)
        for (path, data) in contents {
            #expect(FileManager.default.contents(atPath: target.appendingPathComponent(path).path) == data, "\(path)")
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: target.appendingPathComponent("album/empty").path, isDirectory: &isDirectory)
            && isDirectory.boolValue, "the empty folder arrives too")
    }

    @Test func aDeclineByTernReceiveIsShownOnThePage() async throws {
        let relay = try await RelayProcess.start()
        let page = try await SendingPage(relay: relay, files: [Source(path: "secret.txt", size: 11, seed: 9)])
        let shown = try await page.code()
        let target = try directories.make("page-decline")
        // A person at a terminal answers the question (without one, tern receive refuses to ask).
        let window = try TerminalWindow(TerminalWindow.tern(["receive", shown.code, "--relay", relay.url, "-o", target.path], in: target))
        try await window.waitFor("the question") { $0.hasPrefix("Accept? [y/N]") }
        try window.send("n", "Enter")
        let status = try await window.exitStatus()
        let end = try await page.end()
        #expect(end.state == "declined", "\(end.status ?? "")")
        #expect(end.status?.contains("The receiver declined") == true, "\(end.status ?? "")")
        #expect(status == 6, "declined is exit 6: \(window.screen.joined(separator: "\n"))")
        #expect(!FileManager.default.fileExists(atPath: target.appendingPathComponent("secret.txt").path))
    }

    @Test func aWrongCodeFailsOnBothSides() async throws {
        let relay = try await RelayProcess.start()
        let page = try await SendingPage(relay: relay, files: [Source(path: "a.txt", size: 2, seed: 5)])
        let shown = try await page.code()
        // Same nameplate, other words: one PAKE guess, which fails.
        let parts = shown.code.split(separator: "-")
        let wrong = "\(parts[0])-\(parts[1] == "acme" ? "adroitness" : "acme")-\(parts[2])"
        let target = try directories.make("page-wrong")
        let receiver = try Self.receiver(relay: relay, code: wrong, into: target)
        #expect(try await receiver.wait(timeout: 30) == 3, "a wrong code is exit 3: \(receiver.stderr.text)")
        let end = try await page.end()
        #expect(end.state == "failed")
        #expect(end.failure == "wrongCode", "\(end.status ?? "")")
        #expect(end.status?.contains("different code") == true, "\(end.status ?? "")")
        #expect(!FileManager.default.fileExists(atPath: target.appendingPathComponent("a.txt").path))
    }

    /// `tern receive` interrupted (SIGTERM, as Ctrl-C) tells the page why,
    /// and the page says so at once, with the receiver's words.
    @Test func anInterruptedReceiverIsShownOnThePage() async throws {
        let relay = try await RelayProcess.start()
        let page = try await SendingPage(relay: relay, files: [Source(path: "big.bin", size: 64 << 20, seed: 43)])
        let shown = try await page.code()
        let target = try directories.make("page-interrupted")
        let receiver = try Self.receiver(relay: relay, code: shown.code, into: target)
        _ = try await receiver.waitForLine(in: \.stdout, timeout: 60) { $0.contains(#""event":"progress""#) }
        receiver.signal(SIGTERM)
        let status = try await receiver.wait(timeout: 30)
        #expect(status != 0)
        #expect(Self.events(receiver, "partial").first != nil, "\(receiver.stdout.text)")
        let end = try await page.end()
        #expect(end.state == "failed")
        #expect(end.failure == "cancelled", "\(end.status ?? "")")
        #expect(end.status?.hasPrefix("the other side stopped: ") == true, "\(end.status ?? "")")
    }

    /// `tern receive` killed midway (SIGKILL: it says nothing) keeps the
    /// partial of its last save; the page notices the silent path and says
    /// so, its "Send again" pairs with a new code, and a new `tern receive`
    /// into the same folder asks about the partial, gets the page's chain
    /// (`hashes`), and only the rest moves.
    @Test func aKilledReceiveResumesWithANewCode() async throws {
        let relay = try await RelayProcess.start()
        let size = 64 << 20
        let page = try await SendingPage(relay: relay, files: [Source(path: "big.bin", size: size, seed: 42)], again: true)
        let first = try await page.code()
        let target = try directories.make("page-resume")
        let receiver = try Self.receiver(relay: relay, code: first.code, into: target)
        // Stopped once some data is in (a progress event past 8 MiB, when the state was saved).
        _ = try await receiver.waitForLine(in: \.stdout, timeout: 60) { line in
            guard line.contains(#""event":"progress""#),
                  let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let bytes = event["bytes"] as? Int else { return false }
            return bytes > 12 << 20
        }
        receiver.signal(SIGKILL)
        let stopped = try await receiver.wait(timeout: 30)
        #expect(stopped != 0, "the interrupted receiver failed: \(receiver.stderr.text)")
        // What the receiver kept: its last progress (SIGKILL leaves the state of the last save, each second or 8 MiB).
        let kept = try #require(Self.events(receiver, "progress").last?["bytes"] as? Int)
        #expect(FileManager.default.fileExists(atPath: target.appendingPathComponent(".big.bin.tern-state").path))
        // The page notices the silent path (15 s after the browser calls it disconnected) and says so.
        let failed = try JSONDecoder().decode(PageEnd.self, from: Data(try await page.report("failed", seconds: 45).utf8))
        #expect(failed.state == "failed")
        #expect(failed.status?.contains("connection to the receiver was lost") == true, "\(failed.status ?? "")")

        let second = try await page.code(number: 2)
        #expect(second.code != first.code)
        let again = try Self.receiver(relay: relay, code: second.code, into: target)
        #expect(try await again.wait(timeout: 60) == 0, "receiver: \(again.stderr.text)")
        let end = try await page.end()
        #expect(end.state == "done", "\(end.status ?? "")")
        let resumed = try #require(Self.events(again, "resume").first?["bytes"] as? Int, "\(again.stdout.text)")
        #expect(resumed > 0 && resumed <= kept, "resumed \(resumed) of the \(kept) received")
        let done = try #require(Self.events(again, "done").first)
        #expect(done["bytes"] as? Int == size)
        #expect((done["sent_bytes"] as? Int).map { $0 == size - resumed } == true, "\(done)")
        #expect(end.hash == done["hash"] as? String)
        #expect(end.result?.contains("resumed") == true, "\(end.result ?? "")")
        let sources = try await page.sources()
        #expect(try await Self.sha256(target.appendingPathComponent("big.bin")) == sources["big.bin"])
    }

    /// Through Debian's coturn with the TURN credentials a real `tern relay
    /// --turn-uri --turn-secret` hands out: the page on relay candidates
    /// only, `tern receive --force-relay`, so both ends of the pair are
    /// coturn allocations.
    @Test func sendsThroughCoturnWithBothSidesRelayed() async throws {
        let coturn = try await CoturnProcess()
        let relay = try await RelayProcess.start(["--turn-uri", coturn.uri(), "--turn-secret", coturn.secret])
        let page = try await SendingPage(relay: relay, files: [Source(path: "through-turn.bin", size: 2_000_000, seed: 99)], relayed: true)
        let shown = try await page.code()
        let target = try directories.make("page-relayed-to-cli")
        let receiver = try RunningProcess(arguments: ["receive", "--relay", relay.url, "--json", "--yes", "--force-relay", "-o", target.path, shown.code])
        #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
        let end = try await page.end()
        #expect(end.state == "done", "\(end.status ?? "")")
        let connected = try #require(Self.events(receiver, "connected").first, "\(receiver.stdout.text)")
        #expect(connected["path"] as? String == "relayed", "\(connected)")
        #expect(connected["local"] as? String == "relay", "\(connected)")
        #expect(connected["remote"] as? String == "relay", "the page offered coturn allocations only: \(connected)")
        let sources = try await page.sources()
        #expect(try await Self.sha256(target.appendingPathComponent("through-turn.bin")) == sources["through-turn.bin"])
        #expect(end.hash == Self.events(receiver, "done").first?["hash"] as? String)
        try await relay.stop()
    }

    /// More items than one offer holds (1024) are refused before a code is
    /// asked for, as `tern send` refuses them (exit 2), with what to do instead.
    @Test func moreItemsThanAnOfferHoldsAreRefusedBeforePairing() async throws {
        let relay = try await RelayProcess.start()
        let files = (0..<1025).map { Source(path: "f\($0).txt", size: 1, seed: UInt32($0 + 1)) }
        let page = try await SendingPage(relay: relay, files: files)
        let end = try await page.end()
        #expect(end.state == "failed")
        #expect(end.failure == "unsendable", "\(end.status ?? "")")
        #expect(end.status?.contains("1025 items are more than one offer holds") == true, "\(end.status ?? "")")
        #expect(try await page.browser.reports().contains { $0["what"] == "code" } == false, "no code was asked for")
    }

    /// web/words.js is the CLI's word list (Sources/TernRendezvous/WordList.swift).
    @Test func thePagesWordsAreTheCLIs() throws {
        let regex = try NSRegularExpression(pattern: #""([a-z]+)""#)
        let words = { (text: String) -> [String] in
            regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
                Range($0.range(at: 1), in: text).map { String(text[$0]) }
            }
        }
        let swift = try String(contentsOf: PackagePaths.root.appendingPathComponent("Sources/TernRendezvous/WordList.swift"), encoding: .utf8)
        let js = try String(contentsOf: PackagePaths.root.appendingPathComponent("web/words.js"), encoding: .utf8)
        let swiftWords = words(swift)
        #expect(swiftWords.count == 512)
        #expect(words(js) == swiftWords)
    }
}
