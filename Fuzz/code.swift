// libFuzzer target for the code parser: whatever a person (or a script)
// types as a code. Built by `make fuzz` with TernRendezvous's sources.
//
// Properties checked, besides "never traps": an accepted code prints in its
// canonical form and parses back to itself; a rejection's reason carries no
// control characters.
#if canImport(TernRendezvous)
import TernRendezvous
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCode(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let code = try Code(parsing: text)
        precondition((try? Code(parsing: code.description)) == code, "code did not survive a round trip")
    } catch {
        precondition(!error.reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "control character in a reason")
    }
    return 0
}
