import Testing
import TernTestSupport
import TernSTUN

@Suite("Binding responder")
struct BindingResponderTests {
    static let source = STUNAddress.ipv4(198, 51, 100, 20, port: 40_000)

    static func request(
        _ messageClass: STUNClass = .request,
        _ method: STUNMethod = .binding,
        attributes: [STUNAttribute] = [],
        fingerprint: Bool = true
    ) throws -> (STUNTransactionID, [UInt8]) {
        let id = STUNTransactionID.random()
        let message = STUNMessage(messageClass, method, transactionID: id, attributes: attributes)
        return (id, try message.encode(fingerprint: fingerprint))
    }

    @Test("answers a Binding request with the source address", arguments: [
        source, STUNAddress(ipBytes: bytes("20010db8000000000000000000000042"), port: 5) ?? source,
    ])
    func answersBindingRequest(from source: STUNAddress) throws {
        let (id, datagram) = try Self.request()
        let reply = try #require(STUNBindingResponder.respond(to: datagram, from: source))
        let response = try STUNMessage.decode(reply)
        #expect(response.messageClass == .successResponse)
        #expect(response.method == .binding)
        #expect(response.transactionID == id)
        #expect(response.xorMappedAddress == source)
        #expect(response.software == "tern")
        #expect(response.attributes.last?.type == .fingerprint)
        try STUNMessage.checkFingerprint(of: reply)
    }

    @Test func answersRequestWithoutFingerprintAndTheRFC5769SampleRequest() throws {
        let (_, plain) = try Self.request(fingerprint: false)
        #expect(STUNBindingResponder.respond(to: plain, from: Self.source) != nil)
        let reply = try #require(STUNBindingResponder.respond(to: RFC5769.request, from: Self.source))
        #expect(try STUNMessage.decode(reply).transactionID == STUNMessage.decode(RFC5769.request).transactionID)
    }

    @Test func customSoftware() throws {
        let (_, datagram) = try Self.request()
        let reply = try #require(STUNBindingResponder(software: "relay 2").respond(to: datagram, from: Self.source))
        #expect(try STUNMessage.decode(reply).software == "relay 2")
    }

    @Test func answersUnknownComprehensionRequiredWith420() throws {
        let (id, datagram) = try Self.request(attributes: [
            .unknown(type: STUNAttributeType(0x7FF0), value: [1]),
            .unknown(type: STUNAttributeType(0xC000), value: []),
            .unknown(type: STUNAttributeType(0x7FF0), value: [2]),
            .unknown(type: STUNAttributeType(0x0003), value: []),
        ])
        let reply = try #require(STUNBindingResponder.respond(to: datagram, from: Self.source))
        let response = try STUNMessage.decode(reply)
        #expect(response.messageClass == .errorResponse)
        #expect(response.transactionID == id)
        #expect(response.errorCode?.code == 420)
        #expect(response.unknownAttributes == [STUNAttributeType(0x7FF0), STUNAttributeType(0x0003)])
        #expect(response.xorMappedAddress == nil)
    }

    @Test func ignoresUnknownComprehensionOptionalAttributes() throws {
        let (_, datagram) = try Self.request(attributes: [.unknown(type: STUNAttributeType(0xC057), value: [1, 2])])
        let reply = try #require(STUNBindingResponder.respond(to: datagram, from: Self.source))
        #expect(try STUNMessage.decode(reply).messageClass == .successResponse)
    }

    @Test func answersMalformedAttributeWith400() throws {
        // Good header, PRIORITY of 2 bytes.
        let id = STUNTransactionID.random()
        let datagram = [0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42] + id.bytes + [0x00, 0x24, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00]
        let reply = try #require(STUNBindingResponder.respond(to: datagram, from: Self.source))
        let response = try STUNMessage.decode(reply)
        #expect(response.messageClass == .errorResponse)
        #expect(response.transactionID == id)
        #expect(response.errorCode == .badRequest)
    }

    @Test func answersOtherMethodsWith400() throws {
        let (_, datagram) = try Self.request(.request, .allocate, attributes: [.requestedTransport(17)])
        let reply = try #require(STUNBindingResponder.respond(to: datagram, from: Self.source))
        let response = try STUNMessage.decode(reply)
        #expect(response.method == .allocate)
        #expect(response.errorCode?.code == 400)
    }

    @Test func dropsIndicationsAndResponses() throws {
        let responder = STUNBindingResponder()
        for messageClass in [STUNClass.indication, .successResponse, .errorResponse] {
            let (_, datagram) = try Self.request(messageClass)
            #expect(responder.handle(datagram, from: Self.source) == .drop(.notARequest(messageClass)))
        }
        #expect(responder.handle(RFC5769.ipv4Response, from: Self.source) == .drop(.notARequest(.successResponse)))
    }

    @Test func dropsMalformedDatagrams() throws {
        let responder = STUNBindingResponder()
        #expect(responder.respond(to: [], from: Self.source) == nil)
        #expect(responder.respond(to: [0x17, 0xFE, 0xFD, 0, 0], from: Self.source) == nil)  // DTLS
        #expect(responder.respond(to: [0x40, 0x00, 0x00, 0x00], from: Self.source) == nil)  // ChannelData
        var badCookie = RFC5769.request
        badCookie[4] ^= 0xFF
        #expect(responder.handle(badCookie, from: Self.source) == .drop(.malformed(.badMagicCookie(0xDE12_A442))))
        var trailing = RFC5769.request
        trailing.append(contentsOf: [0, 0, 0, 0])
        #expect(responder.handle(trailing, from: Self.source) == .drop(.malformed(.trailingBytes(4))))
    }

    @Test func dropsRequestWithWrongFingerprint() throws {
        var datagram = RFC5769.request
        datagram[datagram.count - 1] ^= 0x01
        guard case .drop(.malformed(.fingerprintMismatch)) = STUNBindingResponder().handle(datagram, from: Self.source) else {
            Issue.record("a bad FINGERPRINT must be dropped")
            return
        }
    }
}
