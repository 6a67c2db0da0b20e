import Testing
import TernTestSupport
import TernDataChannel


@Suite("DCEP messages")
struct DCEPTests {
    /// The DATA_CHANNEL_OPEN for a channel "foo" in the captured packet of
    /// pion/sctp's TestPayloadDataMarshalUnmarshal (COOKIE ECHO bundled with
    /// a DATA chunk of PPID 50).
    static let capturedOpen = bytes("03 00 0000 00000000 0003 0000 666f6f")

    /// pion/datachannel message_test.go: label "foo", protocol "bar".
    static let pionOpen = bytes("03 00 0000 00000000 0003 0003 666f6f 626172")

    @Test func decodesCapturedOpen() throws {
        let message = try DCEPMessage.decode(Self.capturedOpen)
        let open = DataChannelOpen(channelType: .reliable, priority: 0, reliabilityParameter: 0, label: "foo", subprotocol: "")
        #expect(message == .open(open))
        #expect(open.isOrdered)
        #expect(open.reliability == .reliable)
        #expect(try message.encode() == Self.capturedOpen)
    }

    @Test func pionOpenWithProtocol() throws {
        guard case .open(let open) = try DCEPMessage.decode(Self.pionOpen) else {
            Issue.record("not an OPEN")
            return
        }
        #expect(open.label == "foo")
        #expect(open.subprotocol == "bar")
        #expect(try DCEPMessage.open(open).encode() == Self.pionOpen)
    }

    @Test func openLayoutFromRFC8832() throws {
        // RFC 8832 §5.1: message type, channel type, priority, reliability
        // parameter, label length, protocol length, label, protocol.
        let wire = bytes("03 81 0200 00000007 0004 0008 63686174 78797a2e 6f726721")
        let open = DataChannelOpen(label: "chat", subprotocol: "xyz.org!", ordered: false, reliability: .maxRetransmits(7),
                                   priority: DataChannelOpen.priorityHigh)
        #expect(open.channelType == .partialReliableRexmitUnordered)
        #expect(try DCEPMessage.open(open).encode() == wire)
        #expect(try DCEPMessage.decode(wire) == .open(open))
    }

    @Test func ack() throws {
        // RFC 8832 §5.2: one byte.
        #expect(try DCEPMessage.decode([0x02]) == .ack)
        #expect(try DCEPMessage.ack.encode() == [0x02])
        // pion/datachannel sends its ACK padded to four bytes.
        #expect(try DCEPMessage.decode(bytes("02000000")) == .ack)
        #expect(throws: DataChannelError.trailingBytes(4)) { try DCEPMessage.decode(bytes("02000000 00")) }
    }

    struct TypeCase: Sendable, CustomTestStringConvertible {
        var type: DataChannelType
        var raw: UInt8
        var ordered: Bool
        var reliability: DataChannelOpen.Reliability
        var testDescription: String { "\(type)" }
    }

    /// RFC 8832 §5.1 and §8.2.2: every channel type, with the unordered bit 0x80.
    @Test("channel types", arguments: [
        TypeCase(type: .reliable, raw: 0x00, ordered: true, reliability: .reliable),
        TypeCase(type: .reliableUnordered, raw: 0x80, ordered: false, reliability: .reliable),
        TypeCase(type: .partialReliableRexmit, raw: 0x01, ordered: true, reliability: .maxRetransmits(3)),
        TypeCase(type: .partialReliableRexmitUnordered, raw: 0x81, ordered: false, reliability: .maxRetransmits(3)),
        TypeCase(type: .partialReliableTimed, raw: 0x02, ordered: true, reliability: .maxLifetime(milliseconds: 3)),
        TypeCase(type: .partialReliableTimedUnordered, raw: 0x82, ordered: false, reliability: .maxLifetime(milliseconds: 3)),
    ])
    func channelTypes(testCase: TypeCase) throws {
        #expect(testCase.type.rawValue == testCase.raw)
        #expect(testCase.type.isOrdered == testCase.ordered)
        let open = DataChannelOpen(label: "l", ordered: testCase.ordered, reliability: testCase.reliability)
        #expect(open.channelType == testCase.type)
        #expect(open.reliability == testCase.reliability)
        let wire = try DCEPMessage.open(open).encode()
        #expect(wire[1] == testCase.raw)
        #expect(Array(wire[4..<8]) == (testCase.reliability == .reliable ? [0, 0, 0, 0] : [0, 0, 0, 3]))
        #expect(try DCEPMessage.decode(wire) == .open(open))
    }

    @Test func reliableChannelKeepsAnIgnoredReliabilityParameter() throws {
        // RFC 8832 §5.1: ignored on receipt; kept so the message round-trips.
        let wire = bytes("03 00 0100 0000abcd 0001 0000 78")
        guard case .open(let open) = try DCEPMessage.decode(wire) else {
            Issue.record("not an OPEN")
            return
        }
        #expect(open.reliability == .reliable)
        #expect(open.reliabilityParameter == 0xABCD)
        #expect(try DCEPMessage.open(open).encode() == wire)
    }

    @Test func unicodeLabels() throws {
        let open = DataChannelOpen(label: "dateien 📁 ü", subprotocol: "tern/1")
        let wire = try DCEPMessage.open(open).encode()
        #expect(Int(wire[8]) << 8 | Int(wire[9]) == "dateien 📁 ü".utf8.count)
        #expect(try DCEPMessage.decode(wire) == .open(open))
    }

    @Test("strings that are not UTF-8 are rejected", arguments: [
        bytes("ff"), bytes("c0 80"), bytes("ed a0 80"), bytes("f4 90 80 80"), bytes("e2 82"), bytes("80"),
    ])
    func invalidUTF8(sequence: [UInt8]) {
        let count = UInt8(sequence.count)
        #expect(throws: DataChannelError.labelNotUTF8) {
            try DCEPMessage.decode(bytes("03 00 0000 00000000 00") + [count] + [0, 0] + sequence)
        }
        #expect(throws: DataChannelError.protocolNotUTF8) {
            try DCEPMessage.decode(bytes("03 00 0000 00000000 0000 00") + [count] + sequence)
        }
    }

    @Test func malformedMessagesAreRejected() {
        #expect(throws: DataChannelError.empty) { try DCEPMessage.decode([]) }
        #expect(throws: DataChannelError.unknownMessageType(0x04)) { try DCEPMessage.decode([0x04]) }
        #expect(throws: DataChannelError.unknownChannelType(0x03)) { try DCEPMessage.decode(bytes("03 03 0000 00000000 0000 0000")) }
        #expect(throws: DataChannelError.unknownChannelType(0x83)) { try DCEPMessage.decode(bytes("03 83 0000 00000000 0000 0000")) }
        #expect(throws: DataChannelError.trailingBytes(1)) { try DCEPMessage.decode(Self.capturedOpen + [0]) }
        #expect(throws: DataChannelError.truncated(needed: 15, available: 14)) { try DCEPMessage.decode(Array(Self.capturedOpen.dropLast())) }
    }

    @Test("every message cut at every offset throws", arguments: [capturedOpen, pionOpen, bytes("03 81 0200 00000007 0004 0008 63686174 78797a2e 6f726721")])
    func everyCut(message: [UInt8]) {
        for cut in 0..<message.count {
            #expect(throws: DataChannelError.self, "cut \(cut)") { try DCEPMessage.decode(message[0..<cut]) }
            // From a slice that does not start at index zero.
            let framed = [0xAA] + message
            #expect(throws: DataChannelError.self, "cut \(cut)") { try DCEPMessage.decode(framed[1..<(1 + cut)]) }
        }
        let framed = [0xAA] + message + [0xBB]
        #expect(throws: Never.self) { try DCEPMessage.decode(framed[1..<(framed.count - 1)]) }
    }

    @Test func lengthLimits() throws {
        let long = String(repeating: "a", count: 1025)
        let open = DataChannelOpen(label: long, subprotocol: "")
        #expect(throws: DataChannelError.labelTooLong(length: 1025, limit: 1024)) { try DCEPMessage.open(open).encode() }
        let loose = DCEPLimits(maximumLabelLength: 65535, maximumProtocolLength: 65535)
        let wire = try DCEPMessage.open(open).encode(limits: loose)
        #expect(throws: DataChannelError.labelTooLong(length: 1025, limit: 1024)) { try DCEPMessage.decode(wire) }
        #expect(try DCEPMessage.decode(wire, limits: loose) == .open(open))

        let protocolOpen = DataChannelOpen(label: "", subprotocol: long)
        #expect(throws: DataChannelError.protocolTooLong(length: 1025, limit: 1024)) { try DCEPMessage.open(protocolOpen).encode() }
        // The 16-bit length fields cap both, whatever the limits say.
        let huge = DataChannelOpen(label: String(repeating: "b", count: 65536), subprotocol: "")
        let unlimited = DCEPLimits(maximumLabelLength: .max, maximumProtocolLength: .max)
        #expect(throws: DataChannelError.labelTooLong(length: 65536, limit: 65535)) { try DCEPMessage.open(huge).encode(limits: unlimited) }
    }

    @Test func randomBytesNeverTrapAndRoundTrip() throws {
        var state: UInt64 = 0x8832
        func next() -> UInt8 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        var decoded = 0
        for _ in 0..<20_000 {
            var message = (0..<Int(next() % 24)).map { _ in next() }
            if message.count >= 12, next() % 2 == 0 {
                // Give it a plausible header so the string checks run.
                message[0] = 0x03
                message[1] = [0x00, 0x01, 0x02, 0x80, 0x81, 0x82][Int(next() % 6)]
                message[8] = 0
                message[9] = UInt8((message.count - 12) / 2)
                message[10] = 0
                message[11] = UInt8(message.count - 12 - Int(message[9]))
            }
            guard let value = try? DCEPMessage.decode(message) else { continue }
            decoded += 1
            #expect(try DCEPMessage.decode(value.encode()) == value)
        }
        #expect(decoded > 100)
    }

    @Test func errorsHaveReasons() {
        let errors: [DataChannelError] = [.empty, .unknownMessageType(9), .truncated(needed: 12, available: 3), .trailingBytes(2),
                                          .unknownChannelType(0x7F), .labelNotUTF8, .protocolNotUTF8, .labelTooLong(length: 2, limit: 1),
                                          .protocolTooLong(length: 2, limit: 1)]
        for error in errors {
            #expect(!error.reason.isEmpty)
            #expect(error.description == error.reason)
        }
        #expect(DataChannelError.unknownChannelType(0x7F).reason.contains("0x7f"))
    }
}

@Suite("Data channel PPIDs")
struct PPIDTests {
    /// RFC 8831 §8 (and RFC 8832 §8.1 for DCEP).
    @Test func registeredValues() {
        #expect(DataChannelPPID.dcep.rawValue == 50)
        #expect(DataChannelPPID.string.rawValue == 51)
        #expect(DataChannelPPID.binaryPartial.rawValue == 52)
        #expect(DataChannelPPID.binary.rawValue == 53)
        #expect(DataChannelPPID.stringPartial.rawValue == 54)
        #expect(DataChannelPPID.stringEmpty.rawValue == 56)
        #expect(DataChannelPPID.binaryEmpty.rawValue == 57)
    }

    @Test func kinds() {
        #expect(DataChannelPPID.binaryPartial.isDeprecated && DataChannelPPID.stringPartial.isDeprecated)
        #expect(!DataChannelPPID.binary.isDeprecated && !DataChannelPPID.string.isDeprecated)
        #expect([DataChannelPPID.string, .stringPartial, .stringEmpty].allSatisfy { $0.isString })
        #expect([DataChannelPPID.binary, .binaryPartial, .binaryEmpty].allSatisfy { $0.isBinary })
        #expect(!DataChannelPPID.dcep.isString && !DataChannelPPID.dcep.isBinary)
        #expect(DataChannelPPID.stringEmpty.isEmptyMessage && DataChannelPPID.binaryEmpty.isEmptyMessage)
        #expect(!DataChannelPPID(rawValue: 55).isString && !DataChannelPPID(rawValue: 55).isBinary)
    }

    @Test func emptyMessagesAreOneZeroByte() {
        // RFC 8831 §6.6: SCTP cannot send an empty user message.
        #expect(DataChannelPPID.emptyMessageUserData == [0])
        #expect(DataChannelPPID.forMessage(isString: true, isEmpty: true) == .stringEmpty)
        #expect(DataChannelPPID.forMessage(isString: false, isEmpty: true) == .binaryEmpty)
        #expect(DataChannelPPID.forMessage(isString: true, isEmpty: false) == .string)
        #expect(DataChannelPPID.forMessage(isString: false, isEmpty: false) == .binary)
    }
}
