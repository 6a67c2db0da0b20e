import Testing
import TernTestSupport
import TernSCTP

@Suite("Captured packets")
struct CapturedPacketTests {
    @Test("decodes and re-encodes byte for byte", arguments: Captures.all)
    func decodesAndReencodesExactly(capture: Capture) throws {
        let packet = try SCTPPacket.decode(capture.bytes)
        #expect(try packet.encode() == capture.bytes)
        #expect(packet.sourcePort == UInt16(capture.bytes[0]) << 8 | UInt16(capture.bytes[1]))
    }

    @Test func aiortcInit() throws {
        guard case .initiation(let initChunk) = try onlyChunk(Captures.aiortcInit.bytes) else {
            Issue.record("not an INIT")
            return
        }
        #expect(initChunk.initiateTag == 0x2452_1703)
        #expect(initChunk.advertisedWindow == 131_072)
        #expect(initChunk.outboundStreams == 256)
        #expect(initChunk.inboundStreams == 2048)
        #expect(initChunk.initialTSN == 0x3092_614B)
        #expect(initChunk.supportsForwardTSN)
        #expect(initChunk.supportedExtensions.map(Array.init) == [.forwardTSN, .auth, .asconf, .asconfAck, .reconfig])
        #expect(initChunk.zeroChecksumEDMID == nil)
        #expect(initChunk.stateCookie == nil)
        // SCTP-AUTH's Random, HMAC algorithm and chunk list: unknown here,
        // and their type bits (10) say skip.
        let unknown = initChunk.parameters.filter { if case .unknown = $0 { return true } else { return false } }
        #expect(unknown.map(\.type) == [.random, .requestedHMACAlgorithm, .chunkList])
        #expect(unknown.allSatisfy { $0.type.unrecognizedAction == .skip })
        #expect(initChunk.parameters.last == .unknown(type: .chunkList, value: [0x80, 0xC1]))
    }

    @Test func aiortcCookieEcho() throws {
        #expect(try onlyChunk(Captures.aiortcCookieEcho.bytes) == .cookieEcho(cookie: Array("12345678".utf8)[...]))
    }

    @Test func aiortcAbortCarriesAProtocolViolation() throws {
        let reason = Array("Expected B-bit for TSN=4ce1f17f, SID=0001, SSN=0000".utf8)
        #expect(try onlyChunk(Captures.aiortcAbort.bytes) == .abort(tagReflected: false, causes: [.protocolViolation(reason[...])]))
    }

    @Test func aiortcData() throws {
        let expected = SCTPDataChunk(tsn: 2_584_679_421, streamID: 1, ssn: 1, ppid: 51, userData: Array("ping".utf8), flags: .complete)
        #expect(try onlyChunk(Captures.aiortcData.bytes) == .data(expected))
        let padded = SCTPDataChunk(tsn: 2_584_679_421, streamID: 1, ssn: 1, ppid: 51, userData: Array("M".utf8), flags: .complete)
        #expect(try onlyChunk(Captures.aiortcDataPadding.bytes) == .data(padded))
    }

    @Test func aiortcError() throws {
        #expect(try onlyChunk(Captures.aiortcError.bytes) == .error(causes: [.invalidStreamIdentifier(streamID: 12345)]))
    }

    @Test func aiortcForwardTSN() throws {
        let expected = SCTPForwardTSNChunk(newCumulativeTSN: 1234, streams: [SCTPForwardTSNStream(streamID: 12, ssn: 34)])
        #expect(try onlyChunk(Captures.aiortcForwardTSN.bytes) == .forwardTSN(expected))
    }

    @Test func aiortcHeartbeat() throws {
        let info = bytes("b56faa5a 765a0600 00000000 00000000 7b100000 0034eb07 46100000 00000000 00000000")
        #expect(try onlyChunk(Captures.aiortcHeartbeat.bytes) == .heartbeat(info: info[...]))
    }

    @Test func aiortcReconfigs() throws {
        #expect(try onlyChunk(Captures.aiortcReconfigAddOut.bytes)
            == .reconfig(SCTPReconfigChunk(.addOutgoingStreams(requestSequenceNumber: 3_389_191_728, newStreams: 16))))
        let reset = SCTPOutgoingSSNResetRequest(
            requestSequenceNumber: 2_346_191_451, responseSequenceNumber: 3_834_375_283, senderLastAssignedTSN: 2_346_191_454, streams: [1])
        #expect(try onlyChunk(Captures.aiortcReconfigResetOut.bytes) == .reconfig(SCTPReconfigChunk(.outgoingSSNResetRequest(reset))))
        let response = SCTPReconfigResponse(responseSequenceNumber: 2_438_143_828, result: .successPerformed)
        #expect(try onlyChunk(Captures.aiortcReconfigResponse.bytes) == .reconfig(SCTPReconfigChunk(.response(response))))
    }

    @Test func aiortcSack() throws {
        guard case .sack(let sack) = try onlyChunk(Captures.aiortcSack.bytes) else {
            Issue.record("not a SACK")
            return
        }
        #expect(sack.cumulativeTSNAck == 2_222_939_037)
        #expect(sack.advertisedWindow == 128_160)
        #expect(Array(sack.gapAckBlocks) == [SCTPGapAckBlock(start: 2, end: 2), SCTPGapAckBlock(start: 4, end: 4)])
        #expect(Array(sack.duplicateTSNs) == [2_222_939_041])
    }

    @Test func aiortcShutdownAndShutdownAck() throws {
        #expect(try onlyChunk(Captures.aiortcShutdown.bytes) == .shutdown(cumulativeTSNAck: 2_696_426_712))
        #expect(try onlyChunk(Captures.aiortcShutdownAck.bytes) == .shutdownAck)
    }

    @Test func aiortcMalformedDataIsRejected() {
        // A DATA chunk claiming 8 bytes where 4 are left.
        #expect(throws: SCTPError.chunkOverrun(type: .data, length: 8, available: 4)) { try SCTPPacket.decode(Captures.aiortcDataTruncated) }
        #expect(throws: SCTPError.chunkLengthInvalid(type: .data, length: 0)) { try SCTPPacket.decode(Captures.aiortcDataZeroLength) }
    }

    @Test func chromeInitAndInitAck() throws {
        guard case .initiation(let offer) = try onlyChunk(Captures.chromeInit.bytes) else {
            Issue.record("not an INIT")
            return
        }
        #expect(offer.initiateTag == 0xCE15_79A2)
        #expect(offer.outboundStreams == 1024)
        #expect(offer.inboundStreams == 2048)
        #expect(offer.initialTSN == 0x9457_95C0)

        let packet = try SCTPPacket.decode(Captures.chromeInitAck.bytes)
        // The INIT ACK goes out under the tag the INIT announced.
        #expect(packet.verificationTag == offer.initiateTag)
        guard case .initiationAck(let answer) = packet.chunks.first, packet.chunks.count == 1 else {
            Issue.record("not an INIT ACK")
            return
        }
        #expect(answer.initiateTag == 0x9BD5_B36F)
        #expect(answer.parameters.count == 6)
        let cookie = try #require(answer.stateCookie)
        #expect(cookie.count == 0x138 - 4)
        // usrsctp's cookies start with its name.
        #expect(Array(cookie.prefix(12)) == Array("KAME-BSD 1.1".utf8))
    }

    @Test func cookieEchoBundledWithDataChannelOpen() throws {
        let packet = try SCTPPacket.decode(Captures.cookieEchoWithDCEPOpen.bytes)
        try #require(packet.chunks.count == 2)
        guard case .cookieEcho(let cookie) = packet.chunks[0], case .data(let data) = packet.chunks[1] else {
            Issue.record("expected COOKIE ECHO then DATA")
            return
        }
        #expect(cookie.count == 32)
        #expect(data.tsn == 0xA879_A1C7)
        #expect(data.streamID == 1)
        #expect(data.ppid == 50)  // DCEP
        #expect(data.flags == .complete)
        // DATA_CHANNEL_OPEN, reliable, label "foo" (RFC 8832 §5.1).
        #expect(Array(data.userData) == bytes("03 00 0000 00000000 0003 0000") + Array("foo".utf8))
    }

    @Test func pionSackAndReconfig() throws {
        #expect(try onlyChunk(Captures.pionSack.bytes)
            == .sack(SCTPSackChunk(cumulativeTSNAck: 0x8773_BDA4, advertisedWindow: 0x0001_FE74, gapAckBlocks: [SCTPGapAckBlock(start: 2, end: 2)])))
        guard case .reconfig(let reconfig) = try onlyChunk(Captures.pionReconfig.bytes),
              case .outgoingSSNResetRequest(let request) = reconfig.first
        else {
            Issue.record("not an outgoing SSN reset request")
            return
        }
        #expect(Array(request.streams) == [1])
        #expect(reconfig.second == nil)
    }

    @Test func dcsctpInitAnnouncesECN() throws {
        guard case .initiation(let initChunk) = try onlyChunk(Captures.dcsctpInit.bytes) else {
            Issue.record("not an INIT")
            return
        }
        #expect(initChunk.initialTSN == 1_426_601_527)
        #expect(Array(initChunk.parameters.prefix(2)) == [.ecnCapable, .forwardTSNSupported])
    }

    @Test func dcsctpCookieAckBundledWithSack() throws {
        let packet = try SCTPPacket.decode(Captures.dcsctpCookieAckAndSack.bytes)
        #expect(packet.sourcePort == 1234)
        #expect(packet.destinationPort == 4321)
        #expect(packet.verificationTag == 0x697E_3A4E)
        #expect(packet.chunks == [.cookieAck, .sack(SCTPSackChunk(cumulativeTSNAck: 2_930_332_242, advertisedWindow: 131_072))])
    }

    @Test func dcsctpWrongChecksumIsRejected() {
        #expect(throws: SCTPError.checksumMismatch(received: 0x31F5_812A, computed: 0x32F5_812A)) {
            try SCTPPacket.decode(Captures.dcsctpSackWrongChecksum)
        }
    }

    @Test func encoderMatchesDcsctpWrittenPacket() throws {
        let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0x1234_5678,
                                chunks: [.sack(SCTPSackChunk(cumulativeTSNAck: 999, advertisedWindow: 456))])
        #expect(try packet.encode() == Captures.dcsctpWrittenSack)
    }

    @Test func dcsctpChunkCaptures() throws {
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpDataChunk))
            == .data(SCTPDataChunk(tsn: 1_426_601_532, streamID: 2, ssn: 1, ppid: 53, userData: [0, 1, 2, 3])))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpSackChunk))
            == .sack(SCTPSackChunk(
                cumulativeTSNAck: 916_312_075, advertisedWindow: 126_323,
                gapAckBlocks: [SCTPGapAckBlock(start: 2, end: 6), SCTPGapAckBlock(start: 8, end: 8)], duplicateTSNs: [916_312_081])))
        let info = Array(Captures.dcsctpHeartbeatChunk[8...])
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpHeartbeatChunk)) == .heartbeat(info: info[...]))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpHeartbeatAckChunk)) == .heartbeatAck(info: info[...]))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpForwardTSNChunk)) == .forwardTSN(SCTPForwardTSNChunk(newCumulativeTSN: 1_905_748_778)))
        let reset = SCTPOutgoingSSNResetRequest(
            requestSequenceNumber: 2_270_550_051, responseSequenceNumber: 1_905_748_638, senderLastAssignedTSN: 2_270_550_066, streams: [6])
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpReconfigChunk)) == .reconfig(SCTPReconfigChunk(.outgoingSSNResetRequest(reset))))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpShutdownChunk)) == .shutdown(cumulativeTSNAck: 101_831_101))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpAbortChunk)) == .abort(tagReflected: false, causes: [.userInitiatedAbort([])]))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpErrorChunk)) == .error(causes: [.unrecognizedChunkType([0x49, 0, 0, 4])]))
        #expect(try onlyChunk(packet(chunks: Captures.dcsctpCookieEchoChunk)) == .cookieEcho(cookie: [0x12, 0x34, 0x56, 0x78]))
    }

    @Test func dcsctpInitAck() throws {
        guard case .initiationAck(let answer) = try onlyChunk(packet(chunks: Captures.dcsctpInitAckChunk)) else {
            Issue.record("not an INIT ACK")
            return
        }
        #expect(answer.initiateTag == 0x579C_2F98)
        #expect(answer.advertisedWindow == 131_072)
        #expect(answer.outboundStreams == 1000)
        #expect(answer.inboundStreams == 2048)
        #expect(answer.initialTSN == 1_670_811_335)
        #expect(answer.parameters.map(\.type) == [.forwardTSNSupported, .supportedExtensions, .stateCookie])
        #expect(answer.supportedExtensions.map(Array.init) == [.forwardTSN, .reconfig])
        #expect(answer.stateCookie?.count == 0x104 - 4)
    }
}
