import Testing
@testable import TernPairing

/// Known answers for the key schedule, computed once outside Swift with
/// Python's hashlib (a BLAKE2b implementation independent of libsodium):
///
///     key(label) = hashlib.blake2b(label.encode(), key=ISK, digest_size=32)
///     tag(role)  = hashlib.blake2b(transcript, key=key("tern v1 confirm " + role), digest_size=32)
///
/// with ISK = the draft's ristretto255 initiator-responder ISK
/// (draft-irtf-cfrg-cpace-21 B.3.5) and transcript = that vector's
/// transcript_ir (74 bytes).
enum KeyScheduleVector {
    static let confirmInitiator = CryptoTestHex.bytes("8fc4a276c3d0a87c18aaf7c87b59c341bfc275187f5f1bc48b579256635b9a94")
    static let confirmResponder = CryptoTestHex.bytes("0df5f01b953a921f7130eeb84ec411b590fbdac9185b5f4c2a949d96f6f62dbe")
    static let sealInitiatorToResponder = CryptoTestHex.bytes("8a99a384d5a8023186afd34c963126acf8eed7fa3c527f8c0b2e82681ddc666c")
    static let sealResponderToInitiator = CryptoTestHex.bytes("263de1fa9563cd6ece8b758bc97ced46371a486c945a01b3bce102148814853e")
    static let sessionSecret = CryptoTestHex.bytes("71ea8b83ab217bd9d43bd977ba9645f43cf22eaeab8a9f9ff88d3c5e3dc355c6")
    static let tagInitiator = CryptoTestHex.bytes("4922136073fa2ef67a84e8154c9d3fcc27febf87256fe3662a27b8c27757ae06")
    static let tagResponder = CryptoTestHex.bytes("2c40ae78aaf335bd33d9b392e2d713843f35013b2383aa23820c5144481c55dd")

    static func keys() throws -> SessionKeys {
        try SessionKeys(intermediateSessionKey: CPaceVector.isk)
    }
}

@Suite struct KeyScheduleTests {
    @Test func labelsAreTheDocumentedStrings() {
        #expect(SessionKeys.Label.confirmInitiator == "tern v1 confirm initiator")
        #expect(SessionKeys.Label.confirmResponder == "tern v1 confirm responder")
        #expect(SessionKeys.Label.sealInitiatorToResponder == "tern v1 seal initiator->responder")
        #expect(SessionKeys.Label.sealResponderToInitiator == "tern v1 seal responder->initiator")
        #expect(SessionKeys.Label.sessionSecret == "tern v1 session secret")
    }

    @Test func derivedKeysMatchIndependentBlake2b() throws {
        let keys = try KeyScheduleVector.keys()
        #expect(keys.confirmInitiator.bytes == KeyScheduleVector.confirmInitiator)
        #expect(keys.confirmResponder.bytes == KeyScheduleVector.confirmResponder)
        #expect(keys.sealInitiatorToResponder.bytes == KeyScheduleVector.sealInitiatorToResponder)
        #expect(keys.sealResponderToInitiator.bytes == KeyScheduleVector.sealResponderToInitiator)
        #expect(keys.sessionSecret == KeyScheduleVector.sessionSecret)
    }

    @Test func confirmationTagsMatchIndependentBlake2b() throws {
        let keys = try KeyScheduleVector.keys()
        #expect(keys.confirmationTag(for: .initiator, transcript: CPaceVector.transcriptIR) == KeyScheduleVector.tagInitiator)
        #expect(keys.confirmationTag(for: .responder, transcript: CPaceVector.transcriptIR) == KeyScheduleVector.tagResponder)
    }

    @Test func confirmationTagsDifferByRoleAndDoNotVerifyForTheOtherRole() throws {
        let keys = try KeyScheduleVector.keys()
        let transcript = CPaceVector.transcriptIR
        let a = keys.confirmationTag(for: .initiator, transcript: transcript)
        let b = keys.confirmationTag(for: .responder, transcript: transcript)
        #expect(a != b)
        #expect(keys.verifyConfirmation(a, from: .initiator, transcript: transcript))
        #expect(keys.verifyConfirmation(b, from: .responder, transcript: transcript))
        // A reflected tag (this side's own tag sent back) must not verify.
        #expect(!keys.verifyConfirmation(a, from: .responder, transcript: transcript))
        #expect(!keys.verifyConfirmation(b, from: .initiator, transcript: transcript))
    }

    @Test func tagFromAnotherKeyFailsVerification() throws {
        let keys = try KeyScheduleVector.keys()
        var otherISK = CPaceVector.isk
        otherISK[0] ^= 0x01
        let other = try SessionKeys(intermediateSessionKey: otherISK)
        for role in [CPace.Role.initiator, .responder] {
            let tag = other.confirmationTag(for: role, transcript: CPaceVector.transcriptIR)
            #expect(!keys.verifyConfirmation(tag, from: role, transcript: CPaceVector.transcriptIR))
            #expect(throws: PairingError.confirmationFailed) {
                try keys.checkConfirmation(tag, from: role, transcript: CPaceVector.transcriptIR)
            }
        }
    }

    @Test func tagOverAnotherTranscriptFailsVerification() throws {
        let keys = try KeyScheduleVector.keys()
        var transcript = CPaceVector.transcriptIR
        let tag = keys.confirmationTag(for: .initiator, transcript: transcript)
        transcript[transcript.count - 1] ^= 0x01
        #expect(!keys.verifyConfirmation(tag, from: .initiator, transcript: transcript))
    }

    @Test func alteredOrMisSizedTagsFailVerification() throws {
        let keys = try KeyScheduleVector.keys()
        let tag = keys.confirmationTag(for: .responder, transcript: CPaceVector.transcriptIR)
        for index in tag.indices {
            var altered = tag
            altered[index] ^= 0x80
            #expect(!keys.verifyConfirmation(altered, from: .responder, transcript: CPaceVector.transcriptIR))
        }
        for bad in [[], Array(tag.dropLast()), tag + [0], [UInt8](repeating: 0, count: 32)] {
            #expect(!keys.verifyConfirmation(bad, from: .responder, transcript: CPaceVector.transcriptIR))
        }
        try keys.checkConfirmation(tag, from: .responder, transcript: CPaceVector.transcriptIR)
    }

    @Test(arguments: [0, 32, 63, 65])
    func rejectsISKOfWrongLength(length: Int) {
        #expect(throws: PairingError.self) {
            try SessionKeys(intermediateSessionKey: [UInt8](repeating: 7, count: length))
        }
    }

    @Test func bothSidesConfirmAfterARealRun() throws {
        let a = try CPace(password: Array("4-apple-banana".utf8), channelIdentifier: [], sessionID: [9], role: .initiator, associatedData: [1])
        let b = try CPace(password: Array("4-apple-banana".utf8), channelIdentifier: [], sessionID: [9], role: .responder, associatedData: [2])
        let keysA = try SessionKeys(intermediateSessionKey: a.finish(peerShare: b.share, peerAssociatedData: b.associatedData))
        let keysB = try SessionKeys(intermediateSessionKey: b.finish(peerShare: a.share, peerAssociatedData: a.associatedData))
        let transcriptA = a.transcript(peerShare: b.share, peerAssociatedData: b.associatedData)
        let transcriptB = b.transcript(peerShare: a.share, peerAssociatedData: a.associatedData)
        #expect(transcriptA == transcriptB)
        try keysB.checkConfirmation(keysA.confirmationTag(for: .initiator, transcript: transcriptA), from: .initiator, transcript: transcriptB)
        try keysA.checkConfirmation(keysB.confirmationTag(for: .responder, transcript: transcriptB), from: .responder, transcript: transcriptA)
        #expect(keysA.sessionSecret == keysB.sessionSecret)
    }
}
