import Testing
import TernTestSupport
import TernSCTP

@Suite("Round trips")
struct RoundTripTests {
    static let sampleInit = SCTPInitChunk(
        initiateTag: 0xCAFE_F00D, advertisedWindow: 4 << 20, outboundStreams: 1024, inboundStreams: 1024, initialTSN: 0xFFFF_FFF0,
        parameters: [.forwardTSNSupported, .supportedExtensions([.forwardTSN, .reconfig]), .zeroChecksumAcceptable(edmid: 1)])

    /// One of every chunk, with values at their edges.
    static let everyChunk: [SCTPChunk] = makeEveryChunk()

    static func makeEveryChunk() -> [SCTPChunk] {
        var chunks: [SCTPChunk] = []
        chunks.append(.data(SCTPDataChunk(tsn: 0, streamID: 0, ssn: 0, ppid: 0, userData: [0])))
        let large = [UInt8](repeating: 0xEE, count: 1183)
        chunks.append(.data(SCTPDataChunk(tsn: .max, streamID: .max, ssn: .max, ppid: .max, userData: large, flags: [.unordered, .beginning])))
        chunks.append(.data(SCTPDataChunk(tsn: 5, streamID: 1, ssn: 2, ppid: 53, userData: [UInt8](), flags: [])))
        chunks.append(.initiation(sampleInit))
        let cookie = [UInt8](repeating: 0xC0, count: 301)
        chunks.append(.initiationAck(SCTPInitChunk(initiateTag: 1, advertisedWindow: 0, outboundStreams: 1, inboundStreams: 1, initialTSN: 0,
                                                   parameters: [.stateCookie(cookie[...]), .ecnCapable])))
        chunks.append(.sack(SCTPSackChunk(cumulativeTSNAck: 0xFFFF_FFFF, advertisedWindow: 0)))
        let gaps: [SCTPGapAckBlock] = (1...300).map { SCTPGapAckBlock(start: UInt16($0 * 3), end: UInt16($0 * 3 + 1)) }
        let duplicates: [UInt32] = [1, 2, 3, .max]
        chunks.append(.sack(SCTPSackChunk(cumulativeTSNAck: 7, advertisedWindow: 1 << 22, gapAckBlocks: SCTPWireList(gaps),
                                          duplicateTSNs: SCTPWireList(duplicates))))
        chunks.append(.heartbeat(info: []))
        chunks.append(.heartbeat(info: [UInt8](repeating: 0x42, count: 37)[...]))
        chunks.append(.heartbeatAck(info: [9, 8, 7]))
        chunks.append(.abort(tagReflected: true, causes: []))
        chunks.append(.abort(tagReflected: false, causes: [.userInitiatedAbort(Array("closing".utf8)[...]), .noUserData(tsn: 77)]))
        chunks.append(.shutdown(cumulativeTSNAck: 0x8000_0000))
        chunks.append(.shutdownAck)
        let causes: [SCTPErrorCause] = [
            .staleCookie(stalenessMicroseconds: 1), .unrecognizedChunkType([0xC9, 0, 0, 5, 1]), .missingMandatoryParameter([]),
        ]
        chunks.append(.error(causes: causes))
        chunks.append(.cookieEcho(cookie: []))
        chunks.append(.cookieEcho(cookie: [UInt8](repeating: 0xAB, count: 302)[...]))
        chunks.append(.cookieAck)
        chunks.append(.shutdownComplete(tagReflected: false))
        chunks.append(.forwardTSN(SCTPForwardTSNChunk(newCumulativeTSN: 3, streams: [SCTPForwardTSNStream(streamID: 9, ssn: 0xFFFF)])))
        chunks.append(.reconfig(SCTPReconfigChunk(.incomingSSNResetRequest(requestSequenceNumber: 1, streams: []))))
        let response = SCTPReconfigResponse(responseSequenceNumber: 2, result: SCTPReconfigResult(rawValue: 99))
        let request = SCTPOutgoingSSNResetRequest(requestSequenceNumber: 3, responseSequenceNumber: 2, senderLastAssignedTSN: 1, streams: [0, 65535])
        chunks.append(.reconfig(SCTPReconfigChunk(.response(response), .outgoingSSNResetRequest(request))))
        chunks.append(.reconfig(SCTPReconfigChunk(.unknown(type: SCTPParameterType(0xC0DE), value: [1]))))
        chunks.append(.unknown(SCTPUnknownChunk(type: SCTPChunkType(0xC7), flags: 0xFF, value: [])))
        chunks.append(.unknown(SCTPUnknownChunk(type: SCTPChunkType(0x84), flags: 0, value: [UInt8](repeating: 0, count: 13)[...])))
        return chunks
    }

    @Test("every chunk round-trips alone", arguments: everyChunk)
    func chunkRoundTripsAlone(chunk: SCTPChunk) throws {
        let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5001, verificationTag: 42, chunks: [chunk])
        let encoded = try packet.encode()
        #expect(encoded.count % 4 == 0)
        #expect(try SCTPPacket.decode(encoded) == packet)
        // The chunk-level entry points agree with the packet-level ones.
        var alone: [UInt8] = []
        try chunk.encode(into: &alone)
        #expect(Array(encoded[12...]) == alone)
        let (decoded, length) = try SCTPChunk.decode(alone[...])
        #expect(decoded == chunk)
        #expect(length == alone.count)
    }

    @Test func bundleableChunksRoundTripTogether() throws {
        let bundle = Self.everyChunk.filter {
            switch $0 {
            case .initiation, .initiationAck, .shutdownComplete: return false
            default: return true
            }
        }
        let packet = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: bundle)
        #expect(try SCTPPacket.decode(packet.encode()) == packet)
    }

    @Test func randomPacketsRoundTrip() throws {
        var random = TestRandom(seed: 2960)
        for _ in 0..<500 {
            var chunks: [SCTPChunk] = []
            for _ in 0..<Int.random(in: 1...12, using: &random) {
                chunks.append(Self.randomChunk(using: &random))
            }
            let packet = SCTPPacket(sourcePort: .random(in: 0...65535, using: &random), destinationPort: 5000,
                                    verificationTag: .random(in: 0...UInt32.max, using: &random), chunks: chunks)
            let encoded = try packet.encode()
            #expect(try SCTPPacket.decode(encoded) == packet)
        }
    }

    static func randomChunk(using random: inout TestRandom) -> SCTPChunk {
        func data(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
        switch Int.random(in: 0..<6, using: &random) {
        case 0, 1:
            return .data(SCTPDataChunk(tsn: .random(in: 0...UInt32.max, using: &random), streamID: .random(in: 0...9, using: &random),
                                       ssn: .random(in: 0...UInt16.max, using: &random), ppid: 53, userData: data(Int.random(in: 1...99, using: &random)),
                                       flags: SCTPDataChunk.Flags(rawValue: .random(in: 0...15, using: &random))))
        case 2:
            let gaps = (0..<Int.random(in: 0...20, using: &random)).map { _ in
                SCTPGapAckBlock(start: .random(in: 0...UInt16.max, using: &random), end: .random(in: 0...UInt16.max, using: &random))
            }
            let duplicates = (0..<Int.random(in: 0...5, using: &random)).map { _ in UInt32.random(in: 0...UInt32.max, using: &random) }
            return .sack(SCTPSackChunk(cumulativeTSNAck: .random(in: 0...UInt32.max, using: &random), advertisedWindow: 65536,
                                       gapAckBlocks: SCTPWireList(gaps), duplicateTSNs: SCTPWireList(duplicates)))
        case 3:
            return .heartbeat(info: data(Int.random(in: 0...40, using: &random))[...])
        case 4:
            return .error(causes: [.protocolViolation(data(Int.random(in: 0...9, using: &random))[...]), .outOfResource])
        default:
            return .forwardTSN(SCTPForwardTSNChunk(newCumulativeTSN: .random(in: 0...UInt32.max, using: &random),
                                                   streams: SCTPWireList((0..<Int.random(in: 0...4, using: &random)).map {
                                                       SCTPForwardTSNStream(streamID: UInt16($0), ssn: 1)
                                                   })))
        }
    }

    @Test func wireListsBuiltFromElementsEqualDecodedOnes() throws {
        let built: SCTPWireList<SCTPGapAckBlock> = [SCTPGapAckBlock(start: 1, end: 2), SCTPGapAckBlock(start: 4, end: 9)]
        let wire = packet(chunks: bytes("03000018 00000000 00000000 00020000 00010002 00040009"))
        guard case .sack(let sack) = try onlyChunk(wire) else {
            Issue.record("not a SACK")
            return
        }
        #expect(sack.gapAckBlocks == built)
        #expect(sack.gapAckBlocks.hashValue == built.hashValue)
        #expect(Array(sack.gapAckBlocks) == Array(built))
        #expect(sack.gapAckBlocks.description == "[1-2, 4-9]")
        #expect(sack.duplicateTSNs.isEmpty)
    }

    @Test func decodingSlicesTheDatagramInsteadOfCopying() throws {
        let datagram = Captures.aiortcData.bytes
        guard case .data(let data) = try onlyChunk(datagram) else {
            Issue.record("not DATA")
            return
        }
        // The user data is a slice at its place in the datagram.
        #expect(data.userData.startIndex == 28)
        #expect(data.userData.endIndex == 32)
    }

    @Test func decodesFromSlicesThatDoNotStartAtZero() throws {
        for capture in Captures.all {
            let framed = [0xEE, 0xEE, 0xEE] + capture.bytes + [0xEE]
            let slice = framed[3..<(framed.count - 1)]
            #expect(try SCTPPacket.decode(slice) == SCTPPacket.decode(capture.bytes), "\(capture.name)")
        }
    }

    @Test func encodesAfterExistingBytesAtAnyAlignment() throws {
        let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 7, chunks: Array(Self.everyChunk.prefix(3)))
        let alone = try packet.encode()
        for prefixLength in 0..<5 {
            var buffer = [UInt8](repeating: 0x55, count: prefixLength)
            try packet.encode(into: &buffer)
            #expect(Array(buffer[prefixLength...]) == alone)
            #expect(buffer.prefix(prefixLength).allSatisfy { $0 == 0x55 })
        }
    }

    @Test func failedEncodeLeavesTheBufferAsItWas() {
        var buffer: [UInt8] = [1, 2, 3]
        let tooMany = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: [
            .cookieAck, .cookieEcho(cookie: [UInt8](repeating: 0, count: 5000)[...]),
        ])
        #expect(throws: SCTPError.cookieTooLong(length: 5000, limit: 4096)) { try tooMany.encode(into: &buffer) }
        #expect(buffer == [1, 2, 3])
        #expect(throws: SCTPError.cookieTooLong(length: 5000, limit: 4096)) {
            try SCTPChunk.cookieEcho(cookie: [UInt8](repeating: 0, count: 5000)[...]).encode(into: &buffer)
        }
        #expect(buffer == [1, 2, 3])
    }

    @Test func chunkTypesAndActions() {
        #expect(SCTPChunkType.data.unrecognizedAction == .stop)
        #expect(SCTPChunkType.reconfig.unrecognizedAction == .skip)
        #expect(SCTPChunkType.forwardTSN.unrecognizedAction == .skipAndReport)
        #expect(SCTPChunkType.iData.unrecognizedAction == .stopAndReport)
        #expect(SCTPParameterType.forwardTSNSupported.unrecognizedAction == .skipAndReport)
        #expect(SCTPParameterType.zeroChecksumAcceptable.unrecognizedAction == .skip)
        #expect(SCTPParameterType.stateCookie.unrecognizedAction == .stop)
        #expect(Self.everyChunk.allSatisfy { $0.type.description.isEmpty == false })
    }
}
