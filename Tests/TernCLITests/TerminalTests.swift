import Foundation
import Testing
import TernTestSupport

/// A terminal a test can look at as a person would: a tmux server of its
/// own (its own socket) with one window of a given size, running a shell
/// command; `screen` is what `capture-pane -p -S -` shows, scrollback and all.
/// tmux, and so everything in the window, runs as the test user (see
/// `RunningProcess`).
final class TerminalWindow: @unchecked Sendable {
    static let tmux = "/usr/bin/tmux"
    let socket: String
    let session = "tern"

    /// Runs `command` (a shell command line) in a window `columns` wide; once
    /// it ends, the shell prints "[exit N]", runs `then`, and the window stays.
    init(_ command: String, columns: Int = 80, rows: Int = 24, then: String = "true") throws {
        socket = FileManager.default.temporaryDirectory.appendingPathComponent("tern-tmux-\(UUID().uuidString.prefix(8))").path
        let line = "\(command); echo \"[exit $?]\"; \(then); sleep 600"
        // The server tmux starts keeps the descriptors it was given: not
        // the pipes of a RunningProcess, which would then never end.
        // SHELL is set: without it tmux runs the window's command with the
        // user's login shell, and the test user's is nologin (CI's
        // environment has no SHELL). bash, not dash: a Ctrl-C the test
        // types must end tern (which exits 130 by itself), not the shell
        // line that prints its exit status.
        let start = try RunningProcess(
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", "exec \(Self.tmux) \"$@\" </dev/null >/dev/null 2>&1", "sh",
                        "-S", socket, "-f", "/dev/null", "new-session", "-d", "-c", "/", "-x", "\(columns)", "-y", "\(rows)", "-s", session, line],
            environment: ["SHELL": "/bin/bash"])
        try Self.wait(for: start)
        // A window whose command could not start closes at once, and the
        // server with it: say so here rather than time out on a blank screen.
        usleep(100_000)
        _ = try Self.run(["-S", socket, "has-session", "-t", session])
    }

    deinit {
        _ = try? Self.run(["-S", socket, "kill-server"])
        try? FileManager.default.removeItem(atPath: socket)
    }

    /// `tern` with `arguments` as a shell command, run in `directory`.
    static func tern(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) -> String {
        var words = ["cd", quote(directory.path), "&&", "env"]
        words += environment.sorted { $0.key < $1.key }.map { "\($0.key)=\(quote($0.value))" }
        words.append(quote(PackagePaths.ternBinary.path))
        words += arguments.map(quote)
        return words.joined(separator: " ")
    }

    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Runs a tmux command against the window's server; returns its output.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = try RunningProcess(executable: URL(fileURLWithPath: tmux), arguments: arguments)
        process.closeInput()
        try wait(for: process)
        return process.stdout.text
    }

    /// Waits (blocking: tmux commands take milliseconds) for `process` to
    /// end; throws if it failed.
    static func wait(for process: RunningProcess, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while process.process.isRunning {
            guard Date() < deadline else {
                process.process.terminate()
                throw ProcessTimeout(command: process.commandLine)
            }
            usleep(2_000)
        }
        while !(process.stdout.atEnd && process.stderr.atEnd) && Date() < deadline { usleep(1_000) }
        guard process.process.terminationStatus == 0 else {
            throw TerminalUnavailable(command: process.commandLine, status: process.process.terminationStatus,
                                      stderr: process.stderr.text)
        }
    }

    /// Every line the window shows, scrollback included, trailing blank lines dropped.
    var screen: [String] {
        let text = (try? Self.run(["-S", socket, "capture-pane", "-p", "-S", "-", "-t", session])) ?? ""
        var lines = text.components(separatedBy: "\n")
        while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
        return lines
    }

    /// Keys as tmux names them ("Tab", "Enter", "C-c") or literal text (`literal`).
    func send(_ keys: String..., literal: Bool = false) throws {
        try Self.run(["-S", socket, "send-keys", "-t", session] + (literal ? ["-l"] : []) + keys)
    }

    func resize(columns: Int, rows: Int = 24) throws {
        try Self.run(["-S", socket, "resize-window", "-t", session, "-x", "\(columns)", "-y", "\(rows)"])
    }

    /// Waits until some line satisfies `match`; returns the screen then.
    @discardableResult
    func waitFor(timeout: Double = 30, _ what: String, _ match: (String) -> Bool) async throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let lines = screen
            if lines.contains(where: match) { return lines }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessTimeout(command: "\(what) on the terminal; it shows:\n" + screen.joined(separator: "\n"))
    }

    /// The exit status the shell printed, once the command has ended.
    func exitStatus(timeout: Double = 60) async throws -> Int? {
        let lines = try await waitFor(timeout: timeout, "the command to end") { $0.hasPrefix("[exit ") }
        return lines.last { $0.hasPrefix("[exit ") }.flatMap { Int($0.dropFirst(6).dropLast()) }
    }
}

/// tmux refused a command, or the window's command could not start.
struct TerminalUnavailable: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "\(command) exited \(status): \(stderr)" }
}

/// What a person sees at a terminal, checked in a real one (tmux, 80
/// columns unless said otherwise): the progress bar, the waiting lines, the
/// code prompt, the messages.
@Suite(.serialized) struct TerminalTests {
    typealias Transfers = TransferCLITests

    /// A bar line: "  12.0 MiB of 200.0 MiB [...] 6%  …".
    static func isBar(_ line: String) -> Bool {
        line.contains(" MiB of ") || line.contains(" KiB of ") || line.contains("%  ")
    }

    /// A file of `bytes` zeros made in no time (sparse): large enough that
    /// a transfer runs for seconds while the test looks at the bar.
    static func sparseFile(at url: URL, bytes: Int) throws {
        #expect(FileManager.default.createFile(atPath: url.path, contents: nil))
        #expect(truncate(url.path, off_t(bytes)) == 0)
    }

    // MARK: - The progress bar

    @Test func theBarIsOneLineThatFitsTheTerminalAndFollowsAResize() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let name = "a-rather-long-file-name-for-the-terminal-bar-2026-11-21.bin"
        let source = work.appendingPathComponent(name)
        try Self.sparseFile(at: source, bytes: 512 << 20)
        let relay = try await RelayProcess.start()
        let code = "61-bluebird-caravan"
        let window = try TerminalWindow(TerminalWindow.tern(["send", "--relay", relay.url, "--code", code, source.path], in: work))
        let receiver = try Transfers.receiver(relay, code, ["-o", work.appendingPathComponent("out").path])

        // While it runs: one bar line, shorter than the terminal, the name
        // shortened in the middle.
        let running = try await window.waitFor("a progress bar") { Self.isBar($0) }
        let bars = running.filter(Self.isBar)
        #expect(bars.count == 1, "\(running.joined(separator: "\n"))")
        let bar = try #require(bars.first)
        #expect(bar.count <= 79)
        // How much of the name fits depends on the rest of the line (the
        // rate and ETA vary with the machine's load): its start, "…", its end.
        let shown = bar.components(separatedBy: "  ").last ?? ""
        let halves = shown.components(separatedBy: "…")
        #expect(halves.count == 2 && halves[0].count >= 4 && name.hasPrefix(halves[0]) && name.hasSuffix(halves[1])
                && halves[1].hasSuffix("21.bin"), "\(bar)")

        // Narrower: the next bars fit 50 columns (read again on SIGWINCH).
        try window.resize(columns: 50)
        // The next redraw (within a second, however loaded the machine)
        // leaves one bar, 50 columns at most, and no piece of the old one.
        var narrow: [String] = []
        let deadline = Date().addingTimeInterval(10)
        repeat {
            try await Task.sleep(for: .milliseconds(100))
            narrow = window.screen
        } while Date() < deadline && !(narrow.filter(Self.isBar).count == 1 && narrow.filter(Self.isBar).allSatisfy { $0.count <= 49 })
        let narrowBars = narrow.filter(Self.isBar)
        #expect(narrowBars.count == 1, "\(narrow.joined(separator: "\n"))")
        #expect(narrowBars.allSatisfy { $0.count <= 49 }, "\(narrowBars)")

        // A loaded CI machine moved 16 MiB/s while other suites ran: allow it.
        #expect(try await window.exitStatus(timeout: 180) == 0)
        #expect(try await receiver.wait(timeout: 60) == 0)
        let done = window.screen
        // At the end the bar is gone and the summary stands alone.
        #expect(done.filter(Self.isBar).isEmpty, "\(done.joined(separator: "\n"))")
        #expect(done.contains { $0.hasPrefix("Sent 1 file, 512.0 MiB in ") && $0.contains("MiB/s") }, "\(done.joined(separator: "\n"))")
        try await relay.stop()
    }

    @Test func aTreeOfManyFilesDrawsOneBar() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("many-small-files-with-long-names")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        for index in 0..<800 {
            let file = tree.appendingPathComponent("file-number-\(index)-with-a-name-long-enough-to-push-the-bar.txt")
            try Data(repeating: UInt8(index % 251), count: 24 * 1024).write(to: file)
        }
        let relay = try await RelayProcess.start()
        let code = "62-bluebird-caravan"
        let window = try TerminalWindow(TerminalWindow.tern(["send", "--relay", relay.url, "--code", code, tree.path], in: work))
        let receiver = try Transfers.receiver(relay, code, ["-o", work.appendingPathComponent("out").path])
        let running = try await window.waitFor("a progress bar") { Self.isBar($0) }
        #expect(running.filter(Self.isBar).count == 1, "\(running.joined(separator: "\n"))")
        #expect(try await window.exitStatus() == 0)
        #expect(try await receiver.wait(timeout: 60) == 0)
        let done = window.screen
        #expect(done.filter(Self.isBar).isEmpty, "\(done.joined(separator: "\n"))")
        #expect(done.contains { $0.hasPrefix("Sent 800 files, ") })
        try await relay.stop()
    }

    @Test func afterCtrlCNoBarIsDrawnBelowInterrupted() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("big.bin")
        try Self.sparseFile(at: source, bytes: 1 << 30)
        let relay = try await RelayProcess.start()
        let code = "63-bluebird-caravan"
        let window = try TerminalWindow(TerminalWindow.tern(["send", "--relay", relay.url, "--code", code, source.path], in: work))
        let receiver = try Transfers.receiver(relay, code, ["-o", work.appendingPathComponent("out").path])
        try await window.waitFor("a progress bar") { Self.isBar($0) }
        try window.send("C-c")
        #expect(try await window.exitStatus() == 130)
        _ = try await receiver.wait(timeout: 30)
        let lines = window.screen
        let interrupted = try #require(lines.firstIndex { $0 == "tern: interrupted" }, "\(lines.joined(separator: "\n"))")
        #expect(!lines[interrupted...].contains(where: Self.isBar), "\(lines.joined(separator: "\n"))")
        // The bar was cleared whole, with the "^C" the terminal echoed after
        // it (the bar leaves room for it on its row).
        #expect(!lines.contains(where: Self.isBar) && !lines.joined().contains("^C"), "\(lines.joined(separator: "\n"))")
        try await relay.stop()
    }

    @Test func withoutATerminalThereIsNoBar() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("piped.bin")
        try Transfers.randomFile(at: source, bytes: 24 << 20)
        let relay = try await RelayProcess.start()
        let code = "64-bluebird-caravan"
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, source.path])
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "-o", work.appendingPathComponent("out").path])
        #expect(try await receiver.wait(timeout: 60) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 60) == 0, "\(sender.stderr.text)")
        for text in [sender.stderr.text, receiver.stderr.text] {
            #expect(!text.contains("\r") && !text.contains("\u{1b}"), "\(text.debugDescription)")
            #expect(text.contains("verified."))
        }
        try await relay.stop()
    }

    @Test func theSummaryAfterAResumeAddsUp() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("resumed.bin")
        try Self.sparseFile(at: source, bytes: 384 << 20)
        // An existing directory: -o names the file when it is not one.
        let out = try makeTestDirectory(prefix: "tern-resume-out")
        defer { try? FileManager.default.removeItem(at: out) }
        let relay = try await RelayProcess.start()
        let sender = try Transfers.sender(relay, "65-bluebird-caravan", [source.path])
        let receiver = try Transfers.receiver(relay, "65-bluebird-caravan", ["-o", out.path])
        try await Transfers.waitForProgress(receiver, atLeast: 32 << 20, stateFile: out.appendingPathComponent(".resumed.bin.tern-state").path)
        receiver.signal(SIGKILL)
        sender.signal(SIGKILL)
        _ = try await receiver.wait()
        _ = try await sender.wait()

        let code = "66-bluebird-caravan"
        let again = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, source.path])
        // Wide enough that the summary is one line of the window.
        let window = try TerminalWindow(TerminalWindow.tern(["receive", code, "--relay", relay.url, "--yes", "-o", out.path], in: work), columns: 200)
        // Every bar seen while it runs: none may show a crawl (the bytes
        // already there are not this run's, and a rate over the first
        // instant says nothing).
        var bars: Set<String> = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let lines = window.screen
            bars.formUnion(lines.filter(Self.isBar))
            if lines.contains(where: { $0.hasPrefix("[exit ") }) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(!bars.isEmpty)
        #expect(!bars.contains { $0.contains(" B/s") || $0.contains("KiB/s") }, "\(bars)")
        #expect(try await window.exitStatus() == 0)
        #expect(try await again.wait(timeout: 60) == 0)
        let lines = window.screen
        // "Received 1 file, 384.0 MiB (352.3 MiB received, 31.7 MiB already there) in 6.1 s (57.8 MiB/s), directly; verified."
        let summary = try #require(lines.first { $0.hasPrefix("Received 1 file, 384.0 MiB (") }, "\(lines.joined(separator: "\n"))")
        let numbers = summary.split(whereSeparator: { " (,".contains($0) }).compactMap { Double($0) }
        // 1 (file), 384.0, received and already there (MiB), seconds, rate.
        #expect(numbers.count == 6, "\(summary)")
        if numbers.count == 6 {
            #expect(abs(numbers[2] + numbers[3] - 384) <= 0.15, "\(summary)")
            #expect(numbers[3] > 0, "\(summary)")
            // The rate is over the bytes moved: received / seconds (rounded).
            #expect(abs(numbers[2] / numbers[4] - numbers[5]) <= numbers[5] * 0.1 + 0.2, "\(summary)")
        }
        #expect(summary.contains(" received, ") && summary.contains(" already there) in "))
        #expect(lines.contains { $0.hasPrefix("Resuming: ") })
        try await relay.stop()
    }

    // MARK: - Waiting

    @Test func theReceiverSaysItIsWaitingForTheSender() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let relay = try await RelayProcess.start()
        let window = try TerminalWindow(TerminalWindow.tern(["receive", "67-bluebird-caravan", "--relay", relay.url, "--yes"], in: work))
        try await window.waitFor(timeout: 10, "the waiting line") { $0 == "Waiting for the sender…" }
        try window.send("C-c")
        #expect(try await window.exitStatus() == 130)
        try await relay.stop()
    }

    @Test func theSenderSaysItIsWaitingForTheReceiverToAccept() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let relay = try await RelayProcess.start()
        let code = "68-bluebird-caravan"
        let file = work.appendingPathComponent("offered.txt")
        try Data("offered\n".utf8).write(to: file)
        let out = try makeTestDirectory(prefix: "tern-accept-out")
        defer { try? FileManager.default.removeItem(at: out) }
        let sender = try TerminalWindow(TerminalWindow.tern(["send", "--relay", relay.url, "--code", code, file.path], in: work))
        let receiver = try TerminalWindow(TerminalWindow.tern(["receive", code, "--relay", relay.url, "-o", out.path], in: work))
        try await receiver.waitFor("the question") { $0.hasPrefix("Accept? [y/N]") }
        try await sender.waitFor("the waiting line") { $0 == "Waiting for the receiver to accept…" }
        try receiver.send("y", "Enter")
        #expect(try await receiver.exitStatus() == 0)
        #expect(try await sender.exitStatus() == 0)
        #expect(try Data(contentsOf: out.appendingPathComponent("offered.txt")) == Data("offered\n".utf8))
        try await relay.stop()
    }

    @Test func jsonAndQuietSayNothingWhileWaiting() async throws {
        let relay = try await RelayProcess.start()
        let quiet = try RunningProcess(arguments: ["receive", "69-bluebird-caravan", "--relay", relay.url, "--yes", "--quiet"])
        let json = try RunningProcess(arguments: ["receive", "70-bluebird-caravan", "--relay", relay.url, "--yes", "--json"])
        try await Task.sleep(for: .seconds(1.5))
        quiet.signal(SIGINT)
        json.signal(SIGINT)
        #expect(try await quiet.wait() == 130)
        #expect(try await json.wait() == 130)
        #expect(!quiet.stderr.text.contains("Waiting"))
        #expect(!json.stderr.text.contains("Waiting") && !json.stdout.text.contains("Waiting"))
        try await relay.stop()
    }

    // MARK: - The code prompt

    static func promptLine(_ lines: [String]) -> String? {
        lines.last { $0.hasPrefix("Enter the code") }
    }

    /// Waits until the last prompt line on the screen ends with `suffix`.
    static func waitForPrompt(_ window: TerminalWindow, endingWith suffix: String) async throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if promptLine(window.screen)?.hasSuffix(suffix) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessTimeout(command: "the prompt to end with '\(suffix)'; the terminal shows:\n" + window.screen.joined(separator: "\n"))
    }

    @Test func theCodePromptCompletesWordsAndAsksAgainAfterATypo() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let relay = try await RelayProcess.start()
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", "71-bluebird-caravan", "--text", "completed"])
        let window = try TerminalWindow(TerminalWindow.tern(["receive", "--relay", relay.url, "--yes"], in: work), then: "stty -a")
        try await window.waitFor("the prompt") { $0.hasPrefix("Enter the code") }

        // 256 first words fit "71-": nothing to add, and no TAB inserted
        // (the next letters follow the dash directly).
        try window.send("71-", literal: true)
        try window.send("Tab")
        try window.send("blx-caravan", literal: true)
        try await Self.waitForPrompt(window, endingWith: ": 71-blx-caravan")

        // A typo: asked again, not ended.
        try window.send("Enter")
        try await window.waitFor("the reason") { $0.hasPrefix("Not a valid code: 'blx'") }
        try await Self.waitForPrompt(window, endingWith: ":")

        // "blu" completes to the first word and its dash; "ca" is
        // ambiguous, and a second TAB lists the candidates.
        try window.send("71-blu", literal: true)
        try window.send("Tab")
        try await Self.waitForPrompt(window, endingWith: ": 71-bluebird-")
        try window.send("ca", literal: true)
        try window.send("Tab")
        try window.send("Tab")
        try await window.waitFor("the candidates") { $0.contains("caravan") && $0.contains("caretaker") && $0.contains("camelot") }
        try window.send("rav", literal: true)
        try window.send("Tab")
        try await Self.waitForPrompt(window, endingWith: ": 71-bluebird-caravan")
        try window.send("Enter")

        let lines = try await window.waitFor("the text") { $0 == "completed" }
        #expect(try await window.exitStatus() == 0)
        #expect(try await sender.wait() == 0)
        #expect(!lines.joined().contains("\t"))
        // The terminal is back in its usual mode.
        let settings = window.screen.joined(separator: " ")
        #expect(settings.contains(" icanon") && settings.contains(" echo") && settings.contains(" isig"), "\(settings)")
        try await relay.stop()
    }

    @Test func ctrlCAtTheCodePromptExits130AndRestoresTheTerminal() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let window = try TerminalWindow(TerminalWindow.tern(["receive", "--relay", "ws://127.0.0.1:1", "--yes"], in: work), then: "stty -a")
        try await window.waitFor("the prompt") { $0.hasPrefix("Enter the code") }
        try window.send("71-blue", literal: true)
        try window.send("C-c")
        #expect(try await window.exitStatus() == 130)
        try await Task.sleep(for: .milliseconds(300))
        let settings = window.screen.joined(separator: " ")
        #expect(settings.contains("tern: interrupted"))
        #expect(settings.contains(" icanon") && settings.contains(" echo") && settings.contains(" isig"), "\(settings)")
    }

    // MARK: - Messages

    @Test func quietPrintsNothingButErrors() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("quiet.bin")
        try Transfers.randomFile(at: source, bytes: 2 << 20)
        let relay = try await RelayProcess.start()
        let code = "72-bluebird-caravan"
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, "--quiet", source.path])
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--quiet", "-o", work.appendingPathComponent("out").path])
        #expect(try await receiver.wait(timeout: 60) == 0)
        #expect(try await sender.wait(timeout: 60) == 0)
        #expect(sender.stderr.text.isEmpty, "\(sender.stderr.text)")
        #expect(receiver.stderr.text.isEmpty, "\(receiver.stderr.text)")
        #expect(sender.stdout.text.isEmpty && receiver.stdout.text.isEmpty)
        try await relay.stop()
    }

    @Test func aStreamIsOfferedAsAStream() async throws {
        let relay = try await RelayProcess.start()
        let code = "73-bluebird-caravan"
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, "-"])
        try sender.write("streamed bytes\n")
        sender.closeInput()
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "-o", "-"])
        #expect(try await receiver.wait(timeout: 60) == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 60) == 0)
        #expect(receiver.stderr.text.contains("Offer: a stream of unknown length"), "\(receiver.stderr.text)")
        #expect(sender.stderr.text.contains("Offered a stream of unknown length"), "\(sender.stderr.text)")
        #expect(!receiver.stderr.text.contains("0 files"))
        #expect(receiver.stdout.text == "streamed bytes\n")
        try await relay.stop()
    }

    @Test func relayErrorsArePlainSentences() async throws {
        let refused = try RunningProcess(arguments: ["send", "--relay", "ws://127.0.0.1:9", "--text", "hi"])
        #expect(try await refused.wait() == 4)
        #expect(refused.stderr.text == "tern: could not connect to the relay at ws://127.0.0.1:9: connection refused\n")

        let scheme = try RunningProcess(arguments: ["send", "--relay", "http://127.0.0.1:9", "--text", "hi"])
        #expect(try await scheme.wait() == 2)
        #expect(scheme.stderr.text.contains("ws:// or wss://"), "\(scheme.stderr.text)")

        let relay = try await RelayProcess.start()
        let taken = try RunningProcess(arguments: ["relay", "--listen", "127.0.0.1:\(relay.port)", "--stun-listen", "off"])
        #expect(try await taken.wait() == 1)
        #expect(taken.stderr.text.contains("address already in use"), "\(taken.stderr.text)")
        try await relay.stop()

        for text in [refused.stderr.text, scheme.stderr.text, taken.stderr.text] {
            #expect(text.filter { $0 == "(" }.count == text.filter { $0 == ")" }.count, "\(text)")
            #expect(!text.contains("errno") && !text.contains("error set"))
        }
    }

    @Test func onlyTheReceiverIsToldToAskForANewCode() async throws {
        let work = try Transfers.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let relay = try await RelayProcess.start()
        let code = "74-bluebird-caravan"
        // A pair holds the nameplate (the receiver waits at its question); a
        // third side, of either role, is refused.
        let file = work.appendingPathComponent("held.txt")
        try Data("held\n".utf8).write(to: file)
        let first = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, file.path])
        let out = try makeTestDirectory(prefix: "tern-crowded-out")
        defer { try? FileManager.default.removeItem(at: out) }
        let second = try TerminalWindow(TerminalWindow.tern(["receive", code, "--relay", relay.url, "-o", out.path], in: work))
        try await second.waitFor("the question") { $0.hasPrefix("Accept? [y/N]") }
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes"])
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, "--text", "c"])
        #expect(try await receiver.wait() == 3)
        #expect(try await sender.wait() == 3)
        #expect(receiver.stderr.text.contains("ask the sender for a new code"), "\(receiver.stderr.text)")
        #expect(sender.stderr.text.contains("already in use"), "\(sender.stderr.text)")
        #expect(!sender.stderr.text.contains("new code"), "\(sender.stderr.text)")
        try second.send("C-c")
        _ = try await second.exitStatus()
        _ = try await first.wait()
        try await relay.stop()
    }
}
