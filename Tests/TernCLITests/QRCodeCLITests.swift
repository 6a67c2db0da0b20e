import Foundation
import Testing
import TernTestSupport

/// The QR code `tern send` prints on a terminal: run in a pseudo-terminal
/// (script(1)), drawn back into a picture module by module, and read by a
/// real scanner (zbar's zbarimg): it must decode to the receive link.
@Suite(.serialized) struct QRCodeCLITests {
    static let code = "5-aardvark-adroitness"
    static let blocks: Set<Character> = ["\u{2588}", "\u{2580}", "\u{2584}", " "]

    /// `tern send --text hi` on a terminal until it has printed the link;
    /// returns everything it wrote there.
    static func sendOnTerminal(_ relay: RelayProcess, extra: [String] = [], environment: [String: String] = [:]) async throws -> String {
        let command = ([PackagePaths.ternBinary.path, "send", "--text", "hi", "--relay", relay.url, "--code", code, "--timeout", "20"] + extra)
            .joined(separator: " ")
        var environment = environment
        environment["SHELL"] = "/bin/sh"
        let terminal = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/script"), arguments: ["-qfec", command, "/dev/null"],
                                          environment: environment)
        _ = try await terminal.waitForLine(in: \.stdout, timeout: 30) { $0.contains("On the other machine run") || $0.contains("Receive link") }
        // The link comes last, when there is a code to draw.
        _ = try? await terminal.waitForLine(in: \.stdout, timeout: 1) { $0.contains("Receive link") }
        terminal.signal(SIGTERM)
        _ = try? await terminal.wait(timeout: 10)
        return terminal.stdout.text
    }

    /// The code's rows of half blocks as a PBM picture: each character is
    /// two modules high, light modules (drawn blocks) white, the rest black,
    /// 4 pixels a module, with a white margin.
    static func picture(of lines: [String]) -> String {
        var modules: [[Bool]] = []  // true = dark
        for line in lines {
            var upper: [Bool] = [], lower: [Bool] = []
            for character in line {
                switch character {
                case "\u{2588}": upper.append(false); lower.append(false)
                case "\u{2580}": upper.append(false); lower.append(true)
                case "\u{2584}": upper.append(true); lower.append(false)
                default: upper.append(true); lower.append(true)
                }
            }
            modules += [upper, lower]
        }
        let scale = 4, margin = 16
        let width = (modules.first?.count ?? 0) * scale + 2 * margin
        let height = modules.count * scale + 2 * margin
        var text = "P1\n\(width) \(height)\n"
        for y in 0..<height {
            var row: [String] = []
            for x in 0..<width {
                let my = (y - margin) / scale, mx = (x - margin) / scale
                let inside = y >= margin && x >= margin && my < modules.count && mx < modules[my].count
                row.append(inside && modules[my][mx] ? "1" : "0")
            }
            text += row.joined(separator: " ") + "\n"
        }
        return text
    }

    @Test func theQRCodeOnATerminalDecodesToTheReceiveLink() async throws {
        let relay = try await RelayProcess.start(stun: false)
        let screen = try await Self.sendOnTerminal(relay)
        try await relay.stop()
        let link = "http://127.0.0.1:\(relay.port)/#\(Self.code)"
        #expect(screen.contains("Receive link: \(link)"))
        // A terminal ends lines with "\r\n" (one Character in Swift).
        let lines = screen.components(separatedBy: .newlines)
            .filter { !$0.isEmpty && $0.contains("\u{2588}") && $0.allSatisfy { Self.blocks.contains($0) } }
        try #require(lines.count >= 10, "no QR code in: \(screen)")

        let work = try makeTestDirectory(prefix: "tern-qr")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("code.pbm")
        try Data(Self.picture(of: lines).utf8).write(to: image)
        try TestUser.give(image)
        let scanner = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/zbarimg"), arguments: ["--raw", "-q", image.path])
        #expect(try await scanner.wait(timeout: 30) == 0, "zbarimg: \(scanner.stderr.text)")
        #expect(scanner.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines) == link)
    }

    @Test func noQrAndTheSettingTurnItOff() async throws {
        let relay = try await RelayProcess.start(stun: false)
        let flagged = try await Self.sendOnTerminal(relay, extra: ["--no-qr"])
        let configured = try await Self.sendOnTerminal(relay, environment: ["TERN_QR": "off"])
        try await relay.stop()
        for screen in [flagged, configured] {
            #expect(screen.contains("On the other machine run"))
            #expect(!screen.contains("\u{2588}"))
            #expect(!screen.contains("Receive link"))
        }
    }

    @Test func theJSONCodeEventCarriesTheLinkAndNoQRCode() async throws {
        let relay = try await RelayProcess.start(stun: false)
        let sender = try RunningProcess(arguments: ["send", "--json", "--text", "hi", "--relay", relay.url, "--timeout", "20"])
        let line = try await sender.waitForLine(in: \.stdout) { $0.contains("\"event\":\"code\"") }
        sender.signal(SIGTERM)
        _ = try? await sender.wait(timeout: 10)
        try await relay.stop()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let code = try #require(object["code"] as? String)
        #expect(object["link"] as? String == "http://127.0.0.1:\(relay.port)/#\(code)")
        #expect(!sender.stdout.text.contains("\u{2588}"))
    }
}
