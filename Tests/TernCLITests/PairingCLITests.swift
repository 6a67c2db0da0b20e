import Foundation
import Testing
import TernRendezvous
import TernTestSupport

/// Real `tern send` and `tern receive` processes pairing through a real
/// `tern relay` process on loopback.
@Suite(.serialized) struct PairingCLITests {
    /// The test's folders, removed when it ends.
    let directories = TestDirectories()

    static func jsonEvents(_ process: RunningProcess) -> [[String: Any]] {
        process.stdout.lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    static func events(_ process: RunningProcess, named name: String) -> [[String: Any]] {
        jsonEvents(process).filter { $0["event"] as? String == name }
    }

    /// Starts `tern send` and returns it with the code it printed.
    static func startSender(relay: RelayProcess, arguments: [String], environment: [String: String] = [:]) async throws -> (RunningProcess, String) {
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--json"] + arguments, environment: environment)
        let line = try await sender.waitForLine(in: \.stdout) { $0.contains(#""event":"code""#) }
        let event = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])
        return (sender, try #require(event["code"] as? String))
    }

    /// Runs tern on a pseudo-terminal (through `script`), as a person at a
    /// terminal would: prompts appear on its stdout, keys go to its stdin.
    static func onTerminal(_ arguments: String) throws -> RunningProcess {
        try RunningProcess(
            executable: URL(fileURLWithPath: "/usr/bin/script"),
            arguments: ["-qfec", "\(PackagePaths.ternBinary.path) \(arguments)", "/dev/null"])
    }

    func temporaryFile(named name: String = "hello.txt", contents: String = "hello, tern\n") throws -> URL {
        try directories.file("tern-cli", named: name, contents: Data(contents.utf8))
    }

    @Test func pairsWithAnAllocatedCodeAndExchangesTheOffer() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        // An idle relay draws the nameplate at random from 1-99 (a short code
        // that is not the smallest free number).
        let nameplate = try #require(Int(try Code(parsing: code).nameplate))
        #expect((1...99).contains(nameplate))
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--json"])
        #expect(try await receiver.wait() == 0, "receiver: \(receiver.stderr.text) \(receiver.stdout.text)")
        #expect(try await sender.wait() == 0, "sender: \(sender.stderr.text)")

        #expect(Self.events(sender, named: "paired").count == 1)
        #expect(Self.events(receiver, named: "paired").count == 1)
        let offer = try #require(Self.events(receiver, named: "offer").first)
        let entries = try #require(offer["entries"] as? [[String: Any]])
        #expect(entries.first?["name"] as? String == "hello.txt")
        #expect(entries.first?["size"] as? Int == 12)
        #expect(offer["files"] as? Int == 1)
        #expect(Self.events(sender, named: "accepted").count == 1)
        // Event order on each side: code, paired, offer, accepted, connected,
        // then the transfer (12 bytes: one progress event).
        #expect(Self.jsonEvents(sender).compactMap { $0["event"] as? String }
            == ["code", "paired", "offer", "accepted", "connected", "progress", "file", "done"])
        #expect(Self.jsonEvents(receiver).compactMap { $0["event"] as? String }
            == ["paired", "offer", "accepted", "connected", "progress", "file", "done"])
        try await relay.stop()
    }

    @Test func pairsWithAPreAgreedCodeFromFlagAndEnvironment() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "4242-acme-aftermath", "--json"])
        let receiver = try RunningProcess(arguments: ["receive", "--yes", "--json"],
                                          environment: ["TERN_CODE": "4242-ACME-aftermath", "TERN_RELAY": relay.url])
        #expect(try await receiver.wait() == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait() == 0, "\(sender.stderr.text)")
        #expect(Self.events(sender, named: "code").first?["code"] as? String == "4242-acme-aftermath")
        #expect(Self.events(receiver, named: "offer").count == 1)
        try await relay.stop()
    }

    @Test func aWrongCodeExitsWith3OnBothSides() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        let parsed = try Code(parsing: code)
        let otherWord = parsed.secondWord == "adroitness" ? "adviser" : "adroitness"
        let wrong = "\(parsed.nameplate)-\(parsed.firstWord)-\(otherWord)"
        let receiver = try RunningProcess(arguments: ["receive", wrong, "--relay", relay.url, "--yes", "--json"])
        #expect(try await receiver.wait() == 3, "\(receiver.stderr.text)")
        #expect(try await sender.wait() == 3, "\(sender.stderr.text)")
        for side in [sender, receiver] {
            let error = try #require(Self.events(side, named: "error").first)
            #expect(error["exit"] as? Int == 3)
            #expect((error["message"] as? String)?.contains("wrong") == true)
            #expect(Self.events(side, named: "offer").isEmpty, "nothing is offered before key confirmation")
        }
        // That one guess used the nameplate up: the relay holds nothing more for it.
        let (health, _) = try await httpGet(port: relay.port, path: "/health")
        #expect(health.contains(#""nameplates":0"#) && health.contains(#""mailboxes":0"#), "\(health)")
        try await relay.stop()
    }

    @Test func humanOutputSaysWrongCodeInOneSentence() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "77-acme-aftermath"])
        let receiver = try RunningProcess(arguments: ["receive", "77-acme-adviser", "--relay", relay.url, "--yes"])
        #expect(try await receiver.wait() == 3)
        #expect(try await sender.wait() == 3)
        let lastLine = receiver.stderr.lines.last ?? ""
        #expect(lastLine.hasPrefix("tern: the code is wrong"))
        try await relay.stop()
    }

    @Test func aThirdSideIsRefused() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        // Sender and a receiver that sits on its prompt (it has a pseudo-terminal).
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "31-acme-aftermath", "--json"])
        let receiver = try Self.onTerminal("receive 31-acme-aftermath --relay \(relay.url)")
        _ = try await receiver.waitForLine(in: \.stdout) { $0.contains("Accept?") }
        let third = try RunningProcess(arguments: ["receive", "31-acme-aftermath", "--relay", relay.url, "--yes", "--json"])
        #expect(try await third.wait() == 3)
        let error = try #require(Self.events(third, named: "error").first)
        #expect((error["message"] as? String)?.contains("already in use") == true)
        try receiver.write("y\n")
        #expect(try await receiver.wait() == 0, "\(receiver.stdout.text)")
        #expect(try await sender.wait() == 0)
        try await relay.stop()
    }

    @Test func aDeclinedOfferExitsWith6() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "32-acme-aftermath", "--json"])
        // Into a directory that does not exist yet: declining leaves none behind.
        let receiver = try Self.onTerminal("receive 32-acme-aftermath --relay \(relay.url) -o incoming")
        _ = try await receiver.waitForLine(in: \.stdout) { $0.contains("Accept?") }
        #expect(receiver.stdout.text.contains("hello.txt"))
        try receiver.write("n\n")
        #expect(try await receiver.wait() == 6)
        #expect(try await sender.wait() == 6)
        #expect((Self.events(sender, named: "error").first?["message"] as? String)?.contains("declined") == true)
        #expect(!FileManager.default.fileExists(atPath: receiver.workingDirectory.appendingPathComponent("incoming").path))
        try await relay.stop()
    }

    @Test func anExpiredNameplateIsRefused() async throws {
        let relay = try await RelayProcess.start(["--idle-timeout", "1"])
        let file = try temporaryFile()
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        // Nobody comes: the relay expires the nameplate and tells the sender.
        let status = try await sender.wait(timeout: 10)
        #expect(status == 3, "\(sender.stderr.text)")
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--json"])
        #expect(try await receiver.wait() == 3)
        #expect((Self.events(receiver, named: "error").first?["message"] as? String)?.contains("expired") == true)
        try await relay.stop()
    }

    @Test func aNameTheReceiverWouldRefuseIsEscapedAndRefusedBeforePairing() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile(named: "evil\u{1b}]0;owned\u{7}\u{1b}[2J.txt")
        // tern's own sender refuses it up front (issue 12: it used to be
        // offered, accepted, then refused by the receiver as a path). A
        // hostile sender's names are escaped and refused by the receiver:
        // HostileSenderTests.
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "33-acme-aftermath"])
        #expect(try await sender.wait() == 2, "\(sender.stderr.text)")
        #expect(sender.stderr.text.contains("the receiver would refuse its name (it contains a control character)"), "\(sender.stderr.text)")
        #expect(sender.stderr.text.contains("evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J.txt"))
        #expect(!sender.stderr.text.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 })
        #expect(!sender.stderr.text.contains("Code:"))

        // A name that can be sent but would mislead a terminal (a
        // right-to-left override) is escaped wherever it is shown.
        let spoof = try temporaryFile(named: "report\u{202e}fdp.exe")
        let spoofSender = try RunningProcess(arguments: ["send", spoof.path, "--relay", relay.url, "--code", "35-acme-aftermath"])
        let receiver = try RunningProcess(arguments: ["receive", "35-acme-aftermath", "--relay", relay.url, "--yes"])
        #expect(try await receiver.wait() == 0, "\(receiver.stderr.text)")
        #expect(try await spoofSender.wait() == 0, "\(spoofSender.stderr.text)")
        let shown = receiver.stderr.text + spoofSender.stderr.text
        #expect(shown.contains("report\\u{202e}fdp.exe"), "\(shown)")
        #expect(!shown.unicodeScalars.contains { $0.value == 0x202e })
        try await relay.stop()
    }

    @Test func aTextIsShownToTheReceiver() async throws {
        let relay = try await RelayProcess.start()
        let sender = try RunningProcess(arguments: ["send", "--text", "the wifi password is hunter2", "--relay", relay.url, "--code", "34-acme-aftermath"])
        let receiver = try RunningProcess(arguments: ["receive", "34-acme-aftermath", "--relay", relay.url, "--yes"])
        #expect(try await receiver.wait() == 0)
        #expect(try await sender.wait() == 0)
        #expect(receiver.stdout.text == "the wifi password is hunter2\n")
        try await relay.stop()
    }

    /// A text's lines and tabs reach stdout as they are; what could drive the
    /// terminal (escape sequences, carriage returns) is still escaped.
    @Test func aTextKeepsItsLinesAndEscapesControls() async throws {
        let relay = try await RelayProcess.start()
        let text = "line one\n\tline two\r\u{1b}[2Jgone"
        let sender = try RunningProcess(arguments: ["send", "--text", text, "--relay", relay.url, "--code", "35-acme-aftermath"])
        let receiver = try RunningProcess(arguments: ["receive", "35-acme-aftermath", "--relay", relay.url, "--yes"])
        #expect(try await receiver.wait() == 0)
        #expect(try await sender.wait() == 0)
        #expect(receiver.stdout.text == "line one\n\tline two\\u{d}\\u{1b}[2Jgone\n")
        try await relay.stop()
    }

    /// With LAN mode off (with it on, no relay means LAN mode: LANModeHeavyTests).
    @Test func withoutARelayItSaysHowToGetOne() async throws {
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path], environment: ["TERN_LAN": "off"])
        #expect(try await sender.wait() == 2)
        #expect(sender.stderr.text.contains("--relay"))
        #expect(sender.stderr.text.contains("tern relay"))
    }

    @Test(arguments: ["7-bluebird", "seven-bluebird-caravan", "7-caravan-bluebird"])
    func aMalformedCodeIsAUsageError(code: String) async throws {
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", "ws://127.0.0.1:9", "--yes", "--json"])
        #expect(try await receiver.wait() == 2)
        #expect(Self.events(receiver, named: "error").first?["exit"] as? Int == 2)
    }

    @Test func anUnreachableRelayExitsWith4() async throws {
        // A port nothing listens on: bind one, learn its number, close it.
        let receiver = try RunningProcess(arguments: ["receive", "7-bluebird-caravan", "--relay", "ws://127.0.0.1:1", "--yes"])
        #expect(try await receiver.wait() == 4)
        #expect(receiver.stderr.text.contains("could not connect to the relay"))
    }

    @Test func noCodeAndNoTerminalIsAClearUsageError() async throws {
        let receiver = try RunningProcess(arguments: ["receive", "--relay", "ws://127.0.0.1:1", "--yes"])
        receiver.closeInput()
        #expect(try await receiver.wait() == 2)
        #expect(receiver.stderr.text.contains("TERN_CODE"))
    }

    @Test func theCodeCanBeTypedAtAPrompt() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "35-acme-aftermath"])
        let receiver = try Self.onTerminal("receive --yes --relay \(relay.url)")
        _ = try await receiver.waitForLine(in: \.stdout) { $0.contains("Enter the code") }
        try receiver.write("35-acme-aftermath\n")
        #expect(try await receiver.wait() == 0, "\(receiver.stdout.text)")
        #expect(try await sender.wait() == 0)
        try await relay.stop()
    }

    @Test func usageErrorsExitWith2() async throws {
        let process = try RunningProcess(arguments: ["send", "--no-such-flag"])
        #expect(try await process.wait() == 2)
        let missing = try RunningProcess(arguments: ["send", "/no/such/file", "--relay", "ws://127.0.0.1:1"])
        #expect(try await missing.wait() == 2)
        #expect(missing.stderr.text.contains("/no/such/file"))
    }

    @Test func ctrlCOnTheReceiverStopsTheSenderWithinASecond() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "36-acme-aftermath", "--json"])
        let receiver = try Self.onTerminal("receive 36-acme-aftermath --relay \(relay.url)")
        _ = try await receiver.waitForLine(in: \.stdout) { $0.contains("Accept?") }
        try receiver.write("\u{3}")  // Ctrl-C typed on the terminal
        let interrupted = Date()
        #expect(try await receiver.wait() == 130)
        #expect(try await sender.wait(timeout: 5) == 1)
        #expect(Date().timeIntervalSince(interrupted) < 1.5)
        #expect((Self.events(sender, named: "error").first?["message"] as? String)?.contains("interrupted") == true)
        try await relay.stop()
    }

    @Test func ctrlCOnAWaitingSenderExpiresItsCode() async throws {
        let relay = try await RelayProcess.start()
        let file = try temporaryFile()
        let (sender, code) = try await Self.startSender(relay: relay, arguments: [file.path])
        sender.signal(SIGINT)
        #expect(try await sender.wait() == 130)
        #expect(Self.events(sender, named: "error").first?["exit"] as? Int == 130)
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes"])
        #expect(try await receiver.wait() == 3)
        #expect(receiver.stderr.text.contains("no longer in use"))
        try await relay.stop()
    }

    @Test func aSideWhoseRelayConnectionBreaksReconnectsAndPairs() async throws {
        let relay = try await RelayProcess.start()
        let proxy = try TCPProxy(to: relay.port)
        let file = try temporaryFile()
        // The sender reaches the relay through the proxy; its link is cut after it has its code.
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", "ws://127.0.0.1:\(proxy.port)", "--json"])
        let line = try await sender.waitForLine(in: \.stdout) { $0.contains(#""event":"code""#) }
        let code = try #require(((try JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["code"] as? String)
        proxy.cutAll()
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--json"])
        #expect(try await receiver.wait() == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait() == 0, "\(sender.stdout.text)")
        #expect(Self.events(sender, named: "reconnected").count == 1)
        #expect(Self.events(receiver, named: "offer").count == 1, "the offer arrives once")
        proxy.stop()
        try await relay.stop()
    }
}
