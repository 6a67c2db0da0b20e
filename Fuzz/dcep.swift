// libFuzzer target for TernDataChannel's DCEP codec (RFC 8832). Built without
// SwiftPM, with the module's sources compiled into the same module:
//
//   (scripts/fuzz.sh builds TernWire as a library first)
//   swiftc -sanitize=fuzzer,address -parse-as-library -O -g -I Fuzz/out \
//     -module-name Fuzz_dcep Fuzz/dcep.swift Sources/TernDataChannel/DCEP.swift \
//     Sources/TernDataChannel/DataChannelError.swift Fuzz/out/libTernWire.a -o /tmp/dcep-fuzz
//   /tmp/dcep-fuzz -max_total_time=60 Fuzz/seeds/dcep
//
// Properties checked, besides "never traps":
// - a message that decodes re-encodes, the re-encoding decodes to the same
//   message, and encoding that again gives the same bytes;
// - an OPEN re-encodes to exactly the input (the format has one encoding);
// - what decodes under the default limits decodes the same under looser ones.
#if canImport(TernDataChannel)
import TernDataChannel
#endif

private let loose = DCEPLimits(maximumLabelLength: 65535, maximumProtocolLength: 65535)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let strict = try? DCEPMessage.decode(bytes)
    guard let message = try? DCEPMessage.decode(bytes, limits: loose) else {
        precondition(strict == nil, "a message decoded under the default limits but not under looser ones")
        return 0
    }
    if let strict { precondition(strict == message, "limits changed what a message decodes to") }

    do {
        let encoded = try message.encode(limits: loose)
        if case .open = message {
            precondition(encoded == bytes, "an OPEN did not re-encode to its input")
        }
        let again = try DCEPMessage.decode(encoded, limits: loose)
        precondition(again == message, "message changed in a round trip")
        let stable = try again.encode(limits: loose)
        precondition(stable == encoded, "encoding is not stable")
    } catch {
        preconditionFailure("round trip failed: \(error.reason)")
    }
    return 0
}
