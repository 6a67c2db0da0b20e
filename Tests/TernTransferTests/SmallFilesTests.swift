import Foundation
import Glibc
import Testing
import TernCollections
@testable import TernTransfer

/// Many small files: whole files travel as records of `files` messages,
/// and one `verified` covers every file up to the one it names
/// (docs/protocol.md §11.2, §11.3). Both engines in one process, a hostile
/// sender's records, and a receiver that acknowledges out of turn.
@Suite struct SmallFilesTests {
    // MARK: - Both engines

    @Test func manySmallFilesTravelInFewMessagesAndFewAcknowledgements() async throws {
        let scratch = try ScratchDirectory("small-files")
        try scratch.makeDirectory("target")
        try scratch.makeDirectory("src")
        try scratch.makeDirectory("src/tree")
        var contents: [String: [UInt8]] = [:]
        for folder in 0..<3 {
            try scratch.makeDirectory("src/tree/d\(folder)")
            for number in 0..<100 {
                let path = "src/tree/d\(folder)/f\(number)"
                // Empty files too; none larger than a chunk.
                let data = randomBytes((folder * 100 + number) % 3 == 0 ? 0 : (number * 37) % smallChunkSize + 1, seed: UInt64(folder * 100 + number))
                try scratch.write(data, to: path, mode: 0o640, modified: 1_700_000_000 + Int64(number))
                contents[path] = data
            }
        }
        let items = try SourceScanner.scan([scratch.absolute("src/tree")], warn: { Issue.record("unexpected warning: \($0)") })

        // 64 KiB messages: about 45 of these files fit in one.
        let (run, log) = try await smallTransfer(items, into: scratch.absolute("target"), maxMessageSize: 65536)

        #expect(run.sender.isSuccess)
        #expect(run.receiver.isSuccess)
        #expect(scratch.tree("target/tree") == scratch.tree("src/tree"))
        for (path, data) in contents {
            let copy = "target/" + path.dropFirst("src/".count)
            #expect(scratch.read(copy) == data, "\(copy)")
            #expect(scratch.status(copy)?.st_mode.permissions == 0o640 & ~processUmask())
        }
        // No chunk or end message: whole files, many to a message.
        let sent = log.sent.all
        #expect(!sent.contains(TransferMessage.MessageType.chunk.rawValue))
        #expect(!sent.contains(TransferMessage.MessageType.end.rawValue))
        let batches = sent.filter { $0 == TransferMessage.MessageType.files.rawValue }.count
        let bytes = contents.values.reduce(0) { $0 + $1.count + TransferMessage.wholeFileHeaderSize }
        // As few as fit, unless a batch waited its 50 ms (a loaded machine
        // reads files slowly): never near one message per file.
        #expect(batches >= bytes / 65536 + 1 && batches <= 100, "\(batches) files messages for 300 files, \(bytes) bytes")
        // Every file reported verified on both sides, with far fewer
        // `verified` messages than files.
        #expect(run.senderEvents.filter { $0.hasPrefix("verified") }.count == 300)
        #expect(run.receiverEvents.filter { $0.hasPrefix("verified") }.count == 300)
        #expect(Set(run.senderEvents.filter { $0.hasPrefix("verified") }) == Set(run.receiverEvents.filter { $0.hasPrefix("verified") }))
        let acknowledgements = log.received.all.filter { $0 == TransferMessage.MessageType.verified.rawValue }.count
        #expect(acknowledgements >= 1 && acknowledgements < 30, "\(acknowledgements) verified messages for 300 files")
        // Nothing left beside the files: no partial, no state.
        #expect(!scratch.tree("target").keys.contains { $0.contains(".tern-") })
    }

    @Test func aLargeFileBetweenSmallOnesGoesAsChunksInManifestOrder() async throws {
        let scratch = try ScratchDirectory("small-large-small")
        try scratch.makeDirectory("target")
        try scratch.makeDirectory("src")
        try scratch.makeDirectory("src/tree")
        let small1 = randomBytes(100, seed: 1)
        let large = randomBytes(3 * smallChunkSize + 5, seed: 2)
        let small2 = randomBytes(smallChunkSize, seed: 3)
        try scratch.write(small1, to: "src/tree/a")
        try scratch.write(large, to: "src/tree/b")
        try scratch.write(small2, to: "src/tree/c")
        let items = try SourceScanner.scan([scratch.absolute("src/tree")], warn: { _ in })

        let (run, log) = try await smallTransfer(items, into: scratch.absolute("target"))

        #expect(run.sender.isSuccess)
        #expect(run.receiver.isSuccess)
        #expect(scratch.read("target/tree/a") == small1)
        #expect(scratch.read("target/tree/b") == large)
        #expect(scratch.read("target/tree/c") == small2)
        let types = TransferMessage.MessageType.self
        let data = log.sent.all.filter { [types.files.rawValue, types.chunk.rawValue, types.end.rawValue].contains($0) }
        #expect(data == [types.files.rawValue] + Array(repeating: types.chunk.rawValue, count: 4) + [types.end.rawValue, types.files.rawValue])
    }

    // MARK: - The message

    @Test func aFilesMessageRoundTripsAndEveryCutDecodesWholeRecordsOrThrows() throws {
        let files = [
            WholeFile(index: 3, root: Digest.sha256([1]), data: randomBytes(70, seed: 4)[...]),
            WholeFile(index: 4, root: Digest.sha256([2]), data: [][...]),
            WholeFile(index: 0x0102_0304, root: Digest.sha256([3]), data: randomBytes(5, seed: 5)[...]),
        ]
        let message = TransferMessage.files(files).encoded()
        #expect(message.count == 1 + 3 * TransferMessage.wholeFileHeaderSize + 75)
        // Record boundaries: after the type byte, then after each record.
        let boundaries = [1, 1 + 40 + 70, 1 + 80 + 70, message.count]
        for cut in 0...message.count {
            let bytes = Array(message.prefix(cut))
            let decoded: TransferMessage
            do {
                decoded = try TransferMessage(decoding: bytes)
            } catch {
                guard case .protocolViolation = error else {
                    Issue.record("cut at \(cut): \(error)")
                    continue
                }
                #expect(!boundaries.dropFirst().contains(cut), "a whole record at \(cut) was refused")
                continue
            }
            guard case .files(let records) = decoded, let count = boundaries.firstIndex(of: cut) else {
                Issue.record("cut at \(cut) decoded as \(decoded)")
                continue
            }
            #expect(records.count == count)
            for (record, original) in zip(records, files) {
                #expect(record.index == original.index)
                #expect(record.root == original.root)
                #expect(Array(record.data) == Array(original.data))
            }
        }
    }

    @Test func aRecordLongerThanTheLargestChunkIsRefused() {
        var message: [UInt8] = [TransferMessage.MessageType.files.rawValue, 0, 0, 0, 0]
        let length = UInt32(TransferMessage.maxChunkSize + 1)
        message += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        message += [UInt8](repeating: 0, count: 32 + Int(length))
        #expect(throws: TransferError.self) { try TransferMessage(decoding: message) }
    }

    @Test func aLongManifestIsSplitWithoutEncodingItSeveralTimesOver() throws {
        let entries = (0..<10_000).map { ManifestEntry(path: "tree/d\($0 / 100)/f\($0).dat", kind: .file, size: 4096, mode: 0o644, mtime: 1_700_000_000) }
        let limit = 256 * 1024
        let encoded = Recorder<Int>()
        let messages = try splitIntoMessages(entries, limit: limit) { batch, more in
            encoded.append(batch.count)
            return TransferMessage.manifest(chunkSize: 4096, entries: batch, more: more).encoded()
        }

        #expect(messages.allSatisfy { $0.count <= limit })
        var decoded: [ManifestEntry] = []
        for message in messages {
            guard case .manifest(_, let part, _) = try TransferMessage(decoding: message) else { continue }
            decoded += part
        }
        #expect(decoded == entries)
        // Halving from the whole list encoded about 2.5 times as many entries.
        let total = encoded.all.reduce(0, +)
        #expect(total <= entries.count + entries.count / 4, "\(total) entries encoded for \(entries.count)")
    }

    // MARK: - A hostile sender's records

    /// Two files in `d`, offered and listed; `records` then `done`.
    private func attackWithRecords(_ records: [[UInt8]], sizes: [UInt64] = [10, 20]) async throws -> (Scene, Attack) {
        let scene = try Scene()
        let manifest = TransferMessage.manifest(
            chunkSize: hostileChunkSize,
            entries: [ManifestEntry(path: "d", kind: .directory, mode: 0o755)]
                + sizes.enumerated().map { ManifestEntry(path: "d/f\($0.offset)", kind: .file, size: $0.element, mode: 0o644, mtime: 1_600_000_000) },
            more: false
        ).encoded()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: sizes.reduce(0, +), files: UInt64(sizes.count))],
            manifest: [manifest], data: records)
        return (scene, attack)
    }

    private static let first = randomBytes(10, seed: 21)
    private static let second = randomBytes(20, seed: 22)

    @Test func acceptsHonestRecords() async throws {
        let (scene, attack) = try await attackWithRecords([
            files([(1, Self.first, nil)]), files([(2, Self.second, nil)]), done(2, 30),
        ])

        #expect(attack.error == nil)
        // One `verified` for both files, or one each when the first waited
        // its 100 ms; the last one names the last file.
        let names = attack.replies.map(HostileSenderTests.name)
        #expect(names == ["ask", "verified", "finished"] || names == ["ask", "verified", "verified", "finished"])
        guard case .verified(2)? = attack.replies.dropLast().last else {
            Issue.record("the last verified is not for entry 2: \(attack.replies)")
            return
        }
        #expect(scene.scratch.read("target/d/f0") == Self.first)
        #expect(scene.scratch.read("target/d/f1") == Self.second)
        scene.expectOutsideUnchanged()
    }

    @Test func refusesARecordWhoseDataDoesNotMatchItsRoot() async throws {
        var forged = Self.second
        forged[3] ^= 1
        let (scene, attack) = try await attackWithRecords([files([(1, Self.first, nil), (2, forged, rootOf(Self.second))]), done(2, 30)])

        #expect(attack.error == .integrity("d/f1 does not match its root hash"))
        #expect(attack.reply == .integrity)
        scene.expectOutsideUnchanged()
        // The first file verified and stays; nothing of the second.
        #expect(Set(scene.inside().keys) == ["d", "d/f0"])
    }

    @Test func refusesARecordForAnotherFile() async throws {
        let (scene, attack) = try await attackWithRecords([files([(2, Self.second, nil)]), done(2, 30)])

        #expect(attack.error == .protocolViolation("a whole file (entry 2) while receiving d/f0"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == ["d"])
    }

    @Test func refusesARecordOfAnotherSize() async throws {
        let (scene, attack) = try await attackWithRecords([files([(1, Self.first + [0], nil)]), done(2, 30)])

        #expect(attack.error == .protocolViolation("chunk 0 of d/f0 has 11 bytes, not 10"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == ["d"])
    }

    @Test func refusesARecordAfterChunksOfTheSameFile() async throws {
        // Half of f1 as a chunk, then f1 again as a whole file.
        let big = randomBytes(hostileChunkSize + 7, seed: 23)
        let firstChunk = Array(big[0..<hostileChunkSize])
        let (scene, attack) = try await attackWithRecords(
            [files([(1, Self.first, nil)]), chunk(2, 0, firstChunk), files([(2, big, nil)])], sizes: [10, UInt64(big.count)])

        #expect(attack.error == .protocolViolation("a chunk out of order (file 2, chunk 0) while receiving d/f1"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
    }

    @Test func refusesMoreRecordsThanFiles() async throws {
        let (scene, attack) = try await attackWithRecords([files([(1, Self.first, nil), (2, Self.second, nil), (2, Self.second, nil)]), done(2, 30)])

        #expect(attack.error == .protocolViolation("expected done after the last file, got the whole of entry 2"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
    }

    @Test func refusesARecordForAStream() async throws {
        let scene = try Scene()
        let manifest = TransferMessage.manifest(
            chunkSize: hostileChunkSize, entries: [ManifestEntry(path: "s", kind: .stream)], more: false
        ).encoded()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "s", kind: .stream, size: nil, files: 1)], manifest: [manifest],
            data: [files([(0, Self.first, nil)]), done(1, 10)])

        #expect(attack.error == .protocolViolation("a whole file (entry 0) while receiving s"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    // MARK: - A receiver that acknowledges out of turn

    @Test(arguments: [[0], [2, 1], [3, 3], [9]])
    func theSenderRefusesAVerifiedForNoFileStillToVerify(indices: [Int]) async throws {
        let scratch = try ScratchDirectory("bad-verified")
        try scratch.makeDirectory("src")
        try scratch.makeDirectory("src/tree")
        for name in ["a", "b", "c"] { try scratch.write(randomBytes(50, seed: 7), to: "src/tree/\(name)") }
        let items = try SourceScanner.scan([scratch.absolute("src/tree")], warn: { _ in })
        let (senderEnd, receiverEnd) = MemoryChannel.pair(capacity: 64)
        let sender = TransferSender(items: items, channel: senderEnd, maxMessageSize: smallMaxMessageSize, report: { _ in })

        async let result = outcome { try await sender.run() }
        // The receiver's side: asks nothing, reads up to done, then acknowledges badly.
        while let bytes = try await receiverEnd.receive() {
            if case .manifest(_, _, false) = try TransferMessage(decoding: bytes) { break }
        }
        try await receiverEnd.send(TransferMessage.ask(asks: [], skip: [], more: false).encoded())
        while let bytes = try await receiverEnd.receive() {
            if case .done = try TransferMessage(decoding: bytes) { break }
        }
        for index in indices { try await receiverEnd.send(TransferMessage.verified(index: index).encoded()) }
        let ended = await result
        await receiverEnd.close()

        guard case .failure(.protocolViolation(let reason)) = ended else {
            Issue.record("the sender accepted verified \(indices): \(ended)")
            return
        }
        #expect(reason.contains("verified message for entry \(indices.last ?? 0)"), "\(reason)")
    }
}

// MARK: - Helpers

/// 4 KiB chunks, as the other engine tests use.
private let smallChunkSize = 4096
private let smallMaxMessageSize = smallChunkSize + TransferMessage.chunkHeaderSize

/// The types of the messages a sender sent and received.
final class MessageLog: TransferChannel, @unchecked Sendable {
    private let inner: TransferChannel
    let sent = Recorder<UInt8>()
    let received = Recorder<UInt8>()

    init(_ inner: TransferChannel) {
        self.inner = inner
    }

    func send(_ message: [UInt8]) async throws {
        if let type = message.first { sent.append(type) }
        try await inner.send(message)
    }

    func receive() async throws -> [UInt8]? {
        let message = try await inner.receive()
        if let type = message?.first { received.append(type) }
        return message
    }

    func close() async {
        await inner.close()
    }
}

/// Both engines over one in-memory pair, the sender's end logged.
private func smallTransfer(
    _ items: [SourceItem], into target: String, maxMessageSize: Int = smallMaxMessageSize
) async throws -> (Outcome, MessageLog) {
    let (senderEnd, receiverEnd) = MemoryChannel.pair()
    let log = MessageLog(senderEnd)
    let senderEvents = Recorder<String>()
    let receiverEvents = Recorder<String>()
    let sender = TransferSender(
        items: items, channel: log, maxMessageSize: maxMessageSize, report: { senderEvents.append(describe($0)) })
    let receiver = TransferReceiver(
        target: try TargetDirectory(path: target, create: false), channel: receiverEnd,
        options: TransferReceiver.Options(offer: offer(for: items)), report: { receiverEvents.append(describe($0)) })
    async let sent = outcome {
        defer { Task { await senderEnd.close() } }
        return try await sender.run()
    }
    async let received = outcome {
        defer { Task { await receiverEnd.close() } }
        return try await receiver.run()
    }
    let (senderResult, receiverResult) = await (sent, received)
    return (Outcome(sender: senderResult, receiver: receiverResult, senderEvents: senderEvents.all, receiverEvents: receiverEvents.all), log)
}

/// The root of a file sent whole (at most one chunk).
private func rootOf(_ data: [UInt8]) -> Digest {
    var chain = ChunkChain()
    if !data.isEmpty { chain.append(Digest.sha256(data)) }
    return chain.root(size: UInt64(data.count))
}

/// A `files` message: (index, data, root, or the data's own when nil).
private func files(_ records: [(Int, [UInt8], Digest?)]) -> [UInt8] {
    TransferMessage.files(records.map { WholeFile(index: $0.0, root: $0.2 ?? rootOf($0.1), data: $0.1[...]) }).encoded()
}

private func chunk(_ index: Int, _ number: UInt64, _ data: [UInt8]) -> [UInt8] {
    TransferMessage.chunk(ChunkMessage(index: index, number: number, hash: Digest.sha256(data), data: data[...])).encoded()
}

private func done(_ files: UInt64, _ bytes: UInt64) -> [UInt8] {
    TransferMessage.done(files: files, bytes: bytes).encoded()
}
