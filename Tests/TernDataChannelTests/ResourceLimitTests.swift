import Testing
import TernTestSupport
@testable import TernSCTP
@testable import TernDataChannel

/// Each bound on what a peer can make a `DataChannelEndpoint` hold, driven
/// from the wire: a real SCTP association plays the peer and sends DCEP
/// DATA_CHANNEL_OPEN bytes and messages as it likes; every packet crosses the
/// SCTP codec. Each limit is met at its value (accepted) and one past it
/// (refused), and the endpoint keeps serving its other channels (model:
/// pion/sctp's association resource limit tests).
@Suite("Data channel resource limits")
struct ResourceLimitTests {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>
    typealias Endpoint = DataChannelEndpoint<RFC9260CongestionControl>

    /// An endpoint under test and a hostile peer that speaks SCTP correctly.
    struct Scene {
        var endpoint: Endpoint
        var peer: Association
        var now: Duration = .zero
        var events: [DataChannelEvent] = []
        /// What the peer received (DCEP ACKs, the endpoint's messages).
        var peerMessages: [SCTPMessage] = []

        init(
            endpoint configuration: Association.Configuration = .init(), peer peerConfiguration: Association.Configuration = .init(),
            dcepLimits: DCEPLimits = .default
        ) throws {
            var random = SplitMix64(seed: 0x8832)
            endpoint = Endpoint(association: Association(configuration: configuration, random: &random), isDTLSClient: false, dcepLimits: dcepLimits)
            peer = Association(configuration: peerConfiguration, random: &random)
            peer.connect(now: now)
            try exchange()
            #expect(events == [.ready])
        }

        /// Moves packets both ways, through the codec, until both are quiet.
        mutating func exchange() throws {
            var moved = true
            while moved {
                moved = false
                while let packet = peer.pollTransmit(now: now) {
                    let incoming = try #require(SCTPWire.decode(SCTPWire.encode(packet)))
                    endpoint.handleChunks(incoming.chunks, verificationTag: incoming.verificationTag, now: now)
                    moved = true
                }
                while let packet = endpoint.pollTransmit(now: now) {
                    let incoming = try #require(SCTPWire.decode(SCTPWire.encode(packet)))
                    peer.handleChunks(incoming.chunks, verificationTag: incoming.verificationTag, now: now)
                    moved = true
                }
                while let event = endpoint.pollEvent() { events.append(event) }
                while let message = peer.pollMessage() { peerMessages.append(message) }
            }
        }

        /// Lets `duration` of simulated time pass in 10 ms steps.
        mutating func run(for duration: Duration) throws {
            let end = now + duration
            while now < end {
                now += .milliseconds(10)
                peer.advanceTime(now: now)
                endpoint.advanceTime(now: now)
                try exchange()
            }
        }

        /// The peer sends raw DCEP bytes on `stream`.
        mutating func sendDCEP(_ bytes: [UInt8], on stream: UInt16) throws {
            try peer.send(stream: stream, ppid: DataChannelPPID.dcep.rawValue, payload: bytes, now: now)
            try exchange()
        }

        /// Whether the peer got a DATA_CHANNEL_ACK on `stream`.
        func acknowledged(_ stream: UInt16) -> Bool {
            peerMessages.contains { $0.stream == stream && $0.ppid == DataChannelPPID.dcep.rawValue && $0.payload == [DCEPMessage.ackMessageType] }
        }

        /// The channel events, without the bufferedAmountLow ones.
        var channelEvents: [DataChannelEvent] {
            events.filter { if case .bufferedAmountLow = $0 { false } else { true } }
        }

        func openedByPeer(_ stream: UInt16) -> Bool {
            events.contains { if case .opened(stream, _, _, true) = $0 { true } else { false } }
        }

        mutating func messages() -> [DataChannelMessage] {
            var all: [DataChannelMessage] = []
            while let message = endpoint.pollMessage() { all.append(message) }
            return all
        }
    }

    /// DATA_CHANNEL_OPEN as RFC 8832 §5.1 lays it out, reliable and ordered,
    /// with a label and a protocol of these many bytes ("l" and "p").
    static func open(labelBytes: Int, protocolBytes: Int) -> [UInt8] {
        var bytes: [UInt8] = [DCEPMessage.openMessageType, DataChannelType.reliable.rawValue, 0x01, 0x00, 0, 0, 0, 0]
        bytes += [UInt8(labelBytes >> 8), UInt8(labelBytes & 0xFF), UInt8(protocolBytes >> 8), UInt8(protocolBytes & 0xFF)]
        return bytes + [UInt8](repeating: UInt8(ascii: "l"), count: labelBytes) + [UInt8](repeating: UInt8(ascii: "p"), count: protocolBytes)
    }

    // MARK: - DCEPLimits: label and protocol length

    @Test("a label or protocol at DCEPLimits' length opens a channel; one byte longer is dropped, unanswered", arguments: [true, false])
    func stringLengths(label: Bool) throws {
        let limit = label ? DCEPLimits.default.maximumLabelLength : DCEPLimits.default.maximumProtocolLength
        #expect(limit == 1024)
        func open(_ length: Int) -> [UInt8] {
            label ? Self.open(labelBytes: length, protocolBytes: 0) : Self.open(labelBytes: 1, protocolBytes: length)
        }
        var scene = try Scene()

        try scene.sendDCEP(open(limit), on: 0)
        let text = String(repeating: label ? "l" : "p", count: limit)
        #expect(scene.channelEvents.last == .opened(stream: 0, label: label ? text : "l", protocol: label ? "" : text, byPeer: true))
        #expect(scene.acknowledged(0))
        #expect(scene.endpoint.dropped == 0)

        try scene.sendDCEP(open(limit + 1), on: 2)
        #expect(!scene.openedByPeer(2))
        #expect(!scene.acknowledged(2))
        #expect(scene.endpoint.dropped == 1)
        // A message on the refused stream has no channel: dropped too.
        try scene.peer.send(stream: 2, ppid: DataChannelPPID.binary.rawValue, payload: [9], now: scene.now)
        try scene.exchange()
        #expect(scene.endpoint.dropped == 2)

        // The endpoint goes on: the open channel carries messages, a new one opens.
        try scene.peer.send(stream: 0, ppid: DataChannelPPID.binary.rawValue, payload: [1, 2, 3], now: scene.now)
        try scene.sendDCEP(Self.open(labelBytes: 3, protocolBytes: 3), on: 4)
        #expect(scene.messages() == [DataChannelMessage(stream: 0, payload: [1, 2, 3], binary: true)])
        #expect(scene.channelEvents.last == .opened(stream: 4, label: "lll", protocol: "ppp", byPeer: true))
        #expect(scene.acknowledged(4))
        #expect(scene.endpoint.association.state == .established)
    }

    @Test func theEndpointAppliesItsOwnDCEPLimitsBothWays() throws {
        let limits = DCEPLimits(maximumLabelLength: 16, maximumProtocolLength: 8)
        var scene = try Scene(dcepLimits: limits)
        try scene.sendDCEP(Self.open(labelBytes: 16, protocolBytes: 8), on: 0)
        try scene.sendDCEP(Self.open(labelBytes: 17, protocolBytes: 0), on: 2)
        try scene.sendDCEP(Self.open(labelBytes: 0, protocolBytes: 9), on: 4)
        #expect(scene.openedByPeer(0) && scene.acknowledged(0))
        #expect(!scene.openedByPeer(2) && !scene.acknowledged(2) && !scene.openedByPeer(4) && !scene.acknowledged(4))
        #expect(scene.endpoint.dropped == 2)
        // What the endpoint would refuse it does not send either.
        #expect(throws: DataChannelOperationError.invalidOpen(DataChannelError.labelTooLong(length: 17, limit: 16).reason)) {
            try scene.endpoint.open(label: String(repeating: "x", count: 17), now: scene.now)
        }
        #expect(try scene.endpoint.open(label: String(repeating: "x", count: 16), options: .init(protocol: "tern/1.0"), now: scene.now) == 1)
    }

    @Test func anAckLongerThanItsPaddingIsDropped() throws {
        var scene = try Scene()
        let stream = try scene.endpoint.open(label: "mine", now: scene.now)
        try scene.exchange()
        try scene.sendDCEP([DCEPMessage.ackMessageType] + [UInt8](repeating: 0, count: DCEPMessage.maximumAckLength), on: stream)
        #expect(scene.endpoint.dropped == 1)
        #expect(!scene.channelEvents.contains(.opened(stream: stream, label: "mine", protocol: "", byPeer: false)))
        try scene.sendDCEP([DCEPMessage.ackMessageType] + [UInt8](repeating: 0, count: DCEPMessage.maximumAckLength - 1), on: stream)
        #expect(scene.channelEvents.last == .opened(stream: stream, label: "mine", protocol: "", byPeer: false))
    }

    // MARK: - Channels: at most one per negotiated stream

    @Test func thePeerOpensAChannelOnEveryNegotiatedStreamAndNoneBeyond() throws {
        let streams: UInt16 = 8
        var scene = try Scene(endpoint: .init(streams: streams))
        for stream in 0..<streams {
            try scene.sendDCEP(Self.open(labelBytes: 1, protocolBytes: 0), on: stream)
        }
        #expect((0..<streams).allSatisfy { scene.openedByPeer($0) && scene.acknowledged($0) })
        // An OPEN on a stream in use is dropped: one channel per stream.
        try scene.sendDCEP(Self.open(labelBytes: 2, protocolBytes: 0), on: streams - 1)
        #expect(scene.endpoint.dropped == 1)
        #expect(scene.channelEvents.count == 1 + Int(streams))

        // The peer's association will not send past the negotiated count ...
        #expect(throws: SCTPAssociationError.streamOutOfRange(streams)) {
            try scene.peer.send(stream: streams, ppid: DataChannelPPID.dcep.rawValue, payload: Self.open(labelBytes: 1, protocolBytes: 0), now: scene.now)
        }
        // ... so the OPEN is written by hand at its next TSN (RFC 9260 §6.5:
        // acknowledged, answered with an ERROR, discarded).
        let chunk = SCTPDataChunk(
            tsn: scene.peer.retransmissions.nextTSN.value, streamID: streams, ssn: 0, ppid: DataChannelPPID.dcep.rawValue,
            userData: Self.open(labelBytes: 1, protocolBytes: 0), flags: .complete)
        let bytes = try SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: scene.endpoint.association.localTag, chunks: [.data(chunk)])
            .encode(zeroChecksum: true)
        let incoming = try #require(SCTPWire.decode(bytes))
        scene.endpoint.handleChunks(incoming.chunks, verificationTag: incoming.verificationTag, now: scene.now)
        while let event = scene.endpoint.pollEvent() { scene.events.append(event) }
        #expect(!scene.openedByPeer(streams))
        #expect(scene.endpoint.association.invalidStreamChunks == 1)

        // The endpoint still sends on the channels it has.
        try scene.endpoint.send([7], on: 0, now: scene.now)
        var answers: [SCTPChunk] = []
        while let packet = scene.endpoint.pollTransmit(now: scene.now) {
            answers += try SCTPPacket.decode(SCTPWire.encode(packet), acceptZeroChecksum: true).chunks
        }
        #expect(answers.contains(.error(causes: [.invalidStreamIdentifier(streamID: streams)])))
        #expect(answers.contains { if case .data(let data) = $0 { data.streamID == 0 && data.userData == [7] } else { false } })
        #expect(scene.endpoint.association.state == .established)
    }

    // MARK: - Message size

    @Test func aMessageAtTheMaximumSizeIsDeliveredAndOneBytePastItEndsTheAssociation() throws {
        let limit = Association.Configuration().maximumMessageSize
        #expect(limit == 256 * 1024)
        var scene = try Scene(peer: .init(maximumMessageSize: 4 * limit))
        try scene.sendDCEP(Self.open(labelBytes: 1, protocolBytes: 0), on: 0)
        try scene.sendDCEP(Self.open(labelBytes: 1, protocolBytes: 0), on: 2)

        let atLimit = (0..<limit).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try scene.peer.send(stream: 0, ppid: DataChannelPPID.binary.rawValue, payload: atLimit, now: scene.now)
        try scene.peer.send(stream: 2, ppid: DataChannelPPID.string.rawValue, payload: [0x68, 0x69], now: scene.now)
        try scene.run(for: .seconds(5))
        #expect(scene.messages() == [
            DataChannelMessage(stream: 0, payload: atLimit, binary: true), DataChannelMessage(stream: 2, payload: [0x68, 0x69], binary: false),
        ])

        try scene.peer.send(stream: 0, ppid: DataChannelPPID.binary.rawValue, payload: atLimit + [0], now: scene.now)
        try scene.run(for: .seconds(5))
        #expect(scene.messages() == [])
        #expect(scene.channelEvents.last == .ended("a message larger than the max-message-size"))
    }

    // MARK: - Messages held for a slow reader

    /// Messages the application has not read count against the receive
    /// window with `SCTPLimits.receivedChunkOverhead` each, so a peer cannot
    /// make the endpoint hold more than the window (plus the overrun for the
    /// next TSN), even with empty messages; reading lets the rest in.
    @Test("unread messages are bounded by the receive window, empty ones too", arguments: [0, 1000])
    func unreadMessages(size: Int) throws {
        var limits = SCTPLimits.default
        limits.maximumReceiveWindowOverrun = 4096
        let window = 64 * 1024
        var scene = try Scene(endpoint: .init(receiveWindow: window, limits: limits))
        try scene.sendDCEP(Self.open(labelBytes: 1, protocolBytes: 0), on: 0)
        let charge = max(size, 1) + limits.receivedChunkOverhead
        let bound = (window + limits.maximumReceiveWindowOverrun) / charge
        let count = 4 * bound
        let ppid = DataChannelPPID.forMessage(isString: false, isEmpty: size == 0).rawValue
        let payload = size == 0 ? DataChannelPPID.emptyMessageUserData : [UInt8](repeating: 5, count: size)
        for _ in 0..<count {
            try scene.peer.send(stream: 0, ppid: ppid, payload: payload, now: scene.now)
        }
        try scene.run(for: .seconds(2))
        let held = scene.endpoint.heldMessages
        #expect(held > 0)
        #expect(held <= bound, "\(held) messages held, charged \(charge) bytes each in a window of \(window)")
        #expect(scene.endpoint.association.applicationBufferedBytes == held * charge)

        var received = scene.messages()
        #expect(scene.endpoint.association.applicationBufferedBytes == 0)
        for _ in 0..<40 where received.count < count {
            try scene.run(for: .seconds(1))
            #expect(scene.endpoint.heldMessages <= bound)
            received += scene.messages()
        }
        #expect(received.count == count)
        #expect(received.allSatisfy { $0.payload.count == size && $0.binary })
        #expect(scene.endpoint.association.state == .established)
    }
}
