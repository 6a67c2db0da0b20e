import Foundation
import Testing
import TernPairing
import TernRendezvous
import TernSession
import TernSTUN
import TernTestSupport

/// A real `tern relay` process, driven by real WebSocket clients.
@Suite(.serialized) struct RelayProcessTests {
    static func connect(_ relay: RelayProcess) async throws -> (RelayConnection, AsyncThrowingStream<RelayFrame, Error>.Iterator) {
        let connection = try await RelayConnection.connect(to: try RelayURL(parsing: relay.url))
        var frames = connection.frames.makeAsyncIterator()
        guard case .welcome? = try await frames.next() else { throw ProcessTimeout(command: "welcome") }
        return (connection, frames)
    }

    /// Pairs two sessions through the relay and checks a sealed round trip.
    static func pairOnce(relay: RelayURL, label: String) async throws {
        async let receiverDone: Void = {
            // The receiver learns the code from the sender through this stream.
            let code = try await codes(for: label).wait()
            let receiver = try await PairingSession.pair(relay: relay, role: .receiver, code: code) { _ in }
            guard case .offer(let offer) = try await receiver.receive(), offer.entries.first?.name == label else {
                throw ProcessTimeout(command: "offer for \(label)")
            }
            try await receiver.send(.answer(accept: true, reason: label))
            await receiver.close(mood: .happy)
        }()
        let sender = try await PairingSession.pair(relay: relay, role: .sender, code: nil) { event in
            if case .code(let code) = event { codes(for: label).set(code) }
        }
        try await sender.send(.offer(Offer(entries: [OfferEntry(name: label, kind: .file, size: 1, files: 1)])))
        guard case .answer(true, label) = try await sender.receive() else { throw ProcessTimeout(command: "answer for \(label)") }
        await sender.close(mood: .happy)
        try await receiverDone
    }

    @Test func healthEndpointAnswers() async throws {
        let relay = try await RelayProcess.start()
        let (data, response) = try await httpGet(port: relay.port, path: "/health")
        #expect(response.contains("200 OK"))
        #expect(data.contains(#""status":"ok""#))
        let (_, missing) = try await httpGet(port: relay.port, path: "/nope")
        #expect(missing.contains("404"))
        try await relay.stop()
    }

    @Test func malformedAndOversizeFramesCloseOnlyTheirConnection() async throws {
        let relay = try await RelayProcess.start(["--max-message-bytes", "1024"])
        let url = try RelayURL(parsing: relay.url)
        // Abusers, each on its own connection.
        let abuses: [(String, String)] = [
            ("not json at all", "malformed"),
            (#"{"type":"add","seq":0,"body":"AA=="}"#, "out-of-order"),
            (#"{"type":"claim","nameplate":"1","side":"zz"}"#, "malformed"),
            (ClientFrame.allocate(side: .random()).encoded().replacingOccurrences(of: "allocate", with: "explode"), "malformed"),
            (ClientFrame.add(seq: 0, body: [UInt8](repeating: 7, count: 4096)).encoded(), "too-large"),
        ]
        for (text, code) in abuses {
            let (connection, frames) = try await Self.connect(relay)
            var iterator = frames
            try await connection.sendRaw(text)
            let reply = try await iterator.next()
            guard case .error(let got, _)? = reply else {
                Issue.record("expected an error for \(text.prefix(40)), got \(String(describing: reply))")
                continue
            }
            #expect(got.rawValue == code)
            // Then the relay closes that connection.
            #expect(try await iterator.next() == nil)
        }
        // A frame far over the WebSocket limit, and a binary frame.
        let (big, bigFrames) = try await Self.connect(relay)
        var bigIterator = bigFrames
        try await big.sendRaw(String(repeating: "x", count: 200_000))
        if case .error(let code, _)? = try? await bigIterator.next() { #expect(code == .tooLarge) } else { Issue.record("oversize WebSocket frame not refused") }
        let (binary, binaryFrames) = try await Self.connect(relay)
        var binaryIterator = binaryFrames
        try await binary.sendRaw("{}", opcode: .binary)
        if case .error(let code, _)? = try? await binaryIterator.next() { #expect(code == .malformed) } else { Issue.record("binary frame not refused") }

        // Meanwhile pairings carry on.
        try await Self.pairOnce(relay: url, label: "still-works")
        #expect(relay.running.process.isRunning)
        try await relay.stop()
    }

    @Test func aClientCanReconnectAndAttachWithoutLosingMessages() async throws {
        let relay = try await RelayProcess.start()
        let (alice, aliceFramesStart) = try await Self.connect(relay)
        var aliceFrames = aliceFramesStart
        let aliceSide = Identifier.random()
        try await alice.send(.allocate(side: aliceSide))
        guard case .allocated(let nameplate, let mailbox)? = try await aliceFrames.next() else { Issue.record("no allocation"); return }
        let (bob, bobFramesStart) = try await Self.connect(relay)
        var bobFrames = bobFramesStart
        try await bob.send(.claim(nameplate: nameplate, side: .random()))
        guard case .claimed? = try await bobFrames.next() else { Issue.record("no claim"); return }
        try await bob.send(.add(seq: 0, body: [1]))
        #expect(try await aliceFrames.next() == .message(seq: 0, body: [1]))
        // Alice's connection drops; Bob adds two more; Alice comes back.
        await alice.close()
        try await Task.sleep(for: .milliseconds(100))
        try await bob.send(.add(seq: 1, body: [2]))
        try await bob.send(.add(seq: 2, body: [3]))
        let (alice2, alice2FramesStart) = try await Self.connect(relay)
        var alice2Frames = alice2FramesStart
        try await alice2.send(.attach(mailbox: mailbox, side: aliceSide, received: 1))
        #expect(try await alice2Frames.next() == .attached(mailbox: mailbox))
        #expect(try await alice2Frames.next() == .message(seq: 1, body: [2]))
        #expect(try await alice2Frames.next() == .message(seq: 2, body: [3]))
        try await relay.stop()
    }

    @Test func welcomeCarriesTheSTUNAddressAndPairedSidesGetTURNCredentials() async throws {
        let relay = try await RelayProcess.start(["--turn-uri", "turn:127.0.0.1:3478?transport=udp", "--turn-secret", "s3cret", "--turn-ttl", "600"])
        let connection = try await RelayConnection.connect(to: try RelayURL(parsing: relay.url))
        var frames = connection.frames.makeAsyncIterator()
        guard case .welcome(let welcome)? = try await frames.next() else { Issue.record("no welcome"); return }
        #expect(welcome.stun == ["stun:127.0.0.1:\(try #require(relay.stunPort))"])
        // Not to every connection: only once both sides are in a mailbox.
        #expect(welcome.turn == nil)
        try await connection.send(.allocate(side: .random()))
        guard case .allocated(let nameplate, _)? = try await frames.next() else { Issue.record("no allocation"); return }
        let (peer, peerFramesStart) = try await Self.connect(relay)
        var peerFrames = peerFramesStart
        try await peer.send(.claim(nameplate: nameplate, side: .random()))
        guard case .claimed? = try await peerFrames.next(), case .turn(let peerTurn)? = try await peerFrames.next() else {
            Issue.record("the claiming side got no turn frame"); return
        }
        guard case .turn(let turn)? = try await frames.next() else { Issue.record("the waiting side got no turn frame"); return }
        #expect(peerTurn.uris == turn.uris)
        let (health, _) = try await httpGet(port: relay.port, path: "/health")
        #expect(health.contains(#""turn_issued":2"#), "\(health)")
        await peer.close()
        #expect(turn.uris == ["turn:127.0.0.1:3478?transport=udp"])
        let parts = turn.username.split(separator: ":")
        let expiry = try #require(Int(parts[0]))
        let now = Int(Date().timeIntervalSince1970)
        #expect(expiry > now + 590 && expiry <= now + 601)
        // coturn's check: base64(HMAC-SHA1(secret, username)), computed here with openssl.
        let openssl = try RunningProcess(executable: URL(fileURLWithPath: "/bin/sh"),
                                         arguments: ["-c", "printf %s '\(turn.username)' | openssl dgst -sha1 -hmac s3cret -binary | base64"])
        #expect(try await openssl.wait() == 0)
        #expect(openssl.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines) == turn.credential)
        await connection.close()
        try await relay.stop()
    }

    @Test func stopsCleanlyOnSIGTERMAndSIGINT() async throws {
        let relay = try await RelayProcess.start()
        #expect(try await relay.stop() == 0)
        #expect(relay.running.stderr.text.contains("relay stopped"))
        let other = try await RelayProcess.start()
        other.running.signal(SIGINT)
        #expect(try await other.running.wait(timeout: 10) == 0)
    }
}

/// Hands a code from the sending task to the receiving task of one pairing.
final class CodeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var code: Code?

    func set(_ code: Code) {
        lock.withLock { self.code = code }
    }

    /// The code, once the sender has it: up to 120 s (a loaded machine
    /// running 500 pairings at once).
    func wait() async throws -> Code {
        for _ in 0..<12000 {
            if let code = lock.withLock({ self.code }) { return code }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ProcessTimeout(command: "a code")
    }
}

private let codeBoxes = NSLockedBoxes()

func codes(for label: String) -> CodeBox { codeBoxes.box(label) }

final class NSLockedBoxes: @unchecked Sendable {
    private let lock = NSLock()
    private var boxes: [String: CodeBox] = [:]

    func box(_ label: String) -> CodeBox {
        lock.lock()
        defer { lock.unlock() }
        if let box = boxes[label] { return box }
        let box = CodeBox()
        boxes[label] = box
        return box
    }
}

/// User plus system CPU time a process has used, in seconds.
func cpuSeconds(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// VmHWM of a process, in KiB.
func peakMemoryKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}


/// The relay's STUN responder over a real UDP socket.
@Suite struct RelaySTUNTests {
    @Test func answersABindingRequestWithTheReflexiveAddress() async throws {
        let relay = try await RelayProcess.start()
        let port = try #require(relay.stunPort)
        let transaction = STUNTransactionID.random()
        let request = try STUNMessage(.request, .binding, transactionID: transaction, attributes: []).encode(fingerprint: true)
        let socket = try UDPTestSocket()
        let reply = try socket.exchange(request, port: UInt16(port))
        let response = try STUNMessage.decode(reply)
        #expect(response.transactionID == transaction)
        #expect(response.messageClass == .successResponse)
        let mapped = try #require(response.xorMappedAddress)
        #expect(mapped == STUNAddress.ipv4(127, 0, 0, 1, port: socket.localPort))
        try STUNMessage.checkFingerprint(of: reply)
        // Garbage gets no answer, and the responder keeps serving.
        #expect(throws: (any Error).self) { try socket.exchange([0xde, 0xad, 0xbe, 0xef], port: UInt16(port), timeoutMilliseconds: 200) }
        _ = try socket.exchange(request, port: UInt16(port))
        let (health, _) = try await httpGet(port: relay.port, path: "/health")
        #expect(health.contains(#""stun_answered":2,"stun_dropped":1"#), "\(health)")
        try await relay.stop()
    }
}
