import TernDTLS

/// Two associations in one process, handing datagrams to each other
/// directly, on a virtual clock. A `filter` sees every datagram and may drop
/// it; every datagram is also logged, so tests can inspect sizes.
final class Pair {
    enum Side: Hashable, CustomStringConvertible {
        case client, server
        var description: String { self == .client ? "client" : "server" }
    }

    struct Sent {
        var from: Side
        var bytes: [UInt8]
    }

    let clientCertificate: DTLSCertificate
    let serverCertificate: DTLSCertificate
    let client: DTLSAssociation
    let server: DTLSAssociation
    var now: Duration = .seconds(100)
    var clientEvents: [DTLSEvent] = []
    var serverEvents: [DTLSEvent] = []
    /// Every datagram either side produced, dropped or not, in order.
    var log: [Sent] = []
    /// Return false to drop the datagram. `index` counts that side's datagrams from 0.
    var filter: (_ from: Side, _ index: Int, _ bytes: [UInt8]) -> Bool = { _, _, _ in true }
    private var counts: [Side: Int] = [:]

    /// - Parameters:
    ///   - configure: adjusts both configurations (MTU, timers).
    ///   - clientExpects / serverExpects: replace the fingerprint each side checks for.
    init(
        configure: (inout DTLSAssociation.Configuration) -> Void = { _ in },
        clientExpects: DTLSFingerprint? = nil,
        serverExpects: DTLSFingerprint? = nil,
        certificates: (DTLSCertificate, DTLSCertificate)? = nil
    ) throws {
        if let certificates {
            (clientCertificate, serverCertificate) = certificates
        } else {
            clientCertificate = try DTLSCertificate.generate()
            serverCertificate = try DTLSCertificate.generate()
        }
        var clientConfiguration = DTLSAssociation.Configuration(
            role: .client, certificate: clientCertificate,
            expectedPeerFingerprint: clientExpects ?? serverCertificate.fingerprint
        )
        var serverConfiguration = DTLSAssociation.Configuration(
            role: .server, certificate: serverCertificate,
            expectedPeerFingerprint: serverExpects ?? clientCertificate.fingerprint
        )
        configure(&clientConfiguration)
        configure(&serverConfiguration)
        client = try DTLSAssociation(configuration: clientConfiguration)
        server = try DTLSAssociation(configuration: serverConfiguration)
    }

    func association(_ side: Side) -> DTLSAssociation { side == .client ? client : server }

    func start() {
        server.start(now: now)
        client.start(now: now)
    }

    /// Moves datagrams both ways until neither side has anything to send.
    /// Returns how many rounds it took; stops after `limit` rounds.
    @discardableResult
    func pump(limit: Int = 100) -> Int {
        for round in 0..<limit {
            collectEvents()
            var moved = false
            for side in [Side.client, .server] {
                let from = association(side)
                let to = association(side == .client ? .server : .client)
                while let datagram = from.pollTransmit() {
                    moved = true
                    log.append(Sent(from: side, bytes: datagram))
                    let index = counts[side, default: 0]
                    counts[side] = index + 1
                    if filter(side, index, datagram) {
                        to.handleDatagram(datagram, now: now)
                    }
                }
            }
            collectEvents()
            if !moved { return round }
        }
        return limit
    }

    /// Starts and pumps until both sides are connected (or nothing moves).
    func handshake() {
        start()
        pump()
    }

    /// Moves the virtual clock to the earliest deadline of either side and
    /// runs the timers.
    func advanceToNextDeadline() {
        let deadlines = [client.nextDeadline, server.nextDeadline].compactMap { $0 }
        guard let next = deadlines.min() else { return }
        now = max(now, next)
        client.advanceTime(now: now)
        server.advanceTime(now: now)
        collectEvents()
    }

    func collectEvents() {
        while let event = client.pollEvent() { clientEvents.append(event) }
        while let event = server.pollEvent() { serverEvents.append(event) }
    }

    func events(_ side: Side) -> [DTLSEvent] { side == .client ? clientEvents : serverEvents }

    /// Takes the events seen so far for one side.
    func takeEvents(_ side: Side) -> [DTLSEvent] {
        collectEvents()
        defer {
            if side == .client { clientEvents = [] } else { serverEvents = [] }
        }
        return events(side)
    }

    /// The data events of one side, concatenated per event.
    func received(_ side: Side) -> [[UInt8]] {
        events(side).compactMap { event in
            if case .data(let bytes) = event { return bytes }
            return nil
        }
    }
}

extension DTLSEvent {
    var isConnected: Bool {
        if case .connected = self { return true }
        return false
    }

    var isData: Bool {
        if case .data = self { return true }
        return false
    }

    var failure: DTLSError? {
        if case .failed(let error) = self { return error }
        return nil
    }
}

/// A small seeded generator (SplitMix64), so random tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// Reads a record header field: the record's content type, epoch and length.
struct RecordHeader {
    var type: UInt8
    var epoch: UInt16
    var length: Int

    init?(_ bytes: ArraySlice<UInt8>) {
        guard bytes.count >= 13 else { return nil }
        let start = bytes.startIndex
        type = bytes[start]
        epoch = UInt16(bytes[start + 3]) << 8 | UInt16(bytes[start + 4])
        length = Int(bytes[start + 11]) << 8 | Int(bytes[start + 12])
    }

    /// Every record header in a datagram.
    static func all(in datagram: [UInt8]) -> [RecordHeader] {
        var headers: [RecordHeader] = []
        var offset = 0
        while let header = RecordHeader(datagram[offset...]) {
            headers.append(header)
            offset += 13 + header.length
            if offset >= datagram.count { break }
        }
        return headers
    }
}

extension Pair {
    /// OpenSSL 3.0 times retransmissions with the real clock: waits (for
    /// real) as long as the earliest deadline is ahead of the virtual clock,
    /// then moves the virtual clock there and runs the timers.
    func waitForNextDeadline() async throws {
        let deadlines = [client.nextDeadline, server.nextDeadline].compactMap { $0 }
        guard let next = deadlines.min() else { return }
        if next > now { try await Task.sleep(for: next - now + .milliseconds(2)) }
        advanceToNextDeadline()
    }
}
