import Glibc
import Testing
@testable import TernTransfer

/// A fresh directory under /tmp per test, holding `target/` (where tern
/// writes) and `outside/` (which must stay untouched), removed afterwards.
private final class Scratch {
    let base: String
    var target: String { base + "/target" }
    var outside: String { base + "/outside" }

    init() throws {
        var template = Array("/tmp/tern-safewrite-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        guard made != nil else { throw ScratchError.failed("mkdtemp", errno) }
        base = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for dir in [target, outside] where mkdir(dir, 0o755) != 0 {
            throw ScratchError.failed("mkdir \(dir)", errno)
        }
    }

    deinit {
        removeTree(base)
    }

    /// Depth first, never following a symlink, so a link to somewhere else
    /// is removed, not what it points to.
    private func removeTree(_ path: String) {
        if kind(path) == S_IFDIR {
            for name in listing(path) { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }

    func open(create: Bool = false) throws -> TargetDirectory {
        try TargetDirectory(path: target, create: create)
    }

    /// The names in a directory, sorted, without `.` and `..`.
    func listing(_ dir: String) -> [String] { ScratchDirectory.names(in: dir) }

    func write(_ text: String, to path: String) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ScratchError.failed("open \(path)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw ScratchError.failed("write \(path)", errno) }
    }

    func read(_ path: String) -> String? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = Glibc.read(fd, &buffer, buffer.count)
        return count < 0 ? nil : String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    func symlink(_ destination: String, at path: String) throws {
        guard Glibc.symlink(destination, path) == 0 else { throw ScratchError.failed("symlink \(path)", errno) }
    }

    func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink(path, &buffer, 4096)
        return count < 0 ? nil : String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func lstatInfo(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    func kind(_ path: String) -> mode_t? { lstatInfo(path).map { $0.st_mode & S_IFMT } }
}

private enum ScratchError: Error { case failed(String, Int32) }

private func path(_ raw: String) throws -> RelativePath { try RelativePath(validating: raw) }

/// The reason of an `.unsafePath`, or nil for any other outcome.
private func unsafeReason(_ error: TransferError?) -> String? {
    if case .unsafePath(_, let reason) = error { return reason }
    return nil
}

@Suite final class TargetDirectoryTests {
    private let scratch: Scratch

    init() throws {
        scratch = try Scratch()
    }

    /// Writes a complete file through the partial and commits it.
    private func put(_ text: String, at raw: String, in target: TargetDirectory, mode: UInt32 = 0o644,
             modified: Int64? = nil, replace: Bool = false) throws {
        let partial = try target.openPartial(for: path(raw), truncate: true)
        try Array(text.utf8).withUnsafeBytes { try partial.write($0, at: 0) }
        try target.commit(path(raw), mode: mode, modified: modified, replace: replace)
    }

    // MARK: - Opening

    @Test func createMakesOnlyTheLastComponent() throws {
        _ = try TargetDirectory(path: scratch.base + "/new", create: true)
        #expect(scratch.kind(scratch.base + "/new") == S_IFDIR)
        let missingParent = #expect(throws: TransferError.self) {
            try TargetDirectory(path: self.scratch.base + "/no/such", create: true)
        }
        guard case .io = missingParent else { Issue.record("expected .io, got \(String(describing: missingParent))"); return }
        #expect(scratch.kind(scratch.base + "/no") == nil)
    }

    @Test func openingAMissingOrNonDirectoryTargetFails() throws {
        #expect(throws: TransferError.self) { try TargetDirectory(path: self.scratch.base + "/missing", create: false) }
        try scratch.write("x", to: scratch.base + "/file")
        #expect(throws: TransferError.self) { try TargetDirectory(path: self.scratch.base + "/file", create: true) }
    }

    // MARK: - A planted symlink pointing outside

    @Test func makeDirectoriesRefusesToPassThroughAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.makeDirectories(path("link/x"), mode: 0o755) }
        #expect(unsafeReason(error)?.contains("symlink") == true, "\(String(describing: error))")
        #expect(scratch.listing(scratch.outside).isEmpty)
    }

    @Test func makeDirectoriesRefusesASymlinkAsTheLastComponent() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.makeDirectories(path("link"), mode: 0o755) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
    }

    @Test func openPartialRefusesAParentThatIsAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.openPartial(for: path("link/x"), truncate: false) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        let deeper = #expect(throws: TransferError.self) { try target.openPartial(for: path("link/a/b"), truncate: true) }
        #expect(unsafeReason(deeper)?.contains("symlink") == true)
        #expect(scratch.listing(scratch.outside).isEmpty)
    }

    @Test func commitRefusesAParentThatIsAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        // Bait: a partial file waiting on the far side of the link.
        try scratch.write("bait", to: scratch.outside + "/" + TargetDirectory.partialName(for: "x"))
        let before = scratch.listing(scratch.outside)
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) {
            try target.commit(path("link/x"), mode: 0o644, modified: nil, replace: true)
        }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        #expect(scratch.listing(scratch.outside) == before)
    }

    @Test func entryRefusesToLookThroughAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        try scratch.write("secret", to: scratch.outside + "/x")
        let target = try scratch.open()
        #expect(try target.entry(at: path("link")) == .symlink)
        let error = #expect(throws: TransferError.self) { try target.entry(at: path("link/x")) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
    }

    @Test func resumeStateRefusesAParentThatIsAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        try scratch.write("bait", to: scratch.outside + "/" + TargetDirectory.stateName(for: "x"))
        let before = scratch.listing(scratch.outside)
        let target = try scratch.open()
        #expect(throws: TransferError.self) { try target.writeState([1, 2, 3], for: path("link/x")) }
        #expect(throws: TransferError.self) { try target.readState(for: path("link/x"), limit: 100) }
        target.removeResumeFiles(for: try path("link/x"))
        #expect(scratch.listing(scratch.outside) == before)
        #expect(scratch.read(scratch.outside + "/" + TargetDirectory.stateName(for: "x")) == "bait")
    }

    @Test func makeSymlinkRefusesAParentThatIsAPlantedSymlink() throws {
        try scratch.symlink(scratch.outside, at: scratch.target + "/link")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) {
            try target.makeSymlink(path("link/l"), target: "x", replace: false)
        }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        #expect(scratch.listing(scratch.outside).isEmpty)
    }

    @Test func aSymlinkToADirectoryInsideTheTargetIsNotFollowedEither() throws {
        let target = try scratch.open()
        try target.makeDirectories(path("real"), mode: 0o755)
        try scratch.symlink("real", at: scratch.target + "/alias")
        let error = #expect(throws: TransferError.self) { try target.openPartial(for: path("alias/x"), truncate: false) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        #expect(scratch.listing(scratch.target + "/real").isEmpty)
    }

    @Test func aFileInTheMiddleOfAPathIsNotADirectory() throws {
        let target = try scratch.open()
        try put("data", at: "file", in: target)
        let error = #expect(throws: TransferError.self) { try target.makeDirectories(path("file/sub"), mode: 0o755) }
        #expect(unsafeReason(error)?.contains("not a directory") == true)
        let lookup = #expect(throws: TransferError.self) { try target.entry(at: path("file/sub")) }
        #expect(unsafeReason(lookup)?.contains("not a directory") == true)
    }

    // MARK: - Partial files

    @Test func partialThatIsAPlantedSymlinkIsRefused() throws {
        try scratch.write("precious", to: scratch.outside + "/victim")
        try scratch.symlink(scratch.outside + "/victim", at: scratch.target + "/" + TargetDirectory.partialName(for: "f"))
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.openPartial(for: path("f"), truncate: true) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        let commit = #expect(throws: TransferError.self) { try target.commit(path("f"), mode: 0o644, modified: nil, replace: true) }
        #expect(unsafeReason(commit)?.contains("symlink") == true)
        #expect(scratch.read(scratch.outside + "/victim") == "precious")
        #expect(scratch.kind(scratch.target + "/f") == nil)
    }

    @Test func partialThatIsADanglingSymlinkIsRefusedAndNothingIsCreated() throws {
        try scratch.symlink(scratch.outside + "/created", at: scratch.target + "/" + TargetDirectory.partialName(for: "f"))
        let target = try scratch.open()
        #expect(throws: TransferError.self) { try target.openPartial(for: path("f"), truncate: false) }
        #expect(scratch.listing(scratch.outside).isEmpty)
    }

    @Test func partialThatIsAHardLinkIsRefused() throws {
        try scratch.write("precious", to: scratch.outside + "/victim")
        #expect(link(scratch.outside + "/victim", scratch.target + "/" + TargetDirectory.partialName(for: "f")) == 0)
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.openPartial(for: path("f"), truncate: true) }
        #expect(unsafeReason(error)?.contains("hard-linked") == true)
        #expect(scratch.read(scratch.outside + "/victim") == "precious")
    }

    @Test func partialOrStateThatIsAFIFOIsRefusedWithoutBlocking() throws {
        #expect(mkfifo(scratch.target + "/" + TargetDirectory.partialName(for: "f"), 0o600) == 0)
        #expect(mkfifo(scratch.target + "/" + TargetDirectory.stateName(for: "f"), 0o600) == 0)
        let target = try scratch.open()
        let partial = #expect(throws: TransferError.self) { try target.openPartial(for: path("f"), truncate: false) }
        #expect(unsafeReason(partial)?.contains("not a regular file") == true)
        let state = #expect(throws: TransferError.self) { try target.readState(for: path("f"), limit: 10) }
        #expect(unsafeReason(state)?.contains("not a regular file") == true)
    }

    @Test func openPartialMakesParentsAndKeepsOrTruncatesData() throws {
        let target = try scratch.open()
        let first = try target.openPartial(for: path("a/b/f.bin"), truncate: false)
        try Array("hello world".utf8).withUnsafeBytes { try first.write($0, at: 0) }
        #expect(try first.size() == 11)
        let partialPath = scratch.target + "/a/b/" + TargetDirectory.partialName(for: "f.bin")
        #expect(scratch.lstatInfo(partialPath).map { $0.st_mode & 0o777 } == 0o600)
        let resumed = try target.openPartial(for: path("a/b/f.bin"), truncate: false)
        #expect(try resumed.size() == 11)
        let restarted = try target.openPartial(for: path("a/b/f.bin"), truncate: true)
        #expect(try restarted.size() == 0)
        #expect(try target.entry(at: path("a/b/f.bin")) == .missing)
    }

    @Test func openForReadingReadsAnExistingFileButNeverALink() throws {
        try scratch.write("precious", to: scratch.outside + "/victim")
        try scratch.symlink(scratch.outside + "/victim", at: scratch.target + "/link")
        try scratch.symlink(scratch.outside, at: scratch.target + "/dirlink")
        let target = try scratch.open()
        try put("mine", at: "dir/f", in: target)
        let file = try target.openForReading(path("dir/f"))
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        #expect(String(decoding: buffer.prefix(count), as: UTF8.self) == "mine")
        let link = #expect(throws: TransferError.self) { try target.openForReading(path("link")) }
        #expect(unsafeReason(link)?.contains("symlink") == true)
        let through = #expect(throws: TransferError.self) { try target.openForReading(path("dirlink/victim")) }
        #expect(unsafeReason(through)?.contains("symlink") == true)
        let missing = #expect(throws: TransferError.self) { try target.openForReading(path("dir/none")) }
        guard case .io = missing else { Issue.record("expected .io, got \(String(describing: missing))"); return }
    }

    @Test func fileDescriptorWritesAndReadsAtOffsets() throws {
        let target = try scratch.open()
        let file = try target.openPartial(for: path("f"), truncate: true)
        try Array("world".utf8).withUnsafeBytes { try file.write($0, at: 6) }
        try Array("hello ".utf8).withUnsafeBytes { try file.write($0, at: 0) }
        #expect(try file.size() == 11)
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        #expect(String(decoding: buffer.prefix(count), as: UTF8.self) == "hello world")
        let tail = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 6) }
        #expect(String(decoding: buffer.prefix(tail), as: UTF8.self) == "world")
        #expect(try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 100) } == 0)
        try file.truncate(to: 5)
        #expect(try file.size() == 5)
        try file.sync()
        let beyond = #expect(throws: TransferError.self) {
            try Array("x".utf8).withUnsafeBytes { try file.write($0, at: UInt64.max) }
        }
        guard case .io = beyond else { Issue.record("expected .io, got \(String(describing: beyond))"); return }
    }

    // MARK: - Committing

    @Test func commitMovesThePartialIntoPlace() throws {
        let target = try scratch.open()
        try target.writeState([9], for: path("dir/f.txt"))
        try put("content", at: "dir/f.txt", in: target)
        #expect(scratch.read(scratch.target + "/dir/f.txt") == "content")
        #expect(scratch.listing(scratch.target + "/dir") == ["f.txt"])
    }

    @Test func commitWithoutReplaceKeepsTheExistingFile() throws {
        try scratch.write("old", to: scratch.target + "/f")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try self.put("new", at: "f", in: target) }
        #expect(error == .exists("f"))
        #expect(scratch.read(scratch.target + "/f") == "old")
    }

    @Test func commitWithoutReplaceKeepsAnExistingSymlink() throws {
        try scratch.symlink("elsewhere", at: scratch.target + "/f")
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try self.put("new", at: "f", in: target) }
        #expect(error == .exists("f"))
        #expect(scratch.readLink(scratch.target + "/f") == "elsewhere")
    }

    @Test func commitWithReplaceReplacesTheFile() throws {
        try scratch.write("old", to: scratch.target + "/f")
        let target = try scratch.open()
        try put("new", at: "f", in: target, replace: true)
        #expect(scratch.read(scratch.target + "/f") == "new")
        #expect(scratch.listing(scratch.target) == ["f"])
    }

    @Test func commitReplacingASymlinkReplacesTheLinkNotItsTarget() throws {
        try scratch.write("precious", to: scratch.outside + "/victim")
        try scratch.symlink(scratch.outside + "/victim", at: scratch.target + "/f")
        let target = try scratch.open()
        try put("new", at: "f", in: target, replace: true)
        #expect(scratch.kind(scratch.target + "/f") == S_IFREG)
        #expect(scratch.read(scratch.target + "/f") == "new")
        #expect(scratch.read(scratch.outside + "/victim") == "precious")
        #expect(scratch.listing(scratch.outside) == ["victim"])
    }

    @Test func commitNeverReplacesADirectory() throws {
        let target = try scratch.open()
        try target.makeDirectories(path("d/inner"), mode: 0o755)
        let replacing = #expect(throws: TransferError.self) { try self.put("x", at: "d", in: target, replace: true) }
        #expect(unsafeReason(replacing)?.contains("directory") == true)
        let keeping = #expect(throws: TransferError.self) {
            try target.commit(path("d"), mode: 0o644, modified: nil, replace: false)
        }
        #expect(keeping == .exists("d"))
        #expect(scratch.kind(scratch.target + "/d/inner") == S_IFDIR)
    }

    @Test func commitWithoutAPartialFails() throws {
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) {
            try target.commit(path("never/opened"), mode: 0o644, modified: nil, replace: false)
        }
        guard case .io = error else { Issue.record("expected .io, got \(String(describing: error))"); return }
    }

    @Test func commitAppliesTheModeThroughTheUmaskAndDropsSpecialBits() throws {
        let target = try scratch.open()
        let mask = mode_t(target.creationMask)
        try put("#!/bin/sh", at: "run.sh", in: target, mode: 0o755)
        try put("text", at: "read.me", in: target, mode: 0o644)
        try put("suid", at: "suid", in: target, mode: 0o4755)
        try put("all", at: "all", in: target, mode: 0o7777)
        let mode = { (name: String) in self.scratch.lstatInfo(self.scratch.target + "/" + name).map { $0.st_mode & 0o7777 } }
        #expect(mode("run.sh") == 0o755 & ~mask)
        #expect(mode("read.me") == 0o644 & ~mask)
        #expect(mode("run.sh") != mode("read.me"))
        #expect(mode("suid") == 0o755 & ~mask)
        #expect(mode("all") == 0o777 & ~mask)
        #expect(mode("all").map { $0 & (S_ISUID | S_ISGID | S_ISVTX) } == 0)
    }

    @Test func commitSetsTheModificationTime() throws {
        let target = try scratch.open()
        try put("old times", at: "f", in: target, modified: 1_000_000_000)
        #expect(scratch.lstatInfo(scratch.target + "/f")?.st_mtim.tv_sec == 1_000_000_000)
        #expect(try target.entry(at: path("f")) == .file(size: 9, modified: 1_000_000_000))
        try put("before 1970", at: "g", in: target, modified: -86400)
        #expect(try target.entry(at: path("g")) == .file(size: 11, modified: -86400))
    }

    @Test func longNamesGetTheirOwnResumeFiles() throws {
        let target = try scratch.open()
        let stem = String(repeating: "n", count: 250)
        let first = try path(stem + "1.txt")
        let second = try path(stem + "2.txt")
        #expect(TargetDirectory.partialName(for: first.name) != TargetDirectory.partialName(for: second.name))
        #expect(TargetDirectory.stateTemporaryName(for: first.name).utf8.count <= 255)
        try target.writeState([1], for: first)
        try put("one", at: first.string, in: target)
        try put("two", at: second.string, in: target)
        #expect(scratch.listing(scratch.target) == [first.name, second.name])
        #expect(scratch.read(scratch.target + "/" + first.name) == "one")
    }

    // MARK: - Resume state

    @Test func stateRoundTripsAndLeavesNoTemporaryFile() throws {
        let target = try scratch.open()
        let file = try path("dir/f")
        #expect(try target.readState(for: file, limit: 64) == nil)
        try target.writeState([1, 2, 3], for: file)
        #expect(try target.readState(for: file, limit: 64) == [1, 2, 3])
        try target.writeState([4, 5], for: file)
        #expect(try target.readState(for: file, limit: 2) == [4, 5])
        #expect(scratch.listing(scratch.target + "/dir") == [TargetDirectory.stateName(for: "f")])
        #expect(scratch.lstatInfo(scratch.target + "/dir/" + TargetDirectory.stateName(for: "f")).map { $0.st_mode & 0o777 } == 0o600)
    }

    @Test func stateLongerThanTheLimitIsAnError() throws {
        let target = try scratch.open()
        try target.writeState(Array(repeating: 7, count: 100), for: path("f"))
        let error = #expect(throws: TransferError.self) { try target.readState(for: path("f"), limit: 99) }
        guard case .io = error else { Issue.record("expected .io, got \(String(describing: error))"); return }
    }

    @Test func stateThatIsAPlantedSymlinkIsRefusedAndReplacingItLeavesTheTargetAlone() throws {
        try scratch.write("precious", to: scratch.outside + "/victim")
        try scratch.symlink(scratch.outside + "/victim", at: scratch.target + "/" + TargetDirectory.stateName(for: "f"))
        try scratch.symlink(scratch.outside + "/victim", at: scratch.target + "/" + TargetDirectory.stateTemporaryName(for: "f"))
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) { try target.readState(for: path("f"), limit: 100) }
        #expect(unsafeReason(error)?.contains("symlink") == true)
        try target.writeState([1], for: path("f"))
        #expect(try target.readState(for: path("f"), limit: 100) == [1])
        #expect(scratch.read(scratch.outside + "/victim") == "precious")
    }

    @Test func removeResumeFilesDeletesPartialAndStateOnly() throws {
        let target = try scratch.open()
        try put("done", at: "keep", in: target)
        _ = try target.openPartial(for: path("keep"), truncate: false)
        try target.writeState([1], for: path("keep"))
        target.removeResumeFiles(for: try path("keep"))
        target.removeResumeFiles(for: try path("never/seen"))
        #expect(scratch.listing(scratch.target) == ["keep"])
    }

    // MARK: - Directories and entries

    @Test func makeDirectoriesCreatesEveryMissingLevelAndIsIdempotent() throws {
        let target = try scratch.open()
        let mask = mode_t(target.creationMask)
        try target.makeDirectories(path("a/b/c"), mode: 0o750)
        try target.makeDirectories(path("a/b/c"), mode: 0o750)
        #expect(try target.entry(at: path("a/b/c")) == .directory)
        #expect(scratch.lstatInfo(scratch.target + "/a/b/c").map { $0.st_mode & 0o7777 } == 0o750 & ~mask)
        // The owner keeps rwx even when the sender asks for less.
        try target.makeDirectories(path("locked"), mode: 0o500)
        #expect(scratch.lstatInfo(scratch.target + "/locked").map { $0.st_mode & 0o700 } == 0o700)
    }

    @Test func entryReportsWhatIsThereWithoutFollowingLinks() throws {
        let target = try scratch.open()
        try put("12345", at: "dir/file", in: target, modified: 1_600_000_000)
        try scratch.symlink("file", at: scratch.target + "/dir/link")
        #expect(mkfifo(scratch.target + "/dir/fifo", 0o600) == 0)
        #expect(try target.entry(at: path("dir")) == .directory)
        #expect(try target.entry(at: path("dir/file")) == .file(size: 5, modified: 1_600_000_000))
        #expect(try target.entry(at: path("dir/link")) == .symlink)
        #expect(try target.entry(at: path("dir/fifo")) == .other)
        #expect(try target.entry(at: path("dir/missing")) == .missing)
        #expect(try target.entry(at: path("no/such/thing")) == .missing)
    }

    // MARK: - Symlinks from the sender

    @Test(arguments: [("sub/file", "dir/a"), ("../file", "dir/b"), ("./x/./y/", "dir/c"), ("..", "dir/d"), (".", "e")])
    func makeSymlinkAcceptsTargetsThatStayInside(linkTarget: String, at raw: String) throws {
        let target = try scratch.open()
        try target.makeSymlink(path(raw), target: linkTarget, replace: false)
        #expect(scratch.readLink(scratch.target + "/" + raw) == linkTarget)
    }

    @Test(arguments: [
        ("../../outside", "leaves"),
        ("../../../etc/passwd", "leaves"),
        ("/etc", "absolute"),
        ("", "empty"),
        ("sub/../../..", "after a name"),
        ("x/../../outside", "after a name"),
        ("a\\..\\..", "backslash"),
        ("a\u{0}b", "control"),
        ("a\nb", "control"),
    ])
    func makeSymlinkRejectsTargetsThatCouldLeave(linkTarget: String, reasonMentions word: String) throws {
        let target = try scratch.open()
        let error = #expect(throws: TransferError.self) {
            try target.makeSymlink(path("dir/l"), target: linkTarget, replace: false)
        }
        #expect(unsafeReason(error)?.contains(word) == true, "\(String(describing: error))")
        #expect(scratch.kind(scratch.target + "/dir/l") == nil)
    }

    @Test func makeSymlinkAtTheTopCannotClimbAtAll() throws {
        let target = try scratch.open()
        #expect(throws: TransferError.self) { try target.makeSymlink(path("l"), target: "../target/x", replace: false) }
        #expect(scratch.kind(scratch.target + "/l") == nil)
    }

    @Test func makeSymlinkRespectsReplace() throws {
        let target = try scratch.open()
        try put("old", at: "l", in: target)
        let error = #expect(throws: TransferError.self) { try target.makeSymlink(path("l"), target: "x", replace: false) }
        #expect(error == .exists("l"))
        #expect(scratch.read(scratch.target + "/l") == "old")
        try target.makeSymlink(path("l"), target: "y", replace: true)
        #expect(scratch.readLink(scratch.target + "/l") == "y")
        try target.makeSymlink(path("l"), target: "z", replace: true)
        #expect(scratch.readLink(scratch.target + "/l") == "z")
        #expect(scratch.listing(scratch.target) == ["l"])
        try target.makeDirectories(path("d"), mode: 0o755)
        let directory = #expect(throws: TransferError.self) { try target.makeSymlink(path("d"), target: "x", replace: true) }
        #expect(unsafeReason(directory)?.contains("directory") == true)
    }

    // MARK: - Free names and space

    @Test(arguments: [
        ("report.pdf", "report (1).pdf"),
        ("archive.tar.gz", "archive (1).tar.gz"),
        ("notes.v2.txt", "notes.v2 (1).txt"),
        (".bashrc", ".bashrc (1)"),
        (".config.json", ".config (1).json"),
        ("README", "README (1)"),
        ("dir/x.txt", "dir/x (1).txt"),
    ])
    func uniqueNamePutsACounterBeforeTheExtension(existing: String, expected: String) throws {
        let target = try scratch.open()
        try put("taken", at: existing, in: target)
        #expect(try target.uniqueName(for: path(existing)) == path(expected))
    }

    @Test func uniqueNameSkipsTakenNamesAndPendingPartials() throws {
        let target = try scratch.open()
        try put("0", at: "a.txt", in: target)
        try put("1", at: "a (1).txt", in: target)
        _ = try target.openPartial(for: path("a (2).txt"), truncate: false)
        try target.makeDirectories(path("a (3).txt"), mode: 0o755)
        #expect(try target.uniqueName(for: path("a.txt")) == path("a (4).txt"))
    }

    @Test func uniqueNameShortensALongNameToFit() throws {
        let target = try scratch.open()
        let long = String(repeating: "é", count: 125) + ".txt"  // 254 bytes
        try put("x", at: long, in: target)
        let unique = try target.uniqueName(for: path(long))
        #expect(unique.name.utf8.count <= 255)
        #expect(unique.name.hasSuffix(" (1).txt"))
        #expect(try target.entry(at: unique) == .missing)
    }

    @Test func availableBytesReportsFreeSpace() throws {
        let target = try scratch.open()
        let free = try #require(target.availableBytes())
        #expect(free > 0)
    }
}
