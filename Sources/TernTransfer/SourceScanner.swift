import Foundation

/// One thing to send: its manifest entry and where its bytes come from.
public struct SourceItem: Sendable {
    public var entry: ManifestEntry
    /// The local file for a `file` entry.
    public var localPath: String?
}

/// Walks the paths given to `tern send` into manifest entries: a file, a
/// directory with everything below it (pre-order, sorted by name), or
/// standard input as a stream. Inside a directory a symbolic link is sent as
/// a link only when its target stays inside the directory given on the
/// command line; other links, devices, sockets and FIFOs are skipped with a
/// warning. A top-level argument that is a link is followed (the user named it).
///
/// What the receiver would refuse, or what cannot be read, is found here,
/// before anything is offered: a file that cannot be opened, a directory
/// that cannot be listed, a name that is not a safe `RelativePath` component
/// (a control character, `:`, a trailing dot, ...). Such a source stops the
/// scan with `.unsendable`, or with `skipUnsendable` is left out with a
/// warning (a directory with everything below it).
public enum SourceScanner {
    public static let standardInputName = "stdin"

    public static func scan(_ paths: [String], skipUnsendable: Bool = false, warn: (String) -> Void) throws(TransferError) -> [SourceItem] {
        // The walk keeps `warn` only while it runs.
        try withoutActuallyEscaping(warn) { (warn) throws(TransferError) -> [SourceItem] in
            var walk = Walk(skipUnsendable: skipUnsendable, warn: warn)
            return try walk.scan(paths)
        }
    }

    static func fileEntry(_ relative: String, _ info: stat) -> ManifestEntry {
        ManifestEntry(
            path: relative, kind: .file, size: UInt64(info.st_size), mode: UInt32(info.st_mode & 0o777), mtime: Int64(info.st_mtim.tv_sec))
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A relative target that, resolved by name from a link `linkDepth`
    /// directories below the top-level directory, never climbs above it.
    static func staysInside(target: String, linkDepth: Int) -> Bool {
        guard !target.isEmpty, !target.hasPrefix("/") else { return false }
        var depth = linkDepth
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..":
                depth -= 1
                if depth < 1 { return false }
            default: depth += 1
            }
        }
        return true
    }
}

/// One scan: its options and its warnings.
private struct Walk {
    let skipUnsendable: Bool
    let warn: (String) -> Void

    mutating func scan(_ paths: [String]) throws(TransferError) -> [SourceItem] {
        var items: [SourceItem] = []
        var topNames = Set<String>()
        for path in paths {
            if path == "-" {
                guard topNames.insert(SourceScanner.standardInputName).inserted else { throw .io("standard input is given twice") }
                items.append(SourceItem(entry: ManifestEntry(path: SourceScanner.standardInputName, kind: .stream), localPath: nil))
                continue
            }
            let shown = TerminalText.escaped(path)
            var info = stat()
            guard stat(path, &info) == 0 else { throw .io("cannot read '\(shown)': \(String(cString: strerror(errno)))") }
            let name = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
            guard !name.isEmpty, name != "/", name != ".", name != ".." else {
                throw .io("cannot send '\(shown)' under a name: give a path that ends in a file or directory name")
            }
            guard topNames.insert(name).inserted else {
                throw .io("two of the given paths are both called '\(TerminalText.escaped(name))'; the receiver could not tell them apart")
            }
            if let problem = Self.nameProblem(name) {
                try unsendable(path, problem)
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                if let problem = Self.openProblem(path) {
                    try unsendable(path, problem)
                    continue
                }
                items.append(SourceItem(entry: SourceScanner.fileEntry(name, info), localPath: path))
            case S_IFDIR:
                guard let names = try list(path) else { continue }
                items.append(SourceItem(entry: ManifestEntry(path: name, kind: .directory, mode: UInt32(info.st_mode & 0o777)), localPath: nil))
                try walk(directory: path, names: names, relative: name, depth: 1, into: &items)
            default:
                throw .io("'\(shown)' is neither a regular file nor a directory")
            }
        }
        return items
    }

    private func walk(directory: String, names: [String], relative: String, depth: Int, into items: inout [SourceItem]) throws(TransferError) {
        for name in names {
            let local = directory + "/" + name
            let path = relative + "/" + name
            // Escaped only for a warning: a tree of 10,000 files needs none.
            var shown: String { TerminalText.escaped(local) }
            var info = stat()
            guard lstat(local, &info) == 0 else {
                try unsendable(local, String(cString: strerror(errno)))
                continue
            }
            let kind = info.st_mode & S_IFMT
            if kind == S_IFREG || kind == S_IFDIR || kind == S_IFLNK, let problem = Self.nameProblem(name) {
                try unsendable(local, problem)
                continue
            }
            switch kind {
            case S_IFREG:
                if let problem = Self.openProblem(local) {
                    try unsendable(local, problem)
                    continue
                }
                items.append(SourceItem(entry: SourceScanner.fileEntry(path, info), localPath: local))
            case S_IFDIR:
                guard let inside = try list(local) else { continue }
                items.append(SourceItem(entry: ManifestEntry(path: path, kind: .directory, mode: UInt32(info.st_mode & 0o777)), localPath: nil))
                try walk(directory: local, names: inside, relative: path, depth: depth + 1, into: &items)
            case S_IFLNK:
                guard let target = SourceScanner.readLink(local) else {
                    warn("skipped the link '\(shown)': cannot read it")
                    continue
                }
                let top = TerminalText.escaped(relative.split(separator: "/").first.map(String.init) ?? relative)
                if !SourceScanner.staysInside(target: target, linkDepth: depth) {
                    warn("skipped the link '\(shown)': it points outside '\(top)' (\(TerminalText.escaped(target)))")
                } else if let problem = TargetDirectory.linkTargetProblem(target, depth: depth) {
                    // The receiver applies this rule too; a link it refuses would stop the whole transfer.
                    warn("skipped the link '\(shown)': its target \(problem) (\(TerminalText.escaped(target)))")
                } else {
                    items.append(SourceItem(entry: ManifestEntry(path: path, kind: .symlink, target: target), localPath: nil))
                }
            default:
                warn("skipped '\(shown)': not a regular file, directory or link")
            }
        }
    }

    /// The sorted names in `directory`, or nil when it cannot be read and is skipped.
    private func list(_ directory: String) throws(TransferError) -> [String]? {
        guard let handle = opendir(directory) else {
            try unsendable(directory, "cannot list it: \(String(cString: strerror(errno)))")
            return nil
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Refuses `path`, or with `skipUnsendable` warns that it is left out.
    private func unsendable(_ path: String, _ reason: String) throws(TransferError) {
        let shown = TerminalText.escaped(path)
        guard skipUnsendable else { throw .unsendable(shown, reason: reason) }
        warn("skipped '\(shown)': \(reason)")
    }

    /// Why the receiver would refuse `name` as a path component, or nil.
    static func nameProblem(_ name: String) -> String? {
        RelativePath.problem(inComponent: name).map { "the receiver would refuse its name (\($0))" }
    }

    /// Whether the regular file at `path` can be opened for reading.
    static func openProblem(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return "cannot open it: \(String(cString: strerror(errno)))" }
        close(fd)
        return nil
    }
}
