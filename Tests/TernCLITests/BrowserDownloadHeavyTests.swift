import Foundation
import Testing
import TernTestSupport

/// The page's streamed download (web/sw.js, web/download.js), which it uses
/// where the browser has no File System Access API: headless Chromium with
/// `showDirectoryPicker` deleted before the page's script runs (DevTools'
/// Page.addScriptToEvaluateOnNewDocument), its downloads sent to a test
/// directory (Browser.setDownloadBehavior), receiving from a real `tern
/// send` through a real `tern relay`. Each file reaches the download
/// directory byte-identical, and the page's JavaScript heap stays far below
/// the file's size while it streams.
@Suite(.serialized) struct BrowserDownloadHeavyTests {
    typealias Page = BrowserPageHeavyTests

    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    /// A page without the File System Access API on `code`, downloads going to a new directory.
    func page(relay: RelayProcess, code: String) async throws -> (DrivenPage, URL) {
        let downloads = try directories.make("page-downloads")
        let page = try await DrivenPage(page: "blank.html", chromiumArguments: ["--enable-precise-memory-info"])
        _ = try await page.wait(for: "document.readyState === 'complete'", what: "the blank page")
        _ = try await page.command([
            "browser": "Browser.setDownloadBehavior", "params": ["behavior": "allow", "downloadPath": downloads.path],
        ])
        // (A script to run on new documents is only kept with the Page domain enabled.)
        _ = try await page.command(["call": "Page.enable", "params": [:] as [String: Any]])
        _ = try await page.command([
            "call": "Page.addScriptToEvaluateOnNewDocument",
            "params": ["source": "delete window.showDirectoryPicker; delete Window.prototype.showDirectoryPicker;"],
        ])
        let relayQuery = relay.url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? relay.url
        _ = try await page.command([
            "call": "Page.navigate", "params": ["url": "http://127.0.0.1:\(page.browser.port)/web/index.html?relay=\(relayQuery)#\(code)"],
        ])
        return (page, downloads)
    }

    /// Accepts the offer, waits for the end and returns the most JS heap seen while receiving (sampled every 50-100 ms).
    static func accept(_ page: DrivenPage) async throws -> Int {
        _ = try await page.wait(for: "document.body.dataset.state === 'offer'", what: "the offer")
        #expect(try await page.evaluate("typeof window.showDirectoryPicker") as? String == "undefined")
        let saveWhere = try await page.text("save-where")
        #expect(saveWhere.hasPrefix("Each file goes to your browser's downloads as it arrives"), "\(saveWhere)")
        try await page.click("accept")
        var most = 0
        // About 7 s alone here; far longer beside other browser suites on 2 cores.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let sample = try await page.evaluate("[document.body.dataset.state, performance.memory.usedJSHeapSize]") as? [Any]
            let state = sample?.first as? String ?? ""
            most = max(most, sample?.last as? Int ?? 0)
            if ["done", "failed", "declined"].contains(state) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let state = try await page.state()
        let status = try await page.text("status")
        #expect(state == "done", "\(status)")
        return most
    }

    /// Waits until every name is a complete download (the browser's .crdownload renamed away) of its size.
    static func downloaded(_ expected: [String: Int], in directory: URL) async throws -> [String: Data] {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let names = Set((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            let sizes = expected.keys.compactMap { name in
                (try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path))?[.size] as? Int
            }
            if !names.contains(where: { $0.hasSuffix(".crdownload") }), sizes.count == expected.count,
               zip(expected.keys.map { expected[$0] ?? -1 }, sizes).allSatisfy({ $0 == $1 }) {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        var contents: [String: Data] = [:]
        for name in expected.keys { contents[name] = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) }
        let listing = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        #expect(Set(listing) == Set(expected.keys), "the download directory holds \(listing)")
        return contents
    }

    @Test func aLargeFileStreamsToTheDownloadsWithABoundedHeap() async throws {
        // 96 MiB: a page that held the file would have a heap far above the bound below.
        let size = 96 << 20
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-download-large")
        let file = directory.appendingPathComponent("large.bin")
        let data = BrowserLargeHeavyTests.xorshiftData(count: size, seed: UInt32.random(in: 1...UInt32.max))
        try data.write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Page.startSender(relay: relay, arguments: [file.path])
        let (page, downloads) = try await self.page(relay: relay, code: code)
        let most = try await Self.accept(page)
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        #expect(try await page.evaluate("document.body.dataset.hash") as? String == Page.doneHash(sender))
        let saved = try await Self.downloaded(["large.bin": size], in: downloads)
        #expect(saved["large.bin"] == data, "the download is byte-identical")
        #expect(most < 64 << 20, "the JS heap reached \(Double(most) / 1048576) MiB while streaming \(size >> 20) MiB")
        let seconds = (PairingCLITests.events(sender, named: "done").first?["seconds"] as? Double) ?? 0
        print(String(format: "page download through the service worker, 96 MiB: %.1f MB/s, JS heap at most %.1f MiB",
                     Double(size) / max(seconds, 0.001) / 1e6, Double(most) / 1048576))
        try await relay.stop()
    }

    @Test func aFolderArrivesAsOneDownloadPerFile() async throws {
        let relay = try await RelayProcess.start()
        let directory = try directories.make("page-download-tree")
        let contents: [String: Data] = [
            "photos/a.txt": Data("hello\n".utf8),
            "photos/2024/big.bin": Page.randomData(700_000),
            "photos/2024/summer/c.bin": Page.randomData(5000),
        ]
        for (path, data) in contents {
            let url = directory.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
        }
        try TestUser.give(directory.appendingPathComponent("photos"))
        let (sender, code) = try await Page.startSender(relay: relay, arguments: [directory.appendingPathComponent("photos").path])
        let (page, downloads) = try await self.page(relay: relay, code: code)
        _ = try await Self.accept(page)
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        let expected = Dictionary(uniqueKeysWithValues: contents.map { (String($0.key.split(separator: "/").last ?? ""), $0.value) })
        let saved = try await Self.downloaded(expected.mapValues(\.count), in: downloads)
        for (name, data) in expected { #expect(saved[name] == data, "\(name)") }
        try await relay.stop()
    }
}
