import Testing
@testable import TernPairing

/// Known sealed messages, computed once outside Swift and libsodium with
/// Python: XChaCha20-Poly1305 built from a hand-written HChaCha20 (checked
/// against draft-irtf-cfrg-xchacha-03 §2.2.1) and the `cryptography`
/// package's ChaCha20-Poly1305 (RFC 8439), with the keys of
/// `KeyScheduleVector` (derived from the draft's ristretto255 ISK):
///
///     nonce = d || 15 zero bytes || seq (8 bytes big-endian)
///     ad    = b"tern v1 sealed" || d || seq (8 bytes big-endian)
///     message = seq (8 bytes big-endian) || XChaCha20-Poly1305(key, nonce, plaintext, ad)
enum SealingVector {
    /// Initiator -> responder (d = 0x01), seq 0, "hello, responder".
    static let initiatorFirst = CryptoTestHex.bytes(
        "0000000000000000" + "5c1c0ad5cfaca72c71d98d57f2d8dcb154464cadd00f2aab56a7dbe1e645e55a")
    /// Initiator -> responder, seq 1, empty plaintext.
    static let initiatorSecondEmpty = CryptoTestHex.bytes("0000000000000001" + "c7fb36d563275546ba36443477700ddc")
    /// Responder -> initiator (d = 0x02), seq 0, "hello, initiator".
    static let responderFirst = CryptoTestHex.bytes(
        "0000000000000000" + "d0ed386d23b47cd3efb40b0b8f34d9eb0604677e7fb84bae26dfc0a8328bcf12")
}

@Suite struct SealingTests {
    static func channels(max: Int = SealingChannel.defaultMaxPlaintextSize) throws -> (SealingChannel, SealingChannel) {
        let keys = try KeyScheduleVector.keys()
        return (
            SealingChannel(keys: keys, role: .initiator, maxPlaintextSize: max),
            SealingChannel(keys: keys, role: .responder, maxPlaintextSize: max)
        )
    }

    /// `open` must throw and leave the receive sequence where it was.
    static func expectRejected(
        _ message: [UInt8], by channel: inout SealingChannel, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let before = channel.nextReceiveSequence
        do {
            _ = try channel.open(message)
            Issue.record("a message that must be rejected opened", sourceLocation: sourceLocation)
        } catch {
            // Typed throws: `error` is a PairingError.
            _ = error.reason
        }
        #expect(channel.nextReceiveSequence == before, sourceLocation: sourceLocation)
    }

    @Test func nonceAndAssociatedDataHaveTheDocumentedLayout() {
        #expect(SealingChannel.nonce(direction: .initiatorToResponder, sequence: 0x0102030405060708)
            == [0x01] + [UInt8](repeating: 0, count: 15) + [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(SealingChannel.nonce(direction: .responderToInitiator, sequence: 1)
            == [0x02] + [UInt8](repeating: 0, count: 22) + [1])
        #expect(SealingChannel.associatedData(direction: .responderToInitiator, sequence: 0x0a0b)
            == Array("tern v1 sealed".utf8) + [0x02, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b])
    }

    @Test func sealMatchesIndependentKnownAnswers() throws {
        var (initiator, responder) = try Self.channels()
        #expect(try initiator.seal(Array("hello, responder".utf8)) == SealingVector.initiatorFirst)
        #expect(try initiator.seal([]) == SealingVector.initiatorSecondEmpty)
        #expect(try responder.seal(Array("hello, initiator".utf8)) == SealingVector.responderFirst)
        #expect(initiator.nextSendSequence == 2)
        #expect(responder.nextSendSequence == 1)
    }

    @Test func openAcceptsIndependentKnownAnswers() throws {
        var (initiator, responder) = try Self.channels()
        #expect(try responder.open(SealingVector.initiatorFirst) == Array("hello, responder".utf8))
        #expect(try responder.open(SealingVector.initiatorSecondEmpty) == [])
        #expect(try initiator.open(SealingVector.responderFirst) == Array("hello, initiator".utf8))
        #expect(responder.nextReceiveSequence == 2)
    }

    @Test func roundTripsInBothDirections() throws {
        var (initiator, responder) = try Self.channels()
        for i in 0..<20 {
            let toResponder = [UInt8](repeating: UInt8(i), count: i * 37)
            #expect(try responder.open(initiator.seal(toResponder)) == toResponder)
            let toInitiator = Array("reply \(i)".utf8)
            #expect(try initiator.open(responder.seal(toInitiator)) == toInitiator)
        }
        let largest = [UInt8](repeating: 0x5a, count: SealingChannel.defaultMaxPlaintextSize)
        let sealed = try initiator.seal(largest)
        #expect(sealed.count == largest.count + SealingChannel.overhead)
        #expect(try responder.open(sealed) == largest)
    }

    @Test func rejectsTamperingAtEveryByte() throws {
        var (initiator, responder) = try Self.channels()
        let message = try initiator.seal(Array("attack at dawn".utf8))
        for index in message.indices {
            for flip: UInt8 in [0x01, 0x80] {
                var tampered = message
                tampered[index] ^= flip
                Self.expectRejected(tampered, by: &responder)
            }
        }
        #expect(try responder.open(message) == Array("attack at dawn".utf8))
    }

    @Test func rejectsTruncationAtEveryOffset() throws {
        var (initiator, responder) = try Self.channels()
        let message = try initiator.seal(Array("a message to cut".utf8))
        for cut in 0..<message.count {
            Self.expectRejected(Array(message[..<cut]), by: &responder)
        }
        // Appended bytes are no better than missing ones.
        Self.expectRejected(message + [0], by: &responder)
        #expect(try responder.open(message) == Array("a message to cut".utf8))
    }

    @Test func rejectsReplay() throws {
        var (initiator, responder) = try Self.channels()
        let first = try initiator.seal([1])
        let second = try initiator.seal([2])
        #expect(try responder.open(first) == [1])
        #expect(throws: PairingError.replayedOrReordered(expected: 1, received: 0)) { try responder.open(first) }
        #expect(try responder.open(second) == [2])
        Self.expectRejected(second, by: &responder)
        Self.expectRejected(first, by: &responder)
    }

    @Test func rejectsReorderedAndSkippedMessages() throws {
        var (initiator, responder) = try Self.channels()
        let messages = try (0..<4).map { i throws(PairingError) in try initiator.seal([UInt8(i)]) }
        #expect(throws: PairingError.replayedOrReordered(expected: 0, received: 1)) { try responder.open(messages[1]) }
        #expect(try responder.open(messages[0]) == [0])
        // Skipping message 1.
        #expect(throws: PairingError.replayedOrReordered(expected: 1, received: 2)) { try responder.open(messages[2]) }
        Self.expectRejected(messages[3], by: &responder)
        for i in 1..<4 {
            #expect(try responder.open(messages[i]) == [UInt8(i)])
        }
    }

    @Test func rejectsAMessageChangedToClaimAnotherSequenceNumber() throws {
        var (initiator, responder) = try Self.channels()
        _ = try initiator.seal([0])
        var second = try initiator.seal([1])
        // Relabel message 1 as message 0: the nonce and AD no longer match.
        second[7] = 0
        #expect(throws: PairingError.badSeal("authentication failed")) { try responder.open(second) }
        #expect(responder.nextReceiveSequence == 0)
    }

    @Test func rejectsReflectedMessages() throws {
        var (initiator, responder) = try Self.channels()
        let fromInitiator = try initiator.seal(Array("to the responder".utf8))
        let fromResponder = try responder.seal(Array("to the initiator".utf8))
        // Each side gets its own message back, at the sequence number it expects.
        #expect(throws: PairingError.badSeal("authentication failed")) { try initiator.open(fromInitiator) }
        #expect(throws: PairingError.badSeal("authentication failed")) { try responder.open(fromResponder) }
        #expect(try initiator.open(fromResponder) == Array("to the initiator".utf8))
        #expect(try responder.open(fromInitiator) == Array("to the responder".utf8))
    }

    @Test func rejectsMessagesSealedUnderAnotherSessionKey() throws {
        var otherISK = CPaceVector.isk
        otherISK[63] ^= 0x01
        var stranger = SealingChannel(keys: try SessionKeys(intermediateSessionKey: otherISK), role: .initiator)
        var (_, responder) = try Self.channels()
        #expect(throws: PairingError.badSeal("authentication failed")) { try responder.open(stranger.seal([1, 2, 3])) }
        #expect(try responder.open(SealingVector.initiatorFirst) == Array("hello, responder".utf8))
    }

    @Test func rejectsOversizePlaintextsAndMessages() throws {
        var (initiator, responder) = try Self.channels(max: 100)
        #expect(throws: PairingError.messageTooLarge(size: 101, limit: 100)) { try initiator.seal([UInt8](repeating: 1, count: 101)) }
        #expect(initiator.nextSendSequence == 0)
        // A peer with a larger limit seals something this side refuses to open.
        var (bigInitiator, _) = try Self.channels(max: 1000)
        let big = try bigInitiator.seal([UInt8](repeating: 2, count: 101))
        #expect(throws: PairingError.messageTooLarge(size: 101, limit: 100)) { try responder.open(big) }
        #expect(responder.nextReceiveSequence == 0)
        let exact = try initiator.seal([UInt8](repeating: 3, count: 100))
        #expect(try responder.open(exact) == [UInt8](repeating: 3, count: 100))
    }

    @Test func refusesToWrapTheSequenceNumber() throws {
        var (initiator, responder) = try Self.channels()
        initiator.nextSendSequence = UInt64.max - 1
        responder.nextReceiveSequence = UInt64.max - 1
        let last = try initiator.seal([9])
        #expect(Array(last[..<8]) == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
        #expect(try responder.open(last) == [9])
        #expect(throws: PairingError.sequenceExhausted) { try initiator.seal([10]) }
        #expect(throws: PairingError.sequenceExhausted) { try responder.open(last) }
    }
}
