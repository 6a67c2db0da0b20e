import Foundation
import Glibc
import Testing
import TernTestSupport
@testable import TernTransfer

/// Sender and receiver engines in one process over an in-memory channel,
/// reading and writing real directories under /tmp.
@Suite struct TransferTests {
    // MARK: - Whole transfers

    @Test func copiesOneFileByteForByteKeepingModeAndTime() async throws {
        let scratch = try ScratchDirectory("transfer-file")
        try scratch.makeDirectory("target")
        // Three full chunks and a short fourth.
        let data = randomBytes(3 * chunkSize + 1000, seed: 1)
        try scratch.write(data, to: "photo.raw", mode: 0o640, modified: 1_600_000_123)
        let items = try SourceScanner.scan([scratch.absolute("photo.raw")], warn: { Issue.record("unexpected warning: \($0)") })

        let run = try await transfer(items, into: scratch.absolute("target"))

        let root = expectedRoot(data, chunkSize: chunkSize)
        let summary = TransferSummary(files: 1, bytes: UInt64(data.count), sentBytes: UInt64(data.count), hash: expectedTransferHash([root]))
        #expect(run.sender == .success(summary))
        #expect(run.receiver == .success(summary))
        #expect(scratch.read("target/photo.raw") == data)
        let info = try #require(scratch.status("target/photo.raw"))
        #expect(info.st_mode & 0o7777 == 0o640 & ~processUmask())
        #expect(info.st_mtim.tv_sec == 1_600_000_123)
        // The partial was renamed into place and the resume state removed.
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["photo.raw"])
        #expect(run.receiverEvents.first == "started files=1 bytes=\(data.count) resumed=0")
        #expect(run.receiverEvents.filter { $0.hasPrefix("verified") } == ["verified photo.raw size=\(data.count) root=\(root.hex)"])
        #expect(run.senderEvents.filter { $0.hasPrefix("verified") } == ["verified photo.raw size=\(data.count) root=\(root.hex)"])
    }

    @Test func copiesATreeWithEmptyEntriesModesAndInsideLinks() async throws {
        let scratch = try ScratchDirectory("transfer-tree")
        let (deep, script) = try makeAlbum(in: scratch)
        let warnings = Recorder<String>()
        let items = try SourceScanner.scan([scratch.absolute("src/album")], warn: { warnings.append($0) })

        #expect(warnings.all.count == 2)
        #expect(warnings.all.contains { $0.contains("album/abs") && $0.contains("points outside") })
        #expect(warnings.all.contains { $0.contains("album/escape") && $0.contains("points outside") })
        #expect(items.map(\.entry.path) == [
            "album", "album/a", "album/a/b", "album/a/b/deep.bin", "album/a/empty.txt", "album/a/link", "album/empty-dir",
            "album/run.sh", "album/up",
        ])

        let run = try await transfer(items, into: scratch.absolute("target"))

        let roots = [deep, [], script].map { expectedRoot($0, chunkSize: chunkSize) }
        let bytes = UInt64(deep.count + script.count)
        let summary = TransferSummary(files: 3, bytes: bytes, sentBytes: bytes, hash: expectedTransferHash(roots))
        #expect(run.sender == .success(summary))
        #expect(run.receiver == .success(summary))
        // Same names, kinds, contents, link targets and file times; the
        // links that pointed outside were left out.
        let source = scratch.tree("src/album", modes: false, skipping: ["escape", "abs"])
        #expect(scratch.tree("target/album", modes: false) == source)
        #expect(source.count == 8)
        #expect(scratch.tree("target/album")["a/link"] == "link -> b/deep.bin")
        let mask = processUmask()
        #expect(scratch.status("target/album")?.st_mode.permissions == 0o750 & ~mask)
        #expect(scratch.status("target/album/a/b")?.st_mode.permissions == 0o700 & ~mask)
        #expect(scratch.status("target/album/a/b/deep.bin")?.st_mode.permissions == 0o600 & ~mask)
        #expect(scratch.status("target/album/a/empty.txt")?.st_mode.permissions == 0o644 & ~mask)
        #expect(scratch.status("target/album/run.sh")?.st_mode.permissions == 0o755 & ~mask)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["album"])
    }

    @Test func skipsAnIdenticalTreeAlreadyInPlace() async throws {
        let scratch = try ScratchDirectory("transfer-tree-again")
        let (deep, script) = try makeAlbum(in: scratch)
        let items = try SourceScanner.scan([scratch.absolute("src/album")], warn: { _ in })
        let first = try await transfer(items, into: scratch.absolute("target"))
        #expect(first.receiver.isSuccess)
        let before = scratch.tree("target", directoryTimes: true)

        let second = try await transfer(items, into: scratch.absolute("target"))

        // Files, empty file and links alike are already there: nothing moves.
        let roots = [deep, [], script].map { expectedRoot($0, chunkSize: chunkSize) }
        let bytes = UInt64(deep.count + script.count)
        let summary = TransferSummary(files: 3, bytes: bytes, sentBytes: 0, hash: expectedTransferHash(roots))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(scratch.tree("target", directoryTimes: true) == before)
    }

    /// src/album: nested directories with their own modes, a file of three
    /// chunks, an empty file, an empty directory, an executable, two links
    /// inside and two pointing outside. Also makes target/. Returns the two
    /// non-empty files' contents.
    private func makeAlbum(in scratch: ScratchDirectory) throws -> (deep: [UInt8], script: [UInt8]) {
        try scratch.makeDirectory("target")
        try scratch.makeDirectory("src")
        try scratch.makeDirectory("src/album", mode: 0o750)
        try scratch.makeDirectory("src/album/a")
        try scratch.makeDirectory("src/album/a/b", mode: 0o700)
        let deep = randomBytes(2 * chunkSize + 5, seed: 2)
        try scratch.write(deep, to: "src/album/a/b/deep.bin", mode: 0o600, modified: 1_500_000_000)
        try scratch.write([], to: "src/album/a/empty.txt", mode: 0o644, modified: 1_500_000_001)
        try scratch.makeDirectory("src/album/empty-dir")
        let script = Array("#!/bin/sh\necho hi\n".utf8)
        try scratch.write(script, to: "src/album/run.sh", mode: 0o755, modified: 1_500_000_002)
        try scratch.symlink("src/album/a/link", to: "b/deep.bin")
        try scratch.symlink("src/album/up", to: "a/b")
        try scratch.write(Array("secret".utf8), to: "outside.txt")
        try scratch.symlink("src/album/escape", to: "../../outside.txt")
        try scratch.symlink("src/album/abs", to: "/etc/hostname")
        return (deep, script)
    }

    @Test func copiesAStreamFromAPipe() async throws {
        let scratch = try ScratchDirectory("transfer-stream")
        let data = randomBytes(3 * 1024 * 1024 + 17, seed: 3)
        // Close-on-exec: a process another test spawns meanwhile must not
        // inherit the write end, or the reader never sees the end of input.
        let pipeEnds = try makeCloseOnExecPipe()
        let ends = [pipeEnds.read, pipeEnds.write]
        let (readEnd, writeEnd) = (ends[0], ends[1])
        defer { close(readEnd) }
        // The writer is a thread of its own: a pipe holds 64 KiB.
        let writer = Thread {
            var offset = 0
            while offset < data.count {
                let count = data.withUnsafeBytes { write(writeEnd, $0.baseAddress! + offset, data.count - offset) }
                if count <= 0 { break }
                offset += count
            }
            close(writeEnd)
        }
        writer.start()
        let output = open(scratch.absolute("out.bin"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ScratchFailure.failed("open out.bin", errno) }
        defer { close(output) }
        let items = try SourceScanner.scan(["-"], warn: { Issue.record("unexpected warning: \($0)") })

        let run = try await transfer(items, into: nil, streamInput: readEnd) { $0.streamOutput = output }

        let root = expectedRoot(data, chunkSize: chunkSize)
        let summary = TransferSummary(files: 1, bytes: UInt64(data.count), sentBytes: UInt64(data.count), hash: expectedTransferHash([root]))
        #expect(run.sender == .success(summary))
        #expect(run.receiver == .success(summary))
        #expect(scratch.read("out.bin") == data)
        #expect(run.receiverEvents.first == "started files=1 bytes=nil resumed=0")
        #expect(run.receiverEvents.last == "verified stdin size=\(data.count) root=\(root.hex)")
    }

    // MARK: - Resume

    @Test func resumesAfterAnInterruptionSendingOnlyTheMissingBytes() async throws {
        let scratch = try ScratchDirectory("transfer-resume")
        try scratch.makeDirectory("target")
        let data = randomBytes(10 * chunkSize + 100, seed: 4)
        try scratch.write(data, to: "big.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { Issue.record("unexpected warning: \($0)") })

        let first = try await transfer(items, into: scratch.absolute("target"), cutAfterChunks: 4)

        #expect(first.receiver == .failure(.connectionLost("the sender closed the channel")))
        #expect(first.sender.isConnectionLost)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [".big.bin.tern-partial", ".big.bin.tern-state"])
        #expect(scratch.read("target/.big.bin.tern-partial") == Array(data.prefix(4 * chunkSize)))

        let second = try await transfer(items, into: scratch.absolute("target"))

        let missing = UInt64(data.count - 4 * chunkSize)
        let summary = TransferSummary(
            files: 1, bytes: UInt64(data.count), sentBytes: missing, hash: expectedTransferHash([expectedRoot(data, chunkSize: chunkSize)]))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(second.receiverEvents.first == "started files=1 bytes=\(data.count) resumed=\(4 * chunkSize)")
        #expect(second.senderEvents.first == "started files=1 bytes=\(data.count) resumed=\(4 * chunkSize)")
        #expect(scratch.read("target/big.bin") == data)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["big.bin"])
    }

    @Test func startsOverWhenTheSourceChangedButKeptItsSizeAndTime() async throws {
        let scratch = try ScratchDirectory("transfer-changed")
        try scratch.makeDirectory("target")
        let data = randomBytes(10 * chunkSize + 100, seed: 5)
        try scratch.write(data, to: "big.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })
        _ = try await transfer(items, into: scratch.absolute("target"), cutAfterChunks: 4)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [".big.bin.tern-partial", ".big.bin.tern-state"])

        // One byte of chunk 1 changes; the size and the time are as before.
        var changed = data
        changed[chunkSize + 10] ^= 0xff
        try scratch.patch("big.bin", at: chunkSize + 10, with: [changed[chunkSize + 10]])
        try scratch.setModified("big.bin", to: 1_600_000_000)
        let again = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })
        #expect(again.map(\.entry) == items.map(\.entry))

        let second = try await transfer(again, into: scratch.absolute("target"))

        let summary = TransferSummary(
            files: 1, bytes: UInt64(data.count), sentBytes: UInt64(data.count),
            hash: expectedTransferHash([expectedRoot(changed, chunkSize: chunkSize)]))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(second.receiverEvents.first == "started files=1 bytes=\(data.count) resumed=0")
        #expect(scratch.read("target/big.bin") == changed)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["big.bin"])
    }

    @Test func startsOverWhenTheSourceChangedSize() async throws {
        let scratch = try ScratchDirectory("transfer-resized")
        try scratch.makeDirectory("target")
        let data = randomBytes(10 * chunkSize + 100, seed: 6)
        try scratch.write(data, to: "big.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })
        _ = try await transfer(items, into: scratch.absolute("target"), cutAfterChunks: 4)

        let longer = data + randomBytes(500, seed: 60)
        try scratch.write(longer, to: "big.bin", modified: 1_600_000_000)
        let again = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })

        let second = try await transfer(again, into: scratch.absolute("target"))

        let summary = TransferSummary(
            files: 1, bytes: UInt64(longer.count), sentBytes: UInt64(longer.count),
            hash: expectedTransferHash([expectedRoot(longer, chunkSize: chunkSize)]))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(scratch.read("target/big.bin") == longer)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["big.bin"])
    }

    @Test func ignoresAPartialWhenResumeIsOff() async throws {
        let scratch = try ScratchDirectory("transfer-noresume")
        try scratch.makeDirectory("target")
        let data = randomBytes(10 * chunkSize + 100, seed: 7)
        try scratch.write(data, to: "big.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })
        _ = try await transfer(items, into: scratch.absolute("target"), cutAfterChunks: 4)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [".big.bin.tern-partial", ".big.bin.tern-state"])

        let second = try await transfer(items, into: scratch.absolute("target")) { $0.resume = false }

        let summary = TransferSummary(
            files: 1, bytes: UInt64(data.count), sentBytes: UInt64(data.count),
            hash: expectedTransferHash([expectedRoot(data, chunkSize: chunkSize)]))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(second.receiverEvents.first == "started files=1 bytes=\(data.count) resumed=0")
        #expect(scratch.read("target/big.bin") == data)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["big.bin"])
    }

    // MARK: - What is already there

    @Test(arguments: [0, 1, chunkSize, 3 * chunkSize + 7])
    func skipsAnIdenticalFileAlreadyInPlace(size: Int) async throws {
        let scratch = try ScratchDirectory("transfer-same")
        try scratch.makeDirectory("target")
        let data = randomBytes(size, seed: 8)
        try scratch.write(data, to: "notes.txt", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("notes.txt")], warn: { _ in })
        let first = try await transfer(items, into: scratch.absolute("target"))
        #expect(first.receiver.isSuccess)
        let before = scratch.tree("target")

        let second = try await transfer(items, into: scratch.absolute("target"))

        let root = expectedRoot(data, chunkSize: chunkSize)
        let summary = TransferSummary(files: 1, bytes: UInt64(size), sentBytes: 0, hash: expectedTransferHash([root]))
        #expect(second.sender == .success(summary))
        #expect(second.receiver == .success(summary))
        #expect(second.receiverEvents.first == "started files=1 bytes=\(size) resumed=\(size)")
        #expect(second.receiverEvents.last == "verified notes.txt size=\(size) root=\(root.hex)")
        #expect(scratch.tree("target") == before)
    }

    // MARK: - No hash of the receiver's data leaves it

    /// Every hash the receiver could compute over `local` (each chunk's, the
    /// chain after each chunk, the root), raw and in hex.
    private func hashesOfLocalData(_ local: [UInt8]) -> [[UInt8]] {
        var chain = ChunkChain()
        var found: [Digest] = []
        for start in stride(from: 0, to: local.count, by: chunkSize) {
            let hash = Digest.sha256(Array(local[start..<min(local.count, start + chunkSize)]))
            chain.append(hash)
            found += [hash, chain.value]
        }
        found.append(chain.root(size: UInt64(local.count)))
        return found.flatMap { [$0.bytes, Array($0.hex.utf8)] }
    }

    private func expectNoneContained(_ needles: [[UInt8]], in messages: [[UInt8]], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!messages.isEmpty, sourceLocation: sourceLocation)
        for message in messages {
            for needle in needles {
                #expect(!message.contains(needle), "a receiver's message holds a hash of its own data", sourceLocation: sourceLocation)
            }
            // Only what the receiver may say: asks, where it needs data from, acknowledgements, errors.
            switch try? TransferMessage(decoding: message) {
            case .ask?, .need?, .verified?, .finished?, .failure?: break
            default: Issue.record("the receiver sent \(message.prefix(1))", sourceLocation: sourceLocation)
            }
        }
    }

    /// A file of the same size already in place, with other content: the
    /// receiver asks about it, the sender states its chain, the receiver
    /// says "from 0". (It used to send its chain, which let a sender confirm
    /// guesses of the file offline.)
    @Test func theReceiverNeverSendsAHashOfAFileAlreadyInPlace() async throws {
        let scratch = try ConflictScratch(existing: .same)
        let local = try #require(scratch.directory.read("target/report.txt"))
        let sent = Recorder<[UInt8]>()

        let run = try await transfer(scratch.items, into: scratch.target, configure: { $0.conflict = .overwrite }, receiverSent: sent)

        #expect(run.receiver.isSuccess)
        #expect(scratch.directory.read("target/report.txt") == scratch.data)
        expectNoneContained(hashesOfLocalData(local), in: sent.all)
        let asks = sent.all.compactMap { message -> [ResumeAsk]? in
            if case .ask(let asks, _, _)? = try? TransferMessage(decoding: message) { return asks }
            return nil
        }
        #expect(asks == [[ResumeAsk(index: 0, chunks: UInt64((local.count + chunkSize - 1) / chunkSize))]])
        let needs = sent.all.compactMap { message -> [PlanStart]? in
            if case .need(let starts, _)? = try? TransferMessage(decoding: message) { return starts }
            return nil
        }
        #expect(needs == [[PlanStart(index: 0, from: 0)]])
    }

    /// A partial of an earlier version of the source (same size and time):
    /// the receiver asks about its verified chunks without their chain.
    @Test func theReceiverNeverSendsAHashOfAPartial() async throws {
        let scratch = try ScratchDirectory("transfer-partial-oracle")
        try scratch.makeDirectory("target")
        let old = randomBytes(10 * chunkSize + 100, seed: 30)
        try scratch.write(old, to: "big.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("big.bin")], warn: { _ in })
        _ = try await transfer(items, into: scratch.absolute("target"), cutAfterChunks: 4)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [".big.bin.tern-partial", ".big.bin.tern-state"])
        let new = randomBytes(old.count, seed: 31)
        try scratch.write(new, to: "big.bin", modified: 1_600_000_000)
        let sent = Recorder<[UInt8]>()

        let second = try await transfer(items, into: scratch.absolute("target"), receiverSent: sent)

        #expect(second.receiver.isSuccess)
        #expect(second.receiverEvents.first == "started files=1 bytes=\(new.count) resumed=0")
        #expect(scratch.read("target/big.bin") == new)
        expectNoneContained(hashesOfLocalData(old), in: sent.all)
    }

    /// A different file already at the name: as large as the source (it is
    /// hashed and asked about, and the chains differ) or not.
    static let existingSizes = [ExistingSize.same, .different]

    enum ExistingSize: Sendable, CaseIterable {
        case same, different
    }

    @Test(arguments: existingSizes)
    func refusesAnExistingDifferentFile(existing: ExistingSize) async throws {
        let scratch = try ConflictScratch(existing: existing)

        let run = try await transfer(scratch.items, into: scratch.target)

        #expect(run.receiver == .failure(.exists("report.txt")))
        #expect(run.sender == .failure(.peerFailed(.exists, TransferError.exists("report.txt").message)))
        #expect(scratch.directory.tree("target") == scratch.before)
    }

    @Test(arguments: existingSizes)
    func overwritesAnExistingDifferentFileWhenAsked(existing: ExistingSize) async throws {
        let scratch = try ConflictScratch(existing: existing)

        let run = try await transfer(scratch.items, into: scratch.target) { $0.conflict = .overwrite }

        let summary = TransferSummary(
            files: 1, bytes: UInt64(scratch.data.count), sentBytes: UInt64(scratch.data.count),
            hash: expectedTransferHash([expectedRoot(scratch.data, chunkSize: chunkSize)]))
        #expect(run.receiver == .success(summary))
        #expect(run.sender == .success(summary))
        #expect(scratch.directory.read("target/report.txt") == scratch.data)
        #expect(ScratchDirectory.names(in: scratch.target) == ["report.txt"])
    }

    @Test(arguments: existingSizes)
    func writesBesideAnExistingDifferentFileWhenRenaming(existing: ExistingSize) async throws {
        let scratch = try ConflictScratch(existing: existing)

        let run = try await transfer(scratch.items, into: scratch.target) { $0.conflict = .rename }

        let summary = TransferSummary(
            files: 1, bytes: UInt64(scratch.data.count), sentBytes: UInt64(scratch.data.count),
            hash: expectedTransferHash([expectedRoot(scratch.data, chunkSize: chunkSize)]))
        #expect(run.receiver == .success(summary))
        #expect(run.sender == .success(summary))
        #expect(scratch.directory.read("target/report (1).txt") == scratch.data)
        #expect(scratch.directory.tree("target", skipping: ["report (1).txt"]) == scratch.before)
        #expect(ScratchDirectory.names(in: scratch.target) == ["report (1).txt", "report.txt"])
        #expect(run.receiverEvents.contains("warning report.txt exists; writing report (1).txt"))
    }

    // MARK: - Failures reach the other side

    @Test func theReceiverHearsWhyTheSenderStoppedWhenAFileChangedAfterTheOffer() async throws {
        let scratch = try ScratchDirectory("transfer-changed-source")
        try scratch.makeDirectory("target")
        let data = randomBytes(3 * chunkSize, seed: 20)
        try scratch.write(data, to: "log.txt", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("log.txt")], warn: { _ in })
        // It grows after the scan, before its turn to be sent.
        try scratch.write(data + [1, 2, 3], to: "log.txt", modified: 1_600_000_100)

        let run = try await transfer(items, into: scratch.absolute("target"))

        let reason = "log.txt changed after the transfer started; send it again"
        #expect(run.sender == .failure(.io(reason)))
        // Before: the receiver saw only "the sender closed the channel".
        #expect(run.receiver == .failure(.peerFailed(.io, reason)))
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [])
    }

    @Test func theReceiverHearsWhyTheSenderStoppedWhenAFileShrankWhileItWasSent() async throws {
        let scratch = try ScratchDirectory("transfer-shrunk-source")
        try scratch.makeDirectory("target")
        let data = randomBytes(6 * chunkSize, seed: 21)
        try scratch.write(data, to: "grow.bin", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("grow.bin")], warn: { _ in })
        let path = scratch.absolute("grow.bin")

        // Cut to one chunk after the second chunk went out (size and time
        // were checked when the file was opened).
        let run = try await transfer(items, into: scratch.absolute("target"), onChunk: { sent in
            if sent == 2 { truncate(path, off_t(chunkSize)) }
        })

        let reason = "grow.bin shrank while it was being sent"
        #expect(run.sender == .failure(.io(reason)))
        #expect(run.receiver == .failure(.peerFailed(.io, reason)))
        // What arrived verified stays resumable: the chunks read before the
        // cut, a whole batch (TransferSender.chunksPerSend) of them.
        #expect(run.keptPartialBytes == UInt64(TransferSender.chunksPerSend * chunkSize))
    }

    // MARK: - What is kept after an interruption

    @Test func anInterruptedReceiverCountsThePartialDataItKeeps() async throws {
        let scratch = try ScratchDirectory("transfer-kept")
        try scratch.makeDirectory("target")
        try scratch.write(randomBytes(10 * chunkSize, seed: 22), to: "a.bin", modified: 1_600_000_000)
        try scratch.write(randomBytes(5 * chunkSize + 9, seed: 23), to: "b.bin", modified: 1_600_000_000)
        let onlyB = try SourceScanner.scan([scratch.absolute("b.bin")], warn: { _ in })
        let both = try SourceScanner.scan([scratch.absolute("a.bin"), scratch.absolute("b.bin")], warn: { _ in })

        let first = try await transfer(onlyB, into: scratch.absolute("target"), cutAfterChunks: 2)
        #expect(first.receiver.isConnectionLost)
        #expect(first.keptPartialBytes == UInt64(2 * chunkSize))

        // Cut in a.bin: its three verified chunks, and b.bin's two from
        // the first attempt (not reached this time), are kept.
        let second = try await transfer(both, into: scratch.absolute("target"), cutAfterChunks: 3)
        #expect(second.receiver.isConnectionLost)
        #expect(second.keptPartialBytes == UInt64(5 * chunkSize))
    }

    // MARK: - Streams

    @Test func aStreamThatFailsLeavesNoPartialFile() async throws {
        let scratch = try ScratchDirectory("transfer-stream-cut")
        try scratch.makeDirectory("target")
        // Less than a pipe holds, so the writer never waits.
        let data = randomBytes(15 * chunkSize, seed: 24)
        // Close-on-exec: a process another test spawns meanwhile must not
        // inherit the write end, or the reader never sees the end of input.
        let pipeEnds = try makeCloseOnExecPipe()
        let ends = [pipeEnds.read, pipeEnds.write]
        defer { close(ends[0]) }
        let written = data.withUnsafeBytes { write(ends[1], $0.baseAddress, data.count) }
        #expect(written == data.count)
        close(ends[1])
        let items = try SourceScanner.scan(["-"], warn: { _ in })

        let run = try await transfer(items, into: scratch.absolute("target"), streamInput: ends[0], cutAfterChunks: 3)

        #expect(run.receiver.isConnectionLost)
        // Streams never resume: nothing of it is left behind.
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [])
        #expect(run.keptPartialBytes == 0)
    }

    // MARK: - One file to standard output or under another name

    @Test func theOneOfferedFileGoesToTheOutputDescriptor() async throws {
        let scratch = try ScratchDirectory("transfer-file-stdout")
        let data = randomBytes(3 * chunkSize + 5, seed: 25)
        try scratch.write(data, to: "notes.txt", modified: 1_600_000_000)
        let output = open(scratch.absolute("out.bin"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ScratchFailure.failed("open out.bin", errno) }
        defer { close(output) }
        let items = try SourceScanner.scan([scratch.absolute("notes.txt")], warn: { _ in })

        let run = try await transfer(items, into: nil) { $0.streamOutput = output }

        #expect(run.receiver.isSuccess)
        #expect(run.sender.isSuccess)
        #expect(scratch.read("out.bin") == data)
        #expect(ScratchDirectory.names(in: scratch.path) == ["notes.txt", "out.bin"])
    }

    @Test func theOneOfferedFileIsWrittenUnderTheGivenName() async throws {
        let scratch = try ScratchDirectory("transfer-file-named")
        try scratch.makeDirectory("target")
        let data = randomBytes(2 * chunkSize + 5, seed: 26)
        try scratch.write(data, to: "notes.txt", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("notes.txt")], warn: { _ in })

        let run = try await transfer(items, into: scratch.absolute("target")) { $0.singleName = try? RelativePath(components: ["renamed.md"]) }

        #expect(run.receiver.isSuccess)
        #expect(scratch.read("target/renamed.md") == data)
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == ["renamed.md"])
    }

    @Test func aTreeIsRefusedWhereOneFileWasWanted() async throws {
        let scratch = try ScratchDirectory("transfer-tree-named")
        let (_, _) = try makeAlbum(in: scratch)
        let items = try SourceScanner.scan([scratch.absolute("src/album")], warn: { _ in })

        let run = try await transfer(items, into: scratch.absolute("target")) { $0.singleName = try? RelativePath(components: ["one"]) }

        #expect(run.receiver == .failure(.protocolViolation("the manifest has 9 entries where one file was offered")))
        #expect(ScratchDirectory.names(in: scratch.absolute("target")) == [])
    }

    // MARK: - Skipping what exists

    @Test(arguments: existingSizes)
    func keepsAnExistingDifferentFileAndSkipsTheOfferedOne(existing: ExistingSize) async throws {
        let scratch = try ConflictScratch(existing: existing)

        let run = try await transfer(scratch.items, into: scratch.target) { $0.conflict = .skip }

        let summary = TransferSummary(files: 0, bytes: 0, sentBytes: 0, hash: expectedTransferHash([]))
        #expect(run.receiver == .success(summary))
        #expect(run.sender == .success(summary))
        #expect(scratch.directory.tree("target") == scratch.before)
        #expect(run.receiverEvents.contains("warning report.txt exists; kept it and skipped the offered one"))
        // Nothing of it crossed.
        #expect(!run.senderEvents.contains { $0.hasPrefix("progress") })
    }

    @Test func skippingKeepsExistingFilesWritesNewOnesAndResumesPartials() async throws {
        let scratch = try ScratchDirectory("transfer-skip-tree")
        try scratch.makeDirectory("target")
        try scratch.makeDirectory("src")
        let big = randomBytes(10 * chunkSize, seed: 27)
        let new = randomBytes(100, seed: 28)
        try scratch.write(big, to: "src/big.bin", modified: 1_600_000_000)
        try scratch.write(new, to: "src/new.txt", modified: 1_600_000_000)
        try scratch.write(Array("local".utf8), to: "src/old.txt", modified: 1_600_000_000)
        let items = try SourceScanner.scan([scratch.absolute("src")], warn: { _ in })
        // An interrupted first attempt: big.bin half there.
        _ = try await transfer(Array(items.prefix(2)), into: scratch.absolute("target"), cutAfterChunks: 5)
        #expect(ScratchDirectory.names(in: scratch.absolute("target/src")) == [".big.bin.tern-partial", ".big.bin.tern-state"])
        try scratch.write(Array("mine".utf8), to: "target/src/old.txt", modified: 1_500_000_000)

        let run = try await transfer(items, into: scratch.absolute("target")) { $0.conflict = .skip }

        #expect(run.receiver.isSuccess)
        #expect(run.sender.isSuccess)
        #expect(run.receiverEvents.first { $0.hasPrefix("started") } == "started files=2 bytes=\(big.count + new.count) resumed=\(5 * chunkSize)")
        #expect(run.receiverEvents.contains("warning src/old.txt exists; kept it and skipped the offered one"))
        #expect(scratch.read("target/src/big.bin") == big)
        #expect(scratch.read("target/src/new.txt") == new)
        #expect(scratch.read("target/src/old.txt") == Array("mine".utf8))
    }

    // MARK: - The in-memory channel itself

    @Test func memoryChannelHoldsBackASenderAndDeliversWhatIsQueuedBeforeClosing() async throws {
        let (near, far) = MemoryChannel.pair(capacity: 2)
        try await near.send([1])
        try await near.send([2])
        let third = Task { try await near.send([3]) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(far.queued == 2)
        #expect(try await far.receive() == [1])
        try await third.value
        #expect(far.queued == 2)
        await near.close()
        #expect(try await far.receive() == [2])
        #expect(try await far.receive() == [3])
        #expect(try await far.receive() == nil)
        #expect(try await near.receive() == nil)
        await #expect(throws: TransferError.connectionLost("the in-memory channel is closed")) { try await far.send([4]) }
    }

    /// A source `report.txt` and a different file already at target/report.txt.
    private struct ConflictScratch {
        let directory: ScratchDirectory
        let data: [UInt8]
        let items: [SourceItem]
        let before: [String: String]
        var target: String { directory.absolute("target") }

        init(existing: ExistingSize) throws {
            directory = try ScratchDirectory("transfer-conflict")
            try directory.makeDirectory("target")
            try directory.makeDirectory("src")
            data = randomBytes(2 * chunkSize + 3, seed: 9)
            try directory.write(data, to: "src/report.txt", modified: 1_600_000_000)
            var other = data
            other[chunkSize + 1] ^= 0x55
            if existing == .different { other.removeLast(2) }
            try directory.write(other, to: "target/report.txt", modified: 1_400_000_000)
            items = try SourceScanner.scan([directory.absolute("src/report.txt")], warn: { _ in })
            before = directory.tree("target")
        }
    }
}

// MARK: - Running both engines

/// Chunks of 4 KiB keep the files small while spanning several chunks.
private let chunkSize = 4096
private let maxMessageSize = chunkSize + TransferMessage.chunkHeaderSize

/// What one transfer did on both sides.
struct Outcome {
    var sender: Result<TransferSummary, TransferError>
    var receiver: Result<TransferSummary, TransferError>
    var senderEvents: [String]
    var receiverEvents: [String]
    /// The receiver's verified bytes left in partial files.
    var keptPartialBytes: UInt64 = 0
}

/// Runs a sender for `items` and a receiver writing into `target` (or only
/// to `streamOutput`) over one in-memory pair, with the offer `tern send`
/// would make. When either side ends the channel is closed, as the CLI
/// does, so the other ends too. A transfer that takes over a minute is
/// closed and recorded as an issue.
func transfer(
    _ items: [SourceItem], into target: String?, streamInput: Int32 = 0, cutAfterChunks: Int? = nil,
    configure: (inout TransferReceiver.Options) -> Void = { _ in }, onChunk: (@Sendable (Int) -> Void)? = nil,
    receiverSent: Recorder<[UInt8]>? = nil
) async throws -> Outcome {
    let (senderEnd, receiverEnd) = MemoryChannel.pair()
    var options = TransferReceiver.Options(offer: offer(for: items))
    configure(&options)
    let directory = try target.map { try TargetDirectory(path: $0, create: false) }
    let senderEvents = Recorder<String>()
    let receiverEvents = Recorder<String>()
    var senderChannel: TransferChannel = cutAfterChunks.map { CutAfterChunks(senderEnd, chunks: $0) } ?? senderEnd
    if let onChunk { senderChannel = WatchChunks(senderChannel, onChunk: onChunk) }
    let sender = TransferSender(
        items: items, channel: senderChannel, maxMessageSize: maxMessageSize, streamInput: streamInput,
        report: { senderEvents.append(describe($0)) })
    let receiverChannel: TransferChannel = receiverSent.map { RecordSends(receiverEnd, into: $0) } ?? receiverEnd
    let receiver = TransferReceiver(
        target: directory, channel: receiverChannel, options: options, report: { receiverEvents.append(describe($0)) })

    enum Part: Sendable {
        case sender(Result<TransferSummary, TransferError>)
        case receiver(Result<TransferSummary, TransferError>)
        case timedOut
    }
    var senderResult: Result<TransferSummary, TransferError>?
    var receiverResult: Result<TransferSummary, TransferError>?
    await withTaskGroup(of: Part.self) { group in
        group.addTask {
            let result = await outcome { try await sender.run() }
            await senderEnd.close()
            return .sender(result)
        }
        group.addTask {
            let result = await outcome { try await receiver.run() }
            await receiverEnd.close()
            return .receiver(result)
        }
        group.addTask {
            try? await Task.sleep(for: .seconds(60))
            if Task.isCancelled { return .timedOut }
            Issue.record("the transfer took over a minute")
            await senderEnd.close()
            return .timedOut
        }
        while let part = await group.next() {
            switch part {
            case .sender(let result): senderResult = result
            case .receiver(let result): receiverResult = result
            case .timedOut: break
            }
            if senderResult != nil && receiverResult != nil { group.cancelAll() }
        }
    }
    return Outcome(
        sender: senderResult ?? .failure(.io("no result")), receiver: receiverResult ?? .failure(.io("no result")),
        senderEvents: senderEvents.all, receiverEvents: receiverEvents.all, keptPartialBytes: receiver.keptPartialBytes)
}

func outcome(_ work: () async throws -> TransferSummary) async -> Result<TransferSummary, TransferError> {
    do {
        return .success(try await work())
    } catch let error as TransferError {
        return .failure(error)
    } catch {
        return .failure(.io("not a TransferError: \(error)"))
    }
}

/// A sender's end that lets `chunks` chunk messages through, then closes
/// the channel instead of sending the next one: the connection drops in
/// the middle of a file.
final class CutAfterChunks: TransferChannel, @unchecked Sendable {
    private let inner: MemoryChannel
    private let limit: Int
    private let sent = Recorder<Int>()

    init(_ inner: MemoryChannel, chunks: Int) {
        self.inner = inner
        self.limit = chunks
    }

    func send(_ message: [UInt8]) async throws {
        if message.first == TransferMessage.MessageType.chunk.rawValue {
            sent.append(1)
            if sent.all.count > limit {
                await inner.close()
                throw TransferError.connectionLost("cut after \(limit) chunks")
            }
        }
        try await inner.send(message)
    }

    func receive() async throws -> [UInt8]? {
        try await inner.receive()
    }

    func close() async {
        await inner.close()
    }
}

/// An end that records every message it sends.
final class RecordSends: TransferChannel, @unchecked Sendable {
    private let inner: TransferChannel
    private let sent: Recorder<[UInt8]>

    init(_ inner: TransferChannel, into sent: Recorder<[UInt8]>) {
        self.inner = inner
        self.sent = sent
    }

    func send(_ message: [UInt8]) async throws {
        sent.append(message)
        try await inner.send(message)
    }

    func receive() async throws -> [UInt8]? {
        try await inner.receive()
    }

    func close() async {
        await inner.close()
    }
}

/// A sender's end that calls `onChunk` with the number of chunk messages
/// sent so far after each one.
final class WatchChunks: TransferChannel, @unchecked Sendable {
    private let inner: TransferChannel
    private let onChunk: @Sendable (Int) -> Void
    private let sent = Recorder<Int>()

    init(_ inner: TransferChannel, onChunk: @escaping @Sendable (Int) -> Void) {
        self.inner = inner
        self.onChunk = onChunk
    }

    func send(_ message: [UInt8]) async throws {
        try await inner.send(message)
        if message.first == TransferMessage.MessageType.chunk.rawValue {
            sent.append(1)
            onChunk(sent.all.count)
        }
    }

    func receive() async throws -> [UInt8]? {
        try await inner.receive()
    }

    func close() async {
        await inner.close()
    }
}

/// An event as one comparable line.
func describe(_ event: TransferEvent) -> String {
    switch event {
    case .started(let files, let bytes, let resumed):
        return "started files=\(files) bytes=\(bytes.map(String.init) ?? "nil") resumed=\(resumed)"
    case .progress(let bytes, let total, let file):
        return "progress \(file) \(bytes)/\(total.map(String.init) ?? "nil")"
    case .verified(let path, let size, let root):
        return "verified \(path) size=\(size) root=\(root.hex)"
    case .warning(let text):
        return "warning \(text)"
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

extension Result where Failure == TransferError {
    var isConnectionLost: Bool {
        if case .failure(.connectionLost) = self { return true }
        return false
    }
}

extension mode_t {
    var permissions: mode_t { self & 0o7777 }
}
