// libFuzzer target for the SDP parser: session descriptions come from the
// peer or a browser. Built by `make fuzz` with TernSDP's sources.
//
// Properties checked, besides "never traps": what parses writes out and
// parses back to the same description.
#if canImport(TernSDP)
import TernSDP
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSDP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let parsed = try? SessionDescription(parsing: text) {
        let again = try? SessionDescription(parsing: parsed.formatted())
        precondition(again == parsed, "SDP did not survive a round trip")
    }
    return 0
}
