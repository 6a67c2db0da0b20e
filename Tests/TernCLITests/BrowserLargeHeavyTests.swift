import Foundation
import Testing
import TernTestSupport

/// The browser page receiving 256 MiB from a real `tern send` into the
/// origin's private file system (the page's `?save=private`), with the
/// JavaScript heap read while it runs: the page streams each verified chunk
/// to disk, so neither the heap nor the renderer's memory grows with the
/// file. Tests/browser/large-receive.html drives the page and compares the
/// saved file with what the test wrote, slice by slice.
@Suite(.serialized) struct BrowserLargeHeavyTests {
    typealias Page = BrowserPageHeavyTests

    struct End: Decodable {
        var state: String
        var status: String?
        var result: String?
        var hash: String?
        var before: Int?
        var most: Int?
        var after: Int?
        var samples: [[Int]]?
    }

    struct Check: Decodable {
        var size: Int
        var verdict: String
    }

    /// `count` bytes of xorshift32 (13, 17, 5) words from `seed`,
    /// little-endian: large-receive-test.js makes the same stream to compare.
    static func xorshiftData(count: Int, seed: UInt32) -> Data {
        var data = Data(count: count)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt32.self)
            var x = seed
            for i in 0..<(count / 4) {
                x ^= x &<< 13
                x ^= x &>> 17
                x ^= x &<< 5
                words[i] = x.littleEndian
            }
        }
        return data
    }

    /// A /proc file's text (their size reads as 0, so read to the end).
    static func procFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The memory Chromium's renderers (its descendants started with
    /// --type=renderer) hold now and have held at most, from /proc.
    static func rendererMemory(under root: Int32) -> (resident: Int, peak: Int) {
        var children: [Int32: [Int32]] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let stat = procFile("/proc/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm)": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(pid) }
        }
        var resident = 0
        var peak = 0
        var queue = children[root] ?? []
        while let pid = queue.popLast() {
            queue += children[pid] ?? []
            guard procFile("/proc/\(pid)/cmdline")?.contains("--type=renderer") == true,
                  let status = procFile("/proc/\(pid)/status") else { continue }
            for line in status.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard parts.count >= 2, let kilobytes = Int(parts[1]) else { continue }
                if parts[0] == "VmRSS:" { resident = max(resident, kilobytes * 1024) }
                if parts[0] == "VmHWM:" { peak = max(peak, kilobytes * 1024) }
            }
        }
        return (resident, peak)
    }

    @Test func receives256MiBIntoPrivateStorageWithABoundedHeap() async throws {
        try #require(
            FileManager.default.fileExists(atPath: Page.web.appendingPathComponent("sodium.wasm").path),
            "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
        let size = 256 << 20
        let seed = UInt32.random(in: 1...UInt32.max)
        let relay = try await RelayProcess.start()
        let directory = try makeTestDirectory(prefix: "page-large")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("large.bin")
        try Self.xorshiftData(count: size, seed: seed).write(to: file)
        try TestUser.give(file)
        let (sender, code) = try await Page.startSender(relay: relay, arguments: [file.path])

        let browser = try await HeadlessBrowser(
            page: "large-receive.html", webDirectory: Page.web, chromiumArguments: ["--enable-precise-memory-info"])
        var cases: [String: Any] = ["relay": relay.url, "code": code, "name": "large.bin", "seed": seed]
        try await browser.put("/cases", String(decoding: try JSONSerialization.data(withJSONObject: cases), as: UTF8.self))
        var reports: [[String: String]] = []
        var residentMost = 0
        var endReport: String?
        // Up to 150 s: about 15 s here; the Heavy phase runs one suite at a time.
        for _ in 0..<1500 {
            reports = try await browser.reports()
            endReport = reports.first(where: { $0["what"] == "end" })?["detail"]
            if endReport != nil || reports.contains(where: { $0["what"] == "error" }) { break }
            residentMost = max(residentMost, Self.rendererMemory(under: browser.chromium.process.processIdentifier).resident)
            try await Task.sleep(for: .milliseconds(100))
        }
        // Before the file is read back: the most any renderer held, ever.
        let renderers = Self.rendererMemory(under: browser.chromium.process.processIdentifier)
        let endText = try #require(endReport, "the page did not finish: \(reports) \(browser.chromium.stderr.text.suffix(1500))")
        let end = try JSONDecoder().decode(End.self, from: Data(endText.utf8))
        #expect(end.state == "done", "\(end.status ?? "")")
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")
        #expect(end.hash != nil && end.hash == Page.doneHash(sender), "the page's transfer hash is the sender's")

        // The heap while 256 MiB went through: bounded, far from the file's
        // size. Chromium counts the received messages' ArrayBuffers in it, so
        // it climbs by the data received and drops at each collection: at
        // most 39-47 MiB in every run here, all on a loaded machine; a
        // page holding the file would pass 256 MiB. The renderer's resident
        // memory peaked at 187-203 MiB whether 32, 96 or 256 MiB went through.
        let before = try #require(end.before)
        let most = try #require(end.most)
        let after = try #require(end.after)
        let mebibyte = Double(1 << 20)
        #expect(most < 80 << 20, "the JS heap reached \(Double(most) / mebibyte) MiB while receiving")
        #expect(after < 80 << 20, "the JS heap is \(Double(after) / mebibyte) MiB after receiving")
        #expect(renderers.peak < 384 << 20, "a renderer held \(Double(renderers.peak) / mebibyte) MiB at most")

        cases["verify"] = true
        try await browser.put("/cases", String(decoding: try JSONSerialization.data(withJSONObject: cases), as: UTF8.self))
        var checkText: String?
        for _ in 0..<600 where checkText == nil {
            try await Task.sleep(for: .milliseconds(100))
            reports = try await browser.reports()
            checkText = reports.first(where: { $0["what"] == "check" })?["detail"]
            if reports.contains(where: { $0["what"] == "error" }) { break }
        }
        let check = try JSONDecoder().decode(Check.self, from: Data(try #require(checkText, "\(reports)").utf8))
        #expect(check.size == size)
        #expect(check.verdict == "identical")

        let done = try #require(PairingCLITests.events(sender, named: "done").first)
        let seconds = (done["seconds"] as? Double) ?? 0
        let firstByte = reports.first(where: { $0["what"] == "timing" })?["detail"] ?? "?"
        print(String(
            format: "page receive 256 MiB: %.1f MB/s by the sender's done event (%.2f s), link to first byte %@ ms; "
                + "JS heap %.1f MiB before, %.1f MiB at most while receiving, %.1f MiB after; "
                + "renderer resident at most %.0f MiB (sampled), peak %.0f MiB (VmHWM)",
            Double(size) / max(seconds, 0.001) / 1e6, seconds, firstByte,
            Double(before) / mebibyte, Double(most) / mebibyte, Double(after) / mebibyte,
            Double(residentMost) / mebibyte, Double(renderers.peak) / mebibyte)
            + "; [MiB received, MiB of heap] each second: \(end.samples ?? [])")
        try await relay.stop()
    }
}
