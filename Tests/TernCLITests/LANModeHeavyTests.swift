import Foundation
import Testing
import TernTestSupport

/// LAN mode between real namespaces of the lab's `lan` topology (hosts a, b
/// and r on one bridge that carries multicast), with no relay anywhere and
/// nothing configured: tern finds its peer by the beacon alone. Root builds
/// the namespaces; every tern runs as the unprivileged user.
@Suite(.serialized) struct LANModeHeavyTests {
    /// Prints each datagram that reaches the beacon port of r (joined to
    /// tern's IPv4 group): the sending address and the bytes in hex.
    static let capture = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 4748))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("224.0.0.74") + socket.inet_aton(sys.argv[1]))
        print("ready", flush=True)
        while True:
            data, address = s.recvfrom(4096)
            print(address[0], data.hex(), flush=True)
        """

    /// The announcement as docs/protocol.md lays it out, written here by
    /// hand: magic, version 1, kind 1, the nameplate's length and digits,
    /// the port. Nothing else.
    static func announcement(nameplate: String, port: Int) -> String {
        let bytes = Array("tern".utf8) + [1, 1, UInt8(nameplate.utf8.count)] + Array(nameplate.utf8) + [UInt8(port >> 8), UInt8(port & 0xff)]
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func query(nameplate: String) -> String {
        let bytes = Array("tern".utf8) + [1, 2, UInt8(nameplate.utf8.count)] + Array(nameplate.utf8)
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The value of `key` in the first JSON event named `event`.
    static func field(_ key: String, of event: String, in process: RunningProcess, timeout: Double = 30) async throws -> Any {
        let line = try await process.waitForLine(in: \.stdout, timeout: timeout) { $0.contains("\"event\":\"\(event)\"") }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        return try #require(object[key])
    }

    static func payload(in work: URL) throws -> (file: URL, directory: URL) {
        let file = work.appendingPathComponent("report.bin")
        try TransferCLITests.randomFile(at: file, bytes: 300_000)
        let directory = work.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("2025"), withIntermediateDirectories: true)
        try TransferCLITests.randomFile(at: directory.appendingPathComponent("beach.jpg"), bytes: 120_000)
        try TransferCLITests.randomFile(at: directory.appendingPathComponent("2025/snow.jpg"), bytes: 70_000)
        return (file, directory)
    }

    static func sameContents(_ a: URL, _ b: URL) throws -> Bool {
        try Data(contentsOf: a) == Data(contentsOf: b)
    }

    @Test func sendsAFileAndADirectoryWithNothingConfiguredAndTheAirCarriesOnlyNameplateAndPort() async throws {
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-lan")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            let (file, directory) = try Self.payload(in: work)
            let out = try TransferCLITests.outputDirectory(in: work)
            let rIP = try #require(lab.environment["R_IP"])
            let aIP = try #require(lab.environment["A_IP"])
            let bIP = try #require(lab.environment["B_IP"])
            let listener = try lab.user("r", ["/usr/bin/python3", "-c", Self.capture, rIP])
            _ = try await listener.waitForLine(in: \.stdout) { $0 == "ready" }

            let sender = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path, directory.path])
            let code = try #require(try await Self.field("code", of: "code", in: sender) as? String)
            let port = try #require(try await Self.field("port", of: "mode", in: sender) as? Int)
            let nameplate = String(code.prefix { $0 != "-" })
            // The receive link (the QR code's) is this sender's own page, and
            // another host on the LAN gets it there, as a phone would.
            let link = try #require(try await Self.field("link", of: "code", in: sender) as? String)
            #expect(link == "http://\(aIP):\(port)/#\(code)")
            let page = try lab.user("r", ["/usr/bin/curl", "-s", "-m", "5", "-w", "\n%{http_code} %{content_type}", "http://\(aIP):\(port)/"])
            _ = try await page.wait(timeout: 10)
            #expect(page.stdout.text.contains("<title>") && page.stdout.text.hasSuffix("200 text/html; charset=utf-8"),
                    "\(page.stdout.text.suffix(200))")
            let receiver = try lab.tern("b", ["receive", code, "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await receiver.wait(timeout: 90) == 0, "receiver: \(receiver.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0, "sender: \(sender.stderr.text)")

            // Both sides said which mode they were in and how long it took.
            #expect(receiver.stderr.text.contains("No relay configured: looking for the sender on this network"))
            #expect(receiver.stderr.text.contains("Found the sender at \(aIP):\(port) after"))
            #expect(try Self.sameContents(file, out.appendingPathComponent("report.bin")))
            #expect(try Self.sameContents(directory.appendingPathComponent("beach.jpg"), out.appendingPathComponent("photos/beach.jpg")))
            #expect(try Self.sameContents(directory.appendingPathComponent("2025/snow.jpg"), out.appendingPathComponent("photos/2025/snow.jpg")))

            // What a third host on the LAN saw: the sender's announcements
            // (nameplate and port, byte for byte) and the receiver's queries
            // (the nameplate), and nothing else.
            listener.process.terminate()
            _ = try? await listener.wait(timeout: 10)
            let seen = listener.stdout.lines.filter { $0 != "ready" }
            let announcements = seen.filter { $0.hasPrefix(aIP + " ") }
            #expect(!announcements.isEmpty)
            for line in seen {
                if line.hasPrefix(aIP + " ") {
                    #expect(line == "\(aIP) \(Self.announcement(nameplate: nameplate, port: port))")
                } else {
                    #expect(line == "\(bIP) \(Self.query(nameplate: nameplate))")
                }
            }
            // The words of the code and the names sent appear nowhere.
            let words = code.split(separator: "-").dropFirst().map { Data($0.utf8).map { String(format: "%02x", $0) }.joined() }
            for word in words { #expect(!seen.contains { $0.contains(word) }) }
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    @Test func twoSendersOnOneLANDoNotConfuseTheirReceivers() async throws {
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-lan2")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            let first = work.appendingPathComponent("first.bin")
            let second = work.appendingPathComponent("second.bin")
            try TransferCLITests.randomFile(at: first, bytes: 100_000)
            try TransferCLITests.randomFile(at: second, bytes: 150_000)
            let out1 = work.appendingPathComponent("out1"), out2 = work.appendingPathComponent("out2")
            for out in [out1, out2] {
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                try TestUser.give(out)
            }
            // Both senders on host a at once, each announcing its own nameplate.
            let sender1 = try lab.tern("a", ["send", "--json", "--timeout", "60", first.path])
            let sender2 = try lab.tern("a", ["send", "--json", "--timeout", "60", second.path])
            let code1 = try #require(try await Self.field("code", of: "code", in: sender1) as? String)
            let code2 = try #require(try await Self.field("code", of: "code", in: sender2) as? String)
            // Two senders drawing the same nameplate (1 in 900) is the
            // collision docs/architecture.md describes; this test is about
            // receivers telling different ones apart.
            try #require(code1.prefix { $0 != "-" } != code2.prefix { $0 != "-" })
            let receiver2 = try lab.tern("b", ["receive", code2, "--yes", "-o", out2.path, "--timeout", "60"])
            let receiver1 = try lab.tern("b", ["receive", code1, "--yes", "-o", out1.path, "--timeout", "60"])
            #expect(try await receiver1.wait(timeout: 90) == 0, "receiver 1: \(receiver1.stderr.text)")
            #expect(try await receiver2.wait(timeout: 90) == 0, "receiver 2: \(receiver2.stderr.text)")
            #expect(try await sender1.wait(timeout: 30) == 0)
            #expect(try await sender2.wait(timeout: 30) == 0)
            #expect(try Self.sameContents(first, out1.appendingPathComponent("first.bin")))
            #expect(try Self.sameContents(second, out2.appendingPathComponent("second.bin")))
            #expect(!FileManager.default.fileExists(atPath: out1.appendingPathComponent("second.bin").path))
            #expect(!FileManager.default.fileExists(atPath: out2.appendingPathComponent("first.bin").path))
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    @Test func withMulticastFilteredFromWorksAndTheTimeoutNamesTheWaysForward() async throws {
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-lan3")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            // No multicast in or out of a and b; unicast passes.
            for host in ["a", "b"] {
                try #require(try await lab.root(host, ["iptables", "-w", "-A", "INPUT", "-d", "224.0.0.0/4", "-j", "DROP"]) == 0)
                try #require(try await lab.root(host, ["iptables", "-w", "-A", "OUTPUT", "-d", "224.0.0.0/4", "-j", "DROP"]) == 0)
            }
            let file = work.appendingPathComponent("notes.bin")
            try TransferCLITests.randomFile(at: file, bytes: 80_000)
            let out = try TransferCLITests.outputDirectory(in: work)
            let aIP = try #require(lab.environment["A_IP"])
            let sender = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path])
            let code = try #require(try await Self.field("code", of: "code", in: sender) as? String)

            let lost = try lab.tern("b", ["receive", code, "--yes", "-o", out.path, "--timeout", "3"])
            #expect(try await lost.wait(timeout: 30) == 4)
            let message = lost.stderr.text
            #expect(message.contains("No relay configured: looking for the sender on this network"))
            #expect(message.contains("no sender for code"))
            #expect(message.contains("--relay"))
            #expect(message.contains("--from ADDRESS"))
            #expect(message.contains("same network"))

            let found = try lab.tern("b", ["receive", code, "--from", aIP, "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await found.wait(timeout: 90) == 0, "receiver: \(found.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0, "sender: \(sender.stderr.text)")
            #expect(found.stderr.text.contains("Found the sender at \(aIP):"))
            #expect(try Self.sameContents(file, out.appendingPathComponent("notes.bin")))
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    /// A receiver with a relay configured races it against the LAN: a
    /// sender in LAN mode is found on the network while the relay (a real
    /// one on r) waits in vain; the relay attempt is dropped.
    @Test func aReceiverWithARelayConfiguredFindsALANSenderToo() async throws {
        let lab = try await LabRun.up("lan")
        let work = try makeTestDirectory(prefix: "tern-lan4")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            let rIP = try #require(lab.environment["R_IP"])
            let aIP = try #require(lab.environment["A_IP"])
            let relay = try lab.tern("r", ["relay", "--listen", "\(rIP):4747", "--stun-listen", "off"])
            _ = try await relay.waitForLine(in: \.stderr) { $0.contains("relay listening") }
            let file = work.appendingPathComponent("memo.bin")
            try TransferCLITests.randomFile(at: file, bytes: 60_000)
            let out = try TransferCLITests.outputDirectory(in: work)
            let sender = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path])
            let code = try #require(try await Self.field("code", of: "code", in: sender) as? String)
            let receiver = try lab.tern("b", ["receive", code, "--relay", "ws://\(rIP):4747", "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await receiver.wait(timeout: 90) == 0, "receiver: \(receiver.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0)
            #expect(receiver.stderr.text.contains("Found the sender at \(aIP):"))
            #expect(try Self.sameContents(file, out.appendingPathComponent("memo.bin")))
            relay.process.terminate()
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }
}
