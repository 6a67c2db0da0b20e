// libFuzzer target for ICE candidate and attribute lines (RFC 8839): they
// come from the peer through the sealed channel, or from a browser. Built by
// `make fuzz` with TernICE's and TernSTUN's sources.
//
// Properties checked, besides "never traps": a candidate that parses writes
// out a line that parses back to the same candidate.
#if canImport(TernICE)
import TernICE
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzICECandidate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if case .candidate(let candidate)? = try? ICECandidate.parse(text) {
        guard case .candidate(let again)? = try? ICECandidate.parse(candidate.sdpAttribute) else {
            preconditionFailure("a parsed candidate did not parse back")
        }
        precondition(again == candidate, "candidate did not survive a round trip")
    }
    _ = try? ICESDPAttribute.parse(text)
    return 0
}
