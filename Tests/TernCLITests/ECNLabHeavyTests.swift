import Foundation
import Testing
import TernTestSupport

/// ECN end to end through real sockets: the lab's `lan` topology with host
/// a's link through the delay line as a 20 Mbit/s bottleneck that marks
/// ECT packets CE once they queue more than 2 ms (lab.sh shape --ecn), and
/// tern in LAN mode from a to b, both unprivileged. tern's own counters
/// (`--verbose`, the `ECN` line) say what crossed the sockets.
@Suite(.serialized) struct ECNLabHeavyTests {
    /// The key=value pairs of the first log line whose message is `message`.
    static func logLine(_ message: String, in text: String) -> [String: String]? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains("msg=\(message) ") }) else { return nil }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { fields[pair[0]] = pair[1] }
        }
        return fields
    }

    static func count(_ key: String, _ fields: [String: String]?) -> Int { fields?[key].flatMap { Int($0) } ?? -1 }

    /// One transfer of `file` from a to b; the sender's and the receiver's ECN lines.
    static func transfer(_ lab: LabRun, file: URL, out: URL, receiverECN: Bool) async throws -> (sender: [String: String]?, receiver: [String: String]?) {
        let sender = try lab.tern("a", ["send", "--json", "--verbose", "--timeout", "60", file.path])
        let line = try await sender.waitForLine(in: \.stdout, timeout: 30) { $0.contains("\"event\":\"code\"") }
        let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let code = try #require(event["code"] as? String)
        let receiver = try lab.tern(
            "b", ["receive", code, "--yes", "--verbose", "-o", out.path, "--timeout", "60"],
            environment: receiverECN ? [:] : ["TERN_SCTP_ECN": "0"])
        #expect(try await receiver.wait(timeout: 90) == 0, "receiver: \(receiver.stderr.text.suffix(2000))")
        #expect(try await sender.wait(timeout: 30) == 0, "sender: \(sender.stderr.text.suffix(2000))")
        #expect(try Data(contentsOf: file) == Data(contentsOf: out.appendingPathComponent(file.lastPathComponent)))
        try FileManager.default.removeItem(at: out.appendingPathComponent(file.lastPathComponent))
        return (logLine("ECN", in: sender.stderr.text), logLine("ECN", in: receiver.stderr.text))
    }

    @Test func datagramsGoOutECT0AndCEMarksReachTheSendersAssociationOnlyWhenBothOffer() async throws {
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-ecn")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            let script = PackagePaths.root.appendingPathComponent("Tests/lab/lab.sh").path
            let shape = try RunningProcess(
                executable: URL(fileURLWithPath: "/bin/bash"),
                arguments: [script, "shape", "a", "eth0", "--rate", "20", "--rate-in", "20", "--delay", "10", "--delay-in", "10",
                            "--queue", "100", "--ecn", "2"],
                environment: ["LAB_ID": lab.id, "LAB_QUIET": "1"], privileged: true)
            #expect(try await shape.wait(timeout: 60) == 0, "\(shape.stderr.text.suffix(1000))")
            let file = work.appendingPathComponent("data.bin")
            try TransferCLITests.randomFile(at: file, bytes: 8 << 20)
            let out = try TransferCLITests.outputDirectory(in: work)

            // Both offer ECN: the receiver's datagrams arrive ECN-capable
            // (the sockets set ECT(0)), the bottleneck's CE marks reach the
            // receiver's association, which echoes them, and the sender's
            // association counts them and reduces.
            let both = try await Self.transfer(lab, file: file, out: out, receiverECN: true)
            #expect(both.sender?["negotiated"] == "true" && both.receiver?["negotiated"] == "true", "\(String(describing: both))")
            #expect(Self.count("ect_datagrams_received", both.receiver) > 0, "\(String(describing: both.receiver))")
            #expect(Self.count("ce_datagrams_received", both.receiver) > 0, "\(String(describing: both.receiver))")
            #expect(Self.count("ce_packets_echoed", both.receiver) > 0, "\(String(describing: both.receiver))")
            #expect(Self.count("ce_marks_from_peer", both.sender) > 0, "\(String(describing: both.sender))")
            #expect(Self.count("ecn_reductions", both.sender) > 0, "\(String(describing: both.sender))")

            // The receiver does not offer it: no datagram is ECT either way,
            // so the bottleneck marks nothing.
            let one = try await Self.transfer(lab, file: file, out: out, receiverECN: false)
            #expect(one.sender?["negotiated"] == "false" && one.receiver?["negotiated"] == "false", "\(String(describing: one))")
            #expect(Self.count("ect_datagrams_received", one.receiver) == 0, "\(String(describing: one.receiver))")
            #expect(Self.count("ect_datagrams_received", one.sender) == 0, "\(String(describing: one.sender))")
            #expect(Self.count("ce_marks_from_peer", one.sender) == 0, "\(String(describing: one.sender))")
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }
}
