import Foundation
import Testing
import TernCollections
@testable import TernTransfer

/// Each bound of `TransferLimits`, driven from the wire: against the real
/// receiver (a scripted sender, `Scene.attack`) where the receiver holds the
/// limit, against the decoder where every message meets it. Each refusal is
/// checked, and that nothing was written outside the target (or in it).
@Suite struct ResourceLimitTests {
    static let limits = TransferLimits.standard

    // MARK: - The manifest

    @Test func aManifestLongerThanTheEntryLimitIsRefusedAcrossItsMessages() async throws {
        let scene = try Scene()
        let entries = [limitDirectory("d")] + (0..<4).map { limitFile("d/\($0)", size: 0) }
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 4)],
            manifest: [limitManifest(Array(entries[0..<3]), more: true), limitManifest(Array(entries[3...]))]
        ) { $0.limits.maximumEntries = 4 }

        #expect(attack.error == .protocolViolation("the manifest has more than 4 entries"))
        #expect(attack.reply == .protocolViolation)
        #expect(scene.inside() == [:])
    }

    @Test func oneMessageOfMoreItemsThanTheLimitDoesNotDecode() {
        let many = (0...Self.limits.maximumItemsPerMessage).map { limitFile("\($0)", size: 0) }
        #expect(throws: TransferError.protocolViolation("a manifest message without entries or with too many")) {
            try TransferMessage(decoding: limitManifest(many))
        }
        let asks = (0..<Self.limits.maximumItemsPerMessage).map { ResumeAsk(index: $0, chunks: 1) }
        #expect(throws: TransferError.self) { try TransferMessage(decoding: TransferMessage.ask(asks: asks, skip: [0], more: false).encoded()) }
        let atTheLimit = TransferMessage.ask(asks: asks, skip: [], more: false).encoded()
        #expect(throws: Never.self) { try TransferMessage(decoding: atTheLimit) }
        let starts = (0...Self.limits.maximumItemsPerMessage).map { PlanStart(index: $0, from: 0) }
        #expect(throws: TransferError.protocolViolation("a malformed need message")) {
            try TransferMessage(decoding: TransferMessage.need(starts: starts, more: false).encoded())
        }
    }

    @Test(arguments: [TransferLimits.standard.minimumChunkSize - 1, TransferLimits.standard.maximumChunkSize + 1])
    func aChunkSizeOutsideTheLimitsIsRefused(chunkSize: Int) async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 1, files: 1)], manifest: [limitManifest([limitFile("f", size: 1)], chunkSize: chunkSize)])

        #expect(attack.error == .protocolViolation("the manifest's chunk size is missing or out of range"))
        #expect(attack.reply == .protocolViolation)
        #expect(scene.inside() == [:])
    }

    @Test func aChunkOrARecordLargerThanTheLargestChunkDoesNotDecode() {
        let data = [UInt8](repeating: 7, count: Self.limits.maximumChunkSize + 1)
        let chunk = TransferMessage.chunk(ChunkMessage(index: 0, number: 0, hash: Digest.sha256(data), data: data[...])).encoded()
        #expect(throws: TransferError.protocolViolation("a chunk message of \(chunk.count) bytes")) { try TransferMessage(decoding: chunk) }
        var files: [UInt8] = [TransferMessage.MessageType.files.rawValue, 0, 0, 0, 0]
        withUnsafeBytes(of: UInt32(data.count).bigEndian) { files.append(contentsOf: $0) }
        files += Digest.zero.bytes + data
        #expect(throws: TransferError.self) { try TransferMessage(decoding: files) }
    }

    @Test func aFilesMessageLargerThanTheLargestMessageDoesNotDecode() {
        // Records of 1000 bytes each, one past the message limit in all.
        var message: [UInt8] = [TransferMessage.MessageType.files.rawValue]
        var index = 0
        while message.count <= Self.limits.maximumMessageSize {
            _ = try? TransferMessage.appendWholeFile(&message, index: index, length: 1000) { room in
                room.initializeMemory(as: UInt8.self, repeating: 1)
                return (1000, Digest.zero)
            }
            index += 1
        }
        #expect(throws: TransferError.protocolViolation("a files message of \(message.count) bytes")) { try TransferMessage(decoding: message) }
    }

    @Test func aFailureReasonIsCutToItsLimit() throws {
        let long = String(repeating: "é", count: Self.limits.maximumFailureReasonBytes)
        guard case .failure(_, let text) = try TransferMessage(decoding: TransferMessage.failure(.io, long).encoded()) else {
            Issue.record("a failure did not decode as one")
            return
        }
        #expect(text.utf8.count == Self.limits.maximumFailureReasonBytes)
    }

    // MARK: - Paths and links

    static let longPaths: [(String, String)] = [
        (String(repeating: "a", count: TransferLimits.standard.maximumComponentBytes + 1), "a component is longer than 255 bytes"),
        (Array(repeating: String(repeating: "b", count: 200), count: 21).joined(separator: "/"), "the path is longer than 4096 bytes"),
        (Array(repeating: "c", count: TransferLimits.standard.maximumDepth + 1).joined(separator: "/"), "it has more than 256 components"),
    ]

    @Test(arguments: 0..<3)
    func aPathPastALengthOrDepthLimitIsRefused(which: Int) async throws {
        let (path, reason) = Self.longPaths[which]
        let top = String(path.split(separator: "/")[0])
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: top, kind: .file, size: 1, files: 1)], manifest: [limitManifest([limitFile(path, size: 1)])])

        guard case .unsafePath(_, let refusal)? = attack.error else {
            Issue.record("expected unsafePath, got \(String(describing: attack.error))")
            return
        }
        #expect(refusal.contains(reason), "\(refusal)")
        #expect(attack.reply == .unsafePath)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func aLinkTargetPastItsLimitIsRefusedBeforeAnyDataMoves() async throws {
        let scene = try Scene()
        let target = Array(repeating: "x", count: Self.limits.maximumLinkTargetBytes / 2 + 1).joined(separator: "/")
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, links: 1)],
            manifest: [limitManifest([limitDirectory("d"), ManifestEntry(path: "d/l", kind: .symlink, target: target)])])

        guard case .unsafePath(_, let refusal)? = attack.error else {
            Issue.record("expected unsafePath, got \(String(describing: attack.error))")
            return
        }
        #expect(refusal.contains("is longer than 4096 bytes"), "\(refusal)")
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    // MARK: - Sizes

    /// The review's case: a directory offered with the largest size, two
    /// files of 2^63 bytes in it. Refused with the manifest, no trap.
    @Test func filesWhoseSizesPassTheTotalLimitAreAProtocolViolation() async throws {
        let scene = try Scene()
        let half = UInt64(1) << 63
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: UInt64.max, files: 2)],
            manifest: [limitManifest([limitDirectory("d"), limitFile("d/a", size: half), limitFile("d/b", size: half)])])

        #expect(attack.error == .protocolViolation("the sizes of the files add up to more than \(Self.limits.maximumTotalBytes) bytes"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func aLowerTotalLimitIsHeldAcrossOfferedItems() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "a", kind: .file, size: 60, files: 1), OfferEntry(name: "b", kind: .file, size: 60, files: 1)],
            manifest: [limitManifest([limitFile("a", size: 60), limitFile("b", size: 60)])]
        ) { $0.limits.maximumTotalBytes = 100 }

        #expect(attack.error == .protocolViolation("the sizes of the files add up to more than 100 bytes"))
        #expect(scene.inside() == [:])
    }

    // MARK: - Resume state

    /// A state file past its limit is not read: the receiver stops before
    /// it asks anything, saying why.
    @Test func aStateFileLargerThanItsLimitIsNotRead() async throws {
        let scene = try Scene()
        let content = randomBytes(2 * hostileChunkSize, seed: 40)
        try scene.scratch.write(content, to: "target/.f.tern-partial")
        var chain = ChunkChain()
        chain.append(Digest.sha256(Array(content[0..<hostileChunkSize])))
        let state = ResumeState(size: UInt64(content.count), mtime: 1_600_000_000, chunkSize: hostileChunkSize, chain: chain).encoded()
        let padded = state + [UInt8](repeating: UInt8(ascii: " "), count: Self.limits.maximumStateFileBytes + 1 - state.count)
        try scene.scratch.write(padded, to: "target/.f.tern-state")

        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: UInt64(content.count), files: 1)],
            manifest: [limitManifest([limitFile("f", size: UInt64(content.count))])])

        #expect(attack.error == .io("the resume state for f is longer than \(Self.limits.maximumStateFileBytes) bytes"))
        #expect(attack.replies.map(HostileSenderTests.name) == ["failure"])
        // The same state within the limit is asked about (the test's own control).
        try scene.scratch.write(state, to: "target/.f.tern-state")
        try scene.scratch.write(content, to: "target/.f.tern-partial")
        let trusted = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: UInt64(content.count), files: 1)],
            manifest: [limitManifest([limitFile("f", size: UInt64(content.count))])])
        guard case .ask(let trustedAsks, _, _)? = trusted.replies.first else {
            Issue.record("the receiver did not answer with its asks: \(trusted.replies.map(HostileSenderTests.name))")
            return
        }
        #expect(trustedAsks == [ResumeAsk(index: 0, chunks: 1)])
    }

    // MARK: - Streams

    /// A reserve larger than any free space: the first chunk of a stream is
    /// refused with no-space, and its partial goes.
    @Test func aStreamStopsBeforeItsChunkWouldEatIntoTheReserve() async throws {
        let scene = try Scene()
        let data = randomBytes(100, seed: 41)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "s", kind: .stream, size: nil, files: 0)],
            manifest: [limitManifest([ManifestEntry(path: "s", kind: .stream)])],
            data: [TransferMessage.chunk(ChunkMessage(index: 0, number: 0, hash: Digest.sha256(data), data: data[...])).encoded()]
        ) { $0.limits.streamReserveBytes = UInt64(Int64.max) }

        guard case .streamNoSpace("s", written: 0, _, reserve: UInt64(Int64.max))? = attack.error else {
            Issue.record("expected streamNoSpace, got \(String(describing: attack.error))")
            return
        }
        #expect(attack.reply == .noSpace)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func aStreamWithinTheReserveArrives() async throws {
        let scene = try Scene()
        let data = randomBytes(100, seed: 42)
        var chain = ChunkChain()
        chain.append(Digest.sha256(data))
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "s", kind: .stream, size: nil, files: 0)],
            manifest: [limitManifest([ManifestEntry(path: "s", kind: .stream)])],
            data: [
                TransferMessage.chunk(ChunkMessage(index: 0, number: 0, hash: Digest.sha256(data), data: data[...])).encoded(),
                TransferMessage.end(index: 0, size: 100, root: chain.root(size: 100)).encoded(),
                TransferMessage.done(files: 1, bytes: 100).encoded(),
            ])

        #expect(attack.error == nil)
        #expect(scene.scratch.read("target/s") == data)
    }
}

private func limitManifest(_ entries: [ManifestEntry], chunkSize: Int = hostileChunkSize, more: Bool = false) -> [UInt8] {
    TransferMessage.manifest(chunkSize: chunkSize, entries: entries, more: more).encoded()
}

private func limitFile(_ path: String, size: UInt64) -> ManifestEntry {
    ManifestEntry(path: path, kind: .file, size: size, mode: 0o644, mtime: 1_600_000_000)
}

private func limitDirectory(_ path: String) -> ManifestEntry {
    ManifestEntry(path: path, kind: .directory, mode: 0o755)
}
