// tern-bench: throughput of the data path, for `make bench` (not a test).
//
//   tern-bench sctp [BYTES]                      two SCTP associations in one process,
//                                                packets through the codec, no loss
//   tern-bench dtls [BYTES]                      two DTLS associations in one process after
//                                                the handshake: records sealed, framed,
//                                                checked and opened (the own record layer)
//   tern-bench receive RELAY CODE                one side of a real session: pairing through
//   tern-bench send RELAY CODE [BYTES]           the relay, ICE on UDP, DTLS, SCTP, one channel
//
// Each prints one line of JSON: bytes, seconds, MB/s, CPU seconds per GiB
// and peak resident memory of the process.
#if canImport(Glibc)
import Glibc
#endif
import TernDTLS
import TernDataChannel
import TernICE
import TernPairing
import TernRendezvous
import TernSCTP
import TernSession

let messageSize = 256 * 1024

struct Usage {
    var cpuSeconds: Double
    var peakResidentMiB: Double

    static func now() -> Usage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return Usage(cpuSeconds: cpu, peakResidentMiB: Double(usage.ru_maxrss) / 1024)
    }
}

func report(mode: String, bytes: Int, started: ContinuousClock.Instant, cpuBefore: Usage) {
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let usage = Usage.now()
    let gib = Double(bytes) / Double(1 << 30)
    let cpuPerGiB = (usage.cpuSeconds - cpuBefore.cpuSeconds) / gib
    print(#"{"mode":"\#(mode)","bytes":\#(bytes),"seconds":\#(rounded(seconds)),"MB_per_s":\#(rounded(Double(bytes) / seconds / 1e6)),"cpu_s_per_GiB":\#(rounded(cpuPerGiB)),"peak_rss_MiB":\#(rounded(usage.peakResidentMiB))}"#)
}

func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(message + "\n")
    exit(1)
}

enum FileHandle {
    static let standardError = FileHandle.Stderr()
    struct Stderr {
        func write(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        }
    }
}

/// In-process: two associations, every packet encoded and decoded.
func sctpPump(bytes total: Int) throws {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>
    var a = Association(configuration: .init(mtu: 1163))
    var b = Association(configuration: .init(mtu: 1163))
    var now = Duration.zero
    var bytes: [UInt8] = []
    func deliver(_ packet: Association.Packet, to side: inout Association) throws {
        // The encoder SecureChannels uses, into one reused buffer.
        try SCTPWire.encode(verificationTag: packet.verificationTag, chunks: packet.chunks, zeroChecksum: packet.zeroChecksum, into: &bytes)
        guard let decoded = SCTPWire.decode(bytes) else { fail("a packet did not decode") }
        side.handleChunks(decoded.chunks, verificationTag: decoded.verificationTag, now: now)
    }
    func exchange() throws -> Bool {
        var moved = false
        while let packet = a.pollTransmit(now: now) { try deliver(packet, to: &b); moved = true }
        while let packet = b.pollTransmit(now: now) { try deliver(packet, to: &a); moved = true }
        return moved
    }
    a.connect(now: now)
    while a.state != .established || b.state != .established {
        _ = try exchange()
        now += .milliseconds(1)
    }
    let message = [UInt8](repeating: 0xA5, count: messageSize)
    let cpuBefore = Usage.now()
    let started = ContinuousClock.now
    var queued = 0, received = 0
    while received < total {
        while queued < total && a.bufferedAmount(stream: 0) < 4 << 20 {
            try a.send(stream: 0, ppid: 53, payload: message, now: now)
            queued += messageSize
        }
        if try !exchange() {
            now += .milliseconds(1)
            a.advanceTime(now: now)
            b.advanceTime(now: now)
        }
        while let message = b.pollMessage() { received += message.payload.count }
    }
    report(mode: "sctp-in-process", bytes: received, started: started, cpuBefore: cpuBefore)
    FileHandle.standardError.write("sender SCTP: \(a.statistics)\n")
}

/// In-process: a DTLS client and server after the handshake, the client
/// writing full records (1200-byte datagrams), the server checking their
/// framing and opening them, through the calls SecureChannels makes
/// (`write(bytes:)`, `drainTransmit`, `handleDatagram(bytes:now:)`).
func dtlsPump(bytes total: Int) throws {
    let clientCertificate = try DTLSCertificate.generate()
    let serverCertificate = try DTLSCertificate.generate()
    let client = try DTLSAssociation(configuration: .init(
        role: .client, certificate: clientCertificate, expectedPeerFingerprint: serverCertificate.fingerprint))
    let server = try DTLSAssociation(configuration: .init(
        role: .server, certificate: serverCertificate, expectedPeerFingerprint: clientCertificate.fingerprint))
    let now = Duration.zero
    func deliver(from sender: DTLSAssociation, to receiver: DTLSAssociation) -> Bool {
        var moved = false
        sender.drainTransmit { datagrams, lengths in
            var start = 0
            for length in lengths {
                receiver.handleDatagram(bytes: UnsafeRawBufferPointer(rebasing: datagrams[start..<(start + length)]), now: now)
                start += length
                moved = true
            }
        }
        return moved
    }
    func exchange() -> Bool {
        let forward = deliver(from: client, to: server)
        let back = deliver(from: server, to: client)
        return forward || back
    }
    server.start(now: now)
    client.start(now: now)
    while !(client.isConnected && server.isConnected) {
        guard exchange() else { fail("the DTLS handshake stalled") }
    }
    // The server takes the records over once the client's data arrived.
    try client.write([0])
    _ = exchange()
    // With no event waiting, records go to the handler, not to events.
    while client.pollEvent() != nil {}
    while server.pollEvent() != nil {}
    var received = 0
    server.applicationDataHandler = { received += $0.count }
    guard client.ownsRecordLayer, server.ownsRecordLayer, let payload = client.maximumPayload else {
        fail("the own record layer did not take over")
    }
    let record = [UInt8](repeating: 0xA5, count: payload)
    let cpuBefore = Usage.now()
    let started = ContinuousClock.now
    while received < total {
        try record.withUnsafeBytes { bytes in
            for _ in 0..<32 { try client.write(bytes: bytes) }
        }
        _ = exchange()
    }
    report(mode: "dtls-in-process", bytes: received, started: started, cpuBefore: cpuBefore)
}

/// One side of a real session through a relay.
func session(sending: Bool, relay: String, code: String, bytes total: Int) async throws {
    let relayURL = try RelayURL(parsing: relay)
    let parsedCode = try Code(parsing: code)
    let pairing = try await PairingSession.pair(relay: relayURL, role: sending ? .sender : .receiver, code: parsedCode) { _ in }
    let certificate = try DTLSCertificate.generate()
    let role: ICERole = sending ? .controlling : .controlled
    var first: PeerMessage?
    if !sending {
        first = try await pairing.receive()
    }
    let (driver, path) = try await PeerConnection.connect(session: pairing, role: role, first: first, forceRelay: false, certificate: certificate)
    await pairing.close(mood: .happy)
    let channels = try await PeerConnection.secure(driver: driver, path: path, role: role, certificate: certificate)
    let cpuBefore = Usage.now()
    let started = ContinuousClock.now
    if sending {
        let stream = try await channels.open(label: "bench")
        let message = [UInt8](repeating: 0x5A, count: messageSize)
        var sent = 0
        while sent < total {
            try await channels.send(message, on: stream)
            sent += messageSize
        }
        // The receiver says when everything arrived.
        guard let done = try await channels.receive(), done.payload == Array("done".utf8) else {
            var reason = "no acknowledgement from the receiver"
            for await event in channels.events { reason += "; \(event)" }
            fail(reason)
        }
        report(mode: "send-udp-dtls-sctp", bytes: sent, started: started, cpuBefore: cpuBefore)
        if let statistics = await channels.statistics() { FileHandle.standardError.write("sender SCTP: \(statistics)\n") }
    } else {
        var received = 0
        var stream: UInt16 = 0
        while received < total {
            guard let message = try await channels.receive() else {
                var reason = "the channel ended after \(received) bytes"
                for await event in channels.events { reason += "; \(event)" }
                fail(reason)
            }
            stream = message.stream
            received += message.payload.count
        }
        try await channels.send(Array("done".utf8), binary: false, on: stream)
        report(mode: "receive-udp-dtls-sctp", bytes: received, started: started, cpuBefore: cpuBefore)
        try await Task.sleep(for: .milliseconds(200))
    }
    await channels.close()
    await driver.close()
}

let arguments = Array(CommandLine.arguments.dropFirst())
let gib = 1 << 30
do {
    switch arguments.first {
    case "sctp":
        try sctpPump(bytes: arguments.count > 1 ? Int(arguments[1]) ?? gib : gib)
    case "dtls":
        try dtlsPump(bytes: arguments.count > 1 ? Int(arguments[1]) ?? gib : gib)
    case "send", "receive":
        guard arguments.count >= 3 else { fail("usage: tern-bench send|receive RELAY CODE [BYTES]") }
        let total = arguments.count > 3 ? Int(arguments[3]) ?? gib : gib
        try await session(sending: arguments[0] == "send", relay: arguments[1], code: arguments[2], bytes: total)
    default:
        fail("usage: tern-bench sctp [BYTES] | dtls [BYTES] | send RELAY CODE [BYTES] | receive RELAY CODE [BYTES]")
    }
} catch {
    fail("tern-bench: \(error)")
}
