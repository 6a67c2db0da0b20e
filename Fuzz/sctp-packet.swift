// libFuzzer target for TernSCTP's packet codec. Built without SwiftPM, with
// the module's sources compiled into the same module (so no import is needed):
//
//   (scripts/fuzz.sh builds TernCollections and TernWire as libraries first)
//   swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
//     -module-name Fuzz_sctp_packet -I Fuzz/out -I Sources/COpenSSL Fuzz/sctp-packet.swift \
//     Sources/TernSCTP/*.swift Fuzz/out/libTernCollections.a Fuzz/out/libTernWire.a -lcrypto -o /tmp/sctp-packet-fuzz
//   /tmp/sctp-packet-fuzz -max_total_time=60 Fuzz/seeds/sctp-packet
//
// A random input almost never carries its own CRC-32c, which would stop it at
// the checksum. So each input is decoded three ways: as it is; with its
// checksum field set to its CRC-32c, so the chunk parser sees it; and with a
// zero checksum under RFC 9653 acceptance.
//
// Properties checked, besides "never traps":
// - every slice a decoded chunk hands out lies inside the input;
// - the receiving data path's decoder (`SCTPWire.decode`: DATA straight to
//   the association's values) gives the general decoder's answer, a
//   refusal exactly where the general decoder throws;
// - a packet that decodes re-encodes (under the same limits), the
//   re-encoding decodes to the same packet, and encoding that again gives
//   the same bytes;
// - the zero-checksum encoding of a decoded packet decodes when zero is
//   accepted, and is rejected when it is not (unless it kept a real CRC).
#if canImport(TernSCTP)
import TernSCTP
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    _ = try? SCTPPacket.decode(bytes)
    if bytes.count > SCTPPacket.headerLength {
        _ = try? SCTPChunk.decode(bytes[SCTPPacket.headerLength...])
    }

    var fixed = bytes
    if fixed.count >= SCTPPacket.headerLength {
        let crc = SCTPPacket.checksum(of: fixed[...])
        for index in 0..<4 { fixed[8 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
    }
    check(fixed, acceptZeroChecksum: false)

    var zeroed = bytes
    if zeroed.count >= SCTPPacket.headerLength {
        for index in 8..<12 { zeroed[index] = 0 }
    }
    check(zeroed, acceptZeroChecksum: true)
    return 0
}

private func check(_ input: [UInt8], acceptZeroChecksum: Bool) {
    let fast = SCTPWire.decode(input[...], acceptZeroChecksum: acceptZeroChecksum)
    let general = (try? SCTPPacket.decode(input, acceptZeroChecksum: acceptZeroChecksum)).map {
        SCTPWire.Incoming(verificationTag: $0.verificationTag, chunks: $0.chunks.map { chunk in SCTPWire.model(chunk) })
    }
    precondition(fast == general, "the data path's decoder disagrees with the general one")
    let packet: SCTPPacket
    do {
        packet = try SCTPPacket.decode(input, acceptZeroChecksum: acceptZeroChecksum)
    } catch .checksumMismatch where !acceptZeroChecksum {
        preconditionFailure("a packet with its own CRC-32c failed the checksum")
    } catch {
        return
    }
    for chunk in packet.chunks {
        checkInside(chunk, count: input.count)
    }

    let encoded: [UInt8]
    do {
        encoded = try packet.encode()
    } catch {
        preconditionFailure("a decoded packet failed to encode: \(error.reason)")
    }
    precondition(encoded.count <= input.count, "re-encoding grew the packet")
    do {
        let again = try SCTPPacket.decode(encoded)
        precondition(again == packet, "packet changed in a round trip")
        let stable = try again.encode()
        precondition(stable == encoded, "encoding is not stable")
    } catch {
        preconditionFailure("a re-encoded packet failed to decode: \(error.reason)")
    }

    do {
        let zero = try packet.encode(zeroChecksum: true)
        let decoded = try SCTPPacket.decode(zero, acceptZeroChecksum: true)
        precondition(decoded == packet, "zero-checksum round trip changed the packet")
        if zero[8..<12] == [0, 0, 0, 0] && SCTPPacket.checksum(of: zero[...]) != 0 {
            precondition((try? SCTPPacket.decode(zero)) == nil, "a zero checksum passed without RFC 9653 acceptance")
        }
    } catch {
        preconditionFailure("zero-checksum round trip failed: \(error.reason)")
    }
}

/// Every slice in `chunk` indexes into a buffer of `count` bytes.
private func checkInside(_ chunk: SCTPChunk, count: Int) {
    func inside(_ slice: ArraySlice<UInt8>) {
        precondition(slice.startIndex >= 0 && slice.endIndex <= count, "a chunk reads past the end of the packet")
    }
    switch chunk {
    case .data(let data): inside(data.userData)
    case .heartbeat(let info), .heartbeatAck(let info), .cookieEcho(let info): inside(info)
    case .sack(let sack):
        inside(sack.gapAckBlocks.wireBytes)
        inside(sack.duplicateTSNs.wireBytes)
    case .forwardTSN(let forward): inside(forward.streams.wireBytes)
    case .unknown(let unknown): inside(unknown.value)
    case .initiation(let initChunk), .initiationAck(let initChunk):
        for case .stateCookie(let cookie) in initChunk.parameters { inside(cookie) }
        for case .unknown(_, let value) in initChunk.parameters { inside(value) }
    case .abort(_, let causes), .error(let causes):
        for case .unknown(_, let info) in causes { inside(info) }
    default: break
    }
}
