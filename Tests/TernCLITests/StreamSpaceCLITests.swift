import Foundation
import Testing
import TernTestSupport

/// A stream written into a directory has no size to check before it is
/// accepted: the receiver checks the free space before each chunk and stops
/// with `no-space` while the file system still has room, instead of writing
/// until the disk is full. The file system is a small tmpfs the test mounts
/// (as root, as CI runs); both tern processes run unprivileged.
@Suite(.serialized) struct StreamSpaceCLITests {
    typealias CLI = PairingCLITests

    /// Runs `command` as root (mount, umount) and returns its status.
    private static func asRoot(_ arguments: [String]) async throws -> (Int32, String) {
        let process = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: arguments, privileged: true)
        let status = try await process.wait(timeout: 30)
        return (status, process.stderr.text)
    }

    @Test func aStreamIntoASmallFileSystemStopsBeforeItIsFullAndLeavesNothing() async throws {
        try #require(geteuid() == 0, "mounting the tmpfs needs root (CI runs the tests as root)")
        let work = try makeTestDirectory(prefix: "tern-stream-space")
        defer { try? FileManager.default.removeItem(at: work) }
        let small = work.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        // 8 MiB of room for a 32 MiB stream.
        let (mounted, mountError) = try await Self.asRoot(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", small.path])
        try #require(mounted == 0, "mount: \(mountError)")
        defer { _ = umount2(small.path, 2) }  // MNT_DETACH: the tmpfs goes even if a file is still open
        try TestUser.give(small)

        let relay = try await RelayProcess.start()
        let tern = PackagePaths.ternBinary.path
        let code = "45-aardvark-adroitness"
        let sender = try RunningProcess(executable: URL(fileURLWithPath: "/bin/sh"), arguments: [
            "-c", "head -c 33554432 /dev/urandom | '\(tern)' send - --relay \(relay.url) --code \(code) --json --timeout 60",
        ])
        let receiver = try RunningProcess(arguments: [
            "receive", code, "--relay", relay.url, "--yes", "--json", "--timeout", "60", "-o", small.path,
        ])
        let received = try await receiver.wait(timeout: 90)
        let sent = try await sender.wait(timeout: 90)

        #expect(received == 1, "\(receiver.stderr.text)")
        #expect(sent == 1, "\(sender.stderr.text)")
        let reason = "not enough free space: stopped the stream stdin after"
        #expect(receiver.stdout.text.contains(reason) || receiver.stderr.text.contains(reason), "\(receiver.stdout.text) \(receiver.stderr.text)")
        #expect(sender.stdout.text.contains("the other side stopped: " + reason) || sender.stderr.text.contains("the other side stopped: " + reason),
                "\(sender.stdout.text) \(sender.stderr.text)")
        // It stopped with the reserve still free, and took its partial away.
        #expect(try FileManager.default.contentsOfDirectory(atPath: small.path) == [])
        let held = CLI.events(receiver, named: "progress").compactMap { $0["bytes"] as? Int }.max() ?? 0
        #expect(held > 0 && held <= 7 << 20, "held \(held) bytes")
        try await relay.stop()
    }
}
