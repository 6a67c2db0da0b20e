import Foundation
import TernCollections
import TernPairing
import TernTransfer

/// Where `tern receive` writes: decided from `-o` before pairing (is it
/// usable at all?) and from the offer after it (one file or stream may go to
/// standard output or be named by `-o`; anything else goes under a directory).
enum ReceiveTarget {
    /// Where the offer goes.
    enum Placement: Equatable {
        /// The one file or stream to standard output.
        case standardOutput
        /// Everything under this directory (made when missing).
        case directory(String)
        /// The one file or stream as `name` in `directory`, which exists.
        case file(directory: String, name: RelativePath)
    }

    /// Checks before pairing that `-o PATH` can be written: an existing
    /// directory writable by this user, an existing file in a writable
    /// directory (usable only for a one-file offer, checked with the offer),
    /// or a missing name whose parent directory exists and is writable.
    static func check(_ path: String) throws(CLIError) {
        let shown = DisplayText.escaped(path)
        var info = stat()
        if stat(path, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR {
                guard access(path, W_OK | X_OK) == 0 else {
                    throw CLIError(.usage, "cannot write into \(shown): \(String(cString: strerror(errno)))")
                }
                return
            }
            try checkParent(of: path, shown: shown)
            return
        }
        guard errno == ENOENT else { throw CLIError(.usage, "cannot use \(shown): \(String(cString: strerror(errno)))") }
        try checkParent(of: path, shown: shown)
    }

    private static func checkParent(of path: String, shown: String) throws(CLIError) {
        let parent = parentDirectory(of: path)
        var info = stat()
        guard stat(parent, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw CLIError(.usage, "cannot write \(shown): the directory \(DisplayText.escaped(parent)) does not exist")
        }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw CLIError(.usage, "cannot write \(shown): \(DisplayText.escaped(parent)) is not writable (\(String(cString: strerror(errno))))")
        }
    }

    /// Where `offer` goes, given `-o` (nil when not given). `streamIfPiped`:
    /// without `-o`, a stream follows standard output when it is not a terminal.
    static func place(_ option: String?, offer: Offer, streamIfPiped: Bool) throws(CLIError) -> Placement {
        let single = offer.entries.count == 1 && (offer.entries[0].kind == .file || offer.entries[0].kind == .stream)
        let items = "\(offer.entries.count) item\(offer.entries.count == 1 ? "" : "s")"
        if option == "-" {
            guard single else {
                throw CLIError(.usage, "-o - writes one file or stream to standard output, but the offer has \(items); give a directory")
            }
            return .standardOutput
        }
        guard let path = option else {
            return single && offer.entries[0].kind == .stream && streamIfPiped ? .standardOutput : .directory(".")
        }
        var info = stat()
        let exists = stat(path, &info) == 0
        let isDirectory = exists && info.st_mode & S_IFMT == S_IFDIR
        if isDirectory || path.hasSuffix("/") || !single {
            if exists && !isDirectory {
                throw CLIError(.usage, "\(DisplayText.escaped(path)) is not a directory, but the offer has \(items); give a directory")
            }
            return .directory(path)
        }
        // One file or stream, and -o names it.
        let name = URL(fileURLWithPath: path).lastPathComponent
        do throws(TransferError) {
            return .file(directory: parentDirectory(of: path), name: try RelativePath(components: [name]))
        } catch {
            throw CLIError(.usage, "cannot name the file \(DisplayText.escaped(path)): \(error.message)")
        }
    }

    /// The offered top-level names (or the one name `-o` gave) that are
    /// already taken in `target`, as shown to a person (directories end in `/`).
    static func existing(_ offer: Offer, in target: TargetDirectory, name: RelativePath?) -> [String] {
        let names = name.map { [$0] } ?? offer.entries.compactMap { try? RelativePath(components: [$0.name]) }
        return names.compactMap { path in
            switch try? target.entry(at: path) {
            case .missing?, nil: return nil
            case .directory?: return DisplayText.escaped(path.string) + "/"
            default: return DisplayText.escaped(path.string)
            }
        }
    }

    /// The sentence that says what is already there.
    static func existingSentence(_ existing: [String], of count: Int, in directory: String) -> String {
        let shown = existing.prefix(5).joined(separator: ", ") + (existing.count > 5 ? ", …" : "")
        let verb = existing.count == 1 ? "exists" : "exist"
        return "\(existing.count) of the \(count) offered item\(count == 1 ? "" : "s") already \(verb) in \(DisplayText.escaped(directory)): \(shown)"
    }

    /// The user's answer to the question asked when offered names exist:
    /// the way to settle them, or nil to decline. A plain yes accepts as
    /// `--yes` alone does (an identical file is kept, one that differs stops
    /// the transfer).
    static func conflictChoice(_ reply: String?) -> TransferReceiver.Conflict? {
        switch reply?.trimmingCharacters(in: .whitespaces).lowercased() {
        case "y", "yes": return .refuse
        case "o", "overwrite": return .overwrite
        case "r", "rename": return .rename
        case "s", "skip": return .skip
        default: return nil
        }
    }

    static func parentDirectory(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }
}
