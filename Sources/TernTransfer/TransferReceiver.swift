import Foundation
import TernCollections

extension OfferEntry.Kind {
    /// The manifest kind an offered item arrives as (a text never arrives).
    var manifestKind: EntryKind? {
        switch self {
        case .file: return .file
        case .directory: return .directory
        case .stream: return .stream
        case .text: return nil
        }
    }
}

/// The receiving side of a transfer (docs/protocol.md §11). Every path is
/// validated before anything is created, every write goes through
/// `TargetDirectory` (no symlink is ever followed), every chunk is checked
/// against its hash and every file against its root before it is renamed
/// into place. A partial file keeps a state file beside it so that a later
/// transfer of the same source resumes where this one stopped.
public final class TransferReceiver: @unchecked Sendable {
    public enum Conflict: Sendable {
        /// An existing file stops the transfer before any data moves (exit 6).
        case refuse
        case overwrite
        /// Write `name (1).ext` instead.
        case rename
        /// Keep what is there and leave the offered file out (the sender
        /// is asked not to send it).
        case skip
    }

    public struct Options: Sendable {
        /// What the sender offered through the sealed mailbox, before any
        /// data channel: every manifest is checked against it (the offered
        /// sizes and counts are limits, not hints; a text entry never is).
        public var offer: [OfferEntry]
        public var conflict: Conflict = .refuse
        public var resume = true
        /// The offer's one file or stream goes to this descriptor (standard
        /// output) instead of into the target.
        public var streamOutput: Int32?
        /// The offer's one file or stream is written under this name in the
        /// target instead of the offered one (`-o NAME`).
        public var singleName: RelativePath?
        /// How often the resume state of the file being written is saved.
        public var stateInterval: Duration = .seconds(1)
        /// ... and at the latest after this many bytes of it (a fast link
        /// would otherwise finish a large file before its first save).
        public var stateBytes: UInt64 = 8 << 20
        /// What the sender may make this side hold or write.
        public var limits = TransferLimits.standard

        public init(offer: [OfferEntry]) {
            self.offer = offer
        }
    }

    private let target: TargetDirectory?
    private let channel: TransferChannel
    private let options: Options
    private let report: @Sendable (TransferEvent) -> Void
    private let kept = Locked<UInt64>(0)
    /// The records of the last `files` message not yet taken, and the next one.
    private var wholeFiles: [WholeFile] = []
    private var nextWholeFile = 0
    /// The directory of the last path looked at or written (nil inside:
    /// it was missing), kept for the paths after it in the same directory.
    private var heldFolder: (components: [String], folder: TargetDirectory.Folder?)?
    /// The last verified file the sender has not been told about, and when
    /// the last `verified` went out (docs/protocol.md §11.3: one covers
    /// every file up to it).
    private var unacknowledged: Int?
    private var lastAcknowledgement = ContinuousClock.now
    /// How long a verified file may wait to be acknowledged, so that many
    /// small files cost one `verified` message, not one each.
    static let acknowledgementInterval: Duration = .milliseconds(100)

    /// After a failure: verified bytes left in partial files for a later
    /// transfer to resume from (0 when nothing was kept).
    public var keptPartialBytes: UInt64 { kept.value }

    /// - Parameter target: where files go; nil only when the offer is one file or stream written to `streamOutput`.
    public init(target: TargetDirectory?, channel: TransferChannel, options: Options, report: @escaping @Sendable (TransferEvent) -> Void) {
        self.target = target
        self.channel = channel
        self.options = options
        self.report = report
    }

    /// Receives everything; on a failure of ours the sender is told why
    /// (its side then ends with the same exit code).
    public func run() async throws -> TransferSummary {
        do {
            return try await receive()
        } catch let error as TransferError {
            if let code = error.failureCode {
                try? await channel.send(TransferMessage.failure(code, error.message).encoded())
            }
            throw error
        }
    }

    // MARK: - Plan

    /// One entry after validation, with where it goes and how it starts.
    struct Item {
        var entry: ManifestEntry
        var path: RelativePath
        /// What the receiver already holds of it (asked about: only the
        /// chunk count leaves this side, never the chain).
        var claim: Claim?
        /// Replace what is at `path` when committing.
        var replace = false
        /// The chunk the sender starts at (agreed in `need`).
        var from: UInt64 = 0
        /// A link already at `path` with the same target: nothing to make.
        var inPlace = false
        /// Something is at `path` and the user chose to keep it: nothing is sent or made.
        var skip = false
        /// A resume state may lie beside `path` (false once it is known that none does).
        var mayHaveState = true
    }

    /// One item of the `ask` messages: an ask, or an entry to skip.
    enum AskItem {
        case ask(ResumeAsk)
        case skip(Int)

        var ask: ResumeAsk? {
            if case .ask(let ask) = self { return ask }
            return nil
        }

        var skip: Int? {
            if case .skip(let index) = self { return index }
            return nil
        }
    }

    /// What this side holds of a file, with its chain, which never leaves
    /// this side: the sender states its own chain first (docs/protocol.md §11.3).
    enum Claim {
        case partial(ChunkChain)
        /// A file already in place whose size matches: asked about in full;
        /// the sender skips it when its content is the same.
        case complete(ChunkChain)

        var chain: ChunkChain {
            switch self {
            case .partial(let chain), .complete(let chain): return chain
            }
        }
    }

    private func receive() async throws -> TransferSummary {
        let (chunkSize, entries) = try await readManifest()
        var items = try validate(entries)
        if options.streamOutput != nil || options.singleName != nil {
            guard items.count == 1, items[0].entry.kind == .file || items[0].entry.kind == .stream else {
                throw TransferError.protocolViolation("the manifest has \(items.count) entries where one file was offered")
            }
            if let name = options.singleName { items[0].path = name }
        }
        guard target != nil || options.streamOutput != nil else {
            throw TransferError.io("no target directory for the offered files")
        }

        // What we already hold, and the conflicts we can settle now.
        for index in items.indices {
            try settleExisting(&items[index], chunkSize: chunkSize)
        }
        var asks: [AskItem] = []
        for (index, item) in items.enumerated() {
            if let claim = item.claim { asks.append(.ask(ResumeAsk(index: index, chunks: claim.chain.chunks))) }
            if item.skip, item.entry.kind == .file || item.entry.kind == .stream { asks.append(.skip(index)) }
        }
        for message in try splitIntoMessages(asks, limit: 60 * 1024, encode: { batch, more in
            TransferMessage.ask(asks: batch.compactMap(\.ask), skip: batch.compactMap(\.skip), more: more).encoded()
        }) {
            try await channel.send(message)
        }
        if items.contains(where: { $0.claim != nil }) { try await answerChains(of: &items) }
        try settleRefusedClaims(&items, chunkSize: chunkSize)
        try checkSpace(items, chunkSize: chunkSize)

        for item in items where item.entry.kind == .directory {
            try target?.makeDirectories(item.path, mode: (item.entry.mode ?? 0o755) | 0o700)
        }

        let dataItems = items.indices.filter { (items[$0].entry.kind == .file || items[$0].entry.kind == .stream) && !items[$0].skip }
        let total: UInt64? = items.contains { $0.entry.kind == .stream && !$0.skip }
            ? nil : items.reduce(0) { $0 + ($1.skip ? 0 : $1.entry.size ?? 0) }
        var resumed: UInt64 = 0
        for item in items where item.from > 0 {
            resumed += min(item.from * UInt64(chunkSize), item.entry.size ?? 0)
        }
        report(.started(files: dataItems.count, bytes: total, resumedBytes: resumed))

        var progress = resumed
        var received: UInt64 = 0
        var roots: [Digest] = []
        for (position, index) in dataItems.enumerated() {
            do {
                let (root, bytes) = try await receiveData(of: items[index], index: index, chunkSize: chunkSize, progress: &progress, total: total)
                roots.append(root)
                received += bytes
            } catch {
                // Partials of earlier attempts that this one did not reach stay too.
                for later in dataItems[(position + 1)...] where items[later].from > 0 {
                    kept.value += min(items[later].from * UInt64(chunkSize), items[later].entry.size ?? 0)
                }
                throw error
            }
        }
        let last = try await nextIncoming()
        guard case .message(.done(let files, let bytes)) = last else {
            throw TransferError.protocolViolation("expected done after the last file, got \(last.name)")
        }
        guard files == UInt64(roots.count) else {
            throw TransferError.protocolViolation("the sender's done counts \(files) files, but \(roots.count) arrived")
        }
        guard bytes == progress else {
            throw TransferError.protocolViolation("the sender's done counts \(bytes) bytes, but this side holds \(progress)")
        }
        for item in items where item.entry.kind == .symlink && !item.inPlace && !item.skip {
            try target?.makeSymlink(item.path, target: item.entry.target ?? "", replace: item.replace)
        }
        let hash = transferHash(roots)
        try await acknowledge(nil, now: true)
        try await channel.send(TransferMessage.finished(files: UInt64(roots.count), bytes: progress, hash: hash).encoded())
        return TransferSummary(files: roots.count, bytes: progress, sentBytes: received, hash: hash)
    }

    private func readManifest() async throws -> (Int, [ManifestEntry]) {
        var entries: [ManifestEntry] = []
        var chunkSize: Int?
        while true {
            let message = try await channel.nextMessage(from: "sender")
            guard case .manifest(let size, let part, let more) = message else {
                throw TransferError.protocolViolation("expected the manifest, got \(TransferSender.name(message))")
            }
            guard chunkSize == nil || chunkSize == size else { throw TransferError.protocolViolation("the chunk size changed within the manifest") }
            chunkSize = size
            entries.append(contentsOf: part)
            guard entries.count <= options.limits.maximumEntries else {
                throw TransferError.protocolViolation("the manifest has more than \(options.limits.maximumEntries) entries")
            }
            if !more { break }
        }
        guard let chunkSize, !entries.isEmpty else { throw TransferError.protocolViolation("an empty manifest") }
        return (chunkSize, entries)
    }

    /// Every entry against the offer and the path rules: relative, safe,
    /// unique, inside an offered item, below a directory listed before it.
    func validate(_ entries: [ManifestEntry]) throws(TransferError) -> [Item] {
        var offered: [String: (item: OfferEntry, files: UInt64, bytes: UInt64, directories: UInt64, links: UInt64)] = [:]
        for item in options.offer where item.kind != .text { offered[item.name] = (item, 0, 0, 0, 0) }
        var directories = Set<RelativePath>()
        var seen = Set<RelativePath>()
        var totalBytes: UInt64 = 0
        var items: [Item] = []
        items.reserveCapacity(entries.count)
        for entry in entries {
            let path = try RelativePath(validating: entry.path)
            guard seen.insert(path).inserted else { throw .protocolViolation("the manifest lists \(path) twice") }
            guard let top = path.components.first, var limit = offered[top] else {
                throw .protocolViolation("\(path) is not inside anything that was offered")
            }
            if let parent = path.parent {
                guard directories.contains(parent) else {
                    throw .protocolViolation("\(path) is not inside a directory listed before it")
                }
                guard limit.item.kind == .directory else { throw .protocolViolation("\(path) is inside an offered \(limit.item.kind)") }
            } else {
                guard entry.kind == limit.item.kind.manifestKind else {
                    throw .protocolViolation("\(path) was offered as a \(limit.item.kind) but arrives as a \(entry.kind)")
                }
            }
            switch entry.kind {
            case .directory:
                directories.insert(path)
                if path.parent != nil {
                    limit.directories += 1
                    guard limit.directories <= limit.item.directories ?? 0 else {
                        throw .protocolViolation("more directories in \(top) than the \(limit.item.directories ?? 0) offered")
                    }
                }
            case .file:
                guard let size = entry.size else { throw .protocolViolation("the file \(path) has no size") }
                limit.files += 1
                let (bytes, overflow) = limit.bytes.addingReportingOverflow(size)
                let (sum, overflowAll) = totalBytes.addingReportingOverflow(size)
                // Sums of sizes (progress, free space) must stay in range.
                guard !overflow, !overflowAll, sum <= options.limits.maximumTotalBytes else {
                    throw .protocolViolation("the sizes of the files add up to more than \(options.limits.maximumTotalBytes) bytes")
                }
                limit.bytes = bytes
                totalBytes = sum
                guard limit.files <= limit.item.files else {
                    throw .protocolViolation("more files in \(top) than the \(limit.item.files) offered")
                }
                if let offeredSize = limit.item.size, limit.bytes > offeredSize {
                    throw .protocolViolation("more bytes in \(top) than the \(offeredSize) offered")
                }
            case .stream:
                guard entry.size == nil else { throw .protocolViolation("the stream \(path) claims a size") }
            case .symlink:
                guard let target = entry.target, !target.isEmpty else { throw .protocolViolation("the link \(path) has no target") }
                limit.links += 1
                guard limit.links <= limit.item.links ?? 0 else {
                    throw .protocolViolation("more links in \(top) than the \(limit.item.links ?? 0) offered")
                }
                // Checked on arrival, before any data moves, with the rule
                // makeSymlink applies again when it creates the link.
                if let reason = TargetDirectory.linkTargetProblem(target, depth: path.components.count - 1) {
                    throw .unsafePath(
                        TerminalText.escaped(path.string), reason: "its link target \"\(TerminalText.escaped(target, limit: 80))\" \(reason)")
                }
            }
            offered[top] = limit
            items.append(Item(entry: entry, path: path))
        }
        return items
    }

    // MARK: - Existing files, partials, conflicts

    private func settleExisting(_ item: inout Item, chunkSize: Int) throws(TransferError) {
        guard let target, options.streamOutput == nil else { return }
        let existing = try target.entry(at: item.path, in: folder(for: item.path, creating: false))
        switch item.entry.kind {
        case .directory:
            switch existing {
            case .missing, .directory: return
            case .file, .symlink, .other: throw .exists(item.path.description)
            }
        case .symlink:
            if existing == .symlink, let wanted = item.entry.target,
               TargetDirectory.linkTargetProblem(wanted, depth: item.path.components.count - 1) == nil,
               let current = try target.linkTarget(at: item.path), Array(current.utf8) == Array(wanted.utf8) {
                item.inPlace = true
            } else if existing != .missing {
                try resolveConflict(&item)
            }
        case .stream:
            if existing != .missing { try resolveConflict(&item) }
        case .file:
            switch existing {
            case .missing:
                if options.resume {
                    item.claim = try partialClaim(for: item, chunkSize: chunkSize)
                } else {
                    target.removeResumeFiles(for: item.path)
                }
                // Without a claim there is no state: none was found, or it was removed.
                item.mayHaveState = item.claim != nil
            case .file(let size, _) where size == item.entry.size && options.conflict != .skip:
                item.claim = .complete(try chain(ofExisting: item.path, size: size, chunkSize: chunkSize))
            case .file, .symlink, .other:
                try resolveConflict(&item)
            case .directory:
                guard options.conflict == .rename || options.conflict == .skip else { throw .exists(item.path.description) }
                try resolveConflict(&item)
            }
        }
    }

    private func resolveConflict(_ item: inout Item) throws(TransferError) {
        switch options.conflict {
        case .refuse:
            throw .exists(item.path.description)
        case .overwrite:
            item.replace = true
            target?.removeResumeFiles(for: item.path)
        case .rename:
            guard let target else { return }
            let renamed = try target.uniqueName(for: item.path)
            report(.warning("\(item.path) exists; writing \(renamed)"))
            item.path = renamed
        case .skip:
            item.skip = true
            report(.warning("\(item.path) exists; kept it and skipped the offered one"))
        }
    }

    /// A verified prefix of an earlier attempt, checked again against the
    /// partial's bytes (a state file that promises more than the disk holds,
    /// after a power cut, is not trusted).
    private func partialClaim(for item: Item, chunkSize: Int) throws(TransferError) -> Claim? {
        guard let target,
              let bytes = try target.readState(for: item.path, in: folder(for: item.path, creating: false), limit: ResumeState.maxBytes)
        else { return nil }
        guard let state = ResumeState.decode(bytes), state.matches(item.entry, chunkSize: chunkSize), state.chunks > 0,
              let expected = Digest(hex: state.chain)
        else {
            target.removeResumeFiles(for: item.path)
            return nil
        }
        let partial = try target.openPartial(for: item.path, truncate: false)
        var chain = ChunkChain()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        let size = item.entry.size ?? 0
        for number in 0..<state.chunks {
            let length = Int(min(UInt64(chunkSize), size - min(size, number * UInt64(chunkSize))))
            let count = try withMutableBytes(of: &buffer) { raw throws(TransferError) in
                try partial.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<length]), at: number * UInt64(chunkSize))
            }
            guard count == length, length > 0 else { break }
            chain.append(buffer.withUnsafeBytes { Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[0..<length])) })
        }
        guard chain.chunks == state.chunks, chain.value == expected else {
            target.removeResumeFiles(for: item.path)
            return nil
        }
        return .partial(chain)
    }

    /// The chain over every chunk of a file already in place.
    private func chain(ofExisting path: RelativePath, size: UInt64, chunkSize: Int) throws(TransferError) -> ChunkChain {
        guard let target else { return ChunkChain() }
        let file = try target.openForReading(path)
        var chain = ChunkChain()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var offset: UInt64 = 0
        while offset < size {
            let length = Int(min(UInt64(chunkSize), size - offset))
            let count = try withMutableBytes(of: &buffer) { raw throws(TransferError) in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<length]), at: offset)
            }
            guard count == length else { break }
            chain.append(buffer.withUnsafeBytes { Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[0..<length])) })
            offset += UInt64(length)
        }
        return chain
    }

    /// The sender's chain for every ask (docs/protocol.md §11.3), each
    /// exactly once and over the asked count, compared here with our own;
    /// the answer says only where each file is needed from: the asked count
    /// when the chains match, otherwise 0.
    private func answerChains(of items: inout [Item]) async throws {
        var answered = Set<Int>()
        var starts: [PlanStart] = []
        while true {
            let message = try await channel.nextMessage(from: "sender")
            guard case .hashes(let chains, let more) = message else {
                throw TransferError.protocolViolation("expected the sender's chains (hashes), got \(TransferSender.name(message))")
            }
            for chain in chains {
                guard chain.index < items.count else {
                    throw TransferError.protocolViolation("the hashes name entry \(chain.index), but the manifest has \(items.count) entries")
                }
                let path = items[chain.index].path
                guard let claim = items[chain.index].claim else {
                    throw TransferError.protocolViolation("the hashes answer an ask for \(path), but this side asked nothing of it")
                }
                guard answered.insert(chain.index).inserted else {
                    throw TransferError.protocolViolation("the hashes answer the ask for \(path) twice")
                }
                guard chain.chunks == claim.chain.chunks else {
                    throw TransferError.protocolViolation(
                        "the hashes give a chain over \(chain.chunks) chunks of \(path), but this side asked about \(claim.chain.chunks)")
                }
                let from = chain.chain == claim.chain.value ? claim.chain.chunks : 0
                items[chain.index].from = from
                starts.append(PlanStart(index: chain.index, from: from))
            }
            if !more { break }
        }
        if let unanswered = items.indices.first(where: { items[$0].claim != nil && !answered.contains($0) }) {
            throw TransferError.protocolViolation("the hashes do not answer the ask for \(items[unanswered].path)")
        }
        for message in try splitIntoMessages(starts, limit: 60 * 1024, encode: { TransferMessage.need(starts: $0, more: $1).encoded() }) {
            try await channel.send(message)
        }
    }

    /// Asks whose chains differed: a partial starts over; a file in place
    /// whose content differs is a conflict after all.
    private func settleRefusedClaims(_ items: inout [Item], chunkSize: Int) throws(TransferError) {
        for index in items.indices {
            guard let claim = items[index].claim, items[index].from == 0 else { continue }
            // A claim of no chunks (an empty file in place) is granted by a
            // start at 0: there is no content to differ, and the end's root
            // still checks the size.
            if claim.chain.chunks == 0 { continue }
            items[index].claim = nil
            switch claim {
            case .partial:
                target?.removeResumeFiles(for: items[index].path)
            case .complete:
                try resolveConflict(&items[index])
            }
        }
    }

    private func checkSpace(_ items: [Item], chunkSize: Int) throws(TransferError) {
        guard let target, let available = target.availableBytes() else { return }
        var needed: UInt64 = 0
        for item in items where item.entry.kind == .file {
            let size = item.entry.size ?? 0
            needed += size - min(size, item.from * UInt64(chunkSize))
        }
        if needed > available { throw .noSpace(needed: needed, available: available) }
    }

    // MARK: - Data

    /// What comes next from the sender while files arrive: a message, or
    /// one record of a `files` message (taken one at a time).
    enum Incoming {
        case message(TransferMessage)
        case whole(WholeFile)

        var name: String {
            switch self {
            case .message(let message): return TransferSender.name(message)
            case .whole(let file): return "the whole of entry \(file.index)"
            }
        }
    }

    private func nextIncoming() async throws -> Incoming {
        if nextWholeFile < wholeFiles.count {
            nextWholeFile += 1
            return .whole(wholeFiles[nextWholeFile - 1])
        }
        wholeFiles = []
        let message = try await channel.nextMessage(from: "sender")
        guard case .files(let files) = message, let first = files.first else { return .message(message) }
        wholeFiles = files
        nextWholeFile = 1
        return .whole(first)
    }

    /// The directory that holds `path`, the one held for the path before
    /// it when that is the same (nil: it is missing, and not `creating`).
    private func folder(for path: RelativePath, creating: Bool) throws(TransferError) -> TargetDirectory.Folder? {
        guard let target else { return nil }
        let components = Array(path.components.dropLast())
        if let held = heldFolder, held.components == components, held.folder != nil || !creating { return held.folder }
        let folder = try target.folder(holding: path, creating: creating)
        heldFolder = (components, folder)
        return folder
    }

    /// Records `index` as verified; tells the sender (one `verified` for
    /// every file up to it) at most each `acknowledgementInterval`, or
    /// `now`. With a nil `index`, only sends what is due.
    private func acknowledge(_ index: Int?, now: Bool = false) async throws {
        if let index { unacknowledged = index }
        guard let pending = unacknowledged else { return }
        let clock = ContinuousClock.now
        guard now || clock - lastAcknowledgement >= Self.acknowledgementInterval else { return }
        unacknowledged = nil
        lastAcknowledgement = clock
        try await channel.send(TransferMessage.verified(index: pending).encoded())
    }

    private func receiveData(
        of item: Item, index: Int, chunkSize: Int, progress: inout UInt64, total: UInt64?
    ) async throws -> (Digest, UInt64) {
        let name = item.path.description
        let toOutput = options.streamOutput
        let size = item.entry.size
        let count = size.map { ($0 + UInt64(chunkSize) - 1) / UInt64(chunkSize) }
        var chain = item.claim?.chain ?? ChunkChain()
        if case .complete? = item.claim {
            // Already in place and identical: the sender sends only the end
            // (for an empty file, maybe as an empty record of `files`).
            let incoming = try await nextIncoming()
            let end: (index: Int, size: UInt64, root: Digest)?
            switch incoming {
            case .message(.end(let index, let size, let root)): end = (index, size, root)
            case .whole(let file) where file.data.isEmpty: end = (file.index, 0, file.root)
            default: end = nil
            }
            guard let end, end.index == index, end.size == size, end.root == chain.root(size: end.size) else {
                throw TransferError.protocolViolation(
                    "expected only the end of \(name), which this side already holds whole, got \(incoming.name)")
            }
            report(.verified(path: name, size: end.size, root: end.root))
            try await acknowledge(index)
            return (end.root, 0)
        }
        var partial: FileDescriptor?
        var folder: TargetDirectory.Folder?
        if toOutput == nil {
            guard target != nil, let held = try self.folder(for: item.path, creating: true) else {
                throw TransferError.io("no target directory for \(name)")
            }
            folder = held
            partial = try target?.openPartial(for: item.path, in: held, truncate: item.from == 0)
        }
        var written = item.from * UInt64(chunkSize)
        if let size { written = min(written, size) }
        var received: UInt64 = 0
        let clock = ContinuousClock()
        var lastSave = clock.now
        var savedAt = written
        var mayHaveState = item.mayHaveState
        func saveState() {
            guard let size, partial != nil, let target, chain.chunks > 0 else { return }
            mayHaveState = true
            try? target.writeState(ResumeState(size: size, mtime: item.entry.mtime, chunkSize: chunkSize, chain: chain).encoded(), for: item.path)
        }
        do {
            while true {
                // A chunk, an end, or both from one record of `files`; a
                // record carries no chunk hash (its root covers the data).
                var data: (number: UInt64, hash: Digest?, bytes: ArraySlice<UInt8>)?
                var end: (index: Int, size: UInt64, root: Digest)?
                let incoming = try await nextIncoming()
                switch incoming {
                case .message(.chunk(let chunk)):
                    guard chunk.index == index else {
                        throw TransferError.protocolViolation("a chunk out of order (file \(chunk.index), chunk \(chunk.number)) while receiving \(name)")
                    }
                    data = (chunk.number, chunk.hash, chunk.data)
                case .message(.end(let endIndex, let endSize, let root)):
                    end = (endIndex, endSize, root)
                case .whole(let file):
                    guard file.index == index, size != nil else {
                        throw TransferError.protocolViolation("a whole file (entry \(file.index)) while receiving \(name)")
                    }
                    if !file.data.isEmpty { data = (0, nil, file.data) }
                    end = (file.index, UInt64(file.data.count), file.root)
                case .message(let other):
                    throw TransferError.protocolViolation("expected data for \(name), got \(TransferSender.name(other))")
                }
                if let data {
                    guard data.number == chain.chunks else {
                        throw TransferError.protocolViolation("a chunk out of order (file \(index), chunk \(data.number)) while receiving \(name)")
                    }
                    if let size, let count {
                        guard data.number < count else { throw TransferError.protocolViolation("more data for \(name) than its \(size) bytes") }
                        let expected = Int(min(UInt64(chunkSize), size - data.number * UInt64(chunkSize)))
                        guard data.bytes.count == expected else {
                            throw TransferError.protocolViolation("chunk \(data.number) of \(name) has \(data.bytes.count) bytes, not \(expected)")
                        }
                    } else if data.bytes.count > chunkSize {
                        throw TransferError.protocolViolation("a chunk of \(name) larger than the chunk size")
                    }
                    let hash = data.bytes.withUnsafeBytes { Digest.sha256($0) }
                    if let expected = data.hash, hash != expected {
                        throw TransferError.integrity("chunk \(data.number) of \(name) does not match its hash")
                    }
                    if let partial {
                        if size == nil { try checkStreamSpace(partial, adding: data.bytes.count, name: name, written: written) }
                        try data.bytes.withUnsafeBytes { raw in try partial.write(raw, at: data.number * UInt64(chunkSize)) }
                    } else if let toOutput {
                        try data.bytes.withUnsafeBytes { raw in try Self.writeAll(toOutput, raw) }
                    }
                    chain.append(hash)
                    written += UInt64(data.bytes.count)
                    received += UInt64(data.bytes.count)
                    progress += UInt64(data.bytes.count)
                    report(.progress(bytes: progress, total: total, file: name))
                    if end == nil {
                        if clock.now - lastSave >= options.stateInterval || written - savedAt >= options.stateBytes {
                            lastSave = clock.now
                            savedAt = written
                            saveState()
                        }
                        // Files verified before this one are acknowledged while it streams.
                        try await acknowledge(nil)
                    }
                }
                guard let end else { continue }
                guard end.index == index else { throw TransferError.protocolViolation("the end of file \(end.index) while receiving \(name)") }
                guard end.size == written, size == nil || size == end.size, count == nil || count == chain.chunks else {
                    throw TransferError.protocolViolation("\(name) ended at \(end.size) bytes after \(written) arrived (\(size.map(String.init) ?? "a stream") offered)")
                }
                guard end.root == chain.root(size: end.size) else {
                    // Never present a bad file as complete, nor resume from it.
                    target?.removeResumeFiles(for: item.path)
                    throw TransferError.integrity("\(name) does not match its root hash")
                }
                if let file = partial, let folder, let target {
                    try target.commit(
                        item.path, partial: file, in: folder, mode: item.entry.mode ?? 0o644, modified: item.entry.mtime, replace: item.replace,
                        removingState: mayHaveState)
                    partial = nil  // in place: nothing partial is left to save or remove
                }
                report(.verified(path: name, size: end.size, root: end.root))
                try await acknowledge(index)
                return (end.root, received)
            }
        } catch {
            // Whatever stopped us, what is verified stays resumable. A file
            // that failed its root hash has no resume state left, and a
            // stream never resumes: its partial goes.
            if partial != nil, size == nil || chain.chunks == 0 {
                target?.removeResumeFiles(for: item.path)
            } else if case TransferError.integrity = error {
            } else if partial != nil {
                saveState()
                kept.value += written
            }
            throw error
        }
    }

    /// A stream has no size to check up front: before each chunk, the file
    /// system must keep `streamReserveBytes` free after it.
    private func checkStreamSpace(_ file: FileDescriptor, adding count: Int, name: String, written: UInt64) throws(TransferError) {
        guard let available = file.availableBytes() else { return }
        let (needed, overflow) = options.limits.streamReserveBytes.addingReportingOverflow(UInt64(count))
        guard overflow || needed > available else { return }
        throw .streamNoSpace(name, written: written, available: available, reserve: options.limits.streamReserveBytes)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(TransferError) {
        do throws(DescriptorIO.Failure) {
            try DescriptorIO.writeAll(fd, bytes)
        } catch {
            throw .io("cannot write the stream: \(error.reason)")
        }
    }

}
