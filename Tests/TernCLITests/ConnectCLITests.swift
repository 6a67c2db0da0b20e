import Foundation
import Testing
import TernTestSupport

/// `tern send` and `tern receive` finding a path to each other after the
/// offer is accepted: real processes, a real relay, coturn for TURN.
@Suite(.serialized) struct ConnectCLITests {
    typealias CLI = PairingCLITests

    /// A file to send; the caller removes it (`removeTestItem`).
    static func payload() throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tern-connect-\(UUID().uuidString).txt")
        try Data("payload".utf8).write(to: file)
        return file
    }

    /// Sender and receiver with a pre-agreed code and the same extra flags.
    static func run(relay: RelayProcess, code: String, flags: [String], json: Bool = true) async throws -> (RunningProcess, RunningProcess) {
        let file = try payload()
        defer { removeTestItem(file) }
        let format = json ? ["--json"] : []
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", code, "--timeout", "30"] + format + flags)
        let receiver = try RunningProcess(arguments: ["receive", code, "--relay", relay.url, "--yes", "--timeout", "30"] + format + flags)
        _ = try await receiver.wait(timeout: 40)
        _ = try await sender.wait(timeout: 40)
        return (sender, receiver)
    }

    @Test func bothSidesReportADirectPathWithItsRoundTrip() async throws {
        let relay = try await RelayProcess.start()
        let (sender, receiver) = try await Self.run(relay: relay, code: "31-aardvark-adroitness", flags: [])
        #expect(sender.process.terminationStatus == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        #expect(receiver.process.terminationStatus == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        for side in [sender, receiver] {
            let connected = try #require(CLI.events(side, named: "connected").first, "\(side.stdout.text)")
            #expect(connected["path"] as? String == "direct")
            #expect(connected["local"] as? String == "host")
            #expect(connected["remote"] as? String == "host")
            #expect(connected["relay_protocol"] == nil)
            let rtt = try #require(connected["rtt_ms"] as? Int)
            #expect((0..<1000).contains(rtt))
            let elapsed = try #require(connected["since_paired_ms"] as? Int)
            #expect((0..<10_000).contains(elapsed))
        }
        try await relay.stop()
    }

    @Test func theHumanOutputSaysInOneLineThatThePathIsDirect() async throws {
        let relay = try await RelayProcess.start()
        let (sender, receiver) = try await Self.run(relay: relay, code: "32-aardvark-adroitness", flags: [], json: false)
        #expect(sender.process.terminationStatus == 0)
        #expect(receiver.process.terminationStatus == 0)
        for side in [sender, receiver] {
            let lines = side.stderr.lines.filter { $0.hasPrefix("Connected") }
            #expect(lines.count == 1, "\(side.stderr.text)")
            #expect(lines.first?.hasPrefix("Connected directly (local address to local address") == true, "\(lines)")
        }
        try await relay.stop()
    }

    @Test func forceRelayGoesThroughCoturnOnBothSides() async throws {
        let coturn = try await CoturnProcess()
        let relay = try await RelayProcess.start(["--turn-uri", coturn.uri(), "--turn-secret", coturn.secret])
        let (sender, receiver) = try await Self.run(relay: relay, code: "33-aardvark-adroitness", flags: ["--force-relay"])
        #expect(sender.process.terminationStatus == 0, "\(sender.stdout.text) \(sender.stderr.text)")
        #expect(receiver.process.terminationStatus == 0, "\(receiver.stdout.text) \(receiver.stderr.text)")
        for side in [sender, receiver] {
            let connected = try #require(CLI.events(side, named: "connected").first, "\(side.stdout.text)")
            #expect(connected["path"] as? String == "relayed")
            #expect(connected["local"] as? String == "relay")
            #expect(connected["relay_protocol"] as? String == "udp")
        }
        try await relay.stop()
    }

    @Test func forceRelayWithoutTURNExitsWith4OnBothSides() async throws {
        let relay = try await RelayProcess.start()
        let file = try Self.payload()
        defer { removeTestItem(file) }
        let sender = try RunningProcess(arguments: ["send", file.path, "--relay", relay.url, "--code", "34-aardvark-adroitness", "--json", "--force-relay"])
        let receiver = try RunningProcess(arguments: ["receive", "34-aardvark-adroitness", "--relay", relay.url, "--yes", "--json"])
        #expect(try await sender.wait() == 4)
        #expect(try await receiver.wait() == 4)
        let senderError = try #require(CLI.events(sender, named: "error").first)
        #expect((senderError["message"] as? String)?.contains("--force-relay needs a TURN server") == true)
        let receiverError = try #require(CLI.events(receiver, named: "error").first)
        #expect((receiverError["message"] as? String)?.contains("no network path") == true, "\(receiverError)")
        try await relay.stop()
    }

    @Test func refusedTURNCredentialsExitWith4NamingWhatWasTried() async throws {
        let coturn = try await CoturnProcess()
        // The relay's secret is not coturn's: every credential it mints is refused.
        let relay = try await RelayProcess.start(["--turn-uri", coturn.uri(), "--turn-secret", "not-" + coturn.secret])
        let (sender, receiver) = try await Self.run(relay: relay, code: "35-aardvark-adroitness", flags: ["--force-relay"])
        #expect(sender.process.terminationStatus == 4)
        #expect(receiver.process.terminationStatus == 4)
        for side in [sender, receiver] {
            let error = try #require(CLI.events(side, named: "error").first, "\(side.stdout.text)")
            let message = error["message"] as? String ?? ""
            #expect(message.contains("could not connect") || message.contains("no network path"), "\(message)")
        }
        let message = CLI.events(sender, named: "error").first?["message"] as? String ?? ""
        #expect(message.contains("credentials were refused"), "\(message)")
        try await relay.stop()
    }
}
