// libFuzzer target for TernDTLS after the handshake: what a connected
// association does with hostile datagrams once its own record layer protects
// application data. Built without SwiftPM, with the module's sources compiled
// into the same module (scripts/fuzz.sh builds TernCollections, TernCrypto
// and TernWire first):
//
//   swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
//     -module-name Fuzz_dtls_records -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium \
//     Fuzz/dtls-records.swift Sources/TernDTLS/*.swift \
//     Fuzz/out/libTernCollections.a Fuzz/out/libTernCrypto.a Fuzz/out/libTernWire.a \
//     -lssl -lcrypto -lsodium -o /tmp/dtls-records-fuzz
//   /tmp/dtls-records-fuzz -max_total_time=60 Fuzz/seeds/dtls-records
//
// One client/server pair is made once, handshaken in memory, and both sides
// hand over to their own record layer. Each input is then given to the
// server three ways: as it is (framing check, then the record layers); with
// a well-formed application-data header of epoch 1 in front, so the bytes
// reach the AES-GCM open; and as a genuine record from the client with one
// byte changed by the input. Properties checked, besides "never traps":
// - nothing is delivered that the client did not seal: no input makes the
//   server report application data (a forgery would have to guess a tag);
// - a genuine record, untouched, is delivered exactly once, before and
//   after the hostile input (the replay window and the association survive);
// - the association stays connected (hostile records are dropped, never
//   fatal), unless the input was an alert or handshake record OpenSSL
//   judges, in which case the pair is made anew.
#if canImport(TernDTLS)
import TernDTLS
#endif

/// The connected pair, made on first use and again if an input ended it.
private final class Pair {
    let client: DTLSAssociation
    let server: DTLSAssociation
    var now = Duration.seconds(100)

    init?() {
        guard let clientCertificate = try? DTLSCertificate.generate(),
              let serverCertificate = try? DTLSCertificate.generate(),
              let client = try? DTLSAssociation(configuration: .init(
                  role: .client, certificate: clientCertificate, expectedPeerFingerprint: serverCertificate.fingerprint)),
              let server = try? DTLSAssociation(configuration: .init(
                  role: .server, certificate: serverCertificate, expectedPeerFingerprint: clientCertificate.fingerprint))
        else { return nil }
        self.client = client
        self.server = server
        server.start(now: now)
        client.start(now: now)
        pump()
        // The server hands over once the client's data has arrived.
        try? client.write([0])
        pump()
        while server.pollEvent() != nil {}
        while client.pollEvent() != nil {}
        guard client.ownsRecordLayer, server.ownsRecordLayer else { return nil }
    }

    func pump() {
        for _ in 0..<50 {
            var moved = false
            while let datagram = client.pollTransmit() {
                moved = true
                server.handleDatagram(datagram, now: now)
            }
            while let datagram = server.pollTransmit() {
                moved = true
                client.handleDatagram(datagram, now: now)
            }
            if !moved { return }
        }
    }

    /// A genuine application-data datagram from the client.
    func sealed(_ bytes: [UInt8]) -> [UInt8]? {
        guard (try? client.write(bytes)) != nil else { return nil }
        return client.pollTransmit()
    }

    /// The server's data events since the last call.
    func delivered() -> [[UInt8]] {
        var data: [[UInt8]] = []
        while let event = server.pollEvent() {
            if case .data(let bytes) = event { data.append(bytes) }
        }
        return data
    }
}

nonisolated(unsafe) private var shared: Pair?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    if shared == nil || shared?.server.isConnected != true || shared?.client.isConnected != true { shared = Pair() }
    guard let pair = shared else { preconditionFailure("cannot make a connected DTLS pair") }

    // A genuine record first: it must arrive, once.
    let marker: [UInt8] = [0xC0, 0xFF, 0xEE, UInt8(truncatingIfNeeded: size)]
    guard let genuine = pair.sealed(marker) else { preconditionFailure("the client cannot seal") }
    pair.server.handleDatagram(genuine, now: pair.now)
    precondition(pair.delivered() == [marker], "a genuine record was not delivered")

    // 1. The input as a datagram.
    pair.server.handleDatagram(input, now: pair.now)
    // 2. Behind a well-formed application-data header of epoch 1, so that
    //    the bytes are opened (sequence number from the input's first bytes).
    var framed: [UInt8] = [23, 0xFE, 0xFD, 0, 1]
    for index in 0..<6 { framed.append(index < input.count ? input[index] : 0) }
    let body = input.count > 6 ? Array(input[6...].prefix(4000)) : []
    framed.append(UInt8(truncatingIfNeeded: body.count >> 8))
    framed.append(UInt8(truncatingIfNeeded: body.count))
    framed += body
    pair.server.handleDatagram(framed, now: pair.now)
    // 3. A fresh genuine record with one byte changed.
    if let next = pair.sealed(marker), !input.isEmpty {
        var altered = next
        let position = Int(input[0]) % altered.count
        let change = input.count > 1 ? input[1] | 1 : 1
        altered[position] ^= change
        pair.server.handleDatagram(altered, now: pair.now)
        // Whatever the change did, the genuine record itself still arrives
        // once: a forgery cannot have used up its sequence number.
        pair.server.handleDatagram(next, now: pair.now)
        let delivered = pair.delivered()
        if pair.server.isConnected {
            precondition(delivered == [marker], "delivered \(delivered) for one genuine record and hostile ones")
        } else {
            precondition(delivered.allSatisfy { $0 == marker }, "unsealed bytes were delivered before the association ended")
        }
    } else {
        precondition(pair.delivered().isEmpty || !pair.server.isConnected, "hostile bytes were delivered")
    }
    // The replay of the first genuine record is refused.
    pair.server.handleDatagram(genuine, now: pair.now)
    precondition(pair.delivered().isEmpty, "a replayed record was delivered again")
    // The client must not pile up datagrams nobody reads.
    while pair.client.pollTransmit() != nil {}
    while pair.server.pollTransmit() != nil {}
    while pair.client.pollEvent() != nil {}
    return 0
}
