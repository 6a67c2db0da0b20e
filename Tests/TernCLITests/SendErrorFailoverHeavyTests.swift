import Foundation
import Testing
import TernTestSupport

/// The direct path's sends start failing mid-transfer, between real `tern`
/// processes in the lab's `lan` topology (a, b and r on one segment, `tern
/// relay` and coturn on r): the kernel of a refuses every datagram to b,
/// while r (TURN) stays reachable. SwiftNIO closes a UDP socket on such a
/// send error; the session's one socket must survive it (reopened on its
/// port), and the session must move to the relayed pair rather than end.
/// Root builds the namespaces and sets the route or the firewall rule; tern
/// runs as the unprivileged user.
@Suite(.serialized) struct SendErrorFailoverHeavyTests {
    static let secret = "send-error-secret"

    /// Streams `seconds` of data from a to b (64 KiB every 20 ms, through
    /// `tern send -`), applies `breakDirectPath` as root in a's namespace
    /// once the sender says its path is direct, and checks that the stream
    /// arrives whole and that the sender moved to a relayed path.
    func streamSurvives(_ breakDirectPath: @escaping (LabRun, String) -> [String]) async throws {
        signal(SIGPIPE, SIG_IGN)  // a write to a sender that died must fail, not kill the test
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-send-error")
        defer { try? FileManager.default.removeItem(at: work) }
        var processes: [RunningProcess] = []
        do {
            let rIP = try #require(lab.environment["R_IP"])
            let bIP = try #require(lab.environment["B_IP"])
            let turn = try await lab.coturnStart(secret: Self.secret)
            let turnURI = try #require(turn["TURN_URL_UDP"])
            let relay = try lab.tern("r", [
                "relay", "--listen", "\(rIP):4747", "--stun-listen", "\(rIP):3479",
                "--turn-uri", turnURI, "--turn-secret", Self.secret, "--claims-per-minute", "0",
            ])
            processes.append(relay)
            _ = try await relay.waitForLine(in: \.stderr) { $0.contains("rendezvous_port=") }

            let out = try TransferCLITests.outputDirectory(in: work)
            let code = "7-aardvark-adroitness"
            let relayURL = ["TERN_RELAY": "ws://\(rIP):4747"]
            let receiver = try lab.tern(
                "b", ["receive", "--json", "--yes", "--timeout", "60", "-o", out.appendingPathComponent("stream.bin").path, code],
                environment: relayURL)
            processes.append(receiver)
            let sender = try lab.tern("a", ["send", "--json", "--code", code, "--timeout", "60", "-"], environment: relayURL)
            processes.append(sender)

            // 64 KiB every 20 ms for 6 s (about 3.3 MB/s, 19.7 MB): a
            // pattern the received file is compared with.
            var fed = Data()
            var broken = false
            let started = ContinuousClock.now
            var chunk = 0
            while ContinuousClock.now - started < .seconds(6) {
                var piece = Data(count: 65_536)
                piece.withUnsafeMutableBytes { bytes in
                    for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &* 31 &+ chunk &* 7) }
                }
                guard sender.process.isRunning, (try? sender.stdin.fileHandleForWriting.write(contentsOf: piece)) != nil else { break }
                fed.append(piece)
                chunk += 1
                if !broken, ContinuousClock.now - started > .seconds(2), sender.stdout.text.contains("\"path\":\"direct\"") {
                    // The direct path goes away under the running transfer.
                    broken = true
                    #expect(try await lab.root("a", breakDirectPath(lab, bIP)) == 0)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            sender.closeInput()
            #expect(broken, "the sender never reported a direct path: \(sender.stdout.text.suffix(1000))")
            let sent = try await sender.wait(timeout: 60)
            let received = try await receiver.wait(timeout: 30)
            #expect(sent == 0, "sender: \(sender.stdout.text.suffix(1500)) \(sender.stderr.text.suffix(1500))")
            #expect(received == 0, "receiver: \(receiver.stdout.text.suffix(1500)) \(receiver.stderr.text.suffix(1500))")
            let arrived = try Data(contentsOf: out.appendingPathComponent("stream.bin"))
            #expect(arrived.count == fed.count && arrived == fed, "received \(arrived.count) of \(fed.count) bytes")
            // The sender moved to the relay after the break.
            let events = sender.stdout.lines.filter { $0.contains("\"event\":\"path\"") || $0.contains("\"event\":\"connected\"") }
            print("send error mid-transfer: sender's paths \(events)")
            #expect(events.last?.contains("\"path\":\"relayed\"") == true, "\(events)")
        } catch {
            for process in processes { process.process.terminate() }
            await lab.down()
            throw error
        }
        for process in processes where process.process.isRunning { process.process.terminate() }
        await lab.down()
    }

    /// The route to b vanishes: sends to it fail with ENETUNREACH (a
    /// `throw` route, looked up before the default route, with no other
    /// table to fall to).
    @Test func aRouteThatVanishesMidTransferMovesTheSessionToTheRelay() async throws {
        try await streamSurvives { _, bIP in ["ip", "route", "add", "throw", "\(bIP)/32"] }
    }

    /// A local firewall drops a's output to b: sends fail with EPERM, which
    /// no route check before the first send can see.
    @Test func aFirewallThatRefusesOutputMidTransferMovesTheSessionToTheRelay() async throws {
        try await streamSurvives { _, bIP in ["iptables", "-w", "-A", "OUTPUT", "-d", bIP, "-j", "DROP"] }
    }
}
