// libFuzzer target for the LAN beacon's datagram parser: whatever any host
// on the local network sends to UDP 4748. Built by `make fuzz` with
// TernLAN's codec (LANMessage.swift, LANError.swift; no sockets) and TernWire.
//
// Properties checked, besides "never traps": an accepted datagram is no
// longer than the limit and re-encodes to exactly the same bytes (nothing
// in it was ignored); a rejection's reason carries no control characters.
#if canImport(TernLAN)
import TernLAN
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLANBeacon(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let message = try LANMessage(parsing: bytes)
        precondition(bytes.count <= LANLimits.maximumDatagramBytes, "accepted an oversized datagram")
        precondition((try? message.encoded()) == bytes, "an accepted datagram did not re-encode to itself")
    } catch {
        precondition(!error.reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "control character in a reason")
    }
    return 0
}
