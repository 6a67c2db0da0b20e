import TernTestSupport
import Testing
import TernSTUN
import TernTURN

/// How the server's TCP bytes reach the client.
enum Chunking: Hashable, Sendable, CustomTestStringConvertible {
    /// Each server write in one piece.
    case whole
    /// Concatenated writes cut at random sizes 1...max.
    case random(max: Int)
    /// One byte at a time.
    case bytewise

    var testDescription: String {
        switch self {
        case .whole: return "whole"
        case .random(let max): return "random chunks up to \(max)"
        case .bytewise: return "one byte at a time"
        }
    }
}

/// A client, the fake server and a virtual clock, pumped in-process.
struct Harness {
    static let user = "alice"
    static let peer = STUNAddress.ipv4(192, 0, 2, 50, port: 5000)
    static let otherPeer = STUNAddress.ipv4(192, 0, 2, 77, port: 6000)

    var client: TURNClient
    var server: FakeTURNServer
    var now: Duration = .zero
    var events: [TURNEvent] = []
    let transport: TURNTransport
    var chunking: Chunking
    var random = SplitMix64(seed: 7)
    /// Server bytes not yet fed to the client (stream chunking).
    private var pendingStream: [UInt8] = []
    /// When set, every delivery to the client is recorded with the client as
    /// it was just before: the hostile-input tests replay cut copies of them.
    var recordDeliveries = false
    private(set) var deliveries: [(client: TURNClient, bytes: [UInt8])] = []

    init(
        transport: TURNTransport = .udp,
        chunking: Chunking = .whole,
        credentialLifetime: Int = 86_400,
        password: String? = nil,
        requestedLifetime: Duration = .seconds(600),
        configure: (inout TURNClient.Configuration) -> Void = { _ in },
        server: FakeTURNServer? = nil
    ) {
        let server = server ?? FakeTURNServer(transport: transport)
        let credentials = TestCrypto.restCredentials(
            secret: server.secret, user: Self.user, expiry: server.unixTimeAtZero + credentialLifetime)
        var configuration = TURNClient.Configuration(
            server: .ipv4(203, 0, 113, 9, port: 3478), transport: transport,
            username: credentials.username, password: password ?? credentials.password,
            requestedLifetime: requestedLifetime)
        configure(&configuration)
        self.client = TURNClient(configuration: configuration)
        self.server = server
        self.transport = transport
        self.chunking = chunking
    }

    /// Starts the client and runs until nothing moves.
    mutating func start() {
        client.start(now: now)
        pump()
    }

    /// Moves everything the client wants to send to the server and every
    /// answer back, until both are quiet.
    mutating func pump() {
        var rounds = 0
        while let bytes = client.pollTransmit() {
            rounds += 1
            guard rounds < 100_000 else {
                Issue.record("pump does not settle")
                return
            }
            switch transport {
            case .udp:
                for reply in server.receive(datagram: bytes, now: now) { toClient(reply) }
            case .tcp:
                let reply = server.receive(stream: bytes, now: now)
                if !reply.isEmpty { toClient(reply) }
            }
        }
        drainEvents()
    }

    mutating func drainEvents() {
        while let event = client.pollEvent() { events.append(event) }
    }

    /// Delivers server bytes to the client as the transport and chunking say.
    mutating func toClient(_ bytes: [UInt8]) {
        if recordDeliveries { deliveries.append((client, bytes)) }
        switch transport {
        case .udp:
            client.handleDatagram(bytes, now: now)
        case .tcp:
            pendingStream.append(contentsOf: bytes)
            while !pendingStream.isEmpty {
                let size: Int
                switch chunking {
                case .whole: size = pendingStream.count
                case .bytewise: size = 1
                case .random(let max): size = min(pendingStream.count, Int.random(in: 1...max, using: &random))
                }
                let chunk = Array(pendingStream.prefix(size))
                pendingStream.removeFirst(size)
                client.handleStreamBytes(chunk, now: now)
            }
        }
    }

    /// Runs every client timer due up to `target`, pumping after each.
    mutating func run(until target: Duration) {
        pump()
        var steps = 0
        while let deadline = client.nextDeadline, deadline <= target {
            steps += 1
            guard steps < 100_000 else {
                Issue.record("timers do not settle")
                return
            }
            now = max(now, deadline)
            client.advanceTime(now: now)
            pump()
        }
        now = max(now, target)
    }

    mutating func advance(by duration: Duration) {
        run(until: now + duration)
    }

    /// A fake peer sends to the relayed address.
    mutating func peerSends(_ data: [UInt8], from peer: STUNAddress = Harness.peer) {
        if let message = server.peerSend(data, from: peer, now: now) {
            toClient(message)
        }
        pump()
    }

    mutating func clientSends(_ data: [UInt8], to peer: STUNAddress = Harness.peer) throws {
        try client.send(data, to: peer, now: now)
        pump()
    }

    /// Events since the last call.
    mutating func takeEvents() -> [TURNEvent] {
        drainEvents()
        defer { events = [] }
        return events
    }

    /// Allocates and returns the harness ready for data.
    static func allocated(transport: TURNTransport = .udp, chunking: Chunking = .whole) -> Harness {
        var harness = Harness(transport: transport, chunking: chunking)
        harness.start()
        return harness
    }
}

extension TURNEvent {
    var isAllocated: Bool {
        if case .allocated = self { return true }
        return false
    }

    var failure: TURNError? {
        if case .failed(let error) = self { return error }
        return nil
    }

    var receivedData: (data: [UInt8], from: STUNAddress)? {
        if case .received(let data, let from) = self { return (data, from) }
        return nil
    }
}
