// libFuzzer target for TernSTUN's parsers. Built without SwiftPM, with the
// module's sources compiled into the same module (so no import is needed):
//
//   (scripts/fuzz.sh builds TernWire as a library first)
//   swiftc -sanitize=fuzzer,address -parse-as-library \
//     -I Fuzz/out -I Sources/COpenSSL -module-name STUNFuzz \
//     Fuzz/stun.swift Sources/TernSTUN/*.swift Fuzz/out/libTernWire.a -lcrypto -o /tmp/stun-fuzz
//   /tmp/stun-fuzz -max_total_time=60
//
// Properties checked, besides "never traps":
// - a message that decodes re-encodes, and the re-encoding decodes to the
//   same message (header and attribute list);
// - what the Binding responder sends back always decodes and has the
//   request's transaction id.
#if canImport(TernSTUN)
import TernSTUN
#endif

private let fuzzKey = STUNKey.shortTerm(password: "VOkJxbRl1RmTxUk/WvJxBt")
private let fuzzSource = STUNAddress.ipv4(192, 0, 2, 1, port: 32853)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    _ = PacketKind.classify(bytes.first ?? 0)
    _ = STUN.looksLikeSTUN(bytes)
    _ = try? STUNHeader.decode(bytes)
    _ = try? STUNMessage.checkIntegrity(of: bytes, key: fuzzKey)
    _ = try? STUNMessage.checkFingerprint(of: bytes)

    if let message = try? STUNMessage.decode(bytes) {
        // Padding with a non-zero byte too: the decoder must not read it.
        for padding: UInt8 in [0x00, 0xFF] {
            let encoded: [UInt8]
            do {
                encoded = try message.encode(padding: padding)
            } catch .messageTooLarge, .valueTooLong {
                // Text that is not UTF-8 decodes to U+FFFD (3 bytes per bad
                // byte), so a near-64 KiB message can outgrow the length field.
                continue
            } catch {
                preconditionFailure("a decoded message failed to encode: \(error.reason)")
            }
            do {
                let again = try STUNMessage.decode(encoded)
                precondition(again.attributes == message.attributes, "attribute list changed in a round trip")
                precondition(again == message, "header changed in a round trip")
            } catch {
                preconditionFailure("a re-encoded message failed to decode: \(error.reason)")
            }
        }
        // Appending fresh integrity and fingerprint always verifies (unless the
        // message already ends in a FINGERPRINT, after which nothing may go).
        if message.fingerprint == nil, message.messageIntegrity == nil,
            !message.attributes.contains(where: { $0.type == .messageIntegritySHA256 }),
            let signed = try? message.encode(integrity: fuzzKey, fingerprint: true)
        {
            do {
                try STUNMessage.checkIntegrity(of: signed, key: fuzzKey)
                try STUNMessage.checkFingerprint(of: signed)
            } catch {
                preconditionFailure("fresh MESSAGE-INTEGRITY/FINGERPRINT failed: \(error.reason)")
            }
        }
    }

    if let reply = STUNBindingResponder.respond(to: bytes, from: fuzzSource) {
        do {
            let response = try STUNMessage.decode(reply)
            let request = try STUNHeader.decode(bytes)
            precondition(response.transactionID == request.transactionID, "response for another transaction")
            try STUNMessage.checkFingerprint(of: reply)
        } catch {
            preconditionFailure("the responder produced an invalid message: \(error.reason)")
        }
    }

    if let channelData = try? ChannelData.decode(datagram: bytes) {
        precondition(channelData.payload.count <= bytes.count - ChannelData.headerLength)
    }
    var stream = bytes[...]
    while let (message, consumed) = (try? ChannelData.decode(stream: stream)) ?? nil {
        precondition(consumed >= ChannelData.headerLength + message.payload.count && consumed <= stream.count)
        stream = stream.dropFirst(consumed)
    }
    return 0
}
