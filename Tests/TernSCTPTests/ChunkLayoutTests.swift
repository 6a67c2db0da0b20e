import Testing
import TernTestSupport
import TernSCTP

/// Chunks written out byte by byte from the RFC figures, decoded and encoded
/// both ways: what the decoder reads is what the encoder writes.
@Suite("Chunk layouts from the RFC figures")
struct ChunkLayoutTests {
    /// `chunk` (padded) in a packet decodes to `expected`, and `expected`
    /// encodes to that packet.
    func check(_ chunk: [UInt8], _ expected: SCTPChunk, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let wire = packet(chunks: chunk)
        #expect(try SCTPPacket.decode(wire).chunks == [expected], sourceLocation: sourceLocation)
        let encoded = try SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0x1234_5678, chunks: [expected]).encode()
        #expect(encoded == wire, sourceLocation: sourceLocation)
        try HostileInputTests.checkEveryCut(wire, sourceLocation: sourceLocation)
    }

    @Test func dataWithEveryFlag() throws {
        // RFC 9260 §3.3.1: type 0, flags reserved(4) I U B E, length 16 + 5,
        // TSN, stream identifier, stream sequence number, PPID, user data,
        // three bytes of padding.
        let wire = bytes("000f0015 00000001 00070003 00000035 68656c6c 6f000000")
        let expected = SCTPDataChunk(tsn: 1, streamID: 7, ssn: 3, ppid: 53, userData: Array("hello".utf8),
                                     flags: [.immediate, .unordered, .beginning, .end])
        try check(wire, .data(expected))
    }

    @Test func dataReservedFlagsAreIgnored() throws {
        let chunk = try onlyChunk(packet(chunks: bytes("00f30011 00000001 00070003 00000035 41000000")))
        #expect(chunk == .data(SCTPDataChunk(tsn: 1, streamID: 7, ssn: 3, ppid: 53, userData: [0x41], flags: .complete)))
    }

    @Test func dataWithoutUserDataDecodesForTheAssociationToAbort() throws {
        // RFC 9260 §6.2: the answer is an ABORT with "No User Data", so the
        // association has to see the chunk.
        guard case .data(let data) = try onlyChunk(packet(chunks: bytes("00030010 00000009 00010000 00000033"))) else {
            Issue.record("not DATA")
            return
        }
        #expect(data.userData.isEmpty)
        #expect(data.tsn == 9)
    }

    @Test func initWithEveryParameterKind() throws {
        // RFC 9260 §3.3.2 and §3.3.2.1; the last parameter has odd length, its
        // padding left out of the chunk length.
        let wire = bytes("""
            0100005f 11223344 00100000 ffffffff 01020304
            00050008 c0000201
            00060014 20010db8 00000000 00000000 00000001
            00090008 00002710
            000c0006 00050000
            80000004
            80010008 00000001
            c0000004
            c0060008 01020304
            80080007 c0820f00
            """)
        let expected = SCTPInitChunk(
            initiateTag: 0x1122_3344, advertisedWindow: 0x0010_0000, outboundStreams: 0xFFFF, inboundStreams: 0xFFFF, initialTSN: 0x0102_0304,
            parameters: [
                .ipv4Address(0xC000_0201),
                .ipv6Address(high: 0x2001_0DB8_0000_0000, low: 1),
                .cookiePreservative(milliseconds: 10_000),
                .supportedAddressTypes([5]),
                .ecnCapable,
                .zeroChecksumAcceptable(edmid: SCTPInitParameter.edmidDTLS),
                .forwardTSNSupported,
                .unknown(type: SCTPParameterType(0xC006), value: [1, 2, 3, 4]),
                .supportedExtensions([.forwardTSN, .reconfig, .auth]),
            ])
        try check(wire, .initiation(expected))
        #expect(expected.zeroChecksumEDMID == 1)
        #expect(expected.supportsForwardTSN)
        // RFC 9260 §3.2: a chunk length that counts the last padding is fine too.
        var counted = wire
        counted[3] = 0x60
        #expect(try onlyChunk(packet(chunks: counted)) == .initiation(expected))
    }

    @Test func initAckWithCookieAndUnrecognizedParameter() throws {
        // RFC 9260 §3.3.3, §3.3.3.1: a padded cookie mid-list; the
        // Unrecognized Parameter carries the INIT's parameter whole.
        let wire = bytes("""
            0200003c 55667788 00020000 04000800 a0b0c0d0
            0007000d 636f6f6b 69652d30 31000000
            0008000c cabc0008 01020304
            80010008 00000001
            c0000004
            """)
        let reported = try SCTPInitParameter.reporting(type: SCTPParameterType(0xCABC), value: [1, 2, 3, 4])
        #expect(reported == .unrecognizedParameter(bytes("cabc0008 01020304")[...]))
        let expected = SCTPInitChunk(
            initiateTag: 0x5566_7788, advertisedWindow: 0x0002_0000, outboundStreams: 1024, inboundStreams: 2048, initialTSN: 0xA0B0_C0D0,
            parameters: [.stateCookie(Array("cookie-01".utf8)[...]), reported, .zeroChecksumAcceptable(edmid: 1), .forwardTSNSupported])
        try check(wire, .initiationAck(expected))
        #expect(expected.stateCookie.map(Array.init) == Array("cookie-01".utf8))
    }

    @Test func sackWithGapsAndDuplicates() throws {
        // RFC 9260 §3.3.4
        let wire = bytes("""
            03000024 00001000 00010000 00020003
            00020003 00050005
            00000ffe 00000fff 00001000
            """)
        let expected = SCTPSackChunk(
            cumulativeTSNAck: 0x1000, advertisedWindow: 0x10000,
            gapAckBlocks: [SCTPGapAckBlock(start: 2, end: 3), SCTPGapAckBlock(start: 5, end: 5)], duplicateTSNs: [0xFFE, 0xFFF, 0x1000])
        try check(wire, .sack(expected))
    }

    @Test func heartbeatAndAckWithOddInfo() throws {
        // RFC 9260 §3.3.5, §3.3.6: one Heartbeat Info parameter (type 1).
        try check(bytes("0400000d 00010009 01020304 05000000"), .heartbeat(info: [1, 2, 3, 4, 5]))
        try check(bytes("0500000d 00010009 01020304 05000000"), .heartbeatAck(info: [1, 2, 3, 4, 5]))
    }

    @Test func abortWithTagReflectedAndCauses() throws {
        // RFC 9260 §3.3.7, §3.3.10.12, §3.3.10.13
        let wire = bytes("""
            06010016
            000c0007 62796500
            000d000a 6f6f7073 21210000
            """)
        try check(wire, .abort(tagReflected: true, causes: [.userInitiatedAbort(Array("bye".utf8)[...]), .protocolViolation(Array("oops!!".utf8)[...])]))
        try check(bytes("06000004"), .abort(tagReflected: false, causes: []))
    }

    @Test func shutdownFamily() throws {
        try check(bytes("07000008 12345678"), .shutdown(cumulativeTSNAck: 0x1234_5678))  // §3.3.8
        try check(bytes("08000004"), .shutdownAck)  // §3.3.9
        try check(bytes("0e010004"), .shutdownComplete(tagReflected: true))  // §3.3.13
        try check(bytes("0e000004"), .shutdownComplete(tagReflected: false))
    }

    @Test func errorWithEveryCause() throws {
        // RFC 9260 §3.3.10.1 through §3.3.10.11, and an unknown code last
        // with odd length.
        let wire = bytes("""
            09000061
            00010008 00090000
            0002000c 00000002 00078001
            00030008 000186a0
            00040004
            00060008 49000004
            00070004
            00080008 cabc0004
            00090008 00000042
            000a0004
            0005000c 00050008 c0000201
            000b000c 00050008 c0000202
            01000005 ff000000
            """)
        let expected: [SCTPErrorCause] = [
            .invalidStreamIdentifier(streamID: 9),
            .missingMandatoryParameter([7, 0x8001]),
            .staleCookie(stalenessMicroseconds: 100_000),
            .outOfResource,
            .unrecognizedChunkType(bytes("49000004")[...]),
            .invalidMandatoryParameter,
            .unrecognizedParameters(bytes("cabc0004")[...]),
            .noUserData(tsn: 0x42),
            .cookieReceivedWhileShuttingDown,
            .unresolvableAddress(bytes("00050008 c0000201")[...]),
            .restartWithNewAddresses(bytes("00050008 c0000202")[...]),
            .unknown(code: SCTPErrorCauseCode(0x100), info: [0xFF]),
        ]
        try check(wire, .error(causes: expected))
        #expect(expected.map(\.code.rawValue) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 5, 11, 0x100])
    }

    @Test func cookieEchoAndAck() throws {
        try check(bytes("0a00000b 01020304 05060f00"), .cookieEcho(cookie: [1, 2, 3, 4, 5, 6, 0x0F]))  // §3.3.11
        try check(bytes("0b000004"), .cookieAck)  // §3.3.12
    }

    @Test func forwardTSNWithStreams() throws {
        // RFC 3758 §3.2
        let expected = SCTPForwardTSNChunk(
            newCumulativeTSN: 0x100, streams: [SCTPForwardTSNStream(streamID: 1, ssn: 5), SCTPForwardTSNStream(streamID: 2, ssn: 7)])
        try check(bytes("c0000010 00000100 00010005 00020007"), .forwardTSN(expected))
    }

    @Test func reconfigParameters() throws {
        // RFC 6525 §4.1, three streams (padded).
        let outgoing = SCTPOutgoingSSNResetRequest(requestSequenceNumber: 1, responseSequenceNumber: 2, senderLastAssignedTSN: 3, streams: [1, 2, 3])
        try check(bytes("8200001a 000d0016 00000001 00000002 00000003 00010002 00030000"),
                  .reconfig(SCTPReconfigChunk(.outgoingSSNResetRequest(outgoing))))
        // RFC 6525 §3.1: outgoing (all streams) with incoming (§4.2).
        let all = SCTPOutgoingSSNResetRequest(requestSequenceNumber: 1, responseSequenceNumber: 2, senderLastAssignedTSN: 3, streams: [])
        try check(bytes("8200001e 000d0010 00000001 00000002 00000003 000e000a 00000005 00040000"),
                  .reconfig(SCTPReconfigChunk(.outgoingSSNResetRequest(all), .incomingSSNResetRequest(requestSequenceNumber: 5, streams: [4]))))
        // §4.3
        try check(bytes("8200000c 000f0008 00000009"), .reconfig(SCTPReconfigChunk(.ssnTSNResetRequest(requestSequenceNumber: 9))))
        // §4.4 with both next TSNs, and two responses in one chunk.
        let response = SCTPReconfigResponse(responseSequenceNumber: 10, result: .successPerformed, nextTSNs: .init(sender: 0x1000, receiver: 0x2000))
        try check(bytes("82000018 00100014 0000000a 00000001 00001000 00002000"), .reconfig(SCTPReconfigChunk(.response(response))))
        try check(bytes("8200001c 0010000c 0000000b 00000002 0010000c 0000000c 00000006"),
                  .reconfig(SCTPReconfigChunk(.response(.init(responseSequenceNumber: 11, result: .denied)),
                                              .response(.init(responseSequenceNumber: 12, result: .inProgress)))))
        // §4.5 and §4.6 together.
        try check(bytes("8200001c 0011000c 0000000d 00040000 0012000c 0000000e 00020000"),
                  .reconfig(SCTPReconfigChunk(.addOutgoingStreams(requestSequenceNumber: 13, newStreams: 4),
                                              .addIncomingStreams(requestSequenceNumber: 14, newStreams: 2))))
    }

    @Test func reconfigTakesOneOrTwoParameters() {
        #expect(throws: SCTPError.reconfigParameterCount(0)) { try SCTPPacket.decode(packet(chunks: bytes("82000004"))) }
        #expect(throws: SCTPError.reconfigParameterCount(3)) {
            try SCTPPacket.decode(packet(chunks: bytes("8200001c 000f0008 00000001 000f0008 00000002 000f0008 00000003")))
        }
    }

    @Test func reconfigResponseLengthIsTwelveOrTwenty() {
        #expect(throws: SCTPError.parameterLengthInvalid(type: .reconfigResponse, length: 16)) {
            try SCTPPacket.decode(packet(chunks: bytes("82000014 00100010 0000000a 00000001 00001000")))
        }
    }

    struct UnknownCase: Sendable, CustomTestStringConvertible {
        var type: UInt8
        var action: SCTPUnrecognizedAction
        var testDescription: String { "type 0x\(String(type, radix: 16)) (\(action))" }
    }

    /// RFC 9260 §3.2: the two high bits of the chunk type.
    @Test("unknown chunk types follow their action bits", arguments: [
        UnknownCase(type: 0x3F, action: .stop), UnknownCase(type: 0x49, action: .stopAndReport),
        UnknownCase(type: 0x84, action: .skip), UnknownCase(type: 0xC3, action: .skipAndReport),
    ])
    func unknownChunkActions(testCase: UnknownCase) throws {
        let unknown = SCTPUnknownChunk(type: SCTPChunkType(testCase.type), flags: 0xA5, value: [1, 2, 3])
        #expect(unknown.action == testCase.action)
        // The unknown chunk, then a COOKIE ACK, then a chunk that would not
        // even decode (DATA of length 5).
        let wire = packet(chunks: [testCase.type, 0xA5, 0x00, 0x07, 1, 2, 3, 0] + bytes("0b000004") + bytes("00000005 00000000"))
        if testCase.action.stopsProcessing {
            // Nothing after the unknown chunk is read, malformed or not.
            #expect(try SCTPPacket.decode(wire).chunks == [.unknown(unknown)])
        } else {
            #expect(throws: SCTPError.chunkLengthInvalid(type: .data, length: 5)) { try SCTPPacket.decode(wire) }
            let wellFormed = packet(chunks: [testCase.type, 0xA5, 0x00, 0x07, 1, 2, 3, 0] + bytes("0b000004"))
            #expect(try SCTPPacket.decode(wellFormed).chunks == [.unknown(unknown), .cookieAck])
        }
        // Its report (RFC 9260 §3.3.10.6) carries the chunk as received.
        #expect(try SCTPErrorCause.reporting(unknown) == .unrecognizedChunkType([testCase.type, 0xA5, 0x00, 0x07, 1, 2, 3]))
        try check([testCase.type, 0xA5, 0x00, 0x07, 1, 2, 3, 0], .unknown(unknown))
    }

    /// RFC 9260 §3.2.1: the two high bits of the parameter type.
    @Test func unknownInitParametersFollowTheirActionBits() throws {
        let header = "01000000 11223344 00010000 00010001 00000001"
        func initParameters(_ parameters: String) throws -> [SCTPInitParameter] {
            var chunk = bytes(header + parameters)
            chunk[3] = UInt8(chunk.count)
            guard case .initiation(let initChunk) = try onlyChunk(packet(chunks: chunk)) else { return [] }
            return initChunk.parameters
        }
        let after = "c0000004"
        #expect(try initParameters("8abc0004 " + after) == [.unknown(type: SCTPParameterType(0x8ABC), value: []), .forwardTSNSupported])
        #expect(try initParameters("cabc0004 " + after) == [.unknown(type: SCTPParameterType(0xCABC), value: []), .forwardTSNSupported])
        // Stop: the rest is not read, even a parameter that would not decode
        // (Forward-TSN-Supported with a value).
        let broken = "c0000008 00000000"
        #expect(try initParameters("4abc0004 " + broken) == [.unknown(type: SCTPParameterType(0x4ABC), value: [])])
        #expect(try initParameters("0abc0004 " + broken) == [.unknown(type: SCTPParameterType(0x0ABC), value: [])])
        #expect(throws: SCTPError.parameterLengthInvalid(type: .forwardTSNSupported, length: 8)) { try initParameters("8abc0004 " + broken) }
        #expect(SCTPParameterType(0x4ABC).unrecognizedAction == .stopAndReport)
        #expect(SCTPParameterType(0xCABC).unrecognizedAction.reports)
    }

    @Test func heartbeatMustHoldExactlyOneInfoParameter() {
        #expect(throws: SCTPError.heartbeatInfoInvalid(.heartbeat)) { try SCTPPacket.decode(packet(chunks: bytes("04000004"))) }
        #expect(throws: SCTPError.heartbeatInfoInvalid(.heartbeat)) { try SCTPPacket.decode(packet(chunks: bytes("04000008 00020004"))) }
        #expect(throws: SCTPError.heartbeatInfoInvalid(.heartbeatAck)) {
            try SCTPPacket.decode(packet(chunks: bytes("0500000c 00010004 00010004")))
        }
    }

    @Test func fixedLengthChunksRejectOtherLengths() {
        for chunk in ["07000004", "0700000c 00000001 00000002", "08000008 00000000", "0b000008 00000000", "0e000008 00000000",
                      "c000000a 00000001 00010000", "01000010 00000000 00000000 00000000"]
        {
            let type = SCTPChunkType(bytes(chunk)[0])
            let length = Int(bytes(chunk)[3])
            #expect(throws: SCTPError.chunkLengthInvalid(type: type, length: length), "\(chunk)") {
                try SCTPPacket.decode(packet(chunks: bytes(chunk)))
            }
        }
        #expect(throws: SCTPError.sackLengthMismatch(length: 16, gapAckBlocks: 1, duplicateTSNs: 0)) {
            try SCTPPacket.decode(packet(chunks: bytes("03000010 00000000 00000000 00010000")))
        }
    }

    @Test func knownParametersRejectOtherLengths() {
        func decodeInit(_ parameter: String) throws {
            var chunk = bytes("01000000 11223344 00010000 00010001 00000001 " + parameter)
            chunk[3] = UInt8(chunk.count)
            _ = try SCTPPacket.decode(packet(chunks: chunk))
        }
        #expect(throws: SCTPError.parameterLengthInvalid(type: .ipv4Address, length: 12)) { try decodeInit("0005000c 00000000 00000000") }
        #expect(throws: SCTPError.parameterLengthInvalid(type: .zeroChecksumAcceptable, length: 4)) { try decodeInit("80010004") }
        #expect(throws: SCTPError.parameterLengthInvalid(type: .supportedAddressTypes, length: 7)) { try decodeInit("000c0007 00050600") }
        #expect(throws: SCTPError.errorCauseLengthInvalid(code: .missingMandatoryParameter, length: 12)) {
            try SCTPPacket.decode(packet(chunks: bytes("09000010 0002000c 00000003 00070008")))
        }
        #expect(throws: SCTPError.errorCauseLengthInvalid(code: .outOfResource, length: 8)) {
            try SCTPPacket.decode(packet(chunks: bytes("0900000c 00040008 00000000")))
        }
    }

    @Test func parameterPaddingRules() {
        // A parameter whose padding is half inside the chunk length.
        #expect(throws: SCTPError.tlvPaddingTruncated(chunk: .heartbeat, type: 1)) {
            try SCTPPacket.decode(packet(chunks: bytes("0400000b 00010005 01000000")))
        }
        // Two stray bytes after the last parameter.
        #expect(throws: SCTPError.tlvTruncated(chunk: .abort, available: 2)) {
            try SCTPPacket.decode(packet(chunks: bytes("0600000a 000a0004 0000 0000")))
        }
        // A parameter of length 2.
        #expect(throws: SCTPError.tlvLengthInvalid(chunk: .error, type: 4, length: 2)) {
            try SCTPPacket.decode(packet(chunks: bytes("09000008 00040002")))
        }
        // A parameter running past its chunk.
        #expect(throws: SCTPError.tlvOverrun(chunk: .error, type: 13, length: 12, available: 8)) {
            try SCTPPacket.decode(packet(chunks: bytes("0900000c 000d000c 41414141 41414141")))
        }
    }
}
