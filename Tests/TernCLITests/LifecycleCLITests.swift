import Foundation
import Testing
import TernTestSupport

/// How a `tern` process ends when it does not finish: --timeout, SIGTERM,
/// a peer that vanished. Each ends promptly, with its exit code and one
/// sentence, and leaves a pre-agreed code usable for the next attempt.
@Suite(.serialized) struct LifecycleCLITests {
    typealias CLI = PairingCLITests
    typealias Transfer = TransferCLITests

    static func file(bytes: Int, in directory: URL, named name: String = "data.bin") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Transfer.randomFile(at: url, bytes: bytes)
        return url
    }

    /// A file of `bytes` zero bytes that takes no disk space (ftruncate):
    /// long to send, quick to make.
    static func sparseFile(bytes: Int64, in directory: URL, named name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(bytes))
        try handle.close()
        return url
    }

    /// Sends `file` with `code` and receives it into `out`; both must succeed.
    static func retrySucceeds(_ relay: RelayProcess, code: String, file: URL, out: URL) async throws -> RunningProcess {
        // An existing directory: `-o` naming a missing path would name the one offered file.
        if !FileManager.default.fileExists(atPath: out.path) {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try TestUser.give(out)
        }
        let (sender, sent, receiver, received) = try await Transfer.transfer(relay, code: code, send: [file.path], receive: ["-o", out.path])
        #expect(sent == 0, "retry sender: \(sender.stdout.text) \(sender.stderr.text)")
        #expect(received == 0, "retry receiver: \(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(try Transfer.contents(out.appendingPathComponent(file.lastPathComponent).path) == (try Transfer.contents(file.path)))
        return receiver
    }

    // MARK: - Pre-agreed codes stay reusable

    @Test func aSendThatTimedOutReleasesItsCodeForAnImmediateRetry() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.file(bytes: 5000, in: work)
        let relay = try await RelayProcess.start()
        let code = "5150-acme-aftermath"
        // Nobody comes: the CI job's first attempt times out.
        let started = Date()
        let lonely = try RunningProcess(arguments: ["send", source.path, "--relay", relay.url, "--code", code, "--timeout", "2"])
        #expect(try await lonely.wait(timeout: 10) == 4, "\(lonely.stderr.text)")
        #expect(Date().timeIntervalSince(started) < 2 + 2)
        #expect(lonely.stderr.lines.last == "tern: timed out after 2 s", "\(lonely.stderr.text)")
        // The retry, at once, with the same code.
        _ = try await Self.retrySucceeds(relay, code: code, file: source, out: try Transfer.outputDirectory(in: work))
        try await relay.stop()
    }

    @Test func sigtermWhileWaitingExits143AndReleasesTheCode() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.file(bytes: 5000, in: work)
        let relay = try await RelayProcess.start()
        let code = "5151-acme-aftermath"
        // A sender that has claimed the nameplate (it says its code once it has) and waits.
        let waiting = try RunningProcess(arguments: ["send", source.path, "--relay", relay.url, "--code", code, "--json"])
        _ = try await waiting.waitForLine(in: \.stdout) { $0.contains(#""event":"code""#) }
        waiting.signal(SIGTERM)
        let signalled = Date()
        #expect(try await waiting.wait(timeout: 10) == 143, "\(waiting.stdout.text) \(waiting.stderr.text)")
        #expect(Date().timeIntervalSince(signalled) < 2)
        let error = try #require(CLI.events(waiting, named: "error").first)
        #expect(error["exit"] as? Int == 143)
        _ = try await Self.retrySucceeds(relay, code: code, file: source, out: try Transfer.outputDirectory(in: work))
        try await relay.stop()
    }

    @Test func sigtermMidTransferExits143KeepsTheResumeStateAndTheSameCodeResumes() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.file(bytes: 96 << 20, in: work, named: "backup.bin")
        let out = try Transfer.outputDirectory(in: work)  // exists: -o names a directory, not the file
        let relay = try await RelayProcess.start()
        let code = "5152-acme-aftermath"
        let sender = try Transfer.sender(relay, code, [source.path])
        let receiver = try Transfer.receiver(relay, code, ["-o", out.path])
        try await Transfer.waitForProgress(receiver, atLeast: 4 << 20, stateFile: out.appendingPathComponent(".backup.bin.tern-state").path)
        receiver.signal(SIGTERM)
        let signalled = Date()
        #expect(try await receiver.wait() == 143, "\(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 10) == 1, "\(sender.stdout.text)")
        #expect(Date().timeIntervalSince(signalled) < 2.5, "the sender took \(Date().timeIntervalSince(signalled)) s")
        // Same code, at once: it resumes.
        let finishing = try await Self.retrySucceeds(relay, code: code, file: source, out: out)
        let resumed = try #require(CLI.events(finishing, named: "resume").first?["bytes"] as? Int)
        #expect(resumed >= 4 << 20 - 262_099)
        try await relay.stop()
    }

    // MARK: - A dead peer is noticed within seconds

    /// Between two terns a silent path is first a check of every backup
    /// pair at once, then an ICE restart through the mailbox (2.5 s of
    /// silence); a peer that is gone never answers it, and 3 s later the
    /// session ends with that sentence, exit 4 (the data channel's 5 s
    /// silence limit holds while ICE acts): 4.3-5.5 s after the peer's last
    /// answer, with scheduling slack on a loaded machine.
    static let restartUnanswered = "did not answer an ICE restart through the relay"
    static let noticedWithin: TimeInterval = 7.5

    @Test func aKilledSenderIsNoticedByTheReceiverWithinSeconds() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.sparseFile(bytes: 8 << 30, in: work, named: "huge.bin")
        let out = try Transfer.outputDirectory(in: work)  // exists: -o names a directory, not the file
        let relay = try await RelayProcess.start()
        let sender = try Transfer.sender(relay, "5153-acme-aftermath", [source.path])
        let receiver = try Transfer.receiver(relay, "5153-acme-aftermath", ["-o", out.path])
        try await Transfer.waitForProgress(receiver, atLeast: 8 << 20, stateFile: out.appendingPathComponent(".huge.bin.tern-state").path)
        sender.signal(SIGKILL)
        let killed = Date()
        #expect(try await receiver.wait(timeout: 40) == 4, "\(receiver.stdout.text)")
        let noticed = Date().timeIntervalSince(killed)
        print("a killed sender: the receiver ended \(noticed) s after the kill")
        #expect(noticed < Self.noticedWithin, "the receiver took \(noticed) s")
        let error = try #require(CLI.events(receiver, named: "error").first)
        #expect((error["message"] as? String)?.contains(Self.restartUnanswered) == true, "\(error)")
        try await relay.stop()
    }

    @Test func aStoppedReceiverIsNoticedByTheSenderWithinSeconds() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.sparseFile(bytes: 8 << 30, in: work, named: "huge.bin")
        let out = try Transfer.outputDirectory(in: work)  // exists: -o names a directory, not the file
        let relay = try await RelayProcess.start()
        let sender = try Transfer.sender(relay, "5154-acme-aftermath", [source.path])
        let receiver = try Transfer.receiver(relay, "5154-acme-aftermath", ["-o", out.path])
        try await Transfer.waitForProgress(receiver, atLeast: 8 << 20, stateFile: out.appendingPathComponent(".huge.bin.tern-state").path)
        receiver.signal(SIGSTOP)
        let stopped = Date()
        defer { receiver.signal(SIGKILL) }
        #expect(try await sender.wait(timeout: 40) == 4, "\(sender.stdout.text)")
        let noticed = Date().timeIntervalSince(stopped)
        print("a stopped receiver: the sender ended \(noticed) s after the stop")
        #expect(noticed < Self.noticedWithin, "the sender took \(noticed) s")
        let error = try #require(CLI.events(sender, named: "error").first)
        #expect((error["message"] as? String)?.contains(Self.restartUnanswered) == true, "\(error)")
        try await relay.stop()
    }

    @Test func aLiveSideThatSendsNothingForLongerThanTheLimitIsNotTakenForGone() async throws {
        // A stream whose producer pauses for 8 s: the channel is open and
        // idle; heartbeats keep each side hearing the other.
        signal(SIGPIPE, SIG_IGN)  // a write to a sender that died must fail, not kill the test
        let relay = try await RelayProcess.start()
        let code = "5155-acme-aftermath"
        let sender = try RunningProcess(arguments: ["send", "-", "--relay", relay.url, "--code", code, "--json", "--timeout", "60"])
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--json", "--timeout", "60", "-o", "-"])
        try sender.write(String(repeating: "a", count: 1000))
        _ = try await receiver.waitForLine(in: \.stderr) { $0.contains(#""event":"connected""#) }
        try await Task.sleep(for: .seconds(8))
        #expect(sender.process.isRunning && receiver.process.isRunning, "receiver: \(receiver.stderr.text) sender: \(sender.stdout.text)")
        if sender.process.isRunning { try? sender.write("and the rest\n") }
        sender.closeInput()
        #expect(try await receiver.wait(timeout: 30) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 30) == 0, "\(sender.stdout.text)")
        #expect(receiver.stdout.text == String(repeating: "a", count: 1000) + "and the rest\n")
        try await relay.stop()
    }

    /// The process ids of `pid`'s children.
    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    @Test func aReceiverKilledAtThePromptFreesTheSenderAndTheCode() async throws {
        let work = try Transfer.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = try Self.file(bytes: 5000, in: work)
        let relay = try await RelayProcess.start()
        let code = "5156-acme-aftermath"
        let sender = try RunningProcess(arguments: ["send", source.path, "--relay", relay.url, "--code", code, "--json"])
        // A receiver on a terminal, at its Accept? prompt, killed without a word.
        let terminal = try CLI.onTerminal("receive \(code) --relay \(relay.url)")
        _ = try await terminal.waitForLine(in: \.stdout) { $0.contains("Accept?") }
        let tern = try #require(Self.children(of: terminal.process.processIdentifier).first)
        kill(tern, SIGKILL)
        let killed = Date()
        // The relay gives the dead side its reattach window (15 s), then tells the sender.
        #expect(try await sender.wait(timeout: 40) == 1, "\(sender.stdout.text)")
        let waited = Date().timeIntervalSince(killed)
        #expect(waited < 15 + 3, "the sender waited \(waited) s")
        let error = try #require(CLI.events(sender, named: "error").first)
        #expect(error["message"] as? String == "the other side stopped (it was interrupted or failed)", "\(error)")
        // Both sides gone: the same code works at once.
        _ = try await Self.retrySucceeds(relay, code: code, file: source, out: work.appendingPathComponent("out"))
        try await relay.stop()
    }
}
