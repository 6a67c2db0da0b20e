import Foundation
import Glibc
import Testing
import TernTestSupport
@testable import TernCollections
@testable import TernTransfer

/// A scripted hostile sender against the real `TransferReceiver`. The target
/// directory sits in a parent directory that also holds `outside/`; after
/// every attack the parent outside the target must be exactly as before
/// (names, contents, modes, times), the target must hold only the expected
/// names, and the receiver must have told the sender why it stopped.
@Suite struct HostileSenderTests {
    // MARK: - Names

    static let badNames = [
        "../x", "a/../../x", "..", "/etc/passwd", "C:\\x", "C:x", "\\\\srv\\share", "a\\b", "a\u{0}b", "a\nb",
        "\u{1b}[2J\u{1b}[31mred", "a\u{9b}31m", "CON", "nul.txt", "a/COM1", "", ".", "a/./b", "a/", "a//b",
        "x.tern-partial", "a/.b.TERN-STATE", "report. ", "bad\u{fffd}",
    ]

    @Test(arguments: badNames)
    func refusesAnUnsafeName(name: String) async throws {
        let scene = try Scene()
        // Offered under the bad name too, so only the path rules can refuse it.
        let offer = [
            OfferEntry(name: "a", kind: .directory, size: 10, files: 1), OfferEntry(name: name, kind: .file, size: 1, files: 1),
        ]
        let attack = try await scene.attack(
            offer: offer, manifest: [manifest([directory("a"), file(name, size: 1)])], data: [chunk(1, 0, [0x41]), end(1, [0x41])])

        guard case .unsafePath(let shown, _)? = attack.error else {
            Issue.record("expected unsafePath for \(name.debugDescription), got \(String(describing: attack.error))")
            return
        }
        // What the error shows is safe to print.
        #expect(!shown.unicodeScalars.contains { DisplayText.needsEscape($0) })
        #expect(attack.reply == .unsafePath)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAnEntryOutsideTheOffer() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "a", kind: .file, size: 5, files: 1)], manifest: [manifest([file("b", size: 5)])])

        #expect(attack.error == .protocolViolation("b is not inside anything that was offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAnEntryOfferedAsAnotherKind() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "a", kind: .file, size: 5, files: 1)], manifest: [manifest([directory("a"), file("a/x", size: 5)])])

        #expect(attack.error == .protocolViolation("a was offered as a file but arrives as a directory"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAChildOfAFile() async throws {
        let scene = try Scene()
        let offer = [OfferEntry(name: "d", kind: .directory, size: 10, files: 2)]
        let attack = try await scene.attack(
            offer: offer, manifest: [manifest([directory("d"), file("d/f", size: 5), file("d/f/x", size: 5)])])

        #expect(attack.error == .protocolViolation("d/f/x is not inside a directory listed before it"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAnEntryListedTwice() async throws {
        let scene = try Scene()
        let offer = [OfferEntry(name: "d", kind: .directory, size: 10, files: 2, directories: 1, links: 1)]
        let attack = try await scene.attack(
            offer: offer, manifest: [manifest([directory("d"), symlink("d/l", to: "x"), directory("d/l")])])

        #expect(attack.error == .protocolViolation("the manifest lists d/l twice"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    // MARK: - Symlinks

    @Test func refusesToWriteThroughASymlinkPlantedInTheTarget() async throws {
        let scene = try Scene()
        try scene.scratch.symlink("target/link", to: "../outside")
        let before = scene.inside()
        let data = Array("pwned".utf8)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "link", kind: .directory, size: 5, files: 1)],
            manifest: [manifest([directory("link"), file("link/x", size: 5)])], data: [chunk(1, 0, data), end(1, data), done(1, 5)])

        #expect(attack.error == .exists("link"))
        #expect(attack.reply == .exists)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == before)
    }

    @Test(arguments: [TransferReceiver.Conflict.refuse, .overwrite, .rename])
    func refusesToWriteThroughASymlinkPlantedDeeper(conflict: TransferReceiver.Conflict) async throws {
        let scene = try Scene()
        try scene.scratch.makeDirectory("target/d")
        try scene.scratch.symlink("target/d/link", to: "../../outside")
        let before = scene.inside()
        let data = Array("pwned".utf8)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 5, files: 1, directories: 1)],
            manifest: [manifest([directory("d"), directory("d/link"), file("d/link/x", size: 5)])],
            data: [chunk(2, 0, data), end(2, data), done(1, 5)]
        ) { $0.conflict = conflict }

        #expect(attack.error == .exists("d/link"))
        #expect(attack.reply == .exists)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == before)
    }

    @Test func overwritingAPlantedFileLinkReplacesTheLinkNotItsTarget() async throws {
        let scene = try Scene()
        try scene.scratch.symlink("target/victim.txt", to: "../outside/victim.txt")
        // The same size as the file the link points to, so it gets hashed as a candidate.
        let data = Array("PRECIOUS".utf8)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "victim.txt", kind: .file, size: 8, files: 1)],
            manifest: [manifest([file("victim.txt", size: 8)])], data: [chunk(0, 0, data), end(0, data), done(1, 8)]
        ) { $0.conflict = .overwrite }

        #expect(attack.error == nil)
        #expect(attack.replies.last.map(Self.name) == "finished")
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == ["victim.txt"])
        #expect(scene.inside()["victim.txt"]?.hasPrefix("file size=8") == true)
        #expect(scene.scratch.read("target/victim.txt") == data)
    }

    @Test(arguments: ["../../etc/passwd", "/etc/passwd", "../../outside/victim.txt", "a/../../..", "../d/../../x", "..\\..\\x", "a\nb"])
    func refusesALinkPointingOutside(target: String) async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, links: 1)],
            manifest: [manifest([directory("d"), symlink("d/l", to: target)])], data: [done(0, 0)])

        guard case .unsafePath("d/l", _)? = attack.error else {
            Issue.record("expected unsafePath for d/l -> \(target.debugDescription), got \(String(describing: attack.error))")
            return
        }
        #expect(attack.reply == .unsafePath)
        scene.expectOutsideUnchanged()
        // Refused with the manifest, before even the directory is made.
        #expect(scene.inside() == [:])
    }

    @Test func refusesALinkPointingOutsideEvenWhenTheSameLinkIsAlreadyThere() async throws {
        let scene = try Scene()
        try scene.scratch.makeDirectory("target/d")
        try scene.scratch.symlink("target/d/l", to: "../../outside/victim.txt")
        let before = scene.inside()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, links: 1)],
            manifest: [manifest([directory("d"), symlink("d/l", to: "../../outside/victim.txt")])], data: [done(0, 0)]
        ) { $0.conflict = .overwrite }

        guard case .unsafePath("d/l", _)? = attack.error else {
            Issue.record("expected unsafePath for d/l, got \(String(describing: attack.error))")
            return
        }
        #expect(attack.reply == .unsafePath)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == before)
    }

    @Test func refusesAnInsideLinkUsedAsADirectory() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 3, files: 1, directories: 1, links: 1)],
            manifest: [manifest([directory("d"), directory("d/sub"), symlink("d/l", to: "sub"), file("d/l/x", size: 3)])])

        #expect(attack.error == .protocolViolation("d/l/x is not inside a directory listed before it"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    // MARK: - More than offered

    @Test func refusesAFileLargerThanOffered() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 10, files: 1)], manifest: [manifest([file("f", size: 11)])])

        #expect(attack.error == .protocolViolation("more bytes in f than the 10 offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesATreeLargerThanOffered() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 10, files: 2)],
            manifest: [manifest([directory("d"), file("d/a", size: 6), file("d/b", size: 5)])])

        #expect(attack.error == .protocolViolation("more bytes in d than the 10 offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesMoreFilesThanOffered() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 100, files: 1)],
            manifest: [manifest([directory("d"), file("d/a", size: 1), file("d/b", size: 1)])])

        #expect(attack.error == .protocolViolation("more files in d than the 1 offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAManifestLongerThanTheEntryLimit() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, directories: 3)],
            manifest: [
                manifest([directory("d"), directory("d/a")], more: true), manifest([directory("d/b"), directory("d/c")]),
            ]
        ) { $0.limits.maximumEntries = 3 }

        #expect(attack.error == .protocolViolation("the manifest has more than 3 entries"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    /// Nothing was asked, so no chains are due: data is.
    @Test func refusesChainsWhenNothingWasAsked() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 10, files: 1)], manifest: [manifest([file("f", size: 10)])],
            hashes: [PrefixChain(index: 0, chunks: 1, chain: .zero)])

        #expect(attack.error == .protocolViolation("expected data for f, got the sender's chains (hashes)"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    // MARK: - Checked on arrival

    @Test func refusesALinkPointingOutsideBeforeAnyDataMoves() async throws {
        let scene = try Scene()
        let data = Array("hello".utf8)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 5, files: 1, links: 1)],
            manifest: [manifest([directory("d"), file("d/a", size: 5), symlink("d/l", to: "a/../../x")])],
            data: [chunk(1, 0, data), end(1, data), done(1, 5)])

        guard case .unsafePath("d/l", let reason)? = attack.error else {
            Issue.record("expected unsafePath for d/l, got \(String(describing: attack.error))")
            return
        }
        #expect(reason.contains("after a name"))
        // Refused with the manifest: no claims, no directory, no partial.
        #expect(attack.replies.map(Self.name) == ["failure"])
        #expect(attack.reply == .unsafePath)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesMoreDirectoriesThanOffered() async throws {
        let scene = try Scene()
        // A directory of no files may not make 20,000 directories: it makes none beyond what it offered.
        let many = [directory("d")] + (0..<3).map { directory("d/\($0)") }
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, directories: 2)], manifest: [manifest(many)])

        #expect(attack.error == .protocolViolation("more directories in d than the 2 offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesMoreLinksThanOffered() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 0, files: 0, links: 1)],
            manifest: [manifest([directory("d"), symlink("d/a", to: "x"), symlink("d/b", to: "x")])])

        #expect(attack.error == .protocolViolation("more links in d than the 1 offered"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesSizesThatOverflowWhenAdded() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [
                OfferEntry(name: "a", kind: .file, size: UInt64.max, files: 1), OfferEntry(name: "b", kind: .file, size: UInt64.max, files: 1),
            ],
            manifest: [manifest([file("a", size: UInt64.max / 2 + 1), file("b", size: UInt64.max / 2 + 1)])])

        #expect(attack.error == .protocolViolation("the sizes of the files add up to more than \(Int64.max) bytes"))
        scene.expectOutsideUnchanged()
    }

    // MARK: - Hashes and done say what is wrong

    /// A file `f` of `content.count` bytes already in the target, so the
    /// receiver asks about it whole (3 chunks of 4 KiB).
    private func attackWithAsk(hashes: [PrefixChain], sendsHashes: Bool = true, data: [[UInt8]] = []) async throws -> (Scene, Attack) {
        let scene = try Scene()
        var other = Self.content
        other[0] ^= 1
        try scene.scratch.write(other, to: "target/f", modified: 1_600_000_000)
        let size = UInt64(Self.content.count)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: size, files: 1)], manifest: [manifest([file("f", size: size)])],
            hashes: hashes, data: data, sendsHashes: sendsHashes) { $0.conflict = .overwrite }
        return (scene, attack)
    }

    @Test func refusesChainsForAnEntryBeyondTheManifest() async throws {
        let (_, attack) = try await attackWithAsk(hashes: [PrefixChain(index: 0, chunks: 3, chain: .zero), PrefixChain(index: 7, chunks: 3, chain: .zero)])
        #expect(attack.error == .protocolViolation("the hashes name entry 7, but the manifest has 1 entries"))
        #expect(attack.reply == .protocolViolation)
    }

    @Test func refusesChainsAnsweringAnAskTwice() async throws {
        let (_, attack) = try await attackWithAsk(hashes: [PrefixChain(index: 0, chunks: 3, chain: .zero), PrefixChain(index: 0, chunks: 3, chain: .zero)])
        #expect(attack.error == .protocolViolation("the hashes answer the ask for f twice"))
    }

    @Test func refusesAChainOverAnotherCountThanAsked() async throws {
        let (_, attack) = try await attackWithAsk(hashes: [PrefixChain(index: 0, chunks: 1, chain: .zero)])
        #expect(attack.error == .protocolViolation("the hashes give a chain over 1 chunks of f, but this side asked about 3"))
    }

    @Test func refusesChainsThatLeaveAnAskUnanswered() async throws {
        let (scene, attack) = try await attackWithAsk(hashes: [])
        #expect(attack.error == .protocolViolation("the hashes do not answer the ask for f"))
        // The file in place is untouched.
        #expect(scene.scratch.read("target/f")?.count == Self.content.count)
        #expect(scene.scratch.read("target/f") != Self.content)
    }

    @Test func refusesSomethingElseInPlaceOfTheChains() async throws {
        let (_, attack) = try await attackWithAsk(hashes: [], sendsHashes: false, data: [done(1, 10)])
        #expect(attack.error == .protocolViolation("expected the sender's chains (hashes), got done"))
    }

    @Test func refusesADoneCountingOtherFiles() async throws {
        let pieces = Self.pieces
        let (_, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), end(0, Self.content), done(2, 8292)])
        #expect(attack.error == .protocolViolation("the sender's done counts 2 files, but 1 arrived"))
        #expect(attack.reply == .protocolViolation)
    }

    @Test func refusesADoneCountingOtherBytes() async throws {
        let pieces = Self.pieces
        let (_, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), end(0, Self.content), done(1, 9000)])
        #expect(attack.error == .protocolViolation("the sender's done counts 9000 bytes, but this side holds 8292"))
    }

    @Test func refusesSomethingElseInPlaceOfDone() async throws {
        let pieces = Self.pieces
        let (_, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), end(0, Self.content), end(0, Self.content)])
        #expect(attack.error == .protocolViolation("expected done after the last file, got the end of entry 0"))
    }

    // MARK: - Data

    /// Two full chunks and a short third.
    static let content = randomBytes(2 * hostileChunkSize + 100, seed: 11)
    static var pieces: [[UInt8]] {
        stride(from: 0, to: content.count, by: hostileChunkSize).map { Array(content[$0..<min(content.count, $0 + hostileChunkSize)]) }
    }

    /// One offered file `f` of `content.count` bytes, then `data`.
    private func attackWithData(_ data: [[UInt8]]) async throws -> (Scene, Attack) {
        let scene = try Scene()
        let size = UInt64(Self.content.count)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: size, files: 1)], manifest: [manifest([file("f", size: size)])], data: data
        ) {
            // No periodic save of the resume state: on a loaded machine a
            // second can pass between two chunks, and what is left behind
            // must not depend on it.
            $0.stateInterval = .seconds(3600)
        }
        return (scene, attack)
    }

    @Test func acceptsTheScriptedFileWhenNothingIsWrong() async throws {
        // The baseline the attacks below change one thing in.
        let pieces = Self.pieces
        let (scene, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), end(0, Self.content), done(1, 8292)])

        #expect(attack.error == nil)
        #expect(attack.replies.map(Self.name) == ["ask", "verified", "finished"])
        #expect(scene.scratch.read("target/f") == Self.content)
        #expect(Set(scene.inside().keys) == ["f"])
        scene.expectOutsideUnchanged()
    }

    @Test(arguments: [0, 2])
    func refusesAChunkThatDoesNotMatchItsHash(badChunk: Int) async throws {
        let pieces = Self.pieces
        var data = (0..<badChunk).map { chunk(0, UInt64($0), pieces[$0]) }
        var forged = pieces[badChunk]
        let hash = Digest.sha256(forged)
        forged[0] ^= 1
        data.append(chunk(0, UInt64(badChunk), forged, hash: hash))
        data.append(end(0, Self.content))
        let (scene, attack) = try await attackWithData(data)

        #expect(attack.error == .integrity("chunk \(badChunk) of f does not match its hash"))
        #expect(attack.reply == .integrity)
        scene.expectOutsideUnchanged()
        // No final file; a partial holds only the verified chunks, and
        // with none verified there is no partial.
        if badChunk == 0 {
            #expect(scene.inside() == [:])
        } else {
            #expect(Set(scene.inside().keys) == [".f.tern-partial"])
            #expect(scene.scratch.read("target/.f.tern-partial") == Array(pieces[0..<badChunk].joined()))
        }
    }

    @Test func refusesAChunkLargerThanTheFile() async throws {
        let scene = try Scene()
        let data = randomBytes(20, seed: 12)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 10, files: 1)], manifest: [manifest([file("f", size: 10)])],
            data: [chunk(0, 0, data), end(0, data)])

        #expect(attack.error == .protocolViolation("chunk 0 of f has 20 bytes, not 10"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        // Nothing was verified: no partial is left.
        #expect(scene.inside() == [:])
    }

    @Test func refusesAChunkAfterTheLastOne() async throws {
        let pieces = Self.pieces
        let (scene, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), chunk(0, 3, pieces[2]), end(0, Self.content)])

        #expect(attack.error == .protocolViolation("more data for f than its \(Self.content.count) bytes"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        // The three verified chunks stay resumable; no final file.
        #expect(Set(scene.inside().keys) == [".f.tern-partial", ".f.tern-state"])
        #expect(scene.scratch.read("target/.f.tern-partial") == Self.content)
    }

    @Test func refusesAChunkForAnotherFile() async throws {
        let scene = try Scene()
        let data = randomBytes(10, seed: 13)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "d", kind: .directory, size: 20, files: 2)],
            manifest: [manifest([directory("d"), file("d/a", size: 10), file("d/b", size: 10)])],
            data: [chunk(2, 0, data), end(2, data)])

        #expect(attack.error == .protocolViolation("a chunk out of order (file 2, chunk 0) while receiving d/a"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == ["d"])
    }

    @Test func refusesAChunkOutOfOrder() async throws {
        let pieces = Self.pieces
        let (scene, attack) = try await attackWithData([chunk(0, 1, pieces[1])])

        #expect(attack.error == .protocolViolation("a chunk out of order (file 0, chunk 1) while receiving f"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAWrongRootAndKeepsNothingToResumeFrom() async throws {
        let pieces = Self.pieces
        var other = Self.content
        other[0] ^= 1
        let (scene, attack) = try await attackWithData(
            [chunk(0, 0, pieces[0]), chunk(0, 1, pieces[1]), chunk(0, 2, pieces[2]), end(0, other), done(1, 8292)])

        #expect(attack.error == .integrity("f does not match its root hash"))
        #expect(attack.reply == .integrity)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func refusesAnEndSmallerThanTheManifestSize() async throws {
        let scene = try Scene()
        let data = randomBytes(10, seed: 14)
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 10, files: 1)], manifest: [manifest([file("f", size: 10)])],
            data: [chunk(0, 0, data), end(0, Array(data.prefix(5)), chunks: [data])])

        #expect(attack.error == .protocolViolation("f ended at 5 bytes after 10 arrived (10 offered)"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == [".f.tern-partial", ".f.tern-state"])
    }

    @Test func refusesAnEndBeforeAllChunks() async throws {
        let pieces = Self.pieces
        let (scene, attack) = try await attackWithData([chunk(0, 0, pieces[0]), end(0, Self.content)])

        #expect(attack.error == .protocolViolation("f ended at \(Self.content.count) bytes after \(hostileChunkSize) arrived (\(Self.content.count) offered)"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == [".f.tern-partial", ".f.tern-state"])
    }

    @Test func refusesGarbageInPlaceOfAChunk() async throws {
        let (scene, attack) = try await attackWithData([[0x04, 0x00, 0x00]])

        #expect(attack.error == .protocolViolation("a chunk message of 3 bytes"))
        #expect(attack.reply == .protocolViolation)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func reportsTheSendersFailureBeforeTheManifest() async throws {
        let scene = try Scene()
        let attack = try await scene.attack(
            offer: [OfferEntry(name: "f", kind: .file, size: 10, files: 1)],
            manifest: [TransferMessage.failure(.cancelled, "the user pressed Ctrl-C").encoded()])

        #expect(attack.error == .peerFailed(.cancelled, "the user pressed Ctrl-C"))
        // A peer's failure is not answered with another.
        #expect(attack.replies.isEmpty)
        scene.expectOutsideUnchanged()
        #expect(scene.inside() == [:])
    }

    @Test func reportsTheSendersFailureInTheMiddleOfAFile() async throws {
        let pieces = Self.pieces
        let (scene, attack) = try await attackWithData([chunk(0, 0, pieces[0]), TransferMessage.failure(.io, "disk on fire").encoded()])

        #expect(attack.error == .peerFailed(.io, "disk on fire"))
        #expect(attack.replies.map(Self.name) == ["ask"])
        scene.expectOutsideUnchanged()
        #expect(Set(scene.inside().keys) == [".f.tern-partial", ".f.tern-state"])
        #expect(scene.scratch.read("target/.f.tern-partial") == pieces[0])
    }

    // MARK: - Decoding cut and garbled messages

    @Test func everyCutOfAChunkMessageThrowsOrDecodesItsPrefix() throws {
        let data = randomBytes(300, seed: 15)
        let message = chunk(7, 0x0102_0304_0506_0708, data)
        for cut in 0...message.count {
            let bytes = Array(message.prefix(cut))
            if cut <= TransferMessage.chunkHeaderSize {
                #expect(decodeError(bytes)?.isProtocolViolation == true, "cut at \(cut)")
                continue
            }
            guard case .chunk(let decoded) = try TransferMessage(decoding: bytes) else {
                Issue.record("cut at \(cut) is not a chunk")
                continue
            }
            #expect(decoded.index == 7)
            #expect(decoded.number == 0x0102_0304_0506_0708)
            #expect(decoded.hash == Digest.sha256(data))
            #expect(Array(decoded.data) == Array(data.prefix(cut - TransferMessage.chunkHeaderSize)))
        }
    }

    @Test func everyCutOfAManifestMessageThrowsProtocolViolation() throws {
        let entries = [
            directory("d"), file("d/a b.txt", size: 12_345, mode: 0o640, mtime: 1_600_000_000), symlink("d/l", to: "a b.txt"),
            ManifestEntry(path: "d/ünïcødé", kind: .file, size: 0, mode: 0o600, mtime: -1),
        ]
        let message = manifest(entries, more: true)
        guard case .manifest(let size, let decoded, let more) = try TransferMessage(decoding: message) else {
            Issue.record("the whole manifest does not decode")
            return
        }
        #expect(size == hostileChunkSize)
        #expect(decoded == entries)
        #expect(more)
        for cut in 0..<message.count {
            #expect(decodeError(Array(message.prefix(cut)))?.isProtocolViolation == true, "cut at \(cut)")
        }
    }

    /// Control messages whose JSON is well-formed but wrong.
    static let malformed: [String] = [
        "\u{1}{}", "\u{1}{\"chunk_size\":4096}", "\u{1}{\"chunk_size\":1023,\"entries\":[]}",
        "\u{1}{\"chunk_size\":262100,\"entries\":[]}", "\u{1}{\"chunk_size\":4096,\"entries\":[{\"path\":\"a\"}]}",
        "\u{1}{\"chunk_size\":4096,\"entries\":[{\"path\":\"a\",\"kind\":\"fifo\"}]}",
        "\u{1}{\"chunk_size\":4096,\"entries\":[{\"path\":\"a\",\"kind\":\"file\",\"size\":-1}]}",
        "\u{1}{\"chunk_size\":1e400,\"entries\":[]}", "\u{1}[]", "\u{1}null", "\u{1}",
        "\u{2}{\"claims\":[{\"index\":-1,\"chunks\":0,\"chain\":\"\(String(repeating: "0", count: 64))\"}]}",
        "\u{2}{\"claims\":[{\"index\":0,\"chunks\":0,\"chain\":\"zz\"}]}",
        "\u{3}{\"starts\":[{\"index\":-5,\"from\":0}]}", "\u{3}{}",
        "\u{b}{\"asks\":[{\"index\":-1,\"chunks\":0}]}", "\u{b}{\"skip\":[1]}", "\u{b}{\"asks\":[],\"skip\":[-1]}",
        "\u{c}{\"chains\":[{\"index\":0,\"chunks\":0,\"chain\":\"zz\"}]}", "\u{c}{}",
        "\u{d}{\"starts\":[{\"index\":-5,\"from\":0}]}", "\u{d}{}",
        "\u{5}{\"index\":0,\"size\":1,\"hash\":\"00\"}", "\u{5}{\"index\":-1,\"size\":1,\"hash\":\"\(String(repeating: "a", count: 64))\"}",
        "\u{5}{\"index\":99999999999999999999,\"size\":1,\"hash\":\"\(String(repeating: "a", count: 64))\"}",
        "\u{6}{\"index\":-3}", "\u{7}{\"files\":1}", "\u{8}{\"files\":1,\"bytes\":2}", "\u{9}[1]", "\u{0}", "\u{a}{}", "\u{ff}",
    ]

    @Test(arguments: malformed)
    func refusesAMalformedControlMessage(text: String) {
        #expect(decodeError(Array(text.utf8))?.isProtocolViolation == true)
    }

    @Test func randomBytesAfterEveryTypeThrowOnlyProtocolViolations() {
        var generator = SplitMix64(seed: 16)
        for round in 0..<3000 {
            let type = UInt8(round % 14)
            let length = Int(generator.next() % 200)
            let bytes = [type] + randomBytes(length, seed: generator.next())
            if let error = decodeError(bytes) {
                #expect(error.isProtocolViolation, "\(bytes)")
            }
        }
    }

    @Test(arguments: ["é", "€", "𝄞"])
    func aFailureReasonIsCutToTheLimitBetweenCharacters(character: String) throws {
        // 2000 characters of 2, 3 or 4 bytes: the limit falls inside one for the last two.
        let long = String(repeating: character, count: 2000)
        guard case .failure(let code, let text) = try TransferMessage(decoding: TransferMessage.failure(.noSpace, long).encoded()) else {
            Issue.record("not a failure")
            return
        }
        let fits = TransferMessage.maxFailureMessageBytes / character.utf8.count
        #expect(code == .noSpace)
        #expect(text == String(repeating: character, count: fits))
    }

    @Test func aFailureWithAnUnknownCodeIsAProtocolFailure() throws {
        let unknown = Array("\u{9}{\"code\":\"meltdown\",\"message\":\"x\"}".utf8)
        guard case .failure(let code, "x") = try TransferMessage(decoding: unknown) else {
            Issue.record("an unknown code does not decode")
            return
        }
        #expect(code == .protocolViolation)
    }

    static func name(_ message: TransferMessage) -> String {
        switch message {
        case .manifest: return "manifest"
        case .ask: return "ask"
        case .hashes: return "hashes"
        case .need: return "need"
        case .chunk: return "chunk"
        case .end: return "end"
        case .verified: return "verified"
        case .done: return "done"
        case .finished: return "finished"
        case .failure: return "failure"
        case .files: return "files"
        }
    }
}

// MARK: - The scene and the script

let hostileChunkSize = 4096

/// A parent directory holding `target/` (the receiver's) and
/// `outside/victim.txt`, removed afterwards.
final class Scene {
    let scratch: ScratchDirectory
    private var outsideBefore: [String: String] = [:]

    init() throws {
        scratch = try ScratchDirectory("hostile")
        try scratch.makeDirectory("target")
        try scratch.makeDirectory("outside")
        try scratch.write(Array("precious".utf8), to: "outside/victim.txt", mode: 0o644, modified: 1_234_567_890)
        outsideBefore = outside()
    }

    /// Everything in the parent but the target, directory times included
    /// (a name made and removed again changes its directory's time).
    func outside() -> [String: String] {
        scratch.tree(directoryTimes: true, skipping: ["target"])
    }

    /// Everything in the target.
    func inside() -> [String: String] {
        scratch.tree("target")
    }

    func expectOutsideUnchanged(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outside() == outsideBefore, "something outside the target changed", sourceLocation: sourceLocation)
        #expect(outside().count == 2, sourceLocation: sourceLocation)
    }

    /// Sends `manifest`; when the receiver answers with its asks, sends
    /// `hashes` (when it asked something or some are given, and
    /// `sendsHashes`) and then `data`; collects every reply until the
    /// receiver ends.
    func attack(
        offer: [OfferEntry], manifest: [[UInt8]], hashes: [PrefixChain] = [], data: [[UInt8]] = [], sendsHashes: Bool = true,
        configure: (inout TransferReceiver.Options) -> Void = { _ in }
    ) async throws -> Attack {
        let (hostile, receiverEnd) = MemoryChannel.pair()
        var options = TransferReceiver.Options(offer: offer)
        configure(&options)
        let receiver = TransferReceiver(
            target: try TargetDirectory(path: scratch.absolute("target"), create: false), channel: receiverEnd, options: options,
            report: { _ in })

        enum Part: Sendable {
            case receiver(TransferError?)
            case script([[UInt8]])
            case timedOut
        }
        var error: TransferError??
        var replies: [[UInt8]] = []
        await withTaskGroup(of: Part.self) { group in
            group.addTask {
                let result = await outcome { try await receiver.run() }
                await receiverEnd.close()
                if case .failure(let error) = result { return .receiver(error) }
                return .receiver(nil)
            }
            group.addTask {
                var replies: [[UInt8]] = []
                do {
                    for message in manifest { try await hostile.send(message) }
                    var answered = false
                    var asked = false
                    while let reply = try await hostile.receive() {
                        replies.append(reply)
                        if case .ask(let asks, _, let more)? = try? TransferMessage(decoding: reply) {
                            asked = asked || !asks.isEmpty
                            if !more {
                                answered = true
                                break
                            }
                        }
                    }
                    if answered {
                        if sendsHashes && (asked || !hashes.isEmpty) {
                            try await hostile.send(TransferMessage.hashes(chains: hashes, more: false).encoded())
                        }
                        for message in data { try await hostile.send(message) }
                    }
                } catch {
                    // The receiver stopped reading; its replies tell why.
                }
                while let reply = try? await hostile.receive() { replies.append(reply) }
                return .script(replies)
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                if Task.isCancelled { return .timedOut }
                Issue.record("the receiver neither finished nor failed within 30 s")
                await hostile.close()
                return .timedOut
            }
            var ended = 0
            while let part = await group.next() {
                switch part {
                case .receiver(let result):
                    error = .some(result)
                    ended += 1
                case .script(let received):
                    replies = received
                    ended += 1
                case .timedOut: break
                }
                if ended == 2 { group.cancelAll() }
            }
        }
        let decoded = replies.compactMap { try? TransferMessage(decoding: $0) }
        #expect(decoded.count == replies.count, "the receiver sent a message it cannot decode itself")
        return Attack(error: error ?? .io("no result"), replies: decoded)
    }
}

/// How the receiver ended and what it sent back.
struct Attack {
    /// Nil when the receiver finished.
    var error: TransferError?
    var replies: [TransferMessage]

    /// The code of the failure the receiver sent last, if it sent one.
    var reply: FailureCode? {
        if case .failure(let code, _)? = replies.last { return code }
        return nil
    }
}

// MARK: - Building messages

private func manifest(_ entries: [ManifestEntry], more: Bool = false) -> [UInt8] {
    TransferMessage.manifest(chunkSize: hostileChunkSize, entries: entries, more: more).encoded()
}

private func file(_ path: String, size: UInt64, mode: UInt32 = 0o644, mtime: Int64 = 1_600_000_000) -> ManifestEntry {
    ManifestEntry(path: path, kind: .file, size: size, mode: mode, mtime: mtime)
}

private func directory(_ path: String) -> ManifestEntry {
    ManifestEntry(path: path, kind: .directory, mode: 0o755)
}

private func symlink(_ path: String, to target: String) -> ManifestEntry {
    ManifestEntry(path: path, kind: .symlink, target: target)
}

/// A chunk message, with the data's own hash unless another is given.
private func chunk(_ index: Int, _ number: UInt64, _ data: [UInt8], hash: Digest? = nil) -> [UInt8] {
    TransferMessage.chunk(ChunkMessage(index: index, number: number, hash: hash ?? Digest.sha256(data), data: data[...])).encoded()
}

/// The end of file `index` whose content is `content`, the root computed
/// over `chunks` when given (to pair a size with another file's chunks).
private func end(_ index: Int, _ content: [UInt8], chunks: [[UInt8]]? = nil) -> [UInt8] {
    var chain = ChunkChain()
    let pieces = chunks ?? stride(from: 0, to: content.count, by: hostileChunkSize).map {
        Array(content[$0..<min(content.count, $0 + hostileChunkSize)])
    }
    for piece in pieces { chain.append(Digest.sha256(piece)) }
    return TransferMessage.end(index: index, size: UInt64(content.count), root: chain.root(size: UInt64(content.count))).encoded()
}

private func done(_ files: UInt64, _ bytes: UInt64) -> [UInt8] {
    TransferMessage.done(files: files, bytes: bytes).encoded()
}

/// The error decoding `bytes` throws, or nil when it decodes.
private func decodeError(_ bytes: [UInt8]) -> TransferError? {
    do {
        _ = try TransferMessage(decoding: bytes)
        return nil
    } catch {
        return error
    }
}

private extension TransferError {
    var isProtocolViolation: Bool {
        if case .protocolViolation = self { return true }
        return false
    }
}
