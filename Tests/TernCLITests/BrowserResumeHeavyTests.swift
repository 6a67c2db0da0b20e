import Foundation
import Testing
import TernTestSupport

/// Headless Chromium on the real page at the top level, driven through its
/// DevTools protocol by Tests/browser/devtools.py (a line-by-line driver):
/// the test evaluates expressions in the page, reloads it, sets where
/// downloads go.
final class DrivenPage {
    let browser: HeadlessBrowser
    let driver: RunningProcess
    private var lastID = 0

    /// Chromium on `page` (a path served by signal.py, e.g. `web/index.html?…#code`).
    init(page: String, chromiumArguments: [String] = []) async throws {
        let web = BrowserPageHeavyTests.web
        try #require(
            FileManager.default.fileExists(atPath: web.appendingPathComponent("sodium.wasm").path),
            "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
        browser = try await HeadlessBrowser(
            page: page, webDirectory: web, chromiumArguments: ["--remote-debugging-port=0"] + chromiumArguments)
        driver = try RunningProcess(
            executable: URL(fileURLWithPath: "/usr/bin/python3"),
            arguments: [PackagePaths.root.appendingPathComponent("Tests/browser/devtools.py").path, browser.profile.path])
    }

    deinit {
        driver.signal(SIGKILL)
    }

    /// Sends one command to the driver and returns its reply's value; throws on the driver's error.
    func command(_ fields: [String: Any]) async throws -> Any? {
        lastID += 1
        let id = lastID
        var line = fields
        line["id"] = id
        // The throwing write: a driver that has exited (its pipe broken) is a failure of this test, not a crash of the run.
        guard driver.process.isRunning else {
            throw SocketFailure(description: "the DevTools driver exited: \(driver.stderr.text.suffix(1500))")
        }
        try driver.stdin.fileHandleForWriting.write(
            contentsOf: Data((String(decoding: try JSONSerialization.data(withJSONObject: line), as: UTF8.self) + "\n").utf8))
        let reply = try await driver.waitForLine(in: \.stdout, timeout: 60) { $0.hasPrefix("{\"id\": \(id),") }
        let object = try #require((try JSONSerialization.jsonObject(with: Data(reply.utf8))) as? [String: Any])
        if let error = object["error"] as? String { throw SocketFailure(description: "DevTools: \(error)") }
        return object["value"]
    }

    func evaluate(_ expression: String) async throws -> Any? {
        try await command(["eval": expression])
    }

    /// Waits until `expression` is truthy in the page and returns its value
    /// (errors while the page loads or reloads are retried).
    func wait(for expression: String, seconds: Double = 30, what: String) async throws -> Any {
        let deadline = Date().addingTimeInterval(seconds)
        var last: Any?
        while Date() < deadline {
            last = try? await evaluate(expression)
            if let value = last, !(value is NSNull), (value as? Bool) != false, (value as? String) != "", (value as? Int) != 0 {
                return value
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let status = (try? await evaluate(
            "[document.body.dataset.state, document.getElementById('status')?.textContent, document.getElementById('progress-text')?.textContent].join(' | ')"
        )) as? String ?? ""
        Issue.record("timed out waiting for \(what) (last: \(String(describing: last)); page: \(status))")
        throw SocketFailure(description: "timed out waiting for \(what)")
    }

    func state() async throws -> String {
        (try await evaluate("document.body.dataset.state ?? ''") as? String) ?? ""
    }

    func text(_ id: String) async throws -> String {
        (try await evaluate("document.getElementById('\(id)').textContent") as? String) ?? ""
    }

    func click(_ id: String) async throws {
        _ = try await evaluate("document.getElementById('\(id)').click()")
    }

    /// Types `code` into the page and presses Receive, as a person would.
    func receive(code: String) async throws {
        _ = try await evaluate("document.getElementById('code').value = '\(code)'; document.getElementById('receive').click()")
    }

    /// Waits for the page to end a receive (done, failed or declined) and returns the state.
    func end(seconds: Double = 60) async throws -> String {
        let value = try await wait(
            for: "['done', 'failed', 'declined'].includes(document.body.dataset.state) && document.body.dataset.state",
            seconds: seconds, what: "the end of the receive")
        return value as? String ?? ""
    }
}

/// The page resumes a receive, as the CLI does (docs/protocol.md §11.5):
/// a real `tern relay` and real `tern send` processes (unprivileged), the
/// page in headless Chromium receiving 64 MiB into its origin's private file
/// system (`?save=private`, where a person would have picked a folder). The
/// transfer is cut once the page has kept at least 32 MiB verified, by
/// reloading the tab through the DevTools protocol or by killing the
/// sender; a new `tern send` of the same file (a new code, as with the CLI)
/// then sends only what is missing and the file is byte-identical.
@Suite(.serialized) struct BrowserResumeHeavyTests {
    typealias Page = BrowserPageHeavyTests
    static let size = 64 << 20
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    struct Fixture {
        var relay: RelayProcess
        var file: URL
        var seed: UInt32
    }

    func fixture(_ prefix: String) async throws -> Fixture {
        let relay = try await RelayProcess.start()
        let directory = try directories.make(prefix)
        let seed = UInt32.random(in: 1...UInt32.max)
        let file = directory.appendingPathComponent("big.bin")
        try BrowserLargeHeavyTests.xorshiftData(count: Self.size, seed: seed).write(to: file)
        try TestUser.give(file)
        return Fixture(relay: relay, file: file, seed: seed)
    }

    static func pagePath(relay: RelayProcess, code: String? = nil) -> String {
        let relayQuery = relay.url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? relay.url
        return "web/index.html?relay=\(relayQuery)&save=private" + (code.map { "#\($0)" } ?? "")
    }

    /// Verified bytes the page has kept for a resume at its last checkpoint
    /// (the page's body says it: cheaper to poll than its IndexedDB record,
    /// which, polled twenty times a second in a run beside every other
    /// browser suite at a load average of 30, showed no checkpoint in 90 s).
    static let keptBytes = "Number(document.body.dataset.kept ?? 0)"

    /// Starts the receive on `code`, accepts, and waits until at least 32 MiB are kept.
    static func receiveUntilKept(_ page: DrivenPage) async throws {
        _ = try await page.wait(for: "document.body.dataset.state === 'offer'", what: "the offer")
        try await page.click("accept")
        _ = try await page.wait(
            for: "\(keptBytes) >= \(32 << 20) || document.body.dataset.state === 'done'",
            seconds: 90, what: "32 MiB kept")
        #expect(try await page.state() == "receiving", "the transfer must still run when it is cut")
    }

    /// The second attempt: a new `tern send`, its code typed into the page, the offer accepted as a resume.
    /// Returns the bytes the sender and the page say were resumed.
    static func resume(_ page: DrivenPage, _ fixture: Fixture) async throws -> (sender: RunningProcess, resumed: Int) {
        let (sender, code) = try await Page.startSender(relay: fixture.relay, arguments: [fixture.file.path])
        try await page.receive(code: code)
        _ = try await page.wait(for: "document.body.dataset.state === 'offer-resume'", what: "the offer to resume")
        let saveWhere = try await page.text("save-where")
        #expect(saveWhere.hasPrefix("Resumes into this browser's private storage"), "\(saveWhere)")
        #expect(try await page.text("accept") == "Accept and resume")
        try await page.click("accept")
        let end = try await page.end()
        let status = try await page.text("status")
        #expect(end == "done", "\(status)")
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        let resumed = Int(try await page.evaluate("document.body.dataset.resumed") as? String ?? "") ?? -1
        let result = try await page.text("result-text")
        #expect(result.contains("resumed from an earlier attempt"), "\(result)")
        #expect(try await page.evaluate("document.body.dataset.hash") as? String == Page.doneHash(sender))
        let senderResumed = PairingCLITests.events(sender, named: "resume").first?["bytes"] as? Int
        #expect(senderResumed == resumed, "the sender's resume event says \(String(describing: senderResumed)), the page \(resumed)")
        return (sender, resumed)
    }

    /// The saved file compared with what the test wrote, in slices, inside the page.
    static func check(_ page: DrivenPage, _ fixture: Fixture, seed: UInt32? = nil) async throws {
        let verdict = try await page.evaluate("""
            (async () => {
              const root = await navigator.storage.getDirectory();
              const names = []; for await (const name of root.keys()) names.push(name);
              const file = await (await root.getFileHandle('big.bin')).getFile();
              let x = \(seed ?? fixture.seed) >>> 0;
              for (let offset = 0; offset < file.size; offset += 4 << 20) {
                const words = new Uint32Array(await file.slice(offset, offset + (4 << 20)).arrayBuffer());
                for (let i = 0; i < words.length; i++) {
                  x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
                  if (words[i] !== x) return `differs at byte ${offset + i * 4}`;
                }
              }
              return `${file.size} ${names.sort().join(',')}`;
            })()
            """) as? String
        #expect(verdict == "\(size) big.bin", "the saved file and what is left beside it: \(verdict ?? "nothing")")
    }

    /// Prints and checks what the second sender sent: the rest, not the whole file.
    static func report(_ what: String, resumed: Int, sender: RunningProcess) {
        let done = PairingCLITests.events(sender, named: "done").first
        let seconds = (done?["seconds"] as? Double) ?? 0
        let sent = (done?["sent_bytes"] as? Int) ?? -1
        #expect(sent == size - resumed, "the second sender sent \(sent) bytes for \(size - resumed) missing")
        #expect(sent <= size / 2, "re-sent \(sent) of \(size) bytes")
        print(String(
            format: "page resume after %@: %.1f MiB of 64 MiB resumed, %.1f MiB re-sent (%.2f s for the rest)",
            what, Double(resumed) / 1048576, Double(sent) / 1048576, seconds))
    }

    @Test func aReloadedTabResumesWithANewCode() async throws {
        let fixture = try await fixture("page-resume-reload")
        let (first, code) = try await Page.startSender(relay: fixture.relay, arguments: [fixture.file.path])
        let page = try await DrivenPage(page: Self.pagePath(relay: fixture.relay, code: code))
        try await Self.receiveUntilKept(page)
        _ = try await page.command(["call": "Page.reload", "params": [:] as [String: Any]])
        #expect(try await first.wait(timeout: 60) != 0, "the first sender ends with a lost receiver")
        // The reloaded page: the used code gone from the link, the interrupted receive remembered.
        let note = try await page.wait(
            for: "!document.getElementById('resume-note').hidden && document.getElementById('resume-text').textContent",
            what: "the resume note") as? String ?? ""
        #expect(note.hasPrefix("A receive of big.bin stopped with"), "\(note)")
        #expect(try await page.evaluate("location.hash") as? String == "")
        #expect(try await page.state() == "", "a reloaded page does not start on the used code")
        let (second, resumed) = try await Self.resume(page, fixture)
        #expect(resumed >= 32 << 20 && resumed < Self.size, "resumed \(resumed) bytes")
        try await Self.check(page, fixture)
        Self.report("a reload", resumed: resumed, sender: second)
        try await fixture.relay.stop()
    }

    /// A file changed between the attempts (same name and size, another
    /// time and content): the partial's state does not match, so it is
    /// removed and the file comes whole, as with the CLI.
    @Test func aChangedFileStartsOver() async throws {
        let fixture = try await fixture("page-resume-changed")
        let (first, code) = try await Page.startSender(relay: fixture.relay, arguments: [fixture.file.path])
        let page = try await DrivenPage(page: Self.pagePath(relay: fixture.relay, code: code))
        try await Self.receiveUntilKept(page)
        _ = try await page.command(["call": "Page.reload", "params": [:] as [String: Any]])
        #expect(try await first.wait(timeout: 60) != 0)
        let seed = fixture.seed &+ 1
        try BrowserLargeHeavyTests.xorshiftData(count: Self.size, seed: seed).write(to: fixture.file)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-3600)], ofItemAtPath: fixture.file.path)
        let (second, code2) = try await Page.startSender(relay: fixture.relay, arguments: [fixture.file.path])
        _ = try await page.wait(for: "!document.getElementById('resume-note').hidden", what: "the resume note")
        try await page.receive(code: code2)
        _ = try await page.wait(for: "document.body.dataset.state === 'offer-resume'", what: "the offer to resume")
        try await page.click("accept")
        let end = try await page.end()
        let status = try await page.text("status")
        #expect(end == "done", "\(status)")
        #expect(try await second.wait() == 0, "sender: \(second.stderr.text)")
        #expect(try await page.evaluate("document.body.dataset.resumed") as? String == "0")
        let sent = PairingCLITests.events(second, named: "done").first?["sent_bytes"] as? Int
        #expect(sent == Self.size, "the whole changed file is sent")
        try await Self.check(page, fixture, seed: seed)
        try await fixture.relay.stop()
    }

    @Test func aLostSenderResumesWithANewSend() async throws {
        let fixture = try await fixture("page-resume-kill")
        let (first, code) = try await Page.startSender(relay: fixture.relay, arguments: [fixture.file.path])
        let page = try await DrivenPage(page: Self.pagePath(relay: fixture.relay, code: code))
        try await Self.receiveUntilKept(page)
        first.signal(SIGKILL)
        #expect(try await page.end(seconds: 45) == "failed")
        let status = try await page.text("status")
        #expect(status.contains("verified are kept in this browser's private storage"), "\(status)")
        let (second, resumed) = try await Self.resume(page, fixture)
        #expect(resumed >= 32 << 20 && resumed < Self.size, "resumed \(resumed) bytes")
        try await Self.check(page, fixture)
        Self.report("a killed sender", resumed: resumed, sender: second)
        try await fixture.relay.stop()
    }
}
