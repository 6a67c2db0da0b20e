import Foundation
import Testing
import TernTestSupport

/// The browser page sending to the browser page, nothing of tern's CLI on
/// either end but the relay: a real `tern relay`, one headless Chromium
/// sending through Tests/browser/send.html (BrowserSendHeavyTests' harness)
/// and a second, separate Chromium (its own profile and its own signal.py
/// origin, so its own browser context and private file system) receiving
/// through Tests/browser/receive.html (BrowserPageHeavyTests' harness) with
/// the code the first one shows.
@Suite(.serialized) struct BrowserToBrowserHeavyTests {
    typealias Sending = BrowserSendHeavyTests
    typealias Receiving = BrowserPageHeavyTests

    /// The seconds a page's result text says the transfer took ("… in 2.3 s").
    static func seconds(in result: String?) -> Double? {
        guard let result, let range = result.range(of: #"in [0-9]+(\.[0-9]+)? s"#, options: .regularExpression) else { return nil }
        return Double(result[range].dropFirst(3).dropLast(2))
    }

    @Test func aFileGoesFromOnePageToAnotherByteForByte() async throws {
        let relay = try await RelayProcess.start()
        let size = 8 << 20
        let sender = try await Sending.SendingPage(relay: relay, files: [Sending.Source(path: "payload.bin", size: size, seed: 2024)])
        let shown = try await sender.code()
        let (received, offer) = try await Receiving.runPage(relay: relay, code: shown.code)
        let sent = try await sender.end()
        #expect(received.state == "done", "receiver: \(received.status ?? "")")
        #expect(sent.state == "done", "sender: \(sent.status ?? "")")
        #expect(offer == ["payload.bin (8.39 MB)"], "\(offer)")
        let sources = try await sender.sources()
        #expect(received.files?.count == 1)
        #expect(received.files?["payload.bin"]?.size == size)
        #expect(received.files?["payload.bin"]?.sha256 == sources["payload.bin"], "the saved file is the sender's")
        #expect(received.hash?.isEmpty == false && received.hash == sent.hash, "both pages report the same transfer hash")
        #expect(received.result?.contains("Received and verified 1 file") == true, "\(received.result ?? "")")
        #expect(sent.result?.contains("Sent 1 file") == true, "\(sent.result ?? "")")
        if let receiving = Self.seconds(in: received.result), let sending = Self.seconds(in: sent.result) {
            print(String(format: "page → page %d MiB: %.1f MB/s by the receiving page (%.1f s), %.1f MB/s by the sending page (%.1f s)",
                         size >> 20, Double(size) / max(receiving, 0.05) / 1e6, receiving, Double(size) / max(sending, 0.05) / 1e6, sending))
        }
        try await relay.stop()
    }

    @Test func aFolderGoesFromOnePageToAnotherWithItsStructure() async throws {
        let relay = try await RelayProcess.start()
        let files = [
            Sending.Source(path: "photos/a.txt", size: 6, seed: 1),
            Sending.Source(path: "photos/empty", size: 0, seed: 2),
            Sending.Source(path: "photos/2024/big.bin", size: 700_000, seed: 3),
            Sending.Source(path: "photos/2024/summer/c.bin", size: 5000, seed: 4),
        ]
        let sender = try await Sending.SendingPage(relay: relay, files: files, mode: "folder")
        let shown = try await sender.code()
        let (received, offer) = try await Receiving.runPage(relay: relay, code: shown.code)
        let sent = try await sender.end()
        #expect(received.state == "done", "receiver: \(received.status ?? "")")
        #expect(sent.state == "done", "sender: \(sent.status ?? "")")
        #expect(offer.first?.hasPrefix("photos/ (4 files, 2 folders") == true, "\(offer)")
        #expect(Set(received.directories ?? []) == ["photos", "photos/2024", "photos/2024/summer"])
        let sources = try await sender.sources()
        #expect(received.files?.count == files.count)
        for file in files {
            #expect(received.files?[file.path]?.size == file.size, "\(file.path)")
            #expect(received.files?[file.path]?.sha256 == sources[file.path], "\(file.path)")
        }
        #expect(received.hash?.isEmpty == false && received.hash == sent.hash, "both pages report the same transfer hash")
        try await relay.stop()
    }
}
