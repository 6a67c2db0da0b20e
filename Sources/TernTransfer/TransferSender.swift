import Foundation

/// The sending side of a transfer (docs/protocol.md §11): manifest, resume
/// claims checked against our own data, then the chunks of every file in
/// manifest order, each file closed by its root hash, and `done`.
///
/// Chunks are read, hashed and queued on the channel one after another; the
/// channel's queue (several MiB) is the read-ahead, and its back-pressure
/// bounds memory whatever the file size.
public final class TransferSender: @unchecked Sendable {
    private let items: [SourceItem]
    private let channel: TransferChannel
    private let chunkSize: Int
    private let maxMessageSize: Int
    private let report: @Sendable (TransferEvent) -> Void
    /// Standard input for a stream entry.
    private let streamInput: Int32
    /// Size and root of each file whose end was sent (the reply reader reports them).
    private let ends = LockedDictionary<Int, (UInt64, Digest)>()

    /// - Parameter maxMessageSize: the largest message the peer accepts.
    public init(
        items: [SourceItem], channel: TransferChannel, maxMessageSize: Int, streamInput: Int32 = 0,
        report: @escaping @Sendable (TransferEvent) -> Void
    ) {
        self.items = items
        self.channel = channel
        self.maxMessageSize = maxMessageSize
        self.chunkSize = min(TransferMessage.maxChunkSize, maxMessageSize - TransferMessage.chunkHeaderSize)
        self.streamInput = streamInput
        self.report = report
    }

    /// Sends everything; on a failure of ours (a file that cannot be read,
    /// or changed while it was sent) the receiver is told why, so that its
    /// side ends with the same words and exit code.
    public func run() async throws -> TransferSummary {
        do {
            return try await transfer()
        } catch let error as TransferError {
            if let code = error.failureCode, !told.value {
                try? await channel.send(TransferMessage.failure(code, error.message).encoded())
            }
            throw error
        }
    }

    /// Set once the receiver was sent our failure.
    private let told = Locked(false)

    private func transfer() async throws -> TransferSummary {
        let entries = items.map(\.entry)
        let chunkSize = self.chunkSize
        for message in try splitIntoMessages(entries, limit: maxMessageSize, encode: {
            TransferMessage.manifest(chunkSize: chunkSize, entries: $0, more: $1).encoded()
        }) {
            try await channel.send(message)
        }

        // What the receiver asks about, our chains for it, then where it needs each file from.
        var asks: [ResumeAsk] = []
        var skipped = Set<Int>()
        var more = true
        while more {
            let message = try await channel.nextMessage(from: "receiver")
            guard case .ask(let part, let skip, let next) = message else {
                throw TransferError.protocolViolation("expected what the receiver holds (ask), got \(Self.name(message))")
            }
            asks.append(contentsOf: part)
            guard asks.count <= items.count else {
                throw TransferError.protocolViolation("the receiver sent \(asks.count) asks for \(items.count) entries")
            }
            for index in skip {
                guard index < items.count, items[index].entry.kind == .file || items[index].entry.kind == .stream else {
                    throw TransferError.protocolViolation("the receiver asked to skip entry \(index), which is not a file of the manifest")
                }
                guard skipped.insert(index).inserted else {
                    throw TransferError.protocolViolation("the receiver asked to skip \(items[index].entry.path) twice")
                }
            }
            more = next
        }
        var chains: [Int: (asked: UInt64, chain: ChunkChain)] = [:]
        for ask in asks {
            guard ask.index < items.count else {
                throw TransferError.protocolViolation("an ask for entry \(ask.index), but the manifest has \(items.count) entries")
            }
            let entry = items[ask.index].entry
            guard entry.kind == .file, let size = entry.size else {
                throw TransferError.protocolViolation("an ask for \(entry.path), which is a \(entry.kind), not a file")
            }
            guard chains[ask.index] == nil, !skipped.contains(ask.index) else {
                throw TransferError.protocolViolation("two asks, or an ask and a skip, for \(entry.path)")
            }
            guard ask.chunks <= chunkCount(size) else {
                throw TransferError.protocolViolation("an ask for \(ask.chunks) chunks of \(entry.path), which has \(chunkCount(size))")
            }
            chains[ask.index] = (ask.chunks, try prefixChain(of: items[ask.index], chunks: ask.chunks))
        }
        let starts = try await agreeStarts(chains)

        let kept = entries.indices.filter { !skipped.contains($0) }
        let total: UInt64? = kept.contains { entries[$0].kind == .stream } ? nil : kept.reduce(0) { $0 + (entries[$1].size ?? 0) }
        var resumed: UInt64 = 0
        for (index, start) in starts where start.from > 0 {
            resumed += min(start.from * UInt64(chunkSize), items[index].entry.size ?? 0)
        }
        let fileCount = kept.filter { entries[$0].kind == .file || entries[$0].kind == .stream }.count
        report(.started(files: fileCount, bytes: total, resumedBytes: resumed))

        // Replies (`verified`, `finished`, a failure) are read alongside.
        let dataIndices = kept.filter { entries[$0].kind == .file || entries[$0].kind == .stream }
        let replies = Task { try await self.readReplies(files: dataIndices) }
        do {
            var progress = Progress(bytes: resumed, total: total)
            var roots: [Digest] = []
            var sent: UInt64 = 0
            var batch = WholeFileBatch(limit: maxMessageSize)
            for (index, item) in items.enumerated() where !skipped.contains(index) {
                switch item.entry.kind {
                case .file:
                    let start = starts[index] ?? (0, ChunkChain())
                    let (root, bytes): (Digest, UInt64)
                    if start.from == 0, let size = item.entry.size, size <= UInt64(chunkSize) {
                        (root, bytes) = try await sendWhole(item, index: index, size: Int(size), batch: &batch, progress: &progress)
                    } else {
                        try await flush(&batch)
                        (root, bytes) = try await sendFile(item, index: index, from: start.from, chain: start.chain, progress: &progress)
                    }
                    roots.append(root)
                    sent += bytes
                case .stream:
                    try await flush(&batch)
                    let (root, bytes) = try await sendStream(item, index: index, progress: &progress)
                    roots.append(root)
                    sent += bytes
                case .directory, .symlink:
                    continue
                }
            }
            try await flush(&batch)
            try await channel.send(TransferMessage.done(files: UInt64(roots.count), bytes: progress.bytes).encoded())
            let finished = try await replies.value
            guard finished.files == UInt64(roots.count) else {
                throw TransferError.protocolViolation("the receiver's finished counts \(finished.files) files, but \(roots.count) were sent")
            }
            guard finished.bytes == progress.bytes else {
                throw TransferError.protocolViolation("the receiver's finished counts \(finished.bytes) bytes, but it holds \(progress.bytes)")
            }
            guard finished.hash == transferHash(roots) else {
                throw TransferError.integrity("the receiver's hash over all files does not match ours")
            }
            return TransferSummary(files: roots.count, bytes: progress.bytes, sentBytes: sent, hash: finished.hash)
        } catch {
            // Our own failure is what happened (the receiver is told in `run`);
            // a broken send is better explained by a failure the receiver sent.
            if let own = error as? TransferError, let code = own.failureCode {
                // Told here, and the receiver given time to read up to it
                // (it closes then): closing at once would drop the data it
                // has not read yet, the reason included.
                try? await channel.send(TransferMessage.failure(code, own.message).encoded())
                told.value = true
                _ = await Self.settled(replies, within: .seconds(5))
                replies.cancel()
                throw own
            }
            if case .failure(let replyError)? = await Self.settled(replies) { throw replyError }
            replies.cancel()
            throw error
        }
    }

    struct Progress {
        var bytes: UInt64
        var total: UInt64?
    }

    /// Sends our chain for each ask and reads where the receiver needs each
    /// file from: exactly one start per ask, at 0 or at the asked count
    /// (docs/protocol.md §11.3). Nothing is exchanged when nothing was asked.
    private func agreeStarts(_ chains: [Int: (asked: UInt64, chain: ChunkChain)]) async throws -> [Int: (from: UInt64, chain: ChunkChain)] {
        guard !chains.isEmpty else { return [:] }
        let sent = chains.keys.sorted().compactMap { index in
            chains[index].map { PrefixChain(index: index, chunks: $0.asked, chain: $0.chain.value) }
        }
        for message in try splitIntoMessages(sent, limit: maxMessageSize, encode: { TransferMessage.hashes(chains: $0, more: $1).encoded() }) {
            try await channel.send(message)
        }
        var starts: [Int: (from: UInt64, chain: ChunkChain)] = [:]
        var more = true
        while more {
            let message = try await channel.nextMessage(from: "receiver")
            guard case .need(let part, let next) = message else {
                throw TransferError.protocolViolation("expected where the receiver needs the asked files from, got \(Self.name(message))")
            }
            for start in part {
                guard let asked = chains[start.index] else {
                    throw TransferError.protocolViolation("the receiver needs entry \(start.index) from a chunk, but did not ask about it")
                }
                let path = items[start.index].entry.path
                guard starts[start.index] == nil else { throw TransferError.protocolViolation("the receiver answered the chain of \(path) twice") }
                guard start.from == 0 || start.from == asked.asked else {
                    throw TransferError.protocolViolation(
                        "the receiver needs \(path) from chunk \(start.from), but asked about \(asked.asked) (only 0 or \(asked.asked) can answer that)")
                }
                starts[start.index] = start.from == 0 ? (0, ChunkChain()) : (start.from, asked.chain)
            }
            more = next
        }
        if let unanswered = chains.keys.sorted().first(where: { starts[$0] == nil }) {
            throw TransferError.protocolViolation("the receiver did not say where it needs \(items[unanswered].entry.path) from")
        }
        return starts
    }

    private func chunkCount(_ size: UInt64) -> UInt64 {
        (size + UInt64(chunkSize) - 1) / UInt64(chunkSize)
    }

    /// The chain over the first `chunks` chunks of a file as it is now.
    private func prefixChain(of item: SourceItem, chunks: UInt64) throws(TransferError) -> ChunkChain {
        var chain = ChunkChain()
        guard chunks > 0, let path = item.localPath else { return chain }
        let file = try SourceFile(path: path)
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        for number in 0..<chunks {
            let count = try file.read(into: &buffer, at: number * UInt64(chunkSize))
            guard count > 0 else { break }
            chain.append(buffer.withUnsafeBytes { Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[0..<count])) })
        }
        return chain
    }

    /// Chunk messages queued in one trip to the channel: 1 MiB, a few
    /// milliseconds of sending at 1 Gbit/s (docs/architecture.md).
    static let chunksPerSend = 4

    private func sendFile(
        _ item: SourceItem, index: Int, from: UInt64, chain start: ChunkChain, progress: inout Progress
    ) async throws -> (Digest, UInt64) {
        guard let path = item.localPath, let size = item.entry.size else { throw TransferError.io("no source for \(item.entry.path)") }
        let file = try SourceFile(path: path)
        try file.checkUnchanged(size: size, mtime: item.entry.mtime, name: item.entry.path)
        file.adviseSequential()
        var chain = start
        var sent: UInt64 = 0
        let count = chunkCount(size)
        var number = from
        // Chunks go to the channel a few at a time (`chunksPerSend`), each
        // counted as sent once its batch is queued.
        var batch: [[UInt8]] = []
        var batchHashes: [Digest] = []
        var batchBytes: UInt64 = 0
        func sendBatch() async throws {
            try await channel.send(contentsOf: batch)
            for hash in batchHashes { chain.append(hash) }
            sent += batchBytes
            progress.bytes += batchBytes
            report(.progress(bytes: progress.bytes, total: progress.total, file: item.entry.path))
            batch.removeAll(keepingCapacity: true)
            batchHashes.removeAll(keepingCapacity: true)
            batchBytes = 0
        }
        while number < count {
            let length = Int(min(UInt64(chunkSize), size - number * UInt64(chunkSize)))
            // A fresh buffer per chunk (the channel keeps the message until it
            // is sent), read into without zeroing it first.
            var read = 0
            var message = try [UInt8](unsafeUninitializedCapacity: TransferMessage.chunkHeaderSize + length) { buffer, initialized in
                let header = TransferMessage.chunkHeaderSize
                UnsafeMutableBufferPointer(rebasing: buffer[..<header]).initialize(repeating: 0)
                initialized = header
                read = try file.readFully(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[header...])), at: number * UInt64(chunkSize))
                initialized = header + read
            }
            guard read == length else { throw TransferError.io("\(item.entry.path) shrank while it was being sent") }
            let hash = message.withUnsafeBytes { Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[TransferMessage.chunkHeaderSize...])) }
            TransferMessage.fillChunkHeader(&message, index: index, number: number, hash: hash)
            batch.append(message)
            batchHashes.append(hash)
            batchBytes += UInt64(length)
            number += 1
            if batch.count >= Self.chunksPerSend { try await sendBatch() }
        }
        if !batch.isEmpty { try await sendBatch() }
        let root = chain.root(size: size)
        ends.set(index, (size, root))
        try await channel.send(TransferMessage.end(index: index, size: size, root: root).encoded())
        return (root, sent)
    }

    /// A `files` message being filled with whole small files
    /// (docs/protocol.md §11.2): each file costs a record, not a chunk
    /// message and an `end`, and many go out in one message.
    struct WholeFileBatch {
        let limit: Int
        var bytes: [UInt8] = []
        /// When the first record went in (a batch waits at most `maxDelay`).
        var started: ContinuousClock.Instant?

        /// A batch is sent this long after its first record at the latest,
        /// when files are slow to read.
        static let maxDelay: Duration = .milliseconds(50)

        init(limit: Int) {
            self.limit = limit
        }

        func fits(_ length: Int) -> Bool {
            max(bytes.count, 1) + TransferMessage.wholeFileHeaderSize + length <= limit
        }
    }

    private func flush(_ batch: inout WholeFileBatch) async throws {
        guard batch.started != nil else { return }
        let message = batch.bytes
        batch.bytes = []
        batch.started = nil
        try await channel.send(message)
    }

    /// A file of at most one chunk, sent from its start, as a record of a
    /// `files` message: read straight into the message, hashed there.
    private func sendWhole(
        _ item: SourceItem, index: Int, size: Int, batch: inout WholeFileBatch, progress: inout Progress
    ) async throws -> (Digest, UInt64) {
        guard let path = item.localPath else { throw TransferError.io("no source for \(item.entry.path)") }
        let file = try SourceFile(path: path)
        try file.checkUnchanged(size: UInt64(size), mtime: item.entry.mtime, name: item.entry.path)
        if !batch.fits(size) { try await flush(&batch) }
        if batch.started == nil {
            batch.bytes.reserveCapacity(batch.limit)
            batch.bytes.append(TransferMessage.MessageType.files.rawValue)
            batch.started = ContinuousClock.now
        }
        let root = try TransferMessage.appendWholeFile(&batch.bytes, index: index, length: size) { room throws(TransferError) in
            let read = try file.readFully(into: room, at: 0)
            var chain = ChunkChain()
            if read > 0 { chain.append(Digest.sha256(UnsafeRawBufferPointer(rebasing: room[0..<read]))) }
            return (read, chain.root(size: UInt64(read)))
        }
        guard let root else { throw TransferError.io("\(item.entry.path) shrank while it was being sent") }
        ends.set(index, (UInt64(size), root))
        progress.bytes += UInt64(size)
        report(.progress(bytes: progress.bytes, total: progress.total, file: item.entry.path))
        if let started = batch.started, ContinuousClock.now - started >= WholeFileBatch.maxDelay { try await flush(&batch) }
        return (root, UInt64(size))
    }

    private func sendStream(_ item: SourceItem, index: Int, progress: inout Progress) async throws -> (Digest, UInt64) {
        var chain = ChunkChain()
        var size: UInt64 = 0
        var number: UInt64 = 0
        while true {
            var message = [UInt8](repeating: 0, count: TransferMessage.chunkHeaderSize + chunkSize)
            // Fill the chunk (a pipe hands out at most 64 KiB per read).
            let count = try message.withUnsafeMutableBytes { raw in
                try Self.readFully(streamInput, into: UnsafeMutableRawBufferPointer(rebasing: raw[TransferMessage.chunkHeaderSize...]))
            }
            if count == 0 { break }
            message.removeLast(chunkSize - count)
            let hash = message.withUnsafeBytes { Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[TransferMessage.chunkHeaderSize...])) }
            TransferMessage.fillChunkHeader(&message, index: index, number: number, hash: hash)
            try await channel.send(message)
            chain.append(hash)
            size += UInt64(count)
            number += 1
            progress.bytes += UInt64(count)
            report(.progress(bytes: progress.bytes, total: nil, file: item.entry.path))
        }
        let root = chain.root(size: size)
        ends.set(index, (size, root))
        try await channel.send(TransferMessage.end(index: index, size: size, root: root).encoded())
        return (root, size)
    }

    /// Reads until the buffer is full or the input ends.
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(TransferError) -> Int {
        do throws(DescriptorIO.Failure) {
            return try DescriptorIO.readFully(fd, into: buffer)
        } catch {
            throw .io("cannot read standard input: \(error.reason)")
        }
    }

    struct Finished {
        var files: UInt64
        var bytes: UInt64
        var hash: Digest
    }

    /// Reads the receiver's replies until `finished`; reports verified
    /// files. A `verified` covers every file up to the one it names
    /// (`files`: the indices of the files and streams sent, in order).
    private func readReplies(files: [Int]) async throws -> Finished {
        var reported = 0
        while true {
            switch try await channel.nextMessage(from: "receiver") {
            case .verified(let index):
                guard reported < files.count, files[reported] <= index else {
                    throw TransferError.protocolViolation("a verified message for entry \(index), which is not a file still to verify")
                }
                while reported < files.count, files[reported] <= index {
                    let file = files[reported]
                    guard let (size, root) = ends.value(file) else {
                        throw TransferError.protocolViolation("a verified message for a file not yet sent")
                    }
                    report(.verified(path: items[file].entry.path, size: size, root: root))
                    reported += 1
                }
                guard files[reported - 1] == index else {
                    throw TransferError.protocolViolation("a verified message for entry \(index), which is not a file")
                }
            case .finished(let files, let bytes, let hash):
                return Finished(files: files, bytes: bytes, hash: hash)
            case let other:
                throw TransferError.protocolViolation("unexpected \(Self.name(other)) from the receiver")
            }
        }
    }


    /// The reply reader's result if it ends within half a second (it ends
    /// soon after the channel closes).
    private static func settled(_ task: Task<Finished, Error>, within limit: Duration = .milliseconds(500)) async -> Result<Finished, Error>? {
        let result = LockedDictionary<Int, Result<Finished, Error>>()
        await finishes(within: limit) { result.set(0, await task.result) }
        return result.value(0)
    }

    static func name(_ message: TransferMessage) -> String {
        switch message {
        case .manifest: return "a manifest"
        case .ask: return "what the receiver holds (ask)"
        case .hashes: return "the sender's chains (hashes)"
        case .need: return "where the receiver needs files from (need)"
        case .chunk(let chunk): return "chunk \(chunk.number) of entry \(chunk.index)"
        case .end(let index, _, _): return "the end of entry \(index)"
        case .verified(let index): return "a verified message for entry \(index)"
        case .done: return "done"
        case .finished: return "finished"
        case .failure: return "a failure"
        case .files(let files): return "\(files.count) whole files from entry \(files.first?.index ?? 0)"
        }
    }
}

/// A source file opened for reading.
final class SourceFile {
    let fd: Int32
    let path: String

    init(path: String) throws(TransferError) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        self.path = path
    }

    deinit { close(fd) }

    func adviseSequential() {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    /// Size and modification time still as listed in the manifest.
    func checkUnchanged(size: UInt64, mtime: Int64?, name: String) throws(TransferError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io("cannot stat '\(path)': \(String(cString: strerror(errno)))") }
        if UInt64(info.st_size) != size || (mtime.map { $0 != Int64(info.st_mtim.tv_sec) } ?? false) {
            throw .io("\(name) changed after the transfer started; send it again")
        }
    }

    func read(into buffer: inout [UInt8], at offset: UInt64) throws(TransferError) -> Int {
        try withMutableBytes(of: &buffer) { raw throws(TransferError) in try readFully(into: raw, at: offset) }
    }

    func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(TransferError) -> Int {
        do throws(DescriptorIO.Failure) {
            return try DescriptorIO.readFully(fd, into: buffer, at: offset)
        } catch {
            throw .io("cannot read '\(path)': \(error.reason)")
        }
    }
}

/// A dictionary shared by the data writer and the reply reader.
final class LockedDictionary<Key: Hashable, Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Key: Value] = [:]

    func set(_ key: Key, _ value: Value) {
        lock.lock()
        storage[key] = value
        lock.unlock()
    }

    func value(_ key: Key) -> Value? {
        lock.lock()
        defer { lock.unlock() }
        return storage[key]
    }
}
