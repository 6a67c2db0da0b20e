import TernTestSupport
import Testing
import TernSTUN
import TernTURN

@Suite("Hostile input from the server")
struct HostileInputTests {
    /// A session that makes the server send one of everything: 401, 438,
    /// Allocate/CreatePermission/ChannelBind/Refresh successes, an error with
    /// MESSAGE-INTEGRITY, Data indications and ChannelData, and the final
    /// Refresh. Every delivery is recorded with the client just before it.
    static func recordedSession(transport: TURNTransport) throws -> [(client: TURNClient, bytes: [UInt8])] {
        var harness = Harness(transport: transport)
        harness.recordDeliveries = true
        harness.server.staleNonceAnswers = 1
        harness.start()
        harness.server.forcedErrors[.channelBind] = .insufficientCapacity
        try harness.clientSends([1, 2, 3], to: Harness.otherPeer)
        harness.server.forcedErrors = [:]
        harness.peerSends([4, 5, 6, 7, 8], from: Harness.otherPeer)
        try harness.clientSends([1, 2, 3])
        harness.peerSends([9, 10, 11])
        harness.run(until: .seconds(600))
        harness.client.deallocate(now: harness.now)
        harness.pump()
        #expect(harness.takeEvents().last == .deallocated)
        return harness.deliveries
    }

    @Test("every server datagram cut at every offset is dropped, never fatal")
    func datagramCutAtEveryOffset() throws {
        let session = try Self.recordedSession(transport: .udp)
        #expect(session.count >= 12)
        for (client, bytes) in session {
            for cut in 0..<bytes.count {
                var prefix = client
                prefix.handleDatagram(bytes[..<cut], now: .seconds(1))
                #expect(prefix.failure == nil)
                #expect(prefix.counters.malformed == client.counters.malformed + 1)

                var suffix = client
                suffix.handleDatagram(bytes[cut...], now: .seconds(1))
                #expect(suffix.failure == nil || cut == 0)
            }
        }
    }

    @Test("every server datagram with any one byte flipped never traps")
    func datagramWithFlippedBytes() throws {
        let session = try Self.recordedSession(transport: .udp)
        for (client, bytes) in session {
            for offset in 0..<bytes.count {
                for flip: UInt8 in [0x01, 0x80, 0xFF] {
                    var copy = client
                    var mutated = bytes
                    mutated[offset] ^= flip
                    copy.handleDatagram(mutated, now: .seconds(1))
                    while copy.pollEvent() != nil {}
                    while copy.pollTransmit() != nil {}
                    copy.advanceTime(now: .seconds(2))
                }
            }
        }
    }

    @Test("the server's stream split at every offset gives the same result as whole")
    func streamSplitAtEveryOffset() throws {
        let session = try Self.recordedSession(transport: .tcp)
        for (client, bytes) in session {
            var whole = client
            whole.handleStreamBytes(bytes, now: .seconds(1))
            let expected = drain(&whole)
            for cut in 0..<bytes.count {
                var split = client
                split.handleStreamBytes(bytes[..<cut], now: .seconds(1))
                // A prefix of a good stream is only "need more".
                #expect(split.failure == nil)
                #expect(split.counters == client.counters)
                split.handleStreamBytes(bytes[cut...], now: .seconds(1))
                #expect(drain(&split) == expected)
                #expect(split.counters == whole.counters)
            }
        }
    }

    @Test("the server's stream, suffixes and flipped bytes never trap")
    func streamSuffixesAndFlips() throws {
        let session = try Self.recordedSession(transport: .tcp)
        var random = SplitMix64(seed: 99)
        for (client, bytes) in session {
            for cut in 0..<bytes.count {
                var suffix = client
                suffix.handleStreamBytes(bytes[cut...], now: .seconds(1))
                _ = drain(&suffix)

                var flipped = client
                var mutated = bytes
                mutated[cut] ^= UInt8.random(in: 1...255, using: &random)
                flipped.handleStreamBytes(mutated, now: .seconds(1))
                _ = drain(&flipped)
            }
        }
    }

    @Test func corruptStreamFailsTheClient() {
        var harness = Harness.allocated(transport: .tcp)
        _ = harness.takeEvents()
        harness.client.handleStreamBytes([0x80, 0, 0, 0], now: harness.now)
        let events = harness.takeEvents()
        #expect(events.count == 1)
        if case .failed(.streamCorrupted) = events.first {} else { Issue.record("expected streamCorrupted, got \(events)") }
        #expect(harness.client.isFinished)
    }

    @Test func framerHandlesRandomGarbage() {
        var random = SplitMix64(seed: 1)
        for _ in 0..<2000 {
            var framer = TURNStreamFramer()
            let count = Int.random(in: 0...64, using: &random)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Keep some starts plausible so that framing goes further.
            if !bytes.isEmpty, Bool.random(using: &random) { bytes[0] &= 0x7F }
            framer.append(bytes)
            var frames = 0
            while true {
                guard let frame = try? framer.nextFrame() else { break }
                #expect(frame.count >= 4 && frame.count <= TURNStreamFramer.maximumFrameLength)
                frames += 1
                guard frames < 100 else {
                    Issue.record("framer loops")
                    break
                }
            }
            #expect(framer.bufferedCount <= bytes.count)
        }
    }

    @Test("the stream framer refuses what cannot start a message, and waits for a header cut short", arguments: [
        // RFC 8489 §5: a STUN length that is not a multiple of four.
        ([0x00, 0x01, 0x00, 0x05], "STUN length 5 is not a multiple of 4"),
        // A STUN header whose magic cookie is wrong (seen as soon as its 8 bytes are there).
        ([0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x43], "STUN message without the magic cookie"),
        // First two bits 10 and 11: neither STUN nor ChannelData (RFC 8656 §12).
        ([0x80, 0x00, 0x00, 0x00], "first byte 0x80 starts neither STUN nor ChannelData"),
        ([0xC0, 0x00, 0x00, 0x00], "first byte 0xc0 starts neither STUN nor ChannelData"),
    ] as [([UInt8], String)])
    func framerRefusesWhatCannotStartAMessage(bytes: [UInt8], reason: String) throws {
        // Each prefix shorter than what the refusal needs waits for more.
        let needed = bytes.count
        for cut in 0..<min(needed, 4) {
            var framer = TURNStreamFramer()
            framer.append(Array(bytes.prefix(cut)))
            #expect(try framer.nextFrame() == nil, "cut \(cut)")
        }
        var framer = TURNStreamFramer()
        framer.append(bytes)
        #expect(throws: TURNError.streamCorrupted(reason)) { _ = try framer.nextFrame() }
        // The stream stays refused: no boundary can be found again.
        framer.append(try ChannelData(channel: 0x4001, payload: [1]).encode(padded: true))
        #expect(throws: TURNError.streamCorrupted(reason)) { _ = try framer.nextFrame() }
        #expect(framer.bufferedCount == 0)
    }

    @Test func framerCutsPaddedChannelDataAndSTUNBackToBack() throws {
        let channelData = try ChannelData(channel: 0x4001, payload: [1, 2, 3, 4, 5]).encode(padded: true)
        let stun: [UInt8] = [0x01, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 9, count: 12) + [0, 0, 0, 0]
        var framer = TURNStreamFramer()
        framer.append(channelData + stun + stun.prefix(7))
        #expect(try framer.nextFrame().map(Array.init) == channelData)
        #expect(channelData.count == 12)
        #expect(try framer.nextFrame().map(Array.init) == stun)
        #expect(try framer.nextFrame() == nil)
        #expect(framer.bufferedCount == 7)
    }

    @Test func framerKeepsOnlyOnePartialFrame() throws {
        var framer = TURNStreamFramer()
        let message = try ChannelData(channel: 0x4001, payload: [UInt8](repeating: 7, count: 0xFFFF)).encode(padded: true)
        #expect(message.count == TURNStreamFramer.maximumFrameLength)
        for byte in message.dropLast() {
            framer.append([byte])
            #expect(try framer.nextFrame() == nil)
        }
        framer.append([message[message.count - 1]])
        #expect(try framer.nextFrame()?.count == message.count)
        #expect(framer.bufferedCount == 0)
    }

    private func drain(_ client: inout TURNClient) -> [TURNEvent] {
        var events: [TURNEvent] = []
        while let event = client.pollEvent() { events.append(event) }
        while client.pollTransmit() != nil {}
        return events
    }
}
