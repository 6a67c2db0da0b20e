import Foundation
import Testing
@testable import TernRendezvous

@Suite struct FrameTests {
    static let side = Identifier(bytes: Array(0..<16))
    static let mailbox = Identifier(bytes: Array(16..<32))

    static let clientFrames: [ClientFrame] = [
        .allocate(side: side),
        .claim(nameplate: "7", side: side),
        .attach(mailbox: mailbox, side: side, received: 3),
        .add(seq: 0, body: []),
        .add(seq: 12, body: Array(0...255)),
        .close(mood: .scary),
    ]

    static let relayFrames: [RelayFrame] = [
        .welcome(Welcome(maxMessageBytes: 65536, stun: ["stun:127.0.0.1:3478"],
                         turn: TURNCredentials(uris: ["turn:127.0.0.1:3478?transport=udp"], username: "1700000000:tern", credential: "abc=", ttl: 600))),
        .welcome(Welcome(maxMessageBytes: 1, stun: [], turn: nil)),
        .allocated(nameplate: "1", mailbox: mailbox),
        .claimed(nameplate: "999999", mailbox: mailbox),
        .attached(mailbox: mailbox),
        .message(seq: 4, body: Array("hello".utf8)),
        .peerClosed(mood: .lonely),
        .closed,
        .error(code: .crowded, message: "nameplate 7 already has two sides"),
    ]

    @Test(arguments: clientFrames)
    func clientFramesRoundTrip(frame: ClientFrame) throws {
        let text = frame.encoded()
        #expect(try ClientFrame(decoding: Array(text.utf8), maxBodyBytes: 65536) == frame)
    }

    @Test(arguments: relayFrames)
    func relayFramesRoundTrip(frame: RelayFrame) throws {
        #expect(try RelayFrame(decoding: Array(frame.encoded().utf8)) == frame)
    }

    @Test func addFrameHasTheDocumentedShape() {
        #expect(ClientFrame.add(seq: 1, body: [1, 2, 3]).encoded() == #"{"body":"AQID","seq":1,"type":"add"}"#)
    }

    @Test(arguments: [
        "", "[]", "null", "{", "{}", #"{"type":7}"#, #"{"type":"allocate"}"#, #"{"type":"allocate","side":"XYZ"}"#,
        #"{"type":"allocate","side":"000102030405060708090A0B0C0D0E0F"}"#,
        #"{"type":"claim","side":"000102030405060708090a0b0c0d0e0f","nameplate":"07"}"#,
        #"{"type":"claim","side":"000102030405060708090a0b0c0d0e0f","nameplate":7}"#,
        #"{"type":"add","seq":-1,"body":""}"#, #"{"type":"add","seq":1048577,"body":""}"#,
        #"{"type":"add","seq":0,"body":"***"}"#, #"{"type":"add","seq":0}"#, #"{"type":"close","mood":"angry"}"#,
        #"{"type":"teleport"}"#, #"{"type":"add","seq":0,"body":""} trailing"#, #"{"type":"add","seq":1.5,"body":""}"#,
    ])
    func rejectsMalformedClientFrames(text: String) {
        #expect(throws: RendezvousError.self) { try ClientFrame(decoding: Array(text.utf8), maxBodyBytes: 65536) }
    }

    @Test func rejectsBodiesOverTheLimit() {
        let frame = ClientFrame.add(seq: 0, body: [UInt8](repeating: 1, count: 1001))
        #expect(throws: RendezvousError.self) { try ClientFrame(decoding: Array(frame.encoded().utf8), maxBodyBytes: 1000) }
        #expect((try? ClientFrame(decoding: Array(frame.encoded().utf8), maxBodyBytes: 1001)) == frame)
    }

    @Test func rejectsFramesOverTheSizeLimitBeforeParsing() {
        let huge = Array(("{\"type\":\"close\",\"mood\":\"happy\",\"pad\":\"" + String(repeating: "x", count: 200_000) + "\"}").utf8)
        do {
            _ = try ClientFrame(decoding: huge, maxBodyBytes: 1000)
            Issue.record("an oversize frame must be refused")
        } catch {
            guard case .frameTooLarge = error else { Issue.record("wrong error \(error)"); return }
        }
    }

    @Test func ignoresUnknownFieldsForLaterVersions() throws {
        let text = #"{"type":"close","mood":"happy","future":{"x":[1,2]}}"#
        #expect(try ClientFrame(decoding: Array(text.utf8), maxBodyBytes: 10) == .close(mood: .happy))
    }

    @Test func everyCutOfEveryFrameIsRejectedWithoutTrapping() {
        for frame in Self.clientFrames {
            let bytes = Array(frame.encoded().utf8)
            for cut in 0..<bytes.count {
                #expect(throws: RendezvousError.self) { try ClientFrame(decoding: bytes[..<cut], maxBodyBytes: 65536) }
            }
        }
        for frame in Self.relayFrames {
            let bytes = Array(frame.encoded().utf8)
            for cut in 0..<bytes.count {
                #expect(throws: RendezvousError.self) { try RelayFrame(decoding: bytes[..<cut]) }
            }
        }
    }

    @Test func relayFramesFromAHostileRelayAreBounded() {
        let longList = "[" + Array(repeating: "\"stun:a:1\"", count: 17).joined(separator: ",") + "]"
        let cases = [
            #"{"type":"welcome","version":1,"max_message_bytes":0}"#,
            #"{"type":"welcome","version":1,"max_message_bytes":99999999}"#,
            #"{"type":"welcome","version":1,"max_message_bytes":100,"stun":"# + longList + "}",
            #"{"type":"message","seq":0,"body":"!!"}"#,
        ]
        for text in cases {
            #expect(throws: RendezvousError.self) { try RelayFrame(decoding: Array(text.utf8)) }
        }
    }

    @Test func unknownErrorCodesFromANewerRelayAreKept() throws {
        let text = #"{"type":"error","code":"rate-limited","message":"slow down"}"#
        #expect(try RelayFrame(decoding: Array(text.utf8)) == .error(code: .other, message: "slow down"))
    }

    @Test func identifiersRoundTripThroughHex() throws {
        let id = Identifier.random()
        #expect(Identifier(bytes: id.bytes) == id)
        #expect(try Identifier(validating: id.hex) == id)
    }
}
