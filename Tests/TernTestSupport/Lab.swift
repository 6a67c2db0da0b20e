import Foundation

/// A run of the network lab (Tests/lab/lab.sh) for a Swift test: namespaces
/// built with root, tern started in them as the unprivileged user
/// (`lab.sh user HOST …`), everything removed by `down()`.
public final class LabRun: @unchecked Sendable {
    public let id: String
    /// The KEY=VALUE lines `lab.sh up` printed (A_IP, B_IP, R_IP, …).
    public let environment: [String: String]
    static let script = PackagePaths.root.appendingPathComponent("Tests/lab/lab.sh").path

    /// Builds `topology` under a fresh run id (needs root).
    public static func up(_ topology: String) async throws -> LabRun {
        let id = "ln" + String(UInt32.random(in: 0...UInt32.max) % 100_000_000)
        let up = try RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [script, "up", topology],
                                    environment: ["LAB_ID": id, "LAB_QUIET": "1"], privileged: true)
        let status = try await up.wait(timeout: 60)
        guard status == 0 else {
            throw ProcessTimeout(command: "lab.sh up \(topology) (exit \(status)): \(up.stderr.text.suffix(2000))")
        }
        var environment: [String: String] = [:]
        for line in up.stdout.lines {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { environment[parts[0]] = parts[1] }
        }
        return LabRun(id: id, environment: environment)
    }

    private init(id: String, environment: [String: String]) {
        self.id = id
        self.environment = environment
    }

    /// Runs `arguments` in `host`'s namespace as the unprivileged test user.
    public func user(_ host: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> RunningProcess {
        var environment = ["LAB_ID": id]
        environment.merge(extra) { $1 }
        return try RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [Self.script, "user", host] + arguments,
                                  environment: environment, privileged: true)
    }

    /// `tern ARGUMENTS` in `host`'s namespace as the unprivileged user.
    public func tern(_ host: String, _ arguments: [String], environment: [String: String] = [:]) throws -> RunningProcess {
        try user(host, [PackagePaths.ternBinary.path] + arguments, environment: environment)
    }

    /// A command as root in `host`'s namespace (iptables), to its end.
    @discardableResult
    public func root(_ host: String, _ arguments: [String]) async throws -> Int32 {
        let process = try RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [Self.script, "exec", host] + arguments,
                                         environment: ["LAB_ID": id], privileged: true)
        return try await process.wait(timeout: 30)
    }

    /// Starts coturn on r (`lab.sh coturn-start SECRET`, as root) and
    /// returns the KEY=VALUE lines it printed (TURN_URL_UDP, …).
    public func coturnStart(secret: String) async throws -> [String: String] {
        let start = try RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [Self.script, "coturn-start", secret],
                                       environment: ["LAB_ID": id, "LAB_QUIET": "1"], privileged: true)
        let status = try await start.wait(timeout: 60)
        guard status == 0 else {
            throw ProcessTimeout(command: "lab.sh coturn-start (exit \(status)): \(start.stderr.text.suffix(2000))")
        }
        var printed: [String: String] = [:]
        for line in start.stdout.lines {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { printed[parts[0]] = parts[1] }
        }
        return printed
    }

    public func down() async {
        if let down = try? RunningProcess(executable: URL(fileURLWithPath: "/bin/bash"), arguments: [Self.script, "down"],
                                          environment: ["LAB_ID": id, "LAB_QUIET": "1"], privileged: true) {
            _ = try? await down.wait(timeout: 60)
        }
    }
}
