import Foundation
import TernPairing

/// Builds the offer from the paths on the command line: each top-level item
/// with its size and, for a directory, its regular files counted.
enum OfferBuilder {
    static func offer(for paths: [String]) throws(CLIError) -> Offer {
        var entries: [OfferEntry] = []
        for path in paths {
            if path == "-" {
                entries.append(OfferEntry(name: "stdin", kind: .stream, size: nil, files: 0))
                continue
            }
            var info = stat()
            guard lstat(path, &info) == 0 else {
                throw CLIError(.usage, "cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            let name = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                entries.append(OfferEntry(name: name, kind: .file, size: UInt64(info.st_size), files: 1))
            case S_IFDIR:
                let (files, bytes) = try count(directory: path)
                entries.append(OfferEntry(name: name, kind: .directory, size: bytes, files: files))
            default:
                throw CLIError(.usage, "'\(path)' is neither a regular file nor a directory")
            }
        }
        return Offer(entries: entries)
    }

    /// Counts regular files and their bytes below a directory, without following links.
    static func count(directory: String) throws(CLIError) -> (files: UInt64, bytes: UInt64) {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else {
            throw CLIError(.usage, "cannot read directory '\(directory)'")
        }
        var files: UInt64 = 0
        var bytes: UInt64 = 0
        while let relative = enumerator.nextObject() as? String {
            var info = stat()
            guard lstat(directory + "/" + relative, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFREG {
                files += 1
                bytes += UInt64(info.st_size)
            }
        }
        return (files, bytes)
    }
}
