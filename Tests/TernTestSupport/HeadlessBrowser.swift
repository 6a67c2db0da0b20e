import Foundation

/// Headless Chromium (Debian's `chromium`, installed by `make deps`) on a
/// page of Tests/browser served by Tests/browser/signal.py on loopback; both
/// stopped when the value goes away. signal.py also serves the built browser
/// page's files (scripts/build-web.sh) under /web/ when `webDirectory` is set.
public final class HeadlessBrowser {
    public let signal: RunningProcess
    public let chromium: RunningProcess
    public let port: Int
    public let profile: URL
    /// The port file, the profile and Chromium's TMPDIR (where it keeps its
    /// org.chromium.Chromium.* files), all removed with the value.
    private let folder: URL

    /// - Parameters:
    ///   - hideLocalAddresses: Chromium's default: host candidates as mDNS
    ///     `.local` names, which tern skips.
    ///   - chromiumArguments: more switches, e.g. `--enable-precise-memory-info`
    ///     (without it `performance.memory` is rounded and cached).
    public init(page: String, hideLocalAddresses: Bool = false, webDirectory: URL? = nil, chromiumArguments: [String] = []) async throws {
        let chromiumPath = "/usr/bin/chromium"
        guard FileManager.default.isExecutableFile(atPath: chromiumPath) else {
            throw SocketFailure(description: "no \(chromiumPath): run `make deps` (it installs Debian's chromium)")
        }
        let directory = PackagePaths.root.appendingPathComponent("Tests/browser")
        // Short names: Chromium makes its singleton socket under TMPDIR, and
        // a socket's path holds at most 107 bytes.
        let folder = try makeTestDirectory(prefix: "tern-chromium", unique: String(UUID().uuidString.prefix(8)))
        self.folder = folder
        let portFile = folder.appendingPathComponent("signal-port")
        let temporary = folder.appendingPathComponent("t")
        profile = folder.appendingPathComponent("profile")
        do {
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: false)
            try TestUser.give(temporary)
            signal = try RunningProcess(
                executable: URL(fileURLWithPath: "/usr/bin/python3"),
                arguments: [directory.appendingPathComponent("signal.py").path, portFile.path] + (webDirectory.map { [$0.path] } ?? []))
        } catch {
            removeTestItem(folder)
            throw error
        }
        var port: Int?
        for _ in 0..<100 {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let value = Int(text) {
                port = value
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard let port else {
            signal.killGroup()
            removeTestItem(folder)
            throw SocketFailure(description: "signal.py did not start: \(signal.stderr.text)")
        }
        self.port = port
        // Plain host addresses instead of mDNS names, unless the test
        // wants Chromium's default (tern skips .local candidates).
        let features = hideLocalAddresses ? [] : ["--disable-features=WebRtcHideLocalIpsWithMdns"]
        let arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        ] + features + chromiumArguments + [
            "--user-data-dir=\(profile.path)", "http://127.0.0.1:\(port)/\(page)",
        ]
        do {
            chromium = try RunningProcess(
                executable: URL(fileURLWithPath: chromiumPath), arguments: arguments, environment: ["TMPDIR": temporary.path])
        } catch {
            signal.killGroup()
            removeTestItem(folder)
            throw error
        }
    }

    /// PUTs `body` through a file (a body on curl's command line is capped
    /// by the kernel's argument size limit).
    public func put(_ path: String, _ body: String) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tern-put-\(UUID().uuidString)")
        try Data(body.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let curl = try RunningProcess(
            executable: URL(fileURLWithPath: "/usr/bin/curl"),
            arguments: ["-sf", "-X", "PUT", "--data-binary", "@\(file.path)", "http://127.0.0.1:\(port)\(path)"])
        guard try await curl.wait() == 0 else { throw SocketFailure(description: "PUT \(path) failed") }
    }

    public func get(_ path: String) async throws -> String? {
        let curl = try RunningProcess(
            executable: URL(fileURLWithPath: "/usr/bin/curl"), arguments: ["-sf", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        _ = try await curl.wait()
        var lines = curl.stdout.text.components(separatedBy: "\n")
        guard lines.last == "200" else { return nil }
        lines.removeLast()
        return lines.joined(separator: "\n")
    }

    public func reports() async throws -> [[String: String]] {
        let text = try await get("/reports") ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: String]
        }
    }

    deinit {
        // The whole group: Chromium's zygotes, renderers and utility
        // processes write into the profile after the main process is gone.
        chromium.killGroup()
        signal.killGroup()
        removeTestItem(folder, retryingFor: 3)
    }
}
