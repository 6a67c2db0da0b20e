import Foundation
import Testing
import TernTestSupport

/// Real `tern send` and `tern receive` processes moving files, trees and
/// streams through a real relay on loopback: what arrives, what is resumed
/// after a kill, what is refused.
@Suite(.serialized) struct TransferCLITests {
    typealias CLI = PairingCLITests

    /// A fresh directory under /tmp, removed by the caller's `defer`.
    static func temporaryDirectory() throws -> URL {
        // Owned by the unprivileged user the tern processes run as.
        try makeTestDirectory(prefix: "tern-transfer")
    }

    /// `work/out`, made and handed to the test user: an existing directory,
    /// so that `-o` names where files go even for a one-file offer (a
    /// missing name would name the file itself).
    static func outputDirectory(in work: URL) throws -> URL {
        let out = work.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try TestUser.give(out)
        return out
    }

    /// `bytes` random bytes (from /dev/urandom) at `url`.
    static func randomFile(at url: URL, bytes: Int) throws {
        let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? random.close() }
        var data = Data()
        while data.count < bytes {
            data.append(try random.read(upToCount: min(1 << 20, bytes - data.count)) ?? Data())
        }
        try data.write(to: url)
    }

    static func sender(_ relay: RelayProcess, _ code: String, _ arguments: [String]) throws -> RunningProcess {
        try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, "--json", "--timeout", "120"] + arguments)
    }

    static func receiver(_ relay: RelayProcess, _ code: String, _ arguments: [String]) throws -> RunningProcess {
        try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--json", "--timeout", "120"] + arguments)
    }

    /// Runs both sides to the end; returns their exit statuses.
    static func transfer(
        _ relay: RelayProcess, code: String, send: [String], receive: [String]
    ) async throws -> (RunningProcess, Int32, RunningProcess, Int32) {
        let sender = try Self.sender(relay, code, send)
        let receiver = try Self.receiver(relay, code, receive)
        let received = try await receiver.wait(timeout: 150)
        let sent = try await sender.wait(timeout: 150)
        return (sender, sent, receiver, received)
    }

    static func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    static func modified(_ path: String) throws -> Date {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)
    }

    static func contents(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Waits until the receiver reported at least `bytes` and saved resume state.
    static func waitForProgress(_ receiver: RunningProcess, atLeast bytes: Int, stateFile: String) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let held = CLI.events(receiver, named: "progress").compactMap { $0["bytes"] as? Int }.max() ?? 0
            if held >= bytes && FileManager.default.fileExists(atPath: stateFile) { return }
            guard receiver.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessTimeout(command: "receiver to hold \(bytes) bytes; stdout: \(receiver.stdout.text.suffix(1500)) stderr: \(receiver.stderr.text)")
    }

    // MARK: - Files and trees

    @Test func aSingleFileArrivesByteIdenticalWithItsModeAndTimeAndBothSidesSayVerified() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("report.bin")
        try Self.randomFile(at: source, bytes: 3 * 262_099 + 1234)
        try FileManager.default.setAttributes([.posixPermissions: 0o640, .modificationDate: Date(timeIntervalSince1970: 1_700_000_000)], ofItemAtPath: source.path)
        try TestUser.give(source)  // 0640: the sender, run as the test user, must own it to read it
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let (sender, sent, receiver, received) = try await Self.transfer(
            relay, code: "41-aardvark-adroitness", send: [source.path], receive: ["-o", out.path])
        #expect(received == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(sent == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        let arrived = out.appendingPathComponent("report.bin").path
        #expect(try Self.contents(arrived) == (try Self.contents(source.path)))
        #expect(try Self.mode(arrived) == 0o640)
        #expect(try Self.modified(arrived) == Date(timeIntervalSince1970: 1_700_000_000))
        for side in [sender, receiver] {
            let file = try #require(CLI.events(side, named: "file").first, "\(side.stdout.text)")
            #expect(file["name"] as? String == "report.bin")
            #expect(file["size"] as? Int == 3 * 262_099 + 1234)
            #expect(file["verified"] as? Bool == true)
            let done = try #require(CLI.events(side, named: "done").first)
            #expect(done["files"] as? Int == 1)
            #expect(done["bytes"] as? Int == 3 * 262_099 + 1234)
            #expect((done["hash"] as? String)?.count == 64)
        }
        // Both sides computed the same hashes.
        #expect(CLI.events(sender, named: "file").first?["hash"] as? String == CLI.events(receiver, named: "file").first?["hash"] as? String)
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent(".report.bin.tern-state").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent(".report.bin.tern-partial").path))
        try await relay.stop()
    }

    @Test func aTreeKeepsItsLayoutModesEmptyEntriesAndInsideLinksButNotOutsideLinks() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("photos")
        let manager = FileManager.default
        try manager.createDirectory(at: tree.appendingPathComponent("2024/summer"), withIntermediateDirectories: true)
        try manager.createDirectory(at: tree.appendingPathComponent("empty-dir"), withIntermediateDirectories: true)
        try Self.randomFile(at: tree.appendingPathComponent("2024/summer/beach.jpg"), bytes: 700_000)
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: tree.appendingPathComponent("run.sh"))
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: tree.appendingPathComponent("run.sh").path)
        try Data().write(to: tree.appendingPathComponent("empty.txt"))
        try manager.createSymbolicLink(atPath: tree.appendingPathComponent("latest").path, withDestinationPath: "2024/summer/beach.jpg")
        try manager.createSymbolicLink(atPath: tree.appendingPathComponent("secrets").path, withDestinationPath: "/etc/passwd")
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let (sender, sent, receiver, received) = try await Self.transfer(
            relay, code: "42-aardvark-adroitness", send: [tree.path], receive: ["-o", out.path])
        #expect(received == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(sent == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        let arrived = out.appendingPathComponent("photos")
        #expect(try Self.contents(arrived.appendingPathComponent("2024/summer/beach.jpg").path)
            == (try Self.contents(tree.appendingPathComponent("2024/summer/beach.jpg").path)))
        #expect(try Self.mode(arrived.appendingPathComponent("run.sh").path) == 0o755)
        #expect(try Self.contents(arrived.appendingPathComponent("empty.txt").path).isEmpty)
        var isDirectory: ObjCBool = false
        #expect(manager.fileExists(atPath: arrived.appendingPathComponent("empty-dir").path, isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(try manager.destinationOfSymbolicLink(atPath: arrived.appendingPathComponent("latest").path) == "2024/summer/beach.jpg")
        #expect(!manager.fileExists(atPath: arrived.appendingPathComponent("secrets").path))
        let warning = try #require(CLI.events(sender, named: "warning").first)
        #expect((warning["message"] as? String)?.contains("secrets") == true)
        #expect(CLI.events(receiver, named: "file").count == 3)
        // The offer counts what the tree makes besides files: limits the receiver holds it to.
        let offered = try #require((CLI.events(receiver, named: "offer").first?["entries"] as? [[String: Any]])?.first)
        #expect(offered["files"] as? Int == 3 && offered["directories"] as? Int == 3 && offered["links"] as? Int == 1, "\(offered)")
        try await relay.stop()
    }

    @Test func aOneGibibyteFileArrivesIntact() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("big.bin")
        let make = try RunningProcess(
            executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "head -c 1073741824 /dev/urandom > '\(source.path)'"])
        #expect(try await make.wait(timeout: 120) == 0)
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", "43-aardvark-adroitness", "--json", "--timeout", "600", source.path])
        let receiver = try RunningProcess(arguments: ["receive", "43-aardvark-adroitness", "--relay", relay.url, "--yes", "--json", "--timeout", "600", "-o", out.path])
        #expect(try await receiver.wait(timeout: 650) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 650) == 0, "\(sender.stderr.text)")
        let compare = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/cmp"), arguments: [source.path, out.appendingPathComponent("big.bin").path])
        #expect(try await compare.wait(timeout: 120) == 0, "\(compare.stdout.text)")
        let done = try #require(CLI.events(receiver, named: "done").first)
        #expect(done["bytes"] as? Int == 1 << 30)
        try await relay.stop()
    }

    // MARK: - Streams

    @Test func aTarStreamOfUnknownLengthGoesThroughStandardInputAndOutput() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("a/b"), withIntermediateDirectories: true)
        try Self.randomFile(at: tree.appendingPathComponent("a/b/data.bin"), bytes: 3_000_000)
        try Data("notes\n".utf8).write(to: tree.appendingPathComponent("a/notes.txt"))
        let out = work.appendingPathComponent("dst")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try TestUser.give(out)
        let relay = try await RelayProcess.start()
        let tern = PackagePaths.ternBinary.path
        let sender = try RunningProcess(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [
            "-c", "tar -C '\(tree.path)' -cf - . | '\(tern)' send --relay \(relay.url) --code 44-aardvark-adroitness --json --timeout 60",
        ])
        let receiver = try RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [
            "-c", "set -o pipefail; '\(tern)' receive 44-aardvark-adroitness --relay \(relay.url) --yes --json --timeout 60 -o - | tar -C '\(out.path)' -xf -",
        ])
        #expect(try await receiver.wait(timeout: 90) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 90) == 0, "\(sender.stderr.text)")
        #expect(try Self.contents(out.appendingPathComponent("a/b/data.bin").path) == (try Self.contents(tree.appendingPathComponent("a/b/data.bin").path)))
        #expect(try Self.contents(out.appendingPathComponent("a/notes.txt").path) == Data("notes\n".utf8))
        // With -o - the receiver's events went to stderr, the stream alone to tar.
        #expect(receiver.stderr.text.contains(#""event":"done""#), "\(receiver.stderr.text)")
        // The sender offered a stream of unknown length.
        let offer = try #require(CLI.events(sender, named: "offer").first)
        #expect(offer["bytes"] is NSNull)
        try await relay.stop()
    }

    // MARK: - Conflicts

    @Test func anExistingFileIsRefusedWithExit6OnBothSidesAndKeptUnchanged() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("notes.txt")
        try Data("new content".utf8).write(to: source)
        let out = try Self.outputDirectory(in: work)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try TestUser.give(out)
        try Data("old".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let relay = try await RelayProcess.start()
        let (sender, sent, receiver, received) = try await Self.transfer(
            relay, code: "45-aardvark-adroitness", send: [source.path], receive: ["-o", out.path])
        #expect(received == 6, "\(receiver.stdout.text)")
        #expect(sent == 6, "\(sender.stdout.text)")
        let error = try #require(CLI.events(receiver, named: "error").first)
        #expect((error["message"] as? String)?.contains("notes.txt already exists") == true, "\(error)")
        #expect(try Self.contents(out.appendingPathComponent("notes.txt").path) == Data("old".utf8))

        // --rename keeps both; --overwrite replaces.
        let (_, _, renaming, renamed) = try await Self.transfer(
            relay, code: "46-aardvark-adroitness", send: [source.path], receive: ["-o", out.path, "--rename"])
        #expect(renamed == 0, "\(renaming.stdout.text)")
        #expect(try Self.contents(out.appendingPathComponent("notes (1).txt").path) == Data("new content".utf8))
        #expect(try Self.contents(out.appendingPathComponent("notes.txt").path) == Data("old".utf8))
        let (_, _, overwriting, overwritten) = try await Self.transfer(
            relay, code: "47-aardvark-adroitness", send: [source.path], receive: ["-o", out.path, "--overwrite"])
        #expect(overwritten == 0, "\(overwriting.stdout.text)")
        #expect(try Self.contents(out.appendingPathComponent("notes.txt").path) == Data("new content".utf8))
        try await relay.stop()
    }

    // MARK: - Checked before pairing

    @Test func anUnsendableOrUnreadableFileStopsTheSenderBeforePairingOrIsLeftOutWhenAsked() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("docs")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        try Data("fine\n".utf8).write(to: tree.appendingPathComponent("good.txt"))
        // A name the receiver refuses (it used to abort the transfer after "yes").
        try Data("x".utf8).write(to: tree.appendingPathComponent("bad\u{1}name.txt"))
        let locked = tree.appendingPathComponent("locked.txt")
        try Data("secret".utf8).write(to: locked)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
        let relay = try await RelayProcess.start()

        let refused = try Self.sender(relay, "61-aardvark-adroitness", [tree.path])
        #expect(try await refused.wait(timeout: 20) == 2)
        let error = try #require(CLI.events(refused, named: "error").first, "\(refused.stdout.text) \(refused.stderr.text)")
        let message = try #require(error["message"] as? String)
        #expect(message.contains("bad\\u{1}name.txt") && message.contains("--ignore-unsendable-files"), "\(message)")
        // Before pairing: no code was claimed.
        #expect(CLI.events(refused, named: "paired").isEmpty)

        let out = try Self.outputDirectory(in: work)
        let (sender, sent, receiver, received) = try await Self.transfer(
            relay, code: "62-aardvark-adroitness", send: [tree.path, "--ignore-unsendable-files"], receive: ["-o", out.path])
        #expect(sent == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        #expect(received == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        let warnings = CLI.events(sender, named: "warning").compactMap { $0["message"] as? String }
        #expect(warnings.contains { $0.contains("bad\\u{1}name.txt") }, "\(warnings)")
        #expect(warnings.contains { $0.contains("locked.txt") && $0.contains("cannot open") }, "\(warnings)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("docs").path) == ["good.txt"])
        try await relay.stop()
    }

    @Test func anOfferTooLargeForOneSealedMessageIsRefusedBeforePairing() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let relay = try await RelayProcess.start()
        // 1100 top-level files, or 250 with 250-byte names (about 72 KiB of JSON).
        var many: [String] = []
        for index in 0..<1100 {
            let url = work.appendingPathComponent("f\(index)")
            try Data().write(to: url)
            many.append(url.path)
        }
        let long = try (0..<250).map { index -> String in
            let url = work.appendingPathComponent(String(format: "%03d", index) + String(repeating: "x", count: 247))
            try Data().write(to: url)
            return url.path
        }
        for (paths, count) in [(many, 1100), (long, 250)] {
            let sender = try Self.sender(relay, "69-aardvark-adroitness", paths)
            #expect(try await sender.wait(timeout: 30) == 2)
            let message = try #require(CLI.events(sender, named: "error").first?["message"] as? String, "\(sender.stderr.text)")
            #expect(message.contains("at most 1024 items") && message.contains("these \(count) items"), "\(message)")
            #expect(CLI.events(sender, named: "paired").isEmpty)
        }
        try await relay.stop()
    }

    @Test func aStreamPipedOnFromADirectoryThatCannotBeWrittenIsNotRefused() async throws {
        let relay = try await RelayProcess.start()
        let tern = PackagePaths.ternBinary.path
        let sender = try RunningProcess(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [
            "-c", "printf 'piped along\\n' | '\(tern)' send --relay \(relay.url) --code 71-aardvark-adroitness --timeout 60",
        ])
        // `cd /; tern receive | tar x`: the current directory is not where a piped stream goes.
        let receiver = try RunningProcess(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [
            "-c", "cd / && '\(tern)' receive 71-aardvark-adroitness --relay \(relay.url) --yes --timeout 60",
        ])
        #expect(try await receiver.wait(timeout: 90) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 90) == 0, "\(sender.stderr.text)")
        #expect(receiver.stdout.text == "piped along\n")
        try await relay.stop()
    }

    @Test func aReceiverWhoseTargetCannotBeWrittenStopsBeforePairing() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let readOnly = work.appendingPathComponent("read-only")
        try FileManager.default.createDirectory(at: readOnly, withIntermediateDirectories: true)
        try TestUser.give(readOnly)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: readOnly.path)
        let relay = try await RelayProcess.start()
        for (target, words) in [
            (work.appendingPathComponent("missing/deeper").path, "does not exist"), (readOnly.path, "cannot write into"),
            (readOnly.appendingPathComponent("new").path, "is not writable"),
        ] {
            let receiver = try Self.receiver(relay, "63-aardvark-adroitness", ["-o", target])
            #expect(try await receiver.wait(timeout: 20) == 2)
            let error = try #require(CLI.events(receiver, named: "error").first, "\(receiver.stdout.text) \(receiver.stderr.text)")
            #expect((error["message"] as? String)?.contains(words) == true, "\(error)")
            #expect(CLI.events(receiver, named: "paired").isEmpty)
        }
        try await relay.stop()
    }

    // MARK: - Existing files

    @Test func existingFilesAreShownWithTheOfferAndKeptWithSkipExisting() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let first = work.appendingPathComponent("a.txt")
        let second = work.appendingPathComponent("b.txt")
        try Data("new a".utf8).write(to: first)
        try Data("new b".utf8).write(to: second)
        let out = try Self.outputDirectory(in: work)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try TestUser.give(out)
        try Data("old a".utf8).write(to: out.appendingPathComponent("a.txt"))
        let relay = try await RelayProcess.start()

        let (sender, sent, receiver, received) = try await Self.transfer(
            relay, code: "64-aardvark-adroitness", send: [first.path, second.path], receive: ["-o", out.path, "--skip-existing"])

        #expect(received == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(sent == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        let existing = try #require(CLI.events(receiver, named: "existing").first, "\(receiver.stdout.text)")
        #expect(existing["names"] as? [String] == ["a.txt"])
        #expect(try Self.contents(out.appendingPathComponent("a.txt").path) == Data("old a".utf8))
        #expect(try Self.contents(out.appendingPathComponent("b.txt").path) == Data("new b".utf8))
        #expect(CLI.events(receiver, named: "done").first?["files"] as? Int == 1)
        try await relay.stop()
    }

    @Test func thePromptOffersToOverwriteRenameOrSkipWhatExists() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("notes.txt")
        try Data("new notes".utf8).write(to: source)
        let out = try Self.outputDirectory(in: work)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try TestUser.give(out)
        try Data("old".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "65-aardvark-adroitness", [source.path])
        let receiver = try CLI.onTerminal("receive 65-aardvark-adroitness --relay \(relay.url) -o '\(out.path)'")
        _ = try await receiver.waitForLine(in: \.stdout, timeout: 30) { $0.contains("[o/r/s/N]") }
        #expect(receiver.stdout.text.contains("1 of the 1 offered item already exists in"), "\(receiver.stdout.text)")
        try receiver.write("r\n")
        #expect(try await receiver.wait(timeout: 60) == 0, "\(receiver.stdout.text)")
        #expect(try await sender.wait(timeout: 60) == 0, "\(sender.stdout.text)")
        #expect(try Self.contents(out.appendingPathComponent("notes.txt").path) == Data("old".utf8))
        #expect(try Self.contents(out.appendingPathComponent("notes (1).txt").path) == Data("new notes".utf8))
        try await relay.stop()
    }

    // MARK: - One file: standard output, or a name

    @Test func aSingleFileGoesToStandardOutputWithDashOAndIsNamedByDashOName() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("report.txt")
        // Text, several chunks long, so stdout can be compared as text.
        let text = (0..<40_000).map { "line \($0) of the report\n" }.joined()
        try Data(text.utf8).write(to: source)
        let relay = try await RelayProcess.start()

        let (_, sent, piped, received) = try await Self.transfer(relay, code: "66-aardvark-adroitness", send: [source.path], receive: ["-o", "-"])
        #expect(received == 0 && sent == 0, "\(piped.stderr.text)")
        // The events went to stderr; stdout is the file alone.
        #expect(piped.stderr.text.contains(#""event":"done""#))
        #expect(piped.stdout.text == text)
        let bytes = try Self.contents(source.path)

        let named = work.appendingPathComponent("copy.txt")
        let (_, sentAgain, receiver, receivedAgain) = try await Self.transfer(
            relay, code: "67-aardvark-adroitness", send: [source.path], receive: ["-o", named.path])
        #expect(receivedAgain == 0 && sentAgain == 0, "\(receiver.stdout.text)")
        #expect(try Self.contents(named.path) == bytes)
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("copy.txt/report.txt").path))
        try await relay.stop()
    }

    // MARK: - Failures in words

    @Test func aFileThatChangesWhileTheTransferRunsStopsBothSidesWithTheReason() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let big = work.appendingPathComponent("a-big.bin")
        try Self.randomFile(at: big, bytes: 96 << 20)
        let small = work.appendingPathComponent("b-small.txt")
        try Data("first version\n".utf8).write(to: small)
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "68-aardvark-adroitness", [big.path, small.path])
        let receiver = try Self.receiver(relay, "68-aardvark-adroitness", ["-o", out.path])
        try await Self.waitForProgress(receiver, atLeast: 2 << 20, stateFile: out.appendingPathComponent(".a-big.bin.tern-state").path)
        // Changed after the offer, before its turn.
        try Data("second, longer version\n".utf8).write(to: small)

        #expect(try await sender.wait(timeout: 120) == 1, "\(sender.stdout.text)")
        #expect(try await receiver.wait(timeout: 30) == 1, "\(receiver.stdout.text)")
        let reason = "b-small.txt changed after the transfer started; send it again"
        #expect(CLI.events(sender, named: "error").first?["message"] as? String == reason)
        // Before: "the connection to the other side was lost: the sender closed the channel", exit 4.
        #expect(CLI.events(receiver, named: "error").first?["message"] as? String == "the other side stopped: " + reason)
        #expect(try Self.contents(out.appendingPathComponent("a-big.bin").path) == (try Self.contents(big.path)))
        try await relay.stop()
    }

    @Test func aReceiverWhoseSenderVanishesSaysWhatItKeptAndHowToResume() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("disk.img")
        try Self.randomFile(at: source, bytes: 96 << 20)
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "70-aardvark-adroitness", [source.path])
        // Words for a person: no --json.
        let receiver = try RunningProcess(arguments: [
            "receive", "70-aardvark-adroitness", "--relay", relay.url, "--yes", "--timeout", "120", "-o", out.path,
        ])
        let state = out.appendingPathComponent(".disk.img.tern-state").path
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: state), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        sender.signal(SIGKILL)
        _ = try await sender.wait()

        #expect(try await receiver.wait(timeout: 30) == 4, "\(receiver.stderr.text)")
        let lines = receiver.stderr.lines
        #expect(lines.contains { $0.hasPrefix("tern: the connection to the other side was lost") }, "\(lines)")
        let kept = try #require(lines.last, "\(lines)")
        #expect(kept.hasPrefix("Kept ") && kept.hasSuffix(" of partial data in \(out.path); run the same transfer again to resume."), "\(lines)")
        try await relay.stop()
    }

    // MARK: - Resume

    /// Kills one side (`victim`) with SIGKILL once the receiver holds
    /// `killAt` bytes, stops the other, then runs the same transfer again.
    func resumes(afterKilling victim: String, killAt: Int, code: String, secondCode: String) async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        // Large enough that a fast debug build cannot finish before the kill.
        let size = 96 << 20
        let source = work.appendingPathComponent("video.bin")
        try Self.randomFile(at: source, bytes: size)
        let out = try Self.outputDirectory(in: work)
        let state = out.appendingPathComponent(".video.bin.tern-state").path
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, code, [source.path])
        let receiver = try Self.receiver(relay, code, ["-o", out.path])
        try await Self.waitForProgress(receiver, atLeast: killAt, stateFile: state)
        if victim == "sender" {
            sender.signal(SIGKILL)
            _ = try await sender.wait()
            receiver.signal(SIGKILL)
            _ = try await receiver.wait()
        } else {
            receiver.signal(SIGKILL)
            _ = try await receiver.wait()
            sender.signal(SIGKILL)
            _ = try await sender.wait()
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("video.bin").path))
        #expect(FileManager.default.fileExists(atPath: state))

        let (again, sent, finishing, received) = try await Self.transfer(relay, code: secondCode, send: [source.path], receive: ["-o", out.path])
        #expect(received == 0, "\(finishing.stdout.text) \(finishing.stderr.text)")
        #expect(sent == 0, "\(again.stdout.text) \(again.stderr.text)")
        #expect(try Self.contents(out.appendingPathComponent("video.bin").path) == (try Self.contents(source.path)))
        let resumed = try #require(CLI.events(finishing, named: "resume").first?["bytes"] as? Int, "\(finishing.stdout.text)")
        #expect(resumed > 0 && resumed < size)
        let done = try #require(CLI.events(finishing, named: "done").first)
        // Only what was missing crossed the network the second time.
        #expect(done["sent_bytes"] as? Int == size - resumed)
        #expect(done["bytes"] as? Int == size)
        #expect(!FileManager.default.fileExists(atPath: state))
        try await relay.stop()
    }

    @Test func aTransferResumesAfterTheSenderIsKilled() async throws {
        try await resumes(afterKilling: "sender", killAt: Int.random(in: 4 << 20...16 << 20), code: "48-aardvark-adroitness", secondCode: "49-aardvark-adroitness")
    }

    @Test func aTransferResumesAfterTheReceiverIsKilled() async throws {
        try await resumes(afterKilling: "receiver", killAt: Int.random(in: 4 << 20...16 << 20), code: "50-aardvark-adroitness", secondCode: "51-aardvark-adroitness")
    }

    @Test func aSourceChangedBetweenAttemptsIsSentAgainFromTheStart() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        // Large enough that the first attempt is still running when its
        // resume state is first saved (after a second), even in a debug build.
        let size = 96 << 20
        let source = work.appendingPathComponent("db.bin")
        try Self.randomFile(at: source, bytes: size)
        let stamp = Date(timeIntervalSince1970: 1_750_000_000)
        try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: source.path)
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "52-aardvark-adroitness", [source.path])
        let receiver = try Self.receiver(relay, "52-aardvark-adroitness", ["-o", out.path])
        try await Self.waitForProgress(receiver, atLeast: 2 << 20, stateFile: out.appendingPathComponent(".db.bin.tern-state").path)
        sender.signal(SIGKILL)
        receiver.signal(SIGKILL)
        _ = try await sender.wait()
        _ = try await receiver.wait()

        // Same size and modification time, different first bytes: only the
        // content check can tell.
        let handle = try FileHandle(forWritingTo: source)
        try handle.write(contentsOf: Data(repeating: 0xEE, count: 100))
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: source.path)

        let (_, sent, finishing, received) = try await Self.transfer(relay, code: "53-aardvark-adroitness", send: [source.path], receive: ["-o", out.path])
        #expect(received == 0 && sent == 0, "\(finishing.stdout.text)")
        #expect(CLI.events(finishing, named: "resume").isEmpty)
        let done = try #require(CLI.events(finishing, named: "done").first)
        #expect(done["sent_bytes"] as? Int == size)
        #expect(try Self.contents(out.appendingPathComponent("db.bin").path) == (try Self.contents(source.path)))
        try await relay.stop()
    }

    @Test func ctrlCOnTheReceiverStopsTheSenderWithinASecondAndLeavesItResumable() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let size = 96 << 20
        let source = work.appendingPathComponent("backup.bin")
        try Self.randomFile(at: source, bytes: size)
        let out = try Self.outputDirectory(in: work)
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "54-aardvark-adroitness", [source.path])
        let receiver = try Self.receiver(relay, "54-aardvark-adroitness", ["-o", out.path])
        try await Self.waitForProgress(receiver, atLeast: 4 << 20, stateFile: out.appendingPathComponent(".backup.bin.tern-state").path)
        receiver.signal(SIGINT)
        let interruptedAt = Date()
        #expect(try await receiver.wait() == 130)
        #expect(try await sender.wait(timeout: 10) == 1, "\(sender.stdout.text)")
        #expect(Date().timeIntervalSince(interruptedAt) < 2, "the sender took \(Date().timeIntervalSince(interruptedAt)) s")
        let error = try #require(CLI.events(sender, named: "error").first)
        #expect((error["message"] as? String)?.contains("interrupted") == true, "\(error)")
        // The receiver said what it kept for the next attempt.
        let kept = try #require(CLI.events(receiver, named: "partial").first, "\(receiver.stdout.text)")
        #expect((kept["bytes"] as? Int ?? 0) >= 4 << 20 - 262_099)

        let (_, sent, finishing, received) = try await Self.transfer(relay, code: "55-aardvark-adroitness", send: [source.path], receive: ["-o", out.path])
        #expect(received == 0 && sent == 0, "\(finishing.stdout.text)")
        let resumed = try #require(CLI.events(finishing, named: "resume").first?["bytes"] as? Int)
        #expect(resumed >= 4 << 20 - 262_099)
        #expect(try Self.contents(out.appendingPathComponent("backup.bin").path) == (try Self.contents(source.path)))
        try await relay.stop()
    }

    @Test func ctrlCOnTheSenderStopsTheReceiverWithinASecondAndKeepsThePartial() async throws {
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("archive.bin")
        try Self.randomFile(at: source, bytes: 96 << 20)
        let out = try Self.outputDirectory(in: work)
        let state = out.appendingPathComponent(".archive.bin.tern-state").path
        let relay = try await RelayProcess.start()
        let sender = try Self.sender(relay, "56-aardvark-adroitness", [source.path])
        let receiver = try Self.receiver(relay, "56-aardvark-adroitness", ["-o", out.path])
        try await Self.waitForProgress(receiver, atLeast: 4 << 20, stateFile: state)
        sender.signal(SIGINT)
        let interruptedAt = Date()
        #expect(try await sender.wait() == 130)
        #expect(try await receiver.wait(timeout: 10) == 1, "\(receiver.stdout.text)")
        #expect(Date().timeIntervalSince(interruptedAt) < 2, "the receiver took \(Date().timeIntervalSince(interruptedAt)) s")
        let error = try #require(CLI.events(receiver, named: "error").first)
        #expect(error["message"] as? String == "the other side stopped: the sender was interrupted", "\(error)")
        let kept = try #require(CLI.events(receiver, named: "partial").first, "\(receiver.stdout.text)")
        #expect((kept["bytes"] as? Int ?? 0) >= 4 << 20 - 262_099)
        #expect(kept["directory"] as? String == out.path)
        #expect(FileManager.default.fileExists(atPath: state))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(".archive.bin.tern-partial").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("archive.bin").path))
        try await relay.stop()
    }
}
