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
public enum SourceScanner {
    public static let standardInputName = "stdin"

    public static func scan(_ paths: [String], warn: (String) -> Void) throws(TransferError) -> [SourceItem] {
        var items: [SourceItem] = []
        var topNames = Set<String>()
        for path in paths {
            if path == "-" {
                guard topNames.insert(standardInputName).inserted else { throw .io("standard input is given twice") }
                items.append(SourceItem(entry: ManifestEntry(path: standardInputName, kind: .stream), localPath: nil))
                continue
            }
            var info = stat()
            guard stat(path, &info) == 0 else { throw .io("cannot read '\(path)': \(String(cString: strerror(errno)))") }
            let name = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
            guard !name.isEmpty, name != "/", name != ".", name != ".." else {
                throw .io("cannot send '\(path)' under a name: give a path that ends in a file or directory name")
            }
            guard topNames.insert(name).inserted else {
                throw .io("two of the given paths are both called '\(name)'; the receiver could not tell them apart")
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                items.append(SourceItem(entry: fileEntry(name, info), localPath: path))
            case S_IFDIR:
                items.append(SourceItem(entry: ManifestEntry(path: name, kind: .directory, mode: UInt32(info.st_mode & 0o777)), localPath: nil))
                try walk(directory: path, relative: name, depth: 1, into: &items, warn: warn)
            default:
                throw .io("'\(path)' is neither a regular file nor a directory")
            }
        }
        return items
    }

    static func fileEntry(_ relative: String, _ info: stat) -> ManifestEntry {
        ManifestEntry(
            path: relative, kind: .file, size: UInt64(info.st_size), mode: UInt32(info.st_mode & 0o777), mtime: Int64(info.st_mtim.tv_sec))
    }

    private static func walk(directory: String, relative: String, depth: Int, into items: inout [SourceItem], warn: (String) -> Void) throws(TransferError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw .io("cannot read the directory '\(directory)'")
        }
        for name in names {
            let local = directory + "/" + name
            let path = relative + "/" + name
            var info = stat()
            guard lstat(local, &info) == 0 else {
                warn("skipped '\(local)': \(String(cString: strerror(errno)))")
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                items.append(SourceItem(entry: fileEntry(path, info), localPath: local))
            case S_IFDIR:
                items.append(SourceItem(entry: ManifestEntry(path: path, kind: .directory, mode: UInt32(info.st_mode & 0o777)), localPath: nil))
                try walk(directory: local, relative: path, depth: depth + 1, into: &items, warn: warn)
            case S_IFLNK:
                guard let target = readLink(local) else {
                    warn("skipped the link '\(local)': cannot read it")
                    continue
                }
                if staysInside(target: target, linkDepth: depth) {
                    items.append(SourceItem(entry: ManifestEntry(path: path, kind: .symlink, target: target), localPath: nil))
                } else {
                    warn("skipped the link '\(local)': it points outside '\(relative.split(separator: "/").first.map(String.init) ?? relative)' (\(target))")
                }
            default:
                warn("skipped '\(local)': not a regular file, directory or link")
            }
        }
    }

    private static func readLink(_ path: String) -> String? {
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
