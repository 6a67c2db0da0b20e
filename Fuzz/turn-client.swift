// libFuzzer target for TernTURN's client: whatever a TURN server (or
// anyone spoofing it) sends, over UDP datagrams or a TCP byte stream, must
// never trap, never make the client send without bound, and never report an
// allocation that disagrees with its relayed address.
// Built by scripts/fuzz.sh against a static TernSTUN.
//
// Input: the first byte's bit 0 selects the transport (0 UDP, 1 TCP). Then
// chunks: a flags byte, a 2-byte big-endian length and that many bytes; the
// clock advances 100 ms between chunks. The chunk is fed as it is, unless
// flag bit 0 asks the harness to answer the client's latest request: the
// chunk is then decoded as a STUN message, given that request's transaction
// id and, with flag bit 1, signed with the long-term key (realm "fuzz"), so
// the fuzzer can reach the states after a successful Allocate.
#if canImport(TernSTUN)
import TernSTUN
#endif

private let server = STUNAddress.ipv4(198, 18, 0, 10, port: 3478)
private let peer = STUNAddress.ipv4(198, 18, 0, 12, port: 40000)
private let username = "1700000000:tern"
private let password = "fuzz-password"
private let key = try? STUNKey.longTerm(username: username, realm: "fuzz", password: password)

/// The fuzzer's message as an answer to `request`, or nil if it does not decode.
private func answer(_ chunk: ArraySlice<UInt8>, to request: STUNTransactionID, sign: Bool) -> [UInt8]? {
    guard var message = try? STUNMessage.decode(Array(chunk)) else { return nil }
    message.transactionID = request
    message.attributes.removeAll {
        switch $0 {
        case .messageIntegrity, .messageIntegritySHA256, .fingerprint: return true
        default: return false
        }
    }
    return try? message.encode(integrity: sign ? key : nil, fingerprint: true)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let mode = bytes.first else { return 0 }
    let tcp = mode & 1 == 1
    var client = TURNClient(configuration: .init(
        server: server, transport: tcp ? .tcp : .udp, username: username, password: password))
    var now = Duration.zero
    client.start(now: now)
    var lastRequest: STUNTransactionID?
    func drain() -> Int {
        var count = 0
        while let sent = client.pollTransmit() {
            count += 1
            if let header = try? STUNHeader.decode(sent), header.messageClass == .request { lastRequest = header.transactionID }
        }
        return count
    }
    var sent = drain()
    var offset = 1
    while offset + 3 <= bytes.count {
        let flags = bytes[offset]
        let length = Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        offset += 3
        var chunk = Array(bytes[offset..<min(bytes.count, offset + length)])
        offset += length
        if flags & 1 == 1, let lastRequest, let answered = answer(chunk[...], to: lastRequest, sign: flags & 2 == 2) {
            chunk = answered
        }
        if tcp {
            client.handleStreamBytes(chunk, now: now)
        } else {
            client.handleDatagram(chunk, now: now)
        }
        // Application data towards a peer, as ICE would send it.
        try? client.send([0, 1, 2, 3], to: peer, now: now)
        sent += drain()
        while let event = client.pollEvent() {
            if case .allocated(let relayed, _, _) = event, client.relayedAddress != relayed, !client.isFinished {
                fatalError("allocated event disagrees with relayedAddress")
            }
        }
        now += .milliseconds(100)
        client.advanceTime(now: now)
        sent += drain()
        // A chunk may cause a handful of requests and data messages, never a flood.
        if sent > 16 * (offset + 1) { fatalError("the client sent \(sent) messages for \(offset) input bytes") }
    }
    return 0
}
