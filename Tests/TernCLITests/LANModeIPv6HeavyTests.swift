import Foundation
import Testing
import TernTestSupport

/// LAN mode over IPv6, in the lab's `lan6` topology: hosts a, b and r on one
/// bridge with IPv4, link-local fe80:: addresses and the ULA prefix
/// fd74:6e::/64 (a is fd74:6e::11, b fd74:6e::12). IPv4 multicast (or all of
/// IPv4) is taken away between a and b, so only the beacon's IPv6 group
/// ff02::74:6e, or an IPv6 `--from`, can bring them together. Root builds the
/// namespaces and the filters; every tern runs as the unprivileged user.
@Suite(.serialized) struct LANModeIPv6HeavyTests {
    /// Prints each datagram that reaches the beacon port of r joined to
    /// tern's IPv6 group on eth0: the sending address (without its zone)
    /// and the bytes in hex.
    static let capture = """
        import socket, struct
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", 4748))
        group = socket.inet_pton(socket.AF_INET6, "ff02::74:6e") + struct.pack("@I", socket.if_nametoindex("eth0"))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        print("ready", flush=True)
        while True:
            data, address = s.recvfrom(4096)
            print(address[0].split("%")[0], data.hex(), flush=True)
        """

    /// No IPv4 multicast in or out of a and b (unicast IPv4 still passes).
    static func blockIPv4Multicast(_ lab: LabRun) async throws {
        for host in ["a", "b"] {
            try #require(try await lab.root(host, ["iptables", "-w", "-A", "INPUT", "-d", "224.0.0.0/4", "-j", "DROP"]) == 0)
            try #require(try await lab.root(host, ["iptables", "-w", "-A", "OUTPUT", "-d", "224.0.0.0/4", "-j", "DROP"]) == 0)
        }
    }

    /// Sends a file and a directory from a, received on b through the IPv6
    /// group alone: the receiver reaches the sender's rendezvous at its
    /// link-local address with the zone, and r (a third host in the group)
    /// hears announcements of nameplate and port only, from a's fe80:: address.
    @Test func findsTheSenderThroughTheIPv6GroupWhenIPv4MulticastIsBlocked() async throws {
        let lab = try await LabRun.up("lan6")
        let work = try makeTestDirectory(prefix: "tern-lan6")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            try await Self.blockIPv4Multicast(lab)
            let (file, directory) = try LANModeHeavyTests.payload(in: work)
            let out = try TransferCLITests.outputDirectory(in: work)
            let aLinkLocal = try #require(lab.environment["A_LL6"])
            let bLinkLocal = try #require(lab.environment["B_LL6"])
            try #require(aLinkLocal.hasPrefix("fe80::") && bLinkLocal.hasPrefix("fe80::"))
            let listener = try lab.user("r", ["/usr/bin/python3", "-c", Self.capture])
            _ = try await listener.waitForLine(in: \.stdout) { $0 == "ready" }

            let sender = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path, directory.path])
            let code = try #require(try await LANModeHeavyTests.field("code", of: "code", in: sender) as? String)
            let port = try #require(try await LANModeHeavyTests.field("port", of: "mode", in: sender) as? Int)
            let nameplate = String(code.prefix { $0 != "-" })
            let receiver = try lab.tern("b", ["receive", code, "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0, "sender: \(sender.stderr.text)")

            #expect(receiver.stderr.text.contains("No relay configured: looking for the sender on this network"))
            #expect(receiver.stderr.text.contains("Found the sender at [\(aLinkLocal)%eth0]:\(port) after"), "\(receiver.stderr.text)")
            #expect(receiver.stderr.text.contains("Connected directly"))
            #expect(try LANModeHeavyTests.sameContents(file, out.appendingPathComponent("report.bin")))
            #expect(try LANModeHeavyTests.sameContents(directory.appendingPathComponent("beach.jpg"), out.appendingPathComponent("photos/beach.jpg")))
            #expect(try LANModeHeavyTests.sameContents(directory.appendingPathComponent("2025/snow.jpg"),
                                                       out.appendingPathComponent("photos/2025/snow.jpg")))

            listener.process.terminate()
            _ = try? await listener.wait(timeout: 10)
            let seen = listener.stdout.lines.filter { $0 != "ready" }
            #expect(seen.contains { $0.hasPrefix(aLinkLocal + " ") })
            for line in seen {
                if line.hasPrefix(aLinkLocal + " ") {
                    #expect(line == "\(aLinkLocal) \(LANModeHeavyTests.announcement(nameplate: nameplate, port: port))")
                } else {
                    #expect(line == "\(bLinkLocal) \(LANModeHeavyTests.query(nameplate: nameplate))")
                }
            }
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    /// A receiver with a relay configured (a real one on r, over IPv4) only
    /// listens on the LAN: it hears the sender's announcements on the IPv6
    /// group and pairs there while the relay waits in vain.
    @Test func aReceiverWithARelayConfiguredHearsTheSenderOnTheIPv6Group() async throws {
        let lab = try await LabRun.up("lan6")
        let work = try makeTestDirectory(prefix: "tern-lan6r")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            try await Self.blockIPv4Multicast(lab)
            let rIP = try #require(lab.environment["R_IP"])
            let aLinkLocal = try #require(lab.environment["A_LL6"])
            let relay = try lab.tern("r", ["relay", "--listen", "\(rIP):4747", "--stun-listen", "off"])
            _ = try await relay.waitForLine(in: \.stderr) { $0.contains("relay listening") }
            let file = work.appendingPathComponent("memo.bin")
            try TransferCLITests.randomFile(at: file, bytes: 60_000)
            let out = try TransferCLITests.outputDirectory(in: work)
            let sender = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path])
            let code = try #require(try await LANModeHeavyTests.field("code", of: "code", in: sender) as? String)
            let receiver = try lab.tern("b", ["receive", code, "--relay", "ws://\(rIP):4747", "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0)
            #expect(receiver.stderr.text.contains("Found the sender at [\(aLinkLocal)%eth0]:"), "\(receiver.stderr.text)")
            #expect(try LANModeHeavyTests.sameContents(file, out.appendingPathComponent("memo.bin")))
            relay.process.terminate()
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    /// a and b without any IPv4 address: the sender gives its ULA address
    /// for --from (bracketed, with the port) and for the receive link, the
    /// page answers there, the receiver finds it through ff02::74:6e, and
    /// ICE connects the two over their IPv6 host candidates.
    @Test func anIPv6OnlyLANPairsAndTheSenderGivesItsIPv6Address() async throws {
        let lab = try await LabRun.up("lan6")
        let work = try makeTestDirectory(prefix: "tern-lan6b")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            for host in ["a", "b"] {
                try #require(try await lab.root(host, ["ip", "-4", "addr", "flush", "dev", "eth0"]) == 0)
            }
            let aIP6 = try #require(lab.environment["A_IP6"])
            let aLinkLocal = try #require(lab.environment["A_LL6"])
            let file = work.appendingPathComponent("plan.bin")
            try TransferCLITests.randomFile(at: file, bytes: 200_000)
            let out = try TransferCLITests.outputDirectory(in: work)

            // What a --json sender says: its address and its page's link.
            let announced = try lab.tern("a", ["send", "--json", "--timeout", "60", file.path])
            let addresses = try #require(try await LANModeHeavyTests.field("addresses", of: "mode", in: announced) as? [String])
            let linkPort = try #require(try await LANModeHeavyTests.field("port", of: "mode", in: announced) as? Int)
            let linkCode = try #require(try await LANModeHeavyTests.field("code", of: "code", in: announced) as? String)
            let link = try #require(try await LANModeHeavyTests.field("link", of: "code", in: announced) as? String)
            #expect(addresses == [aIP6])
            #expect(link == "http://[\(aIP6)]:\(linkPort)/#\(linkCode)")
            let page = try lab.user("r", ["/usr/bin/curl", "-s", "-g", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://[\(aIP6)]:\(linkPort)/"])
            _ = try await page.wait(timeout: 10)
            #expect(page.stdout.text == "200")
            announced.process.terminate()
            _ = try? await announced.wait(timeout: 10)

            // What a person sees, and the receiver taking the found way.
            let sender = try lab.tern("a", ["send", "--timeout", "60", file.path])
            let hint = try await sender.waitForLine(in: \.stderr, timeout: 30) { $0.hasPrefix("On another network segment: tern receive ") }
            let words = hint.split(separator: " ").map(String.init)
            let code = try #require(words.firstIndex(of: "receive").map { words[$0 + 1] })
            let from = try #require(words.last)
            #expect(from.hasPrefix("[\(aIP6)]:"), "\(hint)")
            let port = from.split(separator: ":").last.map(String.init) ?? ""
            let receiver = try lab.tern("b", ["receive", code, "--yes", "-o", out.path, "--timeout", "60"])
            #expect(try await receiver.wait(timeout: 60) == 0, "receiver: \(receiver.stderr.text)")
            #expect(try await sender.wait(timeout: 30) == 0, "sender: \(sender.stderr.text)")
            #expect(receiver.stderr.text.contains("Found the sender at [\(aLinkLocal)%eth0]:\(port) after"), "\(receiver.stderr.text)")
            #expect(receiver.stderr.text.contains("Connected directly"))
            #expect(try LANModeHeavyTests.sameContents(file, out.appendingPathComponent("plan.bin")))
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }

    /// With multicast filtered on both families, a receiver without --from
    /// hears nothing (exit 4); --from reaches the sender at its ULA address,
    /// alone (a unicast query to the beacon port) or with the port it printed
    /// (the rendezvous itself).
    @Test func fromTakesAnIPv6Address() async throws {
        try await Self.withMulticastFiltered(forms: { ip6, _, port in [ip6, "[\(ip6)]:\(port)", "[\(ip6)]"] }, checksTimeout: true)
    }

    /// The same with a's link-local address, which needs b's interface as its
    /// zone: alone and with the port, and without the zone (b has one
    /// interface with a link-local address, eth0, which is taken; dialling the
    /// rendezvous without it failed with connect()'s "invalid argument").
    @Test func fromTakesALinkLocalAddressWithItsInterface() async throws {
        try await Self.withMulticastFiltered(forms: { _, linkLocal, port in
            ["\(linkLocal)%eth0", "[\(linkLocal)%eth0]:\(port)", "[\(linkLocal)]:\(port)", linkLocal]
        }, checksTimeout: false)
    }

    /// One sender on a per form of --from (each made from a's ULA address,
    /// its link-local address and the sender's port), each received on b.
    static func withMulticastFiltered(forms: (String, String, Int) -> [String], checksTimeout: Bool) async throws {
        let lab = try await LabRun.up("lan6")
        let work = try makeTestDirectory(prefix: "tern-lan6c")
        defer { try? FileManager.default.removeItem(at: work) }
        do {
            try await blockIPv4Multicast(lab)
            for host in ["a", "b"] {
                try #require(try await lab.root(host, ["ip6tables", "-w", "-A", "INPUT", "-d", "ff02::74:6e", "-j", "DROP"]) == 0)
            }
            let aIP6 = try #require(lab.environment["A_IP6"])
            let aLinkLocal = try #require(lab.environment["A_LL6"])
            let file = work.appendingPathComponent("notes.bin")
            try TransferCLITests.randomFile(at: file, bytes: 80_000)

            if !checksTimeout {
                // A zone naming no interface of b is a usage error that says which do.
                let wrong = try lab.tern("b", ["receive", "7-aardvark-adroitness", "--from", "\(aLinkLocal)%eth9", "--yes", "--timeout", "5"])
                #expect(try await wrong.wait(timeout: 30) == 2)
                #expect(wrong.stderr.text.contains("no interface 'eth9' here has a link-local IPv6 address (these do: eth0)"), "\(wrong.stderr.text)")
            }
            if checksTimeout {
                let sender = try lab.tern("a", ["send", "--json", "--timeout", "30", file.path])
                let code = try #require(try await LANModeHeavyTests.field("code", of: "code", in: sender) as? String)
                let lost = try lab.tern("b", ["receive", code, "--yes", "-o", work.path, "--timeout", "3"])
                #expect(try await lost.wait(timeout: 30) == 4)
                #expect(lost.stderr.text.contains("no sender for code"))
                sender.process.terminate()
                _ = try? await sender.wait(timeout: 10)
            }

            var round = 0
            while true {
                round += 1
                let sender = try lab.tern("a", ["send", "--json", "--timeout", "30", file.path])
                let code = try #require(try await LANModeHeavyTests.field("code", of: "code", in: sender) as? String)
                let port = try #require(try await LANModeHeavyTests.field("port", of: "mode", in: sender) as? Int)
                let all = forms(aIP6, aLinkLocal, port)
                let from = all[round - 1]
                let out = work.appendingPathComponent("out\(round)")
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                try TestUser.give(out)
                let receiver = try lab.tern("b", ["receive", code, "--from", from, "--yes", "-o", out.path, "--timeout", "30"])
                #expect(try await receiver.wait(timeout: 60) == 0, "--from \(from): \(receiver.stderr.text)")
                #expect(try await sender.wait(timeout: 30) == 0, "sender for --from \(from): \(sender.stderr.text)")
                let host = from.contains("fe80") ? "\(aLinkLocal)%eth0" : aIP6
                #expect(receiver.stderr.text.contains("Found the sender at [\(host)]:\(port) after"), "--from \(from): \(receiver.stderr.text)")
                #expect(try LANModeHeavyTests.sameContents(file, out.appendingPathComponent("notes.bin")), "--from \(from)")
                if round == all.count { break }
            }
        } catch {
            await lab.down()
            throw error
        }
        await lab.down()
    }
}
