import Foundation
import Testing
import TernTestSupport
@testable import TernPairing

/// The browser page's pairing cryptography (web/cpace.js over libsodium
/// compiled to WebAssembly by scripts/build-web.sh) run in headless Chromium:
/// the draft's CPace vector and random inputs must give, byte for byte, what
/// this package's CPace, key schedule and sealing give, and the page must
/// refuse the peer shares the Swift side refuses, with the same reasons.
@Suite(.serialized) struct BrowserCryptoHeavyTests {
    struct Case: Codable {
        var name: String
        var password, ci, sid, adA, adB, ya, yb: String
        var messages: [String]
    }

    struct Cases: Codable {
        var cases: [Case]
        var badShares: [String]
    }

    struct Result: Codable {
        var name: String
        var shareA, shareB, transcript, iskA, iskB: String
        var confirmInitiator, confirmResponder, sealInitiatorToResponder, sealResponderToInitiator, sessionSecret: String
        var tagInitiator, tagResponder: String
        var confirmationsVerify: Bool
        var sealedByInitiator, sealedByResponder, openedByResponder, openedByInitiator: [String]
    }

    struct Report: Codable {
        var results: [Result]
        var refusals: [String]
        var secureContext: Bool
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }

    /// A random scalar below 2^252 (the draft allows 32 random bytes with
    /// the top four bits cleared).
    static func randomScalar() -> [UInt8] {
        var scalar = randomBytes(32)
        scalar[31] &= 0x0f
        return scalar
    }

    static let messages: [[UInt8]] = [Array("hello, responder".utf8), [], randomBytes(300), randomBytes(65536)]

    /// The draft -21 B.3 vector, then random inputs of lengths that cross the
    /// encoding's edges (a PRS over 108 bytes gets no padding; fields of 128
    /// bytes or more take a two-byte LEB128 length).
    static func cases() -> [Case] {
        var cases = [Case(
            name: "draft-21 B.3", password: hex(CPaceVector.password), ci: hex(CPaceVector.channelIdentifier),
            sid: hex(CPaceVector.sessionID), adA: hex(CPaceVector.adA), adB: hex(CPaceVector.adB),
            ya: hex(CPaceVector.ya), yb: hex(CPaceVector.yb), messages: messages.map(hex))]
        for (index, lengths) in [(0, 0, 0, 0), (18, 24, 16, 11), (109, 130, 200, 300)].enumerated() {
            cases.append(Case(
                name: "random \(index)", password: hex(randomBytes(lengths.0)), ci: hex(randomBytes(lengths.1)),
                sid: hex(randomBytes(lengths.2)), adA: hex(randomBytes(lengths.3)), adB: hex(randomBytes(lengths.3 / 2)),
                ya: hex(randomScalar()), yb: hex(randomScalar()), messages: messages.map(hex)))
        }
        return cases
    }

    /// What the Swift side computes for a case, in the page's report form.
    static func expected(_ input: Case) throws -> Result {
        let bytes = { (text: String) in CryptoTestHex.bytes(text) }
        let a = try CPace(
            password: bytes(input.password), channelIdentifier: bytes(input.ci), sessionID: bytes(input.sid),
            role: .initiator, associatedData: bytes(input.adA), scalar: bytes(input.ya))
        let b = try CPace(
            password: bytes(input.password), channelIdentifier: bytes(input.ci), sessionID: bytes(input.sid),
            role: .responder, associatedData: bytes(input.adB), scalar: bytes(input.yb))
        let transcript = a.transcript(peerShare: b.share, peerAssociatedData: b.associatedData)
        let iskA = try a.finish(peerShare: b.share, peerAssociatedData: b.associatedData)
        let iskB = try b.finish(peerShare: a.share, peerAssociatedData: a.associatedData)
        let keys = try SessionKeys(intermediateSessionKey: iskA)
        var initiator = SealingChannel(keys: keys, role: .initiator)
        var responder = SealingChannel(keys: keys, role: .responder)
        let plaintexts = input.messages.map(bytes)
        return Result(
            name: input.name, shareA: hex(a.share), shareB: hex(b.share), transcript: hex(transcript),
            iskA: hex(iskA), iskB: hex(iskB),
            confirmInitiator: hex(keys.confirmInitiator.bytes), confirmResponder: hex(keys.confirmResponder.bytes),
            sealInitiatorToResponder: hex(keys.sealInitiatorToResponder.bytes),
            sealResponderToInitiator: hex(keys.sealResponderToInitiator.bytes), sessionSecret: hex(keys.sessionSecret),
            tagInitiator: hex(keys.confirmationTag(for: .initiator, transcript: transcript)),
            tagResponder: hex(keys.confirmationTag(for: .responder, transcript: transcript)),
            confirmationsVerify: true,
            sealedByInitiator: try plaintexts.map { hex(try initiator.seal($0)) },
            sealedByResponder: try plaintexts.map { hex(try responder.seal($0)) },
            openedByResponder: input.messages, openedByInitiator: input.messages)
    }

    /// Shares a peer might send that must abort the run: wrong lengths, the
    /// identity, the draft's B.3.11 invalid encoding, a non-canonical and a
    /// negative field element.
    static let badShares: [[UInt8]] = [
        [], [UInt8](repeating: 0x11, count: 31), [UInt8](repeating: 0x11, count: 33),
        [UInt8](repeating: 0, count: 32),
        CryptoTestHex.bytes("2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"),
        [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
        [0x01] + [UInt8](repeating: 0, count: 31),
    ]

    static func swiftRefusal(_ share: [UInt8]) throws -> String {
        let run = try CPace(password: [0], channelIdentifier: [], sessionID: [], role: .responder, associatedData: [])
        do {
            _ = try run.finish(peerShare: share, peerAssociatedData: [])
            return "accepted"
        } catch {
            guard case .invalidPeerShare(let reason) = error else { return "\(error)" }
            return "invalidPeerShare: \(reason)"
        }
    }

    @Test func pageCryptographyMatchesTheSwiftSideAndTheDraftVectors() async throws {
        let web = PackagePaths.root.appendingPathComponent(".build/web")
        try #require(
            FileManager.default.fileExists(atPath: web.appendingPathComponent("sodium.wasm").path),
            "no .build/web/sodium.wasm: run `make web` (scripts/build-web.sh), which `make test` runs first")
        let browser = try await HeadlessBrowser(page: "crypto.html", webDirectory: web)
        let cases = Self.cases()
        let body = try JSONEncoder().encode(Cases(cases: cases, badShares: Self.badShares.map(Self.hex)))
        try await browser.put("/cases", String(decoding: body, as: UTF8.self))

        var report: Report?
        var seen: [[String: String]] = []
        for _ in 0..<600 where report == nil {
            seen = try await browser.reports()
            if let results = seen.first(where: { $0["what"] == "results" })?["detail"] {
                report = try JSONDecoder().decode(Report.self, from: Data(results.utf8))
            } else if seen.contains(where: { $0["what"] == "error" }) {
                break
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let page = try #require(report, "no results from the page: \(seen) \(browser.chromium.stderr.text.suffix(2000))")
        #expect(page.secureContext, "http://127.0.0.1 is a secure context")
        #expect(page.results.count == cases.count)
        for (input, result) in zip(cases, page.results) {
            let expected = try Self.expected(input)
            #expect(result.iskA == result.iskB, "\(input.name)")
            #expect(result.confirmationsVerify, "\(input.name)")
            // Field by field, so a failure names what differs.
            for (field, path) in [
                ("shareA", \Result.shareA), ("shareB", \.shareB), ("transcript", \.transcript), ("isk", \.iskA),
                ("confirm_initiator", \.confirmInitiator), ("confirm_responder", \.confirmResponder),
                ("seal_i2r", \.sealInitiatorToResponder), ("seal_r2i", \.sealResponderToInitiator),
                ("session_secret", \.sessionSecret), ("tag_initiator", \.tagInitiator), ("tag_responder", \.tagResponder),
            ] as [(String, KeyPath<Result, String>)] {
                #expect(result[keyPath: path] == expected[keyPath: path], "\(input.name): \(field)")
            }
            #expect(result.sealedByInitiator == expected.sealedByInitiator, "\(input.name): sealed i->r")
            #expect(result.sealedByResponder == expected.sealedByResponder, "\(input.name): sealed r->i")
            #expect(result.openedByResponder == input.messages && result.openedByInitiator == input.messages, "\(input.name)")
        }
        // The draft's own numbers, not only agreement with the Swift side.
        let draft = try #require(page.results.first)
        #expect(draft.shareA == Self.hex(CPaceVector.shareA) && draft.shareB == Self.hex(CPaceVector.shareB))
        #expect(draft.transcript == Self.hex(CPaceVector.transcriptIR) && draft.iskA == Self.hex(CPaceVector.isk))
        #expect(page.refusals == (try Self.badShares.map(Self.swiftRefusal)))
        #expect(!page.refusals.contains("accepted"))
    }
}
