import Foundation
import Glibc
import TernTestSupport
import TernCollections
@testable import TernTransfer

enum ScratchFailure: Error {
    case failed(String, Int32)
}

/// A fresh directory under /tmp for one test, removed afterwards without
/// following any symlink inside it. Paths given to its methods are relative
/// to it.
final class ScratchDirectory {
    let path: String

    init(_ label: String) throws {
        var template = Array("/tmp/tern-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        guard made != nil else { throw ScratchFailure.failed("mkdtemp", errno) }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        Self.removeTree(path)
    }

    func absolute(_ relative: String) -> String {
        path + "/" + relative
    }

    func makeDirectory(_ relative: String, mode: mode_t = 0o755) throws {
        guard mkdir(absolute(relative), mode) == 0 else { throw ScratchFailure.failed("mkdir \(relative)", errno) }
        // mkdir applies the umask; the tests want the mode they asked for.
        guard chmod(absolute(relative), mode) == 0 else { throw ScratchFailure.failed("chmod \(relative)", errno) }
    }

    func write(_ bytes: [UInt8], to relative: String, mode: mode_t = 0o644, modified: Int64? = nil) throws {
        let fd = open(absolute(relative), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ScratchFailure.failed("open \(relative)", errno) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard count > 0 else { throw ScratchFailure.failed("write \(relative)", errno) }
            offset += count
        }
        guard fchmod(fd, mode) == 0 else { throw ScratchFailure.failed("fchmod \(relative)", errno) }
        if let modified { try setModified(relative, to: modified) }
    }

    /// Overwrites bytes in place, keeping the size.
    func patch(_ relative: String, at offset: Int, with bytes: [UInt8]) throws {
        let fd = open(absolute(relative), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ScratchFailure.failed("open \(relative)", errno) }
        defer { close(fd) }
        guard pwrite(fd, bytes, bytes.count, off_t(offset)) == bytes.count else { throw ScratchFailure.failed("pwrite \(relative)", errno) }
    }

    func setModified(_ relative: String, to seconds: Int64) throws {
        let times = [timespec(tv_sec: time_t(seconds), tv_nsec: 0), timespec(tv_sec: time_t(seconds), tv_nsec: 0)]
        guard utimensat(AT_FDCWD, absolute(relative), times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw ScratchFailure.failed("utimensat \(relative)", errno)
        }
    }

    func symlink(_ relative: String, to target: String) throws {
        guard Glibc.symlink(target, absolute(relative)) == 0 else { throw ScratchFailure.failed("symlink \(relative)", errno) }
    }

    /// The whole file, or nil when it cannot be read.
    func read(_ relative: String) -> [UInt8]? {
        Self.read(absolute: absolute(relative))
    }

    static func read(absolute path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 { return nil }
            if count == 0 { return out }
            out += buffer[0..<count]
        }
    }

    /// lstat of a path, or nil when nothing is there.
    func status(_ relative: String) -> stat? {
        var info = stat()
        return lstat(absolute(relative), &info) == 0 ? info : nil
    }

    /// Every entry below `relative` (the root itself excluded), each with a
    /// description that changes when the entry does: kind, content hash and
    /// size, link target, and as asked the permission bits, the files'
    /// modification times (seconds) and the directories' (nanoseconds, so
    /// that a name made and removed inside shows). Keys are paths relative
    /// to `relative`; `skipping` leaves out those subtrees.
    func tree(
        _ relative: String = "", modes: Bool = true, fileTimes: Bool = true, directoryTimes: Bool = false, skipping: Set<String> = []
    ) -> [String: String] {
        var out: [String: String] = [:]
        let root = relative.isEmpty ? path : absolute(relative)
        let shape = TreeShape(modes: modes, fileTimes: fileTimes, directoryTimes: directoryTimes, skipping: skipping)
        Self.walk(root, prefix: "", shape: shape, into: &out)
        return out
    }

    private struct TreeShape {
        var modes: Bool
        var fileTimes: Bool
        var directoryTimes: Bool
        var skipping: Set<String>
    }

    private static func walk(_ directory: String, prefix: String, shape: TreeShape, into out: inout [String: String]) {
        for name in names(in: directory) {
            let key = prefix + name
            if shape.skipping.contains(key) { continue }
            let full = directory + "/" + name
            var info = stat()
            guard lstat(full, &info) == 0 else {
                out[key] = "unreadable"
                continue
            }
            let mode = shape.modes ? " mode=" + String(info.st_mode & 0o7777, radix: 8) : ""
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                out[key] = "directory" + mode + (shape.directoryTimes ? " mtime=\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)" : "")
                walk(full, prefix: key + "/", shape: shape, into: &out)
            case S_IFREG:
                let digest = read(absolute: full).map { Digest.sha256($0).hex } ?? "unreadable"
                out[key] = "file size=\(info.st_size) sha256=\(digest)" + mode + (shape.fileTimes ? " mtime=\(info.st_mtim.tv_sec)" : "")
            case S_IFLNK:
                out[key] = "link -> \(linkTarget(full) ?? "?")"
            default:
                out[key] = "other" + mode
            }
        }
    }

    static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory, sorted, without `.` and `..`. A directory
    /// that cannot be opened gives one name saying so, never an empty list.
    static func names(in directory: String) -> [String] {
        guard let stream = opendir(directory) else { return ["<cannot open \(directory)>"] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private static func removeTree(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
            // Make sure a directory left without write or search bits can be emptied.
            _ = chmod(path, 0o700)
            for name in names(in: path) { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }
}

/// Reproducible random bytes.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    var out: [UInt8] = []
    out.reserveCapacity(count + 8)
    while out.count < count {
        withUnsafeBytes(of: generator.next()) { out.append(contentsOf: $0) }
    }
    return Array(out.prefix(count))
}

/// The process umask, read from /proc/self/status (umask(2) would change it
/// under the tests running in parallel).
func processUmask() -> mode_t {
    guard let status = ScratchDirectory.read(absolute: "/proc/self/status") else { return 0o022 }
    for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Umask:") {
        let digits = line.dropFirst("Umask:".count).drop { $0 == " " || $0 == "\t" }
        return mode_t(digits, radix: 8) ?? 0o022
    }
    return 0o022
}

/// The files of a tree (entries in manifest order) as `tern send` offers them.
func offer(for items: [SourceItem]) -> [OfferEntry] {
    var offered: [OfferEntry] = []
    for item in items {
        let top = item.entry.path.split(separator: "/", maxSplits: 1).first.map(String.init) ?? item.entry.path
        if !offered.contains(where: { $0.name == top }) {
            let kind: OfferEntry.Kind
            switch item.entry.kind {
            case .directory: kind = .directory
            case .stream: kind = .stream
            case .file, .symlink: kind = .file
            }
            offered.append(OfferEntry(name: top, kind: kind, size: kind == .stream ? nil : 0, files: 0))
        }
        guard let position = offered.firstIndex(where: { $0.name == top }) else { continue }
        switch item.entry.kind {
        case .file:
            offered[position].files += 1
            offered[position].size = (offered[position].size ?? 0) + (item.entry.size ?? 0)
        case .directory where item.entry.path != top:
            offered[position].directories = (offered[position].directories ?? 0) + 1
        case .symlink:
            offered[position].links = (offered[position].links ?? 0) + 1
        case .directory, .stream:
            continue
        }
    }
    return offered
}

/// The root hash of `bytes` sent in `chunkSize` chunks, computed here from
/// the definition (docs/protocol.md §11.4) rather than by the engines.
func expectedRoot(_ bytes: [UInt8], chunkSize: Int) -> Digest {
    var chain = [UInt8](repeating: 0, count: 32)
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + chunkSize)
        chain = Digest.sha256(chain + Digest.sha256(Array(bytes[offset..<end])).bytes).bytes
        offset = end
    }
    var size: [UInt8] = []
    withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { size.append(contentsOf: $0) }
    return Digest.sha256(chain + size)
}

/// SHA-256 over the roots in manifest order (the `finished` hash).
func expectedTransferHash(_ roots: [Digest]) -> Digest {
    Digest.sha256(roots.flatMap(\.bytes))
}

/// A small thread-safe list (events reported by the engines).
final class Recorder<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []

    func append(_ element: Element) {
        lock.withLock { storage.append(element) }
    }

    var all: [Element] { lock.withLock { storage } }
}
