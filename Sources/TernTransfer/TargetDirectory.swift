import Glibc

// Linux only (Package.swift): the walk below relies on openat(O_NOFOLLOW)
// semantics and renameat2(RENAME_NOREPLACE) as Linux has them.
#if !os(Linux)
#error("TernTransfer's TargetDirectory supports Linux only")
#endif

/// The directory a transfer writes into, and the receiver's guarantee that
/// nothing outside it is ever created or changed, whatever the sender sends.
///
/// The directory is opened once; every later operation is relative to that
/// descriptor and walks a `RelativePath` one component at a time with
/// `openat(O_DIRECTORY | O_NOFOLLOW)`, so a symlink is never followed on the
/// way down, whether the sender planted it earlier in the transfer or a local
/// process swapped it in. No write goes through a path string that starts at
/// the root. The target directory itself is opened by the path the user gave,
/// symlinks included: that is the user's choice, not the sender's.
///
/// What this cannot stop: a local process with write access to the target
/// that moves a directory tern already holds open to somewhere else. The
/// sender has no such power.
///
/// Resume files live next to the file they belong to: `.<name>.tern-partial`
/// holds the data, `.<name>.tern-state` what has been verified (see
/// `resumeBase(for:)` for names too long to prefix). `RelativePath` refuses
/// those suffixes, so the sender can never name them.
///
/// Modes from the sender pass through the process umask, as `tar` does for
/// a user who is not root: a hostile sender cannot make a file writable by
/// everyone, and setuid, setgid and sticky bits are always dropped.
public final class TargetDirectory: Sendable {
    /// What is at a path, seen without following a symlink.
    public enum Entry: Equatable, Sendable {
        case missing
        case file(size: UInt64, modified: Int64)
        case directory
        case symlink
        case other
    }

    private let root: FileDescriptor
    /// The process umask when the directory was opened, applied to the modes the sender asks for.
    let creationMask: UInt32

    /// Opens `path`; with `create`, makes its last component first (0o755
    /// before the umask) when it is missing. Parents are never created.
    public init(path: String, create: Bool) throws(TransferError) {
        let shown = TerminalText.escaped(path)
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw .io("cannot open the target directory \(shown): the name is empty or contains NUL")
        }
        if create, mkdir(path, 0o755) != 0, errno != EEXIST {
            throw ioFailure("cannot create the target directory \(shown)")
        }
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else {
            throw ioFailure("cannot open the target directory \(shown)")
        }
        root = FileDescriptor(owning: fd, shown: shown)
        creationMask = Self.currentUmask()
    }

    // MARK: - Looking

    /// What is at `path`, without following a symlink at its end. A missing
    /// parent gives `.missing`; a parent that is a symlink or not a directory
    /// is refused.
    public func entry(at path: RelativePath) throws(TransferError) -> Entry {
        try entry(at: path, in: folder(holding: path, creating: false))
    }

    /// `entry(at:)` with `path`'s directory already open (nil: it is missing).
    public func entry(at path: RelativePath, in folder: Folder?) throws(TransferError) -> Entry {
        guard let folder else { return .missing }
        return try Self.entry(named: path.name, in: folder.handle, shown: path)
    }

    /// Free bytes for an unprivileged writer on the target's file system.
    public func availableBytes() -> UInt64? {
        var info = statvfs()
        guard fstatvfs(root.raw, &info) == 0 else { return nil }
        let (bytes, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return overflow ? UInt64.max : bytes
    }

    /// The first free sibling name for `path`: `name (1).ext`, `name (2).ext`, ...
    ///
    /// The counter goes before the last extension, and before `.tar` too when
    /// the name ends in `.tar.<something>`, so `archive.tar.gz` becomes
    /// `archive (1).tar.gz` and `notes.v2.txt` becomes `notes.v2 (1).txt`. A
    /// dotfile has no extension: `.bashrc` becomes `.bashrc (1)`. A name is
    /// free when nothing is there and no partial file for it exists. The
    /// stem is shortened when the result would pass 255 bytes.
    public func uniqueName(for path: RelativePath) throws(TransferError) -> RelativePath {
        let (stem, suffix) = Self.splitExtension(path.name)
        for counter in 1...9999 {
            let tag = " (\(counter))"
            let budget = RelativePath.maxComponentBytes - tag.utf8.count - suffix.utf8.count
            let name = Self.prefix(of: stem, maxBytes: budget) + tag + suffix
            let candidate: RelativePath
            if let parent = path.parent {
                candidate = try parent.appending(name)
            } else {
                candidate = try RelativePath(components: [name])
            }
            guard try entry(at: candidate) == .missing else { continue }
            guard let parent = try openParent(of: candidate, creating: nil) else { return candidate }
            let partial = try Self.entry(named: Self.partialName(for: name), in: parent, shown: candidate)
            if partial == .missing { return candidate }
        }
        throw .exists(TerminalText.escaped(path.string))
    }

    /// The target of the symlink at `path`, or nil when no symlink is there.
    public func linkTarget(at path: RelativePath) throws(TransferError) -> String? {
        guard let parent = try openParent(of: path, creating: nil) else { return nil }
        var buffer = [CChar](repeating: 0, count: RelativePath.maxPathBytes + 1)
        let count = readlinkat(parent.raw, path.name, &buffer, buffer.count)
        // A target as long as the buffer may have been cut: not one tern made.
        guard count >= 0, count < buffer.count else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - One directory for many files

    /// A directory of the target held open while the files that go into it
    /// are looked at, written and committed one after another: a manifest
    /// lists a directory's files together, so one walk serves them all
    /// instead of one walk per operation (about four per file). It is reached
    /// like every other path, one component at a time, never through a
    /// symlink. Holding it open concedes only what this type's comment
    /// already says about a directory tern holds open (a local process may
    /// move it elsewhere meanwhile); the sender cannot rename or link anything.
    public final class Folder: Sendable {
        let handle: FileDescriptor
        /// The components of the directory below the target.
        public let components: [String]

        init(handle: FileDescriptor, components: [String]) {
            self.handle = handle
            self.components = components
        }
    }

    /// The directory that holds `path`, opened without following a symlink;
    /// nil when part of it is missing. With `creating`, missing directories
    /// are made (0o755 before the umask), as `openPartial` does.
    public func folder(holding path: RelativePath, creating: Bool) throws(TransferError) -> Folder? {
        guard let handle = try openParent(of: path, creating: creating ? 0o755 : nil) else { return nil }
        return Folder(handle: handle, components: Array(path.components.dropLast()))
    }

    // MARK: - Directories

    /// Creates every missing directory of `path` with `mode & 0o777` (the
    /// umask applies), refusing to pass through a symlink or a non-directory.
    /// The owner always gets rwx so the transfer can fill the directory.
    public func makeDirectories(_ path: RelativePath, mode: UInt32) throws(TransferError) {
        _ = try openDirectory(path.components[...], creating: mode_t(mode & 0o777 | 0o700), shown: path)
    }

    // MARK: - Partial files and resume state

    /// Opens the partial file for `path` for reading and writing, making it
    /// (0o600) and its parent directories when missing. A partial that is a
    /// symlink, not a regular file, or hard-linked elsewhere is refused, so
    /// writing it cannot reach a file outside the target.
    public func openPartial(for path: RelativePath, truncate: Bool) throws(TransferError) -> FileDescriptor {
        try openPartial(for: path, in: Folder(handle: openParentCreating(path), components: Array(path.components.dropLast())), truncate: truncate)
    }

    /// `openPartial(for:truncate:)` in `path`'s directory, already open.
    public func openPartial(for path: RelativePath, in folder: Folder, truncate: Bool) throws(TransferError) -> FileDescriptor {
        let parent = folder.handle
        let name = Self.partialName(for: path.name)
        // Most partials are new: O_EXCL makes a fresh, empty regular file with
        // one link or fails (a symlink at the name included), so nothing needs
        // checking or cutting; anything already there takes the checked way.
        let fresh = retryingOnInterrupt {
            openat(parent.raw, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(0o600))
        }
        if fresh >= 0 { return FileDescriptor(owning: fresh, path: path) }
        guard errno == EEXIST else {
            throw ioFailure("cannot create the partial file of \(TerminalText.escaped(path.string))")
        }
        guard let file = try openRegular(name, in: parent, flags: O_RDWR | O_CREAT, shown: path, what: "partial file")
        else {
            // O_CREAT gives ENOENT only when the directory vanished under us.
            throw .io("cannot create the partial file of \(TerminalText.escaped(path.string)): its directory was removed")
        }
        if truncate { try file.truncate(to: 0) }
        return file
    }

    /// Opens the existing regular file at `path` read-only (to hash what is
    /// already there). A symlink at `path` or on the way is refused, never
    /// followed; a missing file is an `.io` error.
    public func openForReading(_ path: RelativePath) throws(TransferError) -> FileDescriptor {
        guard let parent = try openParent(of: path, creating: nil),
              let file = try openRegular(path.name, in: parent, flags: O_RDONLY, shown: path, what: "file", singleLink: false)
        else {
            throw .io("cannot read \(TerminalText.escaped(path.string)): it is missing")
        }
        return file
    }

    /// The resume state saved for `path`, or nil when there is none. A state
    /// file that is a symlink or not a regular file is refused; one longer than
    /// `limit` bytes is an `.io` error (the caller may remove the resume files
    /// and start over).
    public func readState(for path: RelativePath, limit: Int) throws(TransferError) -> [UInt8]? {
        try readState(for: path, in: folder(holding: path, creating: false), limit: limit)
    }

    /// `readState(for:limit:)` with `path`'s directory already open (nil: it is missing).
    public func readState(for path: RelativePath, in folder: Folder?, limit: Int) throws(TransferError) -> [UInt8]? {
        guard let parent = folder?.handle else { return nil }
        guard let file = try openRegular(
            Self.stateName(for: path.name), in: parent, flags: O_RDONLY, shown: path, what: "resume state")
        else { return nil }
        let capacity = max(limit, 0) + 1  // one byte more to tell "exactly limit" from "too long"
        var bytes = [UInt8](repeating: 0, count: capacity)
        // withUnsafeMutableBytes rethrows `any Error`; Result keeps the type.
        let count = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(TransferError) -> Int in try file.read(into: buffer, at: 0) }
        }.get()
        guard count <= limit else {
            throw .io("the resume state for \(file.shown) is longer than \(limit) bytes")
        }
        return Array(bytes.prefix(count))
    }

    /// Saves the resume state for `path` atomically: the bytes go to a fresh
    /// temporary file, reach the disk (fdatasync), then replace the state file
    /// with one rename, so a crash leaves the old state or the new one.
    public func writeState(_ bytes: [UInt8], for path: RelativePath) throws(TransferError) {
        let parent = try openParentCreating(path)
        let temporary = Self.stateTemporaryName(for: path.name)
        // Removed first and made with O_EXCL: whatever was planted at this
        // name (a symlink, a hard link) is never written through.
        _ = unlinkat(parent.raw, temporary, 0)
        guard let file = try openRegular(
            temporary, in: parent, flags: O_WRONLY | O_CREAT | O_EXCL, shown: path, what: "resume state")
        else {
            throw .io("cannot save the resume state of \(TerminalText.escaped(path.string)): its directory was removed")
        }
        do throws(TransferError) {
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(TransferError) in try file.write(buffer, at: 0) }
            }.get()
            try file.sync()
            guard renameat(parent.raw, temporary, parent.raw, Self.stateName(for: path.name)) == 0 else {
                throw ioFailure("cannot save the resume state for \(file.shown)")
            }
        } catch {
            _ = unlinkat(parent.raw, temporary, 0)
            throw error
        }
    }

    /// Deletes the partial file and the resume state of `path`, if any.
    public func removeResumeFiles(for path: RelativePath) {
        guard let parent = try? openParent(of: path, creating: nil) else { return }
        Self.unlinkResumeFiles(for: path.name, in: parent)
    }

    // MARK: - Committing

    /// Moves the finished partial file of `path` into place.
    ///
    /// The file gets `mode & 0o777` minus the umask (setuid, setgid and sticky
    /// are dropped) and, when `modified` is given, that modification time in
    /// Unix seconds. Without `replace` an existing entry is never overwritten,
    /// atomically (`renameat2(RENAME_NOREPLACE)`), and `.exists` is thrown.
    /// With `replace` a file or a symlink is replaced (the link itself, never
    /// what it points to), a directory never. The resume state is removed
    /// afterwards. The data is not synced here: call `sync()` on the partial
    /// first when durability matters more than speed.
    public func commit(_ path: RelativePath, mode: UInt32, modified: Int64?, replace: Bool) throws(TransferError) {
        guard let parent = try openParent(of: path, creating: nil) else {
            throw .io("cannot finish \(TerminalText.escaped(path.string)): its partial file is missing")
        }
        let partial = Self.partialName(for: path.name)
        guard let file = try openRegular(partial, in: parent, flags: O_RDWR, shown: path, what: "partial file") else {
            throw .io("cannot finish \(TerminalText.escaped(path.string)): its partial file is missing")
        }
        let folder = Folder(handle: parent, components: Array(path.components.dropLast()))
        try commit(path, partial: file, in: folder, mode: mode, modified: modified, replace: replace, removingState: true)
    }

    /// `commit` of the partial file `partial` (from `openPartial(for:in:truncate:)`,
    /// still open) into `folder`, which holds `path`. `removingState: false`
    /// when no resume state was ever saved for it (a file that arrived in one
    /// go), which spares two unlinks that would find nothing.
    public func commit(
        _ path: RelativePath, partial file: FileDescriptor, in folder: Folder, mode: UInt32, modified: Int64?, replace: Bool,
        removingState: Bool
    ) throws(TransferError) {
        guard fchmod(file.raw, mode_t(mode & 0o777) & ~mode_t(creationMask)) == 0 else {
            throw ioFailure("cannot set the permissions of \(file.shown)")
        }
        if let modified {
            guard let seconds = time_t(exactly: modified) else {
                throw .io("cannot set the modification time of \(file.shown): \(modified) is out of range")
            }
            var times = (timespec(tv_sec: 0, tv_nsec: utimeOmit), timespec(tv_sec: seconds, tv_nsec: 0))
            let status = withUnsafePointer(to: &times) { pair in
                pair.withMemoryRebound(to: timespec.self, capacity: 2) { futimens(file.raw, $0) }
            }
            guard status == 0 else {
                throw ioFailure("cannot set the modification time of \(file.shown)")
            }
        }
        try Self.moveIntoPlace(Self.partialName(for: path.name), in: folder.handle, as: path, replace: replace)
        if removingState { Self.unlinkResumeFiles(for: path.name, in: folder.handle, keepingPartial: true) }
    }

    /// Creates the symlink `path -> target`, but only when `target` is
    /// relative and, read lexically from the link's own directory, stays
    /// inside the target directory.
    ///
    /// The target may start with `..` components (no more than the link's
    /// depth) and then only go down: a `..` after a name is refused, because
    /// the name may itself be a symlink and `..` would then be taken from
    /// wherever it points. With that rule every link tern makes resolves
    /// inside the target, by induction over the links made before it.
    /// Without `replace` an existing entry gives `.exists`; with it a file or
    /// a symlink is replaced atomically, a directory never.
    public func makeSymlink(_ path: RelativePath, target: String, replace: Bool) throws(TransferError) {
        if let reason = Self.linkTargetProblem(target, depth: path.components.count - 1) {
            throw .unsafePath(
                TerminalText.escaped(path.string),
                reason: "its link target \"\(TerminalText.escaped(target, limit: 80))\" \(reason)")
        }
        let parent = try openParentCreating(path)
        if !replace {
            guard symlinkat(target, parent.raw, path.name) == 0 else {
                if errno == EEXIST { throw .exists(TerminalText.escaped(path.string)) }
                throw ioFailure("cannot create the symlink \(TerminalText.escaped(path.string))")
            }
            Self.unlinkResumeFiles(for: path.name, in: parent)
            return
        }
        // Made under the partial name, which the sender can never use, then
        // renamed over whatever is there so the swap is atomic.
        let partial = Self.partialName(for: path.name)
        _ = unlinkat(parent.raw, partial, 0)
        guard symlinkat(target, parent.raw, partial) == 0 else {
            throw ioFailure("cannot create the symlink \(TerminalText.escaped(path.string))")
        }
        do {
            try Self.moveIntoPlace(partial, in: parent, as: path, replace: true)
        } catch {
            _ = unlinkat(parent.raw, partial, 0)
            throw error
        }
        Self.unlinkResumeFiles(for: path.name, in: parent, keepingPartial: true)
    }

    // MARK: - Walking

    /// The open directory that holds `path`, or nil when part of it is missing
    /// and `mode` is nil. With a mode, missing directories are made.
    private func openParent(of path: RelativePath, creating mode: mode_t?) throws(TransferError) -> FileDescriptor? {
        try openDirectory(path.components.dropLast(), creating: mode, shown: path)
    }

    private func openParentCreating(_ path: RelativePath) throws(TransferError) -> FileDescriptor {
        guard let parent = try openParent(of: path, creating: 0o755) else {
            // openDirectory only returns nil when it was not asked to create.
            throw .io("cannot create the directories of \(TerminalText.escaped(path.string))")
        }
        return parent
    }

    /// Opens `components` below the root one at a time, never following a symlink.
    private func openDirectory(
        _ components: ArraySlice<String>, creating mode: mode_t?, shown path: RelativePath
    ) throws(TransferError) -> FileDescriptor? {
        var current = root
        var walked: [String] = []
        for name in components {
            walked.append(name)
            var attempts = 0
            while true {
                let fd = retryingOnInterrupt { openat(current.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                if fd >= 0 {
                    current = FileDescriptor(owning: fd, shown: TerminalText.escaped(walked.joined(separator: "/")))
                    break
                }
                let code = errno
                let here = TerminalText.escaped(walked.joined(separator: "/"))
                switch code {
                case ENOENT:
                    guard let mode else { return nil }
                    // A racing process may create or remove the name between
                    // the two calls; a few rounds settle it or give up.
                    attempts += 1
                    guard attempts <= 3 else { throw .io("cannot create the directory \(here): it keeps changing") }
                    if mkdirat(current.raw, name, mode) != 0, errno != EEXIST {
                        throw ioFailure("cannot create the directory \(here)")
                    }
                case ENOTDIR, ELOOP:
                    // O_DIRECTORY | O_NOFOLLOW on a symlink gives ENOTDIR on
                    // Linux, not ELOOP, so look at what is there to say why.
                    let reason = Self.isSymlink(name, in: current)
                        ? "it passes through the symlink \(here)" : "\(here) is not a directory"
                    throw .unsafePath(TerminalText.escaped(path.string), reason: reason)
                default:
                    throw .io("cannot open the directory \(here): \(errnoText(code))")
                }
            }
        }
        return current
    }

    /// Opens a regular file in `parent` without following a symlink and
    /// without blocking on a FIFO, and checks that it is a regular file with
    /// no other hard link (unless `singleLink` is false, for reading a file
    /// that was already there). Nil when nothing is at `name`.
    private func openRegular(
        _ name: String, in parent: FileDescriptor, flags: Int32, shown path: RelativePath, what: String,
        singleLink: Bool = true
    ) throws(TransferError) -> FileDescriptor? {
        let shown = TerminalText.escaped(path.string)
        // O_NONBLOCK only matters for a FIFO or device planted at the name; it
        // has no effect on a regular file, the only kind accepted below.
        let fd = retryingOnInterrupt {
            openat(parent.raw, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode_t(0o600))
        }
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP { throw .unsafePath(shown, reason: "the \(what) is a symlink") }
            if code == EISDIR { throw .unsafePath(shown, reason: "the \(what) is a directory") }
            if code == ENOENT { return nil }
            throw .io("cannot open the \(what) of \(shown): \(errnoText(code))")
        }
        let file = FileDescriptor(owning: fd, shown: shown)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ioFailure("cannot inspect the \(what) of \(shown)") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw .unsafePath(shown, reason: "the \(what) is not a regular file")
        }
        guard !singleLink || info.st_nlink <= 1 else {
            throw .unsafePath(shown, reason: "the \(what) is hard-linked to another name")
        }
        return file
    }

    private static func entry(named name: String, in parent: FileDescriptor, shown path: RelativePath) throws(TransferError) -> Entry {
        var info = stat()
        guard fstatat(parent.raw, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return .missing }
            throw ioFailure("cannot inspect \(TerminalText.escaped(path.string))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return .file(size: UInt64(max(info.st_size, 0)), modified: Int64(info.st_mtim.tv_sec))
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    private static func isSymlink(_ name: String, in parent: FileDescriptor) -> Bool {
        var info = stat()
        return fstatat(parent.raw, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    // MARK: - Renaming

    /// Renames `source` in `parent` to `path.name`. Without `replace` the
    /// rename must fail when the name is taken, atomically.
    private static func moveIntoPlace(
        _ source: String, in parent: FileDescriptor, as path: RelativePath, replace: Bool
    ) throws(TransferError) {
        let name = path.name
        // Without `replace` the rename itself refuses anything at the name,
        // a directory included (EEXIST), so only `replace` needs a look first.
        if !replace {
            try renameWithoutReplacing(source, in: parent, to: name, shown: TerminalText.escaped(path.string))
            return
        }
        let shown = TerminalText.escaped(path.string)
        if try entry(named: name, in: parent, shown: path) == .directory {
            throw .unsafePath(shown, reason: "an existing directory would be replaced")
        }
        // rename(2) replaces a symlink itself, never the file it points to.
        guard renameat(parent.raw, source, parent.raw, name) == 0 else {
            if errno == EISDIR { throw .unsafePath(shown, reason: "an existing directory would be replaced") }
            throw ioFailure("cannot move \(shown) into place")
        }
    }

    /// rename without overwriting, in order of preference:
    /// 1. renameat2(RENAME_NOREPLACE): atomic, Linux 3.15+, most file systems.
    /// 2. linkat + unlinkat: link(2) fails with EEXIST atomically too, on file
    ///    systems without RENAME_NOREPLACE but with hard links.
    /// 3. check, then rename: only on file systems with neither (some FUSE
    ///    mounts); a local process could race it, the sender cannot.
    private static func renameWithoutReplacing(
        _ source: String, in parent: FileDescriptor, to name: String, shown: @autoclosure () -> String
    ) throws(TransferError) {
        if let renameat2 = LinuxCalls.renameat2 {
            if renameat2(parent.raw, source, parent.raw, name, LinuxCalls.renameNoReplace) == 0 { return }
            let code = errno
            switch code {
            case EEXIST: throw .exists(shown())
            case EINVAL, ENOSYS, ENOTSUP: break  // this file system or kernel lacks the flag
            default: throw .io("cannot move \(shown()) into place: \(errnoText(code))")
            }
        }
        if linkat(parent.raw, source, parent.raw, name, 0) == 0 {
            _ = unlinkat(parent.raw, source, 0)
            return
        }
        let code = errno
        switch code {
        case EEXIST: throw .exists(shown())
        case EPERM, ENOTSUP, EMLINK: break  // no hard links here
        default: throw .io("cannot move \(shown()) into place: \(errnoText(code))")
        }
        var info = stat()
        if fstatat(parent.raw, name, &info, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT { throw .exists(shown()) }
        guard renameat(parent.raw, source, parent.raw, name) == 0 else {
            throw ioFailure("cannot move \(shown()) into place")
        }
    }

    // MARK: - Names

    /// Every resume file name is `resumeBase + suffix`; the longest suffix,
    /// `.tern-state.tmp`, is 15 bytes, so the base may take 240 of NAME_MAX's 255.
    private static let resumeBaseBytes = RelativePath.maxComponentBytes - 15

    /// `.` + name, or for a name too long for that, a `.` + its first bytes +
    /// `~` + 16 hex digits of its FNV-1a hash, so two long names that share a
    /// prefix still get their own resume files.
    static func resumeBase(for name: String) -> String {
        if 1 + name.utf8.count <= resumeBaseBytes { return "." + name }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        let digits = String(repeating: "0", count: 16 - hex.utf8.count) + hex
        return "." + prefix(of: name, maxBytes: resumeBaseBytes - 1 - 17) + "~" + digits
    }

    static func partialName(for name: String) -> String { resumeBase(for: name) + ".tern-partial" }
    static func stateName(for name: String) -> String { resumeBase(for: name) + ".tern-state" }
    static func stateTemporaryName(for name: String) -> String { resumeBase(for: name) + ".tern-state.tmp" }

    private static func unlinkResumeFiles(for name: String, in parent: FileDescriptor, keepingPartial: Bool = false) {
        // Failures are ignored: a missing file is the goal, and anything else
        // only leaves a stale resume file behind.
        if !keepingPartial { _ = unlinkat(parent.raw, partialName(for: name), 0) }
        _ = unlinkat(parent.raw, stateName(for: name), 0)
        _ = unlinkat(parent.raw, stateTemporaryName(for: name), 0)
    }

    /// The longest prefix of `text` within `maxBytes` UTF-8 bytes, cut between scalars.
    static func prefix(of text: String, maxBytes: Int) -> String {
        var out = String.UnicodeScalarView()
        var used = 0
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            if used + size > maxBytes { break }
            used += size
            out.append(scalar)
        }
        return String(out)
    }

    /// Splits `name` into the part the counter follows and the extension it
    /// precedes (see `uniqueName(for:)`).
    static func splitExtension(_ name: String) -> (stem: String, suffix: String) {
        let scalars = Array(name.unicodeScalars)
        guard let dot = scalars.lastIndex(of: "."), dot > 0 else { return (name, "") }
        var start = dot
        if start >= 5 {
            var before = String.UnicodeScalarView()
            before.append(contentsOf: scalars[(start - 4)..<start])
            if String(before).lowercased() == ".tar" { start -= 4 }
        }
        var stem = String.UnicodeScalarView()
        stem.append(contentsOf: scalars[..<start])
        var suffix = String.UnicodeScalarView()
        suffix.append(contentsOf: scalars[start...])
        // An extension too long to leave room for the counter is kept in the stem.
        if suffix.count > RelativePath.maxComponentBytes / 2 { return (name, "") }
        return (String(stem), String(suffix))
    }

    /// Why `target` may not be the target of a link `depth` directories below
    /// the root, or nil when it may.
    static func linkTargetProblem(_ target: String, depth: Int) -> String? {
        let bytes = target.utf8
        if bytes.isEmpty { return "is empty" }
        let limit = TransferLimits.standard.maximumLinkTargetBytes
        if bytes.count > limit { return "is longer than \(limit) bytes" }
        if bytes.first == UInt8(ascii: "/") { return "is an absolute path" }
        for scalar in target.unicodeScalars {
            switch scalar.value {
            case 0x5c: return "contains a backslash"
            case 0x00...0x1f, 0x7f...0x9f: return "contains a control character"
            default: continue
            }
        }
        var level = depth
        var wentDown = false
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            let parts = Array(component.utf8)
            if parts == [0x2e] { continue }
            if parts == [0x2e, 0x2e] {
                if wentDown { return "climbs with '..' after a name, which may itself be a link" }
                level -= 1
                if level < 0 { return "leaves the target directory" }
            } else {
                wentDown = true
                level += 1
            }
        }
        return nil
    }

    /// The process umask, read from /proc/self/status (Linux 4.7+) because
    /// umask(2) can only read it by changing it, which races other threads.
    /// Falls back to 0o022, the common default.
    private static func currentUmask() -> UInt32 {
        let fd = retryingOnInterrupt { open("/proc/self/status", O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return 0o022 }
        let file = FileDescriptor(owning: fd, shown: "/proc/self/status")
        var buffer = [UInt8](repeating: 0, count: 16384)
        guard let count = try? buffer.withUnsafeMutableBytes({ (raw) throws(TransferError) -> Int in
            try file.read(into: raw, at: 0)
        }) else { return 0o022 }
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("Umask:") {
            let digits = line.dropFirst("Umask:".count).drop { $0 == " " || $0 == "\t" }
            return UInt32(digits, radix: 8).map { $0 & 0o777 } ?? 0o022
        }
        return 0o022
    }
}

/// An open file descriptor, closed when the last reference goes away.
/// Reads and writes are positional (`pread`/`pwrite`), so one descriptor can
/// serve concurrent chunk writes.
public final class FileDescriptor: Sendable {
    public let raw: Int32
    private let name: Name

    /// What errors call the file: escaped already, or a path escaped only
    /// when an error needs it (a partial per received file would otherwise
    /// cost an escaping that is almost never shown).
    private enum Name {
        case shown(String)
        case path(RelativePath)
    }

    /// The escaped path errors name.
    var shown: String {
        switch name {
        case .shown(let text): return text
        case .path(let path): return TerminalText.escaped(path.string)
        }
    }

    init(owning raw: Int32, shown: String) {
        self.raw = raw
        self.name = .shown(shown)
    }

    init(owning raw: Int32, path: RelativePath) {
        self.raw = raw
        self.name = .path(path)
    }

    deinit {
        // Not retried on EINTR: Linux has released the descriptor by then.
        _ = close(raw)
    }

    /// Free bytes for an unprivileged writer on the file's file system
    /// (nil when it cannot be asked).
    public func availableBytes() -> UInt64? {
        var info = statvfs()
        guard fstatvfs(raw, &info) == 0 else { return nil }
        let (bytes, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return overflow ? UInt64.max : bytes
    }

    /// Writes all of `bytes` at `offset`, resuming after interrupts and short writes.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(TransferError) {
        do throws(DescriptorIO.Failure) {
            try DescriptorIO.writeAll(raw, bytes, at: offset)
        } catch {
            throw .io("cannot write \(shown): \(error.reason)")
        }
    }

    /// Reads into `buffer` from `offset` until it is full or the file ends;
    /// returns how many bytes were read.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(TransferError) -> Int {
        do throws(DescriptorIO.Failure) {
            return try DescriptorIO.readFully(raw, into: buffer, at: offset)
        } catch {
            throw .io("cannot read \(shown): \(error.reason)")
        }
    }

    /// The file's current size in bytes.
    public func size() throws(TransferError) -> UInt64 {
        var info = stat()
        guard fstat(raw, &info) == 0 else { throw ioFailure("cannot inspect \(shown)") }
        return UInt64(max(info.st_size, 0))
    }

    /// Cuts or extends the file to `size` bytes.
    public func truncate(to size: UInt64) throws(TransferError) {
        guard let length = off_t(exactly: size) else {
            throw .io("cannot resize \(shown): \(size) bytes is beyond what a file can hold")
        }
        guard retryingOnInterrupt({ ftruncate(raw, length) }) == 0 else {
            throw ioFailure("cannot resize \(shown)")
        }
    }

    /// Flushes the file's data to the disk (fdatasync).
    public func sync() throws(TransferError) {
        guard retryingOnInterrupt({ fdatasync(raw) }) == 0 else {
            throw ioFailure("cannot flush \(shown) to disk")
        }
    }
}

// MARK: - Glibc gaps

/// Linux calls Swift's Glibc module does not show.
private enum LinuxCalls {
    typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32

    /// renameat2(2), declared by glibc (2.28+) only under _GNU_SOURCE, which
    /// the Glibc module is not built with; syscall(2) is variadic and so not
    /// callable from Swift. Looked up at run time instead; nil on an older
    /// libc, and the callers fall back to linkat.
    static let renameat2: Renameat2? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "renameat2") else { return nil }
        // Safe: glibc's renameat2 has exactly this C signature (renameat2(2)).
        return unsafeBitCast(symbol, to: Renameat2.self)
    }()

    /// RENAME_NOREPLACE from <linux/fs.h>, part of the kernel ABI.
    static let renameNoReplace: UInt32 = 1
}

/// UTIME_OMIT from <sys/stat.h>, `((1l << 30) - 2l)`, a macro Swift cannot import.
private let utimeOmit = (1 << 30) - 2

private func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// An `.io` error for the call that just failed: errno is read before the
/// message is built, since building it allocates and could change errno.
private func ioFailure(_ what: @autoclosure () -> String) -> TransferError {
    let code = errno
    return .io("\(what()): \(errnoText(code))")
}

private func retryingOnInterrupt(_ call: () -> Int32) -> Int32 {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}
