import Testing
import TernCrypto
@testable import TernPairing

/// Hex helpers for the crypto tests (vectors are pasted as hex).
enum CryptoTestHex {
    /// Bytes from a hex string; whitespace is ignored. Traps on bad hex: the
    /// strings are literals in these tests.
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = hex.filter { !$0.isWhitespace }.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: preconditionFailure("not a hex digit in a test vector")
            }
        }
        precondition(digits.count % 2 == 0, "odd number of hex digits in a test vector")
        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    static func string(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// The CPACE-RISTR255-SHA512 test vectors of draft-irtf-cfrg-cpace-21,
/// Appendix B.3 (identical in the draft's testvectors.json and in the
/// reference sage code's output, github.com/cfrg/draft-irtf-cfrg-cpace at tag
/// draft-irtf-cfrg-cpace-21).
enum CPaceVector {
    static let password = Array("Password".utf8)
    // CI = lv_cat("A_initiator", "B_responder") as in the draft.
    static let channelIdentifier = CryptoTestHex.bytes("0b415f696e69746961746f720b425f726573706f6e646572")
    static let sessionID = CryptoTestHex.bytes("7e4b4791d6a8ef019b936c79fb7f2c57")
    static let generatorString = CryptoTestHex.bytes("""
        11435061636552697374726574746f3235350850617373776f726464
        00000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000180b415f696e69746961746f
        720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f
        2c57
        """)
    static let generatorHash = CryptoTestHex.bytes("""
        da6d3ddc8802fca9058755ffd3ebde08a9c2c74945901a258482a288
        b6663af06bf645c93cd1c51512307199c80e84908916d983b34af772
        05f90851a657ee27
        """)
    static let generator = CryptoTestHex.bytes("""
        222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5
        698c7e56
        """)
    static let adA = Array("ADa".utf8)
    static let ya = CryptoTestHex.bytes("""
        da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4f
        f0976d08
        """)
    static let shareA = CryptoTestHex.bytes("""
        d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec
        482b9157
        """)
    static let adB = Array("ADb".utf8)
    static let yb = CryptoTestHex.bytes("""
        d2316b454718c35362d83d69df6320f38578ed5984651435e2949762
        d900b80d
        """)
    static let shareB = CryptoTestHex.bytes("""
        3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7
        433f7258
        """)
    static let sharedPoint = CryptoTestHex.bytes("""
        80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc98
        87c8b40f
        """)
    static let transcriptIR = CryptoTestHex.bytes("""
        20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0e
        ec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa
        8232b5ebe63324e2d9e7433f725803414462
        """)
    static let iskDomainSeparator = CryptoTestHex.bytes("435061636552697374726574746f3235355f49534b")
    static let iskInput = CryptoTestHex.bytes("""
        15435061636552697374726574746f3235355f49534b107e4b4791d6
        a8ef019b936c79fb7f2c572080b69a8a76457ab6a4d7f887a4bf6b55
        a2f80ac19c333f917a05fc9887c8b40f20d6bac480f2c386c394efc7
        c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7
        e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f
        725803414462
        """)
    static let isk = CryptoTestHex.bytes("""
        b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dc
        ae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c
        3fa2068af7900447
        """)

    static func initiator() throws -> CPace {
        try CPace(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            role: .initiator, associatedData: adA, scalar: ya
        )
    }

    static func responder() throws -> CPace {
        try CPace(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            role: .responder, associatedData: adB, scalar: yb
        )
    }
}

@Suite struct CPaceStringUtilityVectors {
    // draft-irtf-cfrg-cpace-21 Appendix A.1.2.
    @Test func prependLenMatchesDraftVectors() {
        #expect(CPace.prependLen([]) == [0x00])
        #expect(CPace.prependLen(Array("1234".utf8)) == CryptoTestHex.bytes("0431323334"))
        let short = (0..<127).map { UInt8($0) }
        #expect(CPace.prependLen(short) == [0x7f] + short)
        let long = (0..<128).map { UInt8($0) }
        #expect(CPace.prependLen(long) == [0x80, 0x01] + long)
    }

    @Test(arguments: [
        (300, [0xac, 0x02] as [UInt8]),
        (16_383, [0xff, 0x7f]),
        (16_384, [0x80, 0x80, 0x01]),
    ])
    func prependLenUsesLEB128ForLongerStrings(length: Int, prefix: [UInt8]) {
        let data = [UInt8](repeating: 0xaa, count: length)
        #expect(CPace.prependLen(data) == prefix + data)
    }

    // Appendix A.1.4.
    @Test func lvCatMatchesDraftVector() {
        let out = CPace.lvCat(Array("1234".utf8), Array("5".utf8), [], Array("678".utf8))
        #expect(out == CryptoTestHex.bytes("043132333401350003363738"))
    }

    // Appendix A.3.5.
    @Test(arguments: [
        ("123", "234", "03313233065061727479410332333406506172747942"),
        ("3456", "2345", "043334353606506172747941043233343506506172747942"),
    ])
    func transcriptIRMatchesDraftVectors(ya: String, yb: String, expected: String) {
        let out = CPace.transcript(
            initiatorShare: Array(ya.utf8), initiatorAssociatedData: Array("PartyA".utf8),
            responderShare: Array(yb.utf8), responderAssociatedData: Array("PartyB".utf8)
        )
        #expect(out == CryptoTestHex.bytes(expected))
    }
}

@Suite struct CPaceRistretto255Vectors {
    @Test func domainSeparatorsAreTheDraftStrings() {
        #expect(CPace.domainSeparator == Array("CPaceRistretto255".utf8))
        #expect(CPace.iskDomainSeparator == CPaceVector.iskDomainSeparator)
    }

    // B.3.1: generator string (zero padding of 100 bytes), its SHA-512, g.
    @Test func generatorMatchesDraftVector() throws {
        let string = CPace.generatorString(
            password: CPaceVector.password,
            channelIdentifier: CPaceVector.channelIdentifier,
            sessionID: CPaceVector.sessionID
        )
        #expect(string.count == 170)
        #expect(string == CPaceVector.generatorString)
        #expect(Sodium.sha512(string) == CPaceVector.generatorHash)
        let generator = try CPace.calculateGenerator(
            password: CPaceVector.password,
            channelIdentifier: CPaceVector.channelIdentifier,
            sessionID: CPaceVector.sessionID
        )
        #expect(generator.bytes == CPaceVector.generator)
    }

    // draft §8.1: the padding fills the first 128-byte block only while
    // DSI and PRS leave room; a long PRS gets an empty padding field.
    @Test(arguments: [(108, 0), (109, 0), (200, 0), (1, 107), (0, 108)])
    func generatorStringPadsToOneHashBlock(passwordLength: Int, expectedPadding: Int) {
        let password = [UInt8](repeating: 0x70, count: passwordLength)
        let string = CPace.generatorString(password: password, channelIdentifier: [0xc1], sessionID: [0x51, 0x52])
        let expected = [0x11] + CPace.domainSeparator + CPace.prependLen(password)
            + CPace.prependLen([UInt8](repeating: 0, count: expectedPadding)) + [0x01, 0xc1, 0x02, 0x51, 0x52]
        #expect(string == expected)
        if passwordLength <= 108 {
            // DSI, PRS and padding with their length prefixes: exactly one block.
            #expect(string.count - 5 == 128)
        }
    }

    // B.3.2 and B.3.3: Ya = ya * g, Yb = yb * g.
    @Test func sharesMatchDraftVectors() throws {
        #expect(try CPaceVector.initiator().share == CPaceVector.shareA)
        #expect(try CPaceVector.responder().share == CPaceVector.shareB)
    }

    // B.3.4: K = scalar_mult_vfy(ya, Yb) = scalar_mult_vfy(yb, Ya).
    @Test func sharedPointMatchesDraftVector() throws {
        #expect(try CPaceVector.initiator().sharedPoint(peerShare: CPaceVector.shareB) == CPaceVector.sharedPoint)
        #expect(try CPaceVector.responder().sharedPoint(peerShare: CPaceVector.shareA) == CPaceVector.sharedPoint)
    }

    // B.3.5: transcript_ir, the ISK hash input and ISK, from both sides.
    @Test func initiatorResponderISKMatchesDraftVector() throws {
        let a = try CPaceVector.initiator()
        let b = try CPaceVector.responder()
        #expect(a.transcript(peerShare: CPaceVector.shareB, peerAssociatedData: CPaceVector.adB) == CPaceVector.transcriptIR)
        #expect(b.transcript(peerShare: CPaceVector.shareA, peerAssociatedData: CPaceVector.adA) == CPaceVector.transcriptIR)
        let input = CPace.lvCat(CPace.iskDomainSeparator, CPaceVector.sessionID, CPaceVector.sharedPoint)
            + CPaceVector.transcriptIR
        #expect(input == CPaceVector.iskInput)
        #expect(CPace.intermediateSessionKey(
            sessionID: CPaceVector.sessionID, sharedPoint: CPaceVector.sharedPoint, transcript: CPaceVector.transcriptIR
        ) == CPaceVector.isk)
        #expect(try a.finish(peerShare: CPaceVector.shareB, peerAssociatedData: CPaceVector.adB) == CPaceVector.isk)
        #expect(try b.finish(peerShare: CPaceVector.shareA, peerAssociatedData: CPaceVector.adA) == CPaceVector.isk)
    }

    // B.3.10: scalar_mult_vfy with valid inputs.
    @Test func scalarMultVfyMatchesDraftValidVector() throws {
        let s = CryptoTestHex.bytes("7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05")
        let x = CryptoTestHex.bytes("2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c")
        let cpace = try CPace(
            password: [], channelIdentifier: [], sessionID: [], role: .initiator, associatedData: [], scalar: s
        )
        #expect(try cpace.sharedPoint(peerShare: x)
            == CryptoTestHex.bytes("7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e"))
    }

    // B.3.11: Y_i1 (not a valid encoding) and Y_i2 (the identity G.I) must
    // make scalar_mult_vfy return G.I and the protocol abort (draft §7.2, §9).
    @Test(arguments: [
        "2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ])
    func rejectsDraftInvalidPeerShares(hex: String) throws {
        let s = CryptoTestHex.bytes("7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05")
        for role in [CPace.Role.initiator, .responder] {
            let cpace = try CPace(
                password: CPaceVector.password, channelIdentifier: CPaceVector.channelIdentifier,
                sessionID: CPaceVector.sessionID, role: role, associatedData: [], scalar: s
            )
            let peer = CryptoTestHex.bytes(hex)
            #expect(throws: PairingError.self) { try cpace.sharedPoint(peerShare: peer) }
            #expect(throws: PairingError.self) { try cpace.finish(peerShare: peer, peerAssociatedData: []) }
        }
    }
}

@Suite struct CPaceBehaviour {
    static func pair(
        passwordA: [UInt8] = Array("7-bluebird-caravan".utf8),
        passwordB: [UInt8] = Array("7-bluebird-caravan".utf8),
        ciA: [UInt8] = Array("tern ci".utf8), ciB: [UInt8] = Array("tern ci".utf8),
        sidA: [UInt8] = [1, 2, 3, 4], sidB: [UInt8] = [1, 2, 3, 4],
        adA: [UInt8] = Array("alice".utf8), adB: [UInt8] = Array("bob".utf8),
        adASeenByB: [UInt8]? = nil
    ) throws -> (isk: [UInt8], iskB: [UInt8]) {
        let a = try CPace(password: passwordA, channelIdentifier: ciA, sessionID: sidA, role: .initiator, associatedData: adA)
        let b = try CPace(password: passwordB, channelIdentifier: ciB, sessionID: sidB, role: .responder, associatedData: adB)
        let iskA = try a.finish(peerShare: b.share, peerAssociatedData: b.associatedData)
        let iskB = try b.finish(peerShare: a.share, peerAssociatedData: adASeenByB ?? a.associatedData)
        return (iskA, iskB)
    }

    @Test func bothRolesDeriveTheSameKeyWithRandomScalars() throws {
        for _ in 0..<8 {
            let (a, b) = try Self.pair()
            #expect(a.count == 64)
            #expect(a == b)
        }
    }

    @Test func freshRunsUseFreshSharesAndKeys() throws {
        let first = try Self.pair()
        let second = try Self.pair()
        #expect(first.isk != second.isk)
        let x = try CPace(password: [1], channelIdentifier: [], sessionID: [], role: .initiator, associatedData: [])
        let y = try CPace(password: [1], channelIdentifier: [], sessionID: [], role: .initiator, associatedData: [])
        #expect(x.share != y.share)
    }

    @Test func wrongPasswordGivesDifferentKeys() throws {
        let (a, b) = try Self.pair(passwordB: Array("7-crossbow-ragtimf".utf8))
        #expect(a != b)
    }

    @Test(arguments: ["channel", "session", "associatedData"])
    func anyMismatchedInputGivesDifferentKeys(input: String) throws {
        let (a, b): ([UInt8], [UInt8])
        switch input {
        case "channel": (a, b) = try Self.pair(ciB: Array("other ci".utf8))
        case "session": (a, b) = try Self.pair(sidB: [1, 2, 3, 5])
        default: (a, b) = try Self.pair(adASeenByB: Array("mallory".utf8))
        }
        #expect(a != b)
    }

    @Test(arguments: [0, 1, 31, 33, 64])
    func rejectsPeerShareOfWrongLength(length: Int) throws {
        let a = try CPaceVector.initiator()
        let share = [UInt8](repeating: 0x11, count: length)
        #expect(throws: PairingError.invalidPeerShare("expected 32 bytes, got \(length)")) {
            try a.finish(peerShare: share, peerAssociatedData: [])
        }
    }

    @Test func rejectsIdentityAndNonCanonicalShares() throws {
        let a = try CPaceVector.initiator()
        #expect(throws: PairingError.invalidPeerShare("it is the identity element")) {
            try a.finish(peerShare: [UInt8](repeating: 0, count: 32), peerAssociatedData: [])
        }
        // The field prime p = 2^255 - 19 encoded little-endian: a non-canonical
        // field element, which ristretto255 decoding rejects (RFC 9496 §4.3.1).
        let p = [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
        // A negative field element (odd low bit) is rejected too.
        let negative = [0x01] + [UInt8](repeating: 0, count: 31)
        for share in [p, negative, [UInt8](repeating: 0xff, count: 32)] {
            #expect(throws: PairingError.invalidPeerShare("it is not a valid ristretto255 encoding")) {
                try a.finish(peerShare: share, peerAssociatedData: [])
            }
        }
    }

    @Test func rejectsBadScalarLengthInTestInitialiser() {
        #expect(throws: PairingError.self) {
            try CPace(password: [], channelIdentifier: [], sessionID: [], role: .initiator, associatedData: [], scalar: [1, 2])
        }
    }

    @Test func errorsExplainThemselves() {
        #expect(PairingError.invalidPeerShare("it is the identity element").reason.contains("identity"))
        #expect(PairingError.messageTooLarge(size: 5, limit: 4).reason.contains("limit of 4"))
    }
}
