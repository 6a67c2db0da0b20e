import Foundation

/// Where the package is, found from this file's path.
public enum PackagePaths {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The built `tern` executable: $TERN_BINARY, or .build/debug/tern;
    /// when the tests run as root, a copy the unprivileged test user can
    /// run if that user cannot reach the build folder.
    public static var ternBinary: URL { TestUser.reachable(builtTern) }

    static var builtTern: URL {
        if let path = ProcessInfo.processInfo.environment["TERN_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return root.appendingPathComponent(".build/debug/tern")
    }
}

/// The account test children run as. Users are not root, so neither is a
/// `tern` started by a test: when the tests themselves run as root (CI
/// does), every child is started through setpriv(1) as `nobody`, with a
/// home of its own; root stays with the test process for what needs it.
public enum TestUser {
    public static let uid: uid_t = 65534
    public static let gid: gid_t = 65534

    /// True when children are started as the unprivileged user.
    public static var dropsPrivileges: Bool { geteuid() == 0 }

    /// The command line that runs `executable` as the test user.
    static func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard dropsPrivileges else { return (executable, arguments) }
        return ("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--", executable] + arguments)
    }

    /// Hands `url` (a file or directory the test made) to the test user.
    public static func give(_ url: URL) throws {
        guard dropsPrivileges else { return }
        guard chown(url.path, uid, gid) == 0 else {
            throw SocketFailure(description: "chown \(url.path): errno \(errno)")
        }
    }

    private static let copies = NSLock()
    nonisolated(unsafe) private static var copied: [String: URL] = [:]
    /// The copies go when the test process exits (atexit).
    nonisolated(unsafe) private static var removesCopiesAtExit = false

    /// `binary` itself when the test user can reach and run it, otherwise
    /// a copy in a world-readable temporary folder (made once per binary).
    static func reachable(_ binary: URL) -> URL {
        guard dropsPrivileges, !othersCanRun(binary.path) else { return binary }
        return copies.withLock {
            if let copy = copied[binary.path] { return copy }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tern-bin-\(UUID().uuidString)")
            let copy = folder.appendingPathComponent(binary.lastPathComponent)
            if !removesCopiesAtExit {
                removesCopiesAtExit = true
                atexit { TestUser.removeCopies() }
            }
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                chmod(folder.path, 0o755)
                try FileManager.default.copyItem(at: binary, to: copy)
                chmod(copy.path, 0o755)
            } catch {
                try? FileManager.default.removeItem(at: folder)
                return binary  // the spawn then fails with a clear error
            }
            copied[binary.path] = copy
            return copy
        }
    }

    private static func removeCopies() {
        let folders = copies.withLock { copied.values.map { $0.deletingLastPathComponent() } }
        for folder in folders { try? FileManager.default.removeItem(at: folder) }
    }

    /// Whether every folder on the way is searchable, and the file
    /// executable, by others.
    private static func othersCanRun(_ path: String) -> Bool {
        var current = URL(fileURLWithPath: path).standardizedFileURL
        var status = stat()
        guard stat(current.path, &status) == 0, status.st_mode & 0o001 != 0 else { return false }
        while current.path != "/" {
            current = current.deletingLastPathComponent()
            guard stat(current.path, &status) == 0, status.st_mode & 0o001 != 0 else { return false }
        }
        return true
    }
}

/// A fresh directory under the temporary folder that the `tern` processes
/// a test starts may write into (owned by the test user when the tests run
/// as root), named `prefix` and `unique`.
public func makeTestDirectory(prefix: String, unique: String = UUID().uuidString) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(unique)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    try TestUser.give(url)
    return url
}

public struct ProcessTimeout: Error, CustomStringConvertible {
    public var command: String
    public init(command: String) { self.command = command }
    public var description: String { "timed out waiting for \(command)" }
}

/// Collects everything a pipe delivers, from a reader thread of its own.
///
/// Not Foundation's readabilityHandler: its dispatch source watches the
/// descriptor, and when the FileHandle is freed and the number reused while
/// the source is still registered, libdispatch crashes. The thread holds the
/// pipe until it reads end-of-file, so the descriptor stays valid as long as
/// anything reads it.
public final class PipeCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var ended = false
    let pipe = Pipe()

    init() {
        // Close-on-exec: a process spawned by another test in parallel must
        // not inherit this pipe, or the pipe's end would wait for that
        // process. The child's own copy (dup2 onto 0, 1 or 2) is unaffected.
        markCloseOnExec(pipe)
    }

    /// Starts reading; call once the child has its copy of the write end.
    func startReading() {
        let pipe = self.pipe
        Thread.detachNewThread { [self, pipe] in
            let fd = pipe.fileHandleForReading.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                lock.withLock { data.append(contentsOf: buffer[..<count]) }
            }
            lock.withLock { ended = true }
        }
    }

    /// True once the writing end is closed and everything was read.
    public var atEnd: Bool {
        lock.lock()
        defer { lock.unlock() }
        return ended
    }

    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    public var lines: [String] { text.split(separator: "\n").map(String.init) }
}

func markCloseOnExec(_ pipe: Pipe) {
    for fd in [pipe.fileHandleForReading.fileDescriptor, pipe.fileHandleForWriting.fileDescriptor] {
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }
}

/// Pipes are made and processes spawned one at a time, so no spawn can
/// inherit a pipe in the moment before it is marked close-on-exec.
private let spawnLock = NSLock()

/// A pipe whose two descriptors are close-on-exec, made under the spawn
/// lock: a child another test spawns at the same moment cannot inherit an
/// end (an inherited write end would keep the reader from ever seeing the
/// end of input).
public func makeCloseOnExecPipe() throws -> (read: Int32, write: Int32) {
    spawnLock.lock()
    defer { spawnLock.unlock() }
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw SocketFailure(description: "pipe: errno \(errno)") }
    for fd in ends { _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) }
    return (ends[0], ends[1])
}

/// A child started with posix_spawn. Not Foundation's Process: on Linux its
/// spawn walks every descriptor this process has open to close each in the
/// child, and it crashed there (a bad read in memcpy) in a CI run while the
/// parallel tests held some 1,300 descriptors. Here the child keeps only
/// 0, 1 and 2: every other descriptor is closed in the child
/// (posix_spawn_file_actions_addclosefrom_np, glibc 2.34+: close_range in
/// the child, no walk in this process). Pipes are also marked close-on-exec,
/// but SwiftNIO creates its sockets without SOCK_CLOEXEC on Linux: a coturn
/// spawned by a parallel test kept a driver's UDP socket bound after the
/// driver closed it, and reopening it on its port failed with EADDRINUSE.
public final class ChildProcess: @unchecked Sendable {
    public let processIdentifier: Int32
    private let lock = NSLock()
    private var status: Int32?

    init(executable: String, arguments: [String], environment: [String: String], directory: String,
         stdin: Int32, stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // Declared by glibc 2.34+, not by Swift's Glibc module.
        guard let closeFrom = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            throw NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSYS), userInfo: [NSFilePathErrorKey: executable])
        }
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard unsafeBitCast(closeFrom, to: AddCloseFrom.self)(&actions, 3) == 0 else {
            throw NSError(domain: NSPOSIXErrorDomain, code: Int(EINVAL), userInfo: [NSFilePathErrorKey: executable])
        }
        // glibc 2.29+ has it, but Swift's Glibc module does not declare it.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else {
            throw NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSYS), userInfo: [NSFilePathErrorKey: executable])
        }
        typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        let addChdir = unsafeBitCast(symbol, to: AddChdir.self)
        guard addChdir(&actions, directory) == 0 else {
            throw NSError(domain: NSPOSIXErrorDomain, code: Int(EINVAL), userInfo: [NSFilePathErrorKey: directory])
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling and an empty mask in the child, in a
        // process group of its own (as Foundation's Process does).
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw NSError(domain: NSPOSIXErrorDomain, code: Int(result), userInfo: [NSFilePathErrorKey: executable])
        }
        processIdentifier = pid
    }

    /// Reaps the child if it has exited (once; later calls keep the status).
    private func reap() {
        guard status == nil else { return }
        var raw: Int32 = 0
        guard waitpid(processIdentifier, &raw, WNOHANG) == processIdentifier else { return }
        // The exit code, or the number of the signal that ended it.
        status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }

    public var isRunning: Bool {
        lock.withLock {
            reap()
            return status == nil
        }
    }

    /// The exit code, or the signal's number if a signal ended the child.
    public var terminationStatus: Int32 {
        lock.withLock {
            reap()
            return status ?? -1
        }
    }

    public func terminate() {
        if isRunning { kill(processIdentifier, SIGTERM) }
    }

    /// A child still running when its owner goes: SIGTERM, then SIGKILL
    /// after two seconds, and reaped, on a thread of its own; `then` runs
    /// once the child has ended (at once when it already had).
    func stopInBackground(then: @escaping @Sendable () -> Void = {}) {
        guard isRunning else { return then() }
        kill(processIdentifier, SIGTERM)
        // Most children end within moments of SIGTERM: wait for that here,
        // so that `then` does not depend on the background thread outliving
        // the test process.
        if waitForExit(seconds: 0.2) { return then() }
        Thread.detachNewThread { [self] in
            if !waitForExit(seconds: 2) { kill(processIdentifier, SIGKILL) }
            while isRunning { usleep(10_000) }
            then()
        }
    }

    /// SIGKILL to the child's process group (spawned as its own, numbered
    /// as the child), unless the child was reaped already: its number may
    /// then be another process's.
    func killGroup() {
        lock.withLock {
            if status == nil { kill(-processIdentifier, SIGKILL) }
        }
    }

    /// Waits up to `seconds` for the child to end; true when it has.
    @discardableResult
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning {
            if Date() >= deadline { return false }
            usleep(10_000)
        }
        return true
    }
}

/// A running `tern` (or other) process with its output collected.
public final class RunningProcess: @unchecked Sendable {
    public let process: ChildProcess
    public let stdout: PipeCollector
    public let stderr: PipeCollector
    public let stdin: Pipe
    public let commandLine: String
    /// The child's working directory: a fresh one, so that a receiver run
    /// without -o writes there and not into the package.
    public let workingDirectory: URL

    /// - Parameter privileged: keep root for this child (only for what
    ///   needs it); by default a child of a root test runs as `TestUser`.
    public init(executable: URL = PackagePaths.ternBinary, arguments: [String], environment: [String: String] = [:],
                privileged: Bool = false) throws {
        spawnLock.lock()
        defer { spawnLock.unlock() }
        stdout = PipeCollector()
        stderr = PipeCollector()
        stdin = Pipe()
        markCloseOnExec(stdin)
        let dropping = TestUser.dropsPrivileges && !privileged
        workingDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workingDirectory, withIntermediateDirectories: true)
        if dropping { try TestUser.give(workingDirectory) }
        var env = ProcessInfo.processInfo.environment
        for key in ["TERN_CODE", "TERN_RELAY", "TERN_TURN_SECRET"] { env[key] = nil }
        // The unprivileged child's home is its working directory.
        if dropping { env["HOME"] = workingDirectory.path }
        env.merge(environment) { $1 }
        commandLine = ([executable.lastPathComponent] + arguments).joined(separator: " ")
        let (program, argv) = dropping ? TestUser.command(executable.path, arguments) : (executable.path, arguments)
        process = try ChildProcess(
            executable: program, arguments: argv, environment: env, directory: workingDirectory.path,
            stdin: stdin.fileHandleForReading.fileDescriptor, stdout: stdout.pipe.fileHandleForWriting.fileDescriptor,
            stderr: stderr.pipe.fileHandleForWriting.fileDescriptor)
        // The child has its copies: this process's go, once, through their
        // handles (so nothing closes those numbers again once reused).
        try? stdin.fileHandleForReading.close()
        try? stdout.pipe.fileHandleForWriting.close()
        try? stderr.pipe.fileHandleForWriting.close()
        stdout.startReading()
        stderr.startReading()
    }

    /// Writes to the process's standard input. Throws (EPIPE) when the
    /// process has gone, where FileHandle's old `write(_:)` traps and takes
    /// the whole test run down with it.
    public func write(_ text: String) throws {
        try stdin.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    }

    public func closeInput() {
        try? stdin.fileHandleForWriting.close()
    }

    /// Waits for the exit; returns the exit status. Kills the process on timeout.
    @discardableResult
    public func wait(timeout: Double = 30) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw ProcessTimeout(command: commandLine)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Let the readers drain what is left in the pipes, up to their end.
        // (init already closed this process's copies of the write ends;
        // closing them again here would close whatever descriptor reused
        // those numbers, another test's pipe.)
        let drained = Date().addingTimeInterval(5)
        while !(stdout.atEnd && stderr.atEnd) && Date() < drained {
            try await Task.sleep(for: .milliseconds(5))
        }
        return process.terminationStatus
    }

    /// Waits until a line of stdout or stderr satisfies `match`, and returns it.
    public func waitForLine(in stream: KeyPath<RunningProcess, PipeCollector>, timeout: Double = 20,
                            where match: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = self[keyPath: stream].lines.first(where: match) { return line }
            if !process.isRunning, let line = self[keyPath: stream].lines.first(where: match) { return line }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Once more after the deadline: a task kept off the cooperative pool
        // by CPU-bound tests may only wake after it, with the line long there.
        if let line = self[keyPath: stream].lines.first(where: match) { return line }
        throw ProcessTimeout(command: "\(commandLine) to print a matching line; stderr: \(stderr.text.suffix(2000))")
    }

    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// SIGSTOP, then waits (up to `seconds`) until every thread of the child
    /// has stopped. kill(2) returns before a thread running on the other
    /// core has taken the signal: a relay stopped that way answered one more
    /// frame (a CI run closed a session against it in 8 ms).
    public func pause(waiting seconds: Double = 2) async {
        signal(SIGSTOP)
        let tasks = "/proc/\(process.processIdentifier)/task"
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
            let stopped = !threads.isEmpty && threads.allSatisfy { thread in
                // "pid (name) S …": the state follows the last parenthesis.
                guard let stat = try? String(contentsOfFile: "\(tasks)/\(thread)/stat", encoding: .utf8),
                      let end = stat.lastIndex(of: ")") else { return false }
                let state = stat[stat.index(after: end)...].drop { $0 == " " }.first
                return state == "T" || state == "t"
            }
            if stopped { return }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// SIGKILL to the child and every process in its group (a browser's
    /// helpers, a shell's commands), then waits up to `seconds` for the child
    /// to end, so that nothing writes into its folders any more.
    public func killGroup(waiting seconds: Double = 5) {
        process.killGroup()
        process.waitForExit(seconds: seconds)
    }

    deinit {
        // Removed once the child has ended: a child still writing into it
        // (a receiver, a browser's cache) would otherwise leave it behind.
        let directory = workingDirectory
        process.stopInBackground { removeTestItem(directory) }
    }
}

/// A real `tern relay` process on loopback, with ports the kernel chose.
public final class RelayProcess: @unchecked Sendable {
    public let running: RunningProcess
    public let port: Int
    public let stunPort: Int?

    public var url: String { "ws://127.0.0.1:\(port)" }

    public static func start(_ extraArguments: [String] = [], stun: Bool = true) async throws -> RelayProcess {
        var arguments = ["relay", "--listen", "127.0.0.1:0", "--log-level", "info"]
        arguments += stun ? ["--stun-listen", "127.0.0.1:0"] : ["--stun-listen", "off"]
        let running = try RunningProcess(arguments: arguments + extraArguments)
        let line = try await running.waitForLine(in: \.stderr) { $0.contains("relay listening") }
        guard let port = Self.field("rendezvous_port", in: line).flatMap(Int.init) else {
            throw ProcessTimeout(command: "relay port in: \(line)")
        }
        return RelayProcess(running: running, port: port, stunPort: Self.field("stun_port", in: line).flatMap(Int.init))
    }

    private init(running: RunningProcess, port: Int, stunPort: Int?) {
        self.running = running
        self.port = port
        self.stunPort = stunPort
    }

    static func field(_ name: String, in line: String) -> String? {
        for part in line.split(separator: " ") where part.hasPrefix(name + "=") {
            return String(part.dropFirst(name.count + 1))
        }
        return nil
    }

    /// Stops the relay with SIGTERM and returns its exit status.
    @discardableResult
    public func stop() async throws -> Int32 {
        running.signal(SIGTERM)
        return try await running.wait(timeout: 10)
    }
}

/// A minimal HTTP/1.1 GET over a socket, returning (body, status line).
public func httpGet(port: Int, path: String) async throws -> (String, String) {
    let response = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/curl"), arguments: ["-s", "-i", "-m", "5", "http://127.0.0.1:\(port)\(path)"])
    _ = try await response.wait()
    let parts = response.stdout.text.components(separatedBy: "\r\n\r\n")
    return (parts.count > 1 ? parts[1] : "", parts.first?.components(separatedBy: "\r\n").first ?? "")
}

/// 127.0.0.1:`port` as a socket address.
func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    return address
}

/// Calls `body` with `address` as the `sockaddr` pointer and length that
/// bind, connect and sendto take.
func withSocketAddress<Result>(_ address: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

public struct SocketFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A blocking IPv4 UDP socket on loopback, for request/response tests.
public final class UDPTestSocket {
    private let fd: Int32
    public let localPort: UInt16

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw SocketFailure(description: "socket: \(errno)") }
        var address = loopbackAddress(port: 0)
        let bound = withSocketAddress(&address) { bind(fd, $0, $1) }
        guard bound == 0 else {
            close(fd)
            throw SocketFailure(description: "bind: \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        localPort = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// Sends `datagram` to 127.0.0.1:`port` and waits for one reply.
    public func exchange(_ datagram: [UInt8], port: UInt16, timeoutMilliseconds: Int32 = 2000) throws -> [UInt8] {
        try send(datagram, to: port)
        guard let (reply, _) = try receive(timeoutMilliseconds: timeoutMilliseconds) else {
            throw SocketFailure(description: "no reply")
        }
        return reply
    }

    /// Sends one datagram to 127.0.0.1:`port`.
    public func send(_ datagram: [UInt8], to port: UInt16) throws {
        var address = loopbackAddress(port: port)
        let fd = self.fd
        let sent = datagram.withUnsafeBytes { bytes in
            withSocketAddress(&address) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, $1) }
        }
        guard sent == datagram.count else { throw SocketFailure(description: "sendto: \(errno)") }
    }

    /// One datagram and the port it came from, or nil after the timeout.
    public func receive(timeoutMilliseconds: Int32) throws -> ([UInt8], UInt16)? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, max(0, timeoutMilliseconds)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var source = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { throw SocketFailure(description: "recvfrom: \(errno)") }
        return (Array(buffer.prefix(count)), UInt16(bigEndian: source.sin_port))
    }
}

/// A TCP forwarder on loopback whose connections a test can cut, to break a
/// client's link to a relay without stopping the relay.
public final class TCPProxy: @unchecked Sendable {
    public let port: UInt16
    private let upstreamPort: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var stopped = false

    public init(to upstreamPort: Int) throws {
        self.upstreamPort = UInt16(upstreamPort)
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: 0)
        let listener = self.listener
        let bound = withSocketAddress(&address) { bind(listener, $0, $1) }
        guard bound == 0, listen(listener, 16) == 0 else { throw SocketFailure(description: "proxy bind/listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Closes every connection made through the proxy so far; new ones still work.
    public func cutAll() {
        let open = lock.withLock { () -> [Int32] in
            defer { sockets = [] }
            return sockets
        }
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }  // close the listener once: its number may be reused
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        cutAll()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = loopbackAddress(port: upstreamPort)
            let connected = withSocketAddress(&address) { connect(upstream, $0, $1) }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            lock.withLock { sockets += [client, upstream] }
            Thread.detachNewThread { TCPProxy.pump(from: client, to: upstream) }
            Thread.detachNewThread { TCPProxy.pump(from: upstream, to: client) }
        }
    }

    private static func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            let sent = buffer.withUnsafeBytes { send(destination, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
            if sent != count { break }
        }
        shutdown(destination, Int32(SHUT_RDWR))
        shutdown(source, Int32(SHUT_RDWR))
    }

    deinit { stop() }
}

/// A blocking TCP connection to 127.0.0.1, for stream-protocol tests.
public final class TCPTestSocket {
    private let fd: Int32

    public init(port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(description: "socket: \(errno)") }
        var address = loopbackAddress(port: port)
        let connected = withSocketAddress(&address) { connect(fd, $0, $1) }
        guard connected == 0 else {
            close(fd)
            throw SocketFailure(description: "connect: \(errno)")
        }
        self.fd = fd  // set last: deinit closes it, and only a connected socket
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw SocketFailure(description: "send: \(errno)") }
            offset += sent
        }
    }

    /// Whatever bytes arrive within the timeout (empty: none; nil: the peer closed).
    public func receive(timeoutMilliseconds: Int32) throws -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, max(0, timeoutMilliseconds)) == 1 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw SocketFailure(description: "recv: \(errno)") }
        return count == 0 ? nil : Array(buffer.prefix(count))
    }
}
