import Testing
@testable import TernRendezvous

/// Each of `FrameLimits` at its value and one past it, in frames from a
/// hostile relay or client: at the limit the frame decodes, past it the
/// decode is refused with the limit's reason.
@Suite("Rendezvous frame limits")
struct ResourceLimitTests {
    static func relay(_ text: String) throws(RendezvousError) -> RelayFrame { try RelayFrame(decoding: Array(text.utf8)) }

    static func refusal(_ text: String) -> RendezvousError? {
        do {
            _ = try relay(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func theLimitsAreTheDocumentedOnes() {
        #expect(FrameLimits.maxBodyBytes == 1_048_576)
        #expect(FrameLimits.maxSequence == 1_048_576)
        #expect(FrameLimits.maxStringBytes == 1024)
        #expect(FrameLimits.maxListItems == 16)
        #expect(FrameLimits.maxErrorCodeBytes == 64)
        #expect(FrameLimits.maxFrameBytes(forBody: 3000) == 8096)
    }

    @Test func aMessageBodyUpToOneMiB() throws {
        let atLimit = RelayFrame.message(seq: 0, body: [UInt8](repeating: 0xAB, count: FrameLimits.maxBodyBytes))
        #expect(try Self.relay(atLimit.encoded()) == atLimit)
        let past = RelayFrame.message(seq: 0, body: [UInt8](repeating: 0xAB, count: FrameLimits.maxBodyBytes + 1)).encoded()
        #expect(throws: RendezvousError.frameTooLarge(size: FrameLimits.maxBodyBytes + 1, limit: FrameLimits.maxBodyBytes)) {
            try Self.relay(past)
        }
        // The announced limit of a relay bounds a client's add the same way.
        let add = ClientFrame.add(seq: 0, body: [UInt8](repeating: 1, count: 3000))
        #expect(try ClientFrame(decoding: Array(add.encoded().utf8), maxBodyBytes: 3000) == add)
        #expect(throws: RendezvousError.frameTooLarge(size: 3000, limit: 2999)) {
            try ClientFrame(decoding: Array(add.encoded().utf8), maxBodyBytes: 2999)
        }
    }

    @Test func sequenceNumbersUpTo2To20() throws {
        #expect(try Self.relay(#"{"type":"message","seq":1048576,"body":""}"#) == .message(seq: FrameLimits.maxSequence, body: []))
        #expect(Self.refusal(#"{"type":"message","seq":1048577,"body":""}"#) == .malformedFrame("'seq' out of range"))
        #expect(Self.refusal(#"{"type":"message","seq":-1,"body":""}"#) == .malformedFrame("'seq' out of range"))
    }

    @Test func stunListsOfSixteenURIsOf1024Bytes() throws {
        func welcome(_ count: Int, length: Int) -> String {
            let uri = "stun:" + String(repeating: "a", count: length - 5)
            let list = Array(repeating: "\"\(uri)\"", count: count).joined(separator: ",")
            return #"{"type":"welcome","version":1,"max_message_bytes":100,"stun":["# + list + "]}"
        }
        #expect(Self.refusal(welcome(FrameLimits.maxListItems, length: FrameLimits.maxStringBytes)) == nil)
        #expect(Self.refusal(welcome(FrameLimits.maxListItems + 1, length: 10)) == .malformedFrame("stun list too long"))
        #expect(Self.refusal(welcome(1, length: FrameLimits.maxStringBytes + 1)) == .malformedFrame("stun list too long"))
    }

    @Test func errorFramesCodeAndMessage() throws {
        func error(code: Int, message: Int) -> String {
            #"{"type":"error","code":""# + String(repeating: "c", count: code) + #"","message":""# + String(repeating: "m", count: message) + #""}"#
        }
        #expect(Self.refusal(error(code: FrameLimits.maxErrorCodeBytes, message: FrameLimits.maxStringBytes)) == nil)
        #expect(Self.refusal(error(code: FrameLimits.maxErrorCodeBytes + 1, message: 1)) == .malformedFrame("error code too long"))
        #expect(Self.refusal(error(code: 1, message: FrameLimits.maxStringBytes + 1)) == .malformedFrame("error message too long"))
    }

    @Test func aFrameLongerThanItsBodyAllowsIsRefusedBeforeParsing() {
        let limit = FrameLimits.maxFrameBytes(forBody: FrameLimits.maxBodyBytes)
        let padded = #"{"type":"closed","pad":""# + String(repeating: "x", count: limit) + #""}"#
        #expect(Self.refusal(padded) == .frameTooLarge(size: padded.utf8.count, limit: limit))
    }
}
