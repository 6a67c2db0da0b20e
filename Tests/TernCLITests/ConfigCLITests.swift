import Foundation
import Testing
import TernTestSupport

/// The config file ($XDG_CONFIG_HOME/tern/config.toml) with real `tern`
/// processes: what `tern config` reports, that a flag beats the environment
/// beats the file beats the default where it matters (the relay dialled, the
/// directory written), and that a bad file is refused naming its line.
@Suite struct ConfigCLITests {
    /// A config home holding `text` as tern/config.toml, for the test user.
    static func configHome(_ text: String) throws -> URL {
        let home = try makeTestDirectory(prefix: "tern-config")
        let folder = home.appendingPathComponent("tern")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try TestUser.give(folder)
        let file = folder.appendingPathComponent("config.toml")
        try Data(text.utf8).write(to: file)
        try TestUser.give(file)
        return home
    }

    static func run(_ arguments: [String], home: URL, environment: [String: String] = [:]) async throws -> (Int32, RunningProcess) {
        var environment = environment
        environment["XDG_CONFIG_HOME"] = home.path
        let process = try RunningProcess(arguments: arguments, environment: environment)
        process.closeInput()
        return (try await process.wait(timeout: 30), process)
    }

    static func effective(home: URL, environment: [String: String] = [:]) async throws -> [String: [String: Any]] {
        let (status, process) = try await run(["config", "--json"], home: home, environment: environment)
        try #require(status == 0, "tern config: \(process.stderr.text)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(process.stdout.text.utf8)) as? [String: Any])
        var settings: [String: [String: Any]] = [:]
        for key in ["relay", "output", "existing", "turn", "lan", "qr"] {
            settings[key] = try #require(object[key] as? [String: Any])
        }
        return settings
    }

    @Test func configReportsEachSettingAndWhereItCameFrom() async throws {
        let home = try Self.configHome("""
            relay = "ws://127.0.0.1:7"
            existing = "rename"

            lan = false
            """)
        defer { try? FileManager.default.removeItem(at: home) }
        let settings = try await Self.effective(home: home, environment: ["TERN_RELAY": "ws://127.0.0.1:8", "TERN_QR": "off"])
        #expect(settings["relay"]?["value"] as? String == "ws://127.0.0.1:8")
        #expect(settings["relay"]?["origin"] as? String == "environment")
        #expect(settings["relay"]?["variable"] as? String == "TERN_RELAY")
        #expect(settings["existing"]?["value"] as? String == "rename")
        #expect(settings["existing"]?["origin"] as? String == "file")
        #expect(settings["existing"]?["line"] as? Int == 2)
        #expect(settings["lan"]?["value"] as? Bool == false)
        #expect(settings["lan"]?["line"] as? Int == 4)
        #expect(settings["qr"]?["value"] as? Bool == false)
        #expect(settings["qr"]?["origin"] as? String == "environment")
        #expect(settings["turn"]?["value"] as? String == "auto")
        #expect(settings["turn"]?["origin"] as? String == "default")
        #expect(settings["output"]?["origin"] as? String == "default")

        // And for a person: one line per setting with its origin.
        let (status, text) = try await Self.run(["config"], home: home)
        #expect(status == 0)
        #expect(text.stdout.text.contains("relay     = ws://127.0.0.1:7    (config file, line 1)"))
        #expect(text.stdout.text.contains("turn      = auto    (default)"))
    }

    /// Ports 7, 8 and 9 on loopback have no listener: the error names the
    /// relay that was dialled, so it shows which layer won.
    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheFile() async throws {
        let home = try Self.configHome("relay = \"ws://127.0.0.1:7\"\n")
        defer { try? FileManager.default.removeItem(at: home) }
        let send = ["send", "--text", "hi", "--code", "5-aardvark-adroitness", "--timeout", "20"]
        let (fromFile, file) = try await Self.run(send, home: home)
        #expect(fromFile == 4)
        #expect(file.stderr.text.contains("ws://127.0.0.1:7"), "\(file.stderr.text)")
        let (fromEnvironment, environment) = try await Self.run(send, home: home, environment: ["TERN_RELAY": "ws://127.0.0.1:8"])
        #expect(fromEnvironment == 4)
        #expect(environment.stderr.text.contains("ws://127.0.0.1:8"), "\(environment.stderr.text)")
        let (fromFlag, flag) = try await Self.run(send + ["--relay", "ws://127.0.0.1:9"], home: home, environment: ["TERN_RELAY": "ws://127.0.0.1:8"])
        #expect(fromFlag == 4)
        #expect(flag.stderr.text.contains("ws://127.0.0.1:9"), "\(flag.stderr.text)")
    }

    @Test func lanModeOffInTheFileAndNoRelayIsAUsageErrorSayingWhere() async throws {
        let home = try Self.configHome("# no LAN here\nlan = false\n")
        defer { try? FileManager.default.removeItem(at: home) }
        let (status, process) = try await Self.run(["send", "--text", "hi"], home: home)
        #expect(status == 2)
        #expect(process.stderr.text.contains("no relay"))
        #expect(process.stderr.text.contains("LAN mode is off (config file, line 2)"))
    }

    @Test(arguments: [
        ("relay = \"ws://127.0.0.1:7\"\nexisting = \"rename\"\nlan = [true\n", "line 3"),
        ("qr = true\nrelya = \"ws://x\"\n", "line 2: unknown setting 'relya'"),
        ("lan = \"yes\"\n", "line 1: 'lan' takes true or false"),
        ("\n\nexisting = \"maybe\"\n", "line 3: 'existing' is one of refuse, overwrite, rename, skip, not 'maybe'"),
        ("relay = \"http://example\"\n", "line 1: bad relay URL: the relay URL must start with ws:// or wss://"),
    ])
    func aBadFileIsRefusedNamingItsLine(_ text: String, _ expected: String) async throws {
        let home = try Self.configHome(text)
        defer { try? FileManager.default.removeItem(at: home) }
        for command in [["config"], ["send", "--text", "hi"], ["receive", "5-aardvark-adroitness", "--yes"]] {
            let (status, process) = try await Self.run(command, home: home)
            #expect(status == 2, "\(command): \(process.stderr.text)")
            #expect(process.stderr.text.contains("bad config file \(home.path)/tern/config.toml: \(expected)"), "\(process.stderr.text)")
        }
    }

    @Test func aBadEnvironmentValueIsAUsageError() async throws {
        let home = try Self.configHome("")
        defer { try? FileManager.default.removeItem(at: home) }
        let (status, process) = try await Self.run(["config"], home: home, environment: ["TERN_LAN": "perhaps"])
        #expect(status == 2)
        #expect(process.stderr.text.contains("TERN_LAN is on or off"))
    }

    /// The file's output directory and existing-files choice decide where a
    /// receiver without -o writes and what it does with a name taken.
    @Test func theFilesOutputAndExistingSettingsApplyToReceive() async throws {
        let relay = try await RelayProcess.start()
        let work = try makeTestDirectory(prefix: "tern-config-receive")
        defer { try? FileManager.default.removeItem(at: work) }
        let inbox = work.appendingPathComponent("inbox")
        try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
        try TestUser.give(inbox)
        let taken = inbox.appendingPathComponent("notes.txt")
        try Data("older".utf8).write(to: taken)
        try TestUser.give(taken)
        let home = try Self.configHome("output = \"\(inbox.path)\"\nexisting = \"rename\"\n")
        defer { try? FileManager.default.removeItem(at: home) }
        let source = work.appendingPathComponent("notes.txt")
        try Data("newer".utf8).write(to: source)

        let code = "4343-aardvark-adroitness"
        let sender = try RunningProcess(arguments: ["send", "--relay", relay.url, "--code", code, "--timeout", "60", source.path])
        let (received, receiver) = try await Self.run(["receive", code, "--relay", relay.url, "--yes", "--timeout", "60"], home: home)
        #expect(received == 0, "\(receiver.stderr.text)")
        #expect(try await sender.wait(timeout: 30) == 0)
        #expect(try String(contentsOf: taken, encoding: .utf8) == "older")
        #expect(try String(contentsOf: inbox.appendingPathComponent("notes (1).txt"), encoding: .utf8) == "newer")
        try await relay.stop()
    }
}
