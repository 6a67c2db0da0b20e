// libFuzzer target for the relay's frame parser (what every client sends)
// and the client's parser of relay frames. Built by `make fuzz` without
// SwiftPM, with TernRendezvous's sources compiled into this module.
//
// Properties checked, besides "never traps": a frame that decodes encodes
// again to a frame that decodes to the same value.
#if canImport(TernRendezvous)
import TernRendezvous
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRendezvousFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if let frame = try? ClientFrame(decoding: bytes, maxBodyBytes: 64 * 1024) {
        let again = try? ClientFrame(decoding: Array(frame.encoded().utf8), maxBodyBytes: 64 * 1024)
        precondition(again == frame, "client frame did not survive a round trip")
    }
    if let frame = try? RelayFrame(decoding: bytes) {
        let again = try? RelayFrame(decoding: Array(frame.encoded().utf8))
        precondition(again == frame, "relay frame did not survive a round trip")
    }
    return 0
}
