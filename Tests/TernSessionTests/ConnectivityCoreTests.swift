import Testing
import TernICE
import TernPairing
import TernRendezvous
import TernSTUN
import TernTestSupport
@testable import TernSession

/// Two `ConnectivityCore`s wired to each other through an in-memory network
/// on a virtual clock: no socket, no event loop, no wall clock. Each side
/// has one host address on each of two networks (10.0/16 and 10.1/16), as a
/// laptop on Wi-Fi and Ethernet at once; a datagram leaves from the
/// address on its destination's network (as the kernel's connected route
/// picks it), and each network has its own delay, loss and whether it
/// carries anything at all.
struct VirtualConnectivity {
    struct Network {
        var delay: Duration = .milliseconds(5)
        var loss = 0.0
        var up = true
    }

    struct Side {
        var core: ConnectivityCore
        var addresses: [[UInt8]]
        var port: UInt16
        var connected: (path: ConnectedPath, at: Duration)?
        var failed: (error: SessionError, at: Duration)?
        var selections: [(path: ConnectedPath, directRemote: STUNAddress?, at: Duration)] = []
        var pathChanges: [(path: ConnectedPath, at: Duration)] = []
        var application: [[UInt8]] = []
        /// `restarting` outputs: an ICE restart began (true) or found a pair (false).
        var restarting: [(underway: Bool, at: Duration)] = []
        var pathLost: [(reason: String, at: Duration)] = []
    }

    enum Delivery {
        case datagram([UInt8], from: STUNAddress, to: STUNAddress)
        case signal(PeerMessage)
    }

    struct InFlight {
        var at: Duration
        var sequence: Int
        var side: Int
        var delivery: Delivery
    }

    var sides: [Side]
    /// By the second byte of the address (10.N.0.x).
    var networks: [UInt8: Network] = [0: Network(), 1: Network()]
    /// Signalling through the relay's mailbox.
    var signallingDelay: Duration = .milliseconds(30)
    /// Nothing signalled by a side reaches the other.
    var signallingCut: Set<Int> = []
    var now: Duration = .zero
    var random = SplitMix64(seed: 13)
    /// A TURN server for side 0 (`init(turn: true)`), reachable from any address.
    var turn: VirtualTURN?
    private var queue: [InFlight] = []
    private var sequence = 0
    private(set) var datagramsLost = 0

    init(failureTimeout: Duration = .seconds(10), signallingTimeout: Duration? = nil, turn: Bool = false) throws {
        let uri = "turn:10.9.0.1:3478?transport=udp"
        func side(_ role: ICERole, host: UInt8, port: UInt16, turn: Bool) throws -> Side {
            let credentials = turn ? TURNCredentials(uris: [uri], username: "user", credential: "secret", ttl: 600) : nil
            var options = ConnectivityOptions(role: role, stun: [], turn: credentials, failureTimeout: failureTimeout)
            if let signallingTimeout { options.signallingTimeout = signallingTimeout }
            let servers = turn ? [(uri: try ServerURI(parsing: uri), address: VirtualTURN.server)] : []
            let core = try ConnectivityCore(options: options, stunServers: [], turnServers: servers)
            return Side(core: core, addresses: [[10, 0, 0, host], [10, 1, 0, host]], port: port)
        }
        sides = [try side(.controlling, host: 1, port: 40001, turn: turn), try side(.controlled, host: 2, port: 40002, turn: false)]
        if turn { self.turn = VirtualTURN() }
    }

    mutating func start() {
        for index in sides.indices {
            sides[index].core.start(localPort: sides[index].port, dualStack: false, addresses: sides[index].addresses, now: now)
            drain(index)
        }
    }

    /// Carries out side `index`'s outputs: datagrams onto the network,
    /// signals into the mailbox, events into the record.
    mutating func drain(_ index: Int) {
        while let output = sides[index].core.pollOutput() {
            switch output {
            case .datagram(let bytes, let destination, _, _):
                send(bytes, from: index, to: destination)
            case .signal(let message):
                guard !signallingCut.contains(index) else { continue }
                enqueue(at: now + signallingDelay, side: 1 - index, .signal(message))
            case .selected(let path, let directRemote):
                sides[index].selections.append((path, directRemote, now))
            case .connected(let path):
                sides[index].connected = (path, now)
            case .pathChanged(let path):
                sides[index].pathChanges.append((path, now))
            case .failed(let error):
                sides[index].failed = (error, now)
            case .application(let bytes, _):
                sides[index].application.append(bytes)
            case .restarting(let underway):
                sides[index].restarting.append((underway, now))
            case .pathLost(let reason):
                sides[index].pathLost.append((reason, now))
            case .streamBytes, .connectStream:
                break
            case .probeRouter(let address):
                sides[index].core.routerProbed(address, answersUnsolicited: false, now: now)
            }
        }
    }

    /// The address side `index` sends from towards `destination`: its own
    /// address on the destination's network.
    func source(of index: Int, towards destination: STUNAddress) -> STUNAddress? {
        guard let ip = sides[index].addresses.first(where: { $0[1] == destination.ipBytes[1] }) else { return nil }
        return STUNAddress(ipBytes: ip, port: sides[index].port)
    }

    mutating func send(_ bytes: [UInt8], from index: Int, to destination: STUNAddress) {
        if var server = turn, server.serves(destination) {
            // To the TURN server or a relayed address: from the side's first
            // address (its default route), on whatever network.
            guard let ip = sides[index].addresses.first, let source = STUNAddress(ipBytes: ip, port: sides[index].port) else { return }
            for out in server.receive(bytes, from: source, to: destination) {
                // To whichever side has that address now (none: lost).
                guard let side = sides.indices.first(where: { sides[$0].addresses.contains(out.to.ipBytes) && sides[$0].port == out.to.port })
                else {
                    datagramsLost += 1
                    continue
                }
                enqueue(at: now + .milliseconds(5), side: side, .datagram(out.bytes, from: out.from, to: out.to))
            }
            turn = server
            return
        }
        let peer = 1 - index
        guard let source = source(of: index, towards: destination),
              sides[peer].addresses.contains(destination.ipBytes), destination.port == sides[peer].port,
              let network = networks[destination.ipBytes[1]], network.up,
              Double.random(in: 0..<1, using: &random) >= network.loss
        else {
            datagramsLost += 1
            return
        }
        enqueue(at: now + network.delay, side: peer, .datagram(bytes, from: source, to: destination))
    }

    /// A datagram of the layer above from side `index` on its selected pair.
    mutating func sendApplication(_ bytes: [UInt8], from index: Int) {
        switch sides[index].core.routeApplication(bytes, now: now) {
        case .direct(let destination):
            send(bytes, from: index, to: destination)
        case .relayed:
            // Wrapped by the TURN client: out with the next pump.
            sides[index].core.pump(now: now)
            drain(index)
        case .dropped:
            break
        }
    }

    /// Sends numbered records (`ConnectivityCoreTests.record`) from side 0,
    /// one every 20 ms until `end`, running the network meanwhile; returns
    /// how many were sent.
    mutating func sendRecords(until end: Duration) -> Int {
        var sent = 0
        while now < end {
            sent += 1
            sendApplication(ConnectivityCoreTests.record(sent), from: 0)
            run(until: now + .milliseconds(20))
        }
        return sent
    }

    private mutating func enqueue(at time: Duration, side: Int, _ delivery: Delivery) {
        sequence += 1
        queue.append(InFlight(at: time, sequence: sequence, side: side, delivery: delivery))
    }

    /// Runs the network and both cores' timers until `until` or until
    /// `done` holds, whichever comes first.
    mutating func run(until limit: Duration, while keepGoing: (VirtualConnectivity) -> Bool = { _ in true }) {
        while keepGoing(self) {
            let arrival = queue.min { ($0.at, $0.sequence) < ($1.at, $1.sequence) }
            let deadlines = sides.compactMap(\.core.nextDeadline)
            let next = ([arrival?.at].compactMap { $0 } + deadlines).min()
            guard let next, next <= limit else {
                now = max(now, limit)
                return
            }
            now = max(now, next)
            if let arrival, arrival.at <= now {
                queue.removeAll { $0.sequence == arrival.sequence }
                switch arrival.delivery {
                case .datagram(let bytes, let source, let destination):
                    sides[arrival.side].core.handleDatagram(bytes, from: source, to: destination.ipBytes, now: now)
                case .signal(let message):
                    sides[arrival.side].core.handleSignal(message, now: now)
                }
                drain(arrival.side)
            }
            for index in sides.indices {
                if let deadline = sides[index].core.nextDeadline, deadline <= now {
                    sides[index].core.advanceTime(now: now)
                    drain(index)
                }
            }
        }
    }

    var bothConnected: Bool { sides.allSatisfy { $0.connected != nil } }
}

@Suite struct ConnectivityCoreTests {
    /// A DTLS-looking datagram (first byte 23: application data) numbered `n`.
    static func record(_ n: Int) -> [UInt8] {
        [23, 0xfe, 0xfd, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
    }

    @Test func twoCoresConnectOnTheVirtualNetwork() throws {
        var net = try VirtualConnectivity()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        let a = try #require(net.sides[0].connected), b = try #require(net.sides[1].connected)
        // One pair, seen from both ends; direct (host to host).
        #expect(a.path.pair.remote.address == b.path.pair.localBase)
        #expect(b.path.pair.remote.address == a.path.pair.localBase)
        #expect(!a.path.isRelayed && !b.path.isRelayed)
        #expect(net.sides[0].selections.last?.directRemote == a.path.pair.remote.address)
        // Signalling (30 ms each way) and a few 5 ms round trips.
        #expect(a.at < .milliseconds(500) && b.at < .milliseconds(500))
        #expect(net.sides[0].core.isConnected && net.sides[1].core.isConnected)

        // Data both ways on the selected pair.
        net.sendApplication(Self.record(1), from: 0)
        net.sendApplication(Self.record(2), from: 1)
        net.run(until: net.now + .milliseconds(50))
        #expect(net.sides[1].application == [Self.record(1)])
        #expect(net.sides[0].application == [Self.record(2)])
    }

    @Test func connectsThroughLossyNetworks() throws {
        var net = try VirtualConnectivity()
        net.networks[0]?.loss = 0.3
        net.networks[1]?.loss = 0.3
        net.networks[1]?.delay = .milliseconds(40)
        net.start()
        net.run(until: .seconds(10)) { !$0.bothConnected }
        #expect(net.bothConnected)
        #expect(net.datagramsLost > 0)
        #expect(net.sides.allSatisfy { $0.failed == nil })
    }

    @Test func failsOverWhenTheSelectedNetworkGoesSilent() throws {
        var net = try VirtualConnectivity()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        #expect(net.bothConnected)
        // Let the backup pairs' checks settle (the agents check a backup every 4-6 s).
        net.run(until: net.now + .seconds(8))
        let before = try #require(net.sides[0].connected?.path.pair)
        let selectedNetwork = before.remote.address.ipBytes[1]
        net.networks[selectedNetwork]?.up = false
        let cut = net.now

        // A message every 20 ms across the cut: those sent after both sides
        // moved must all arrive.
        let sent = net.sendRecords(until: cut + .seconds(8))
        for side in net.sides {
            let change = try #require(side.pathChanges.last)
            #expect(change.path.replacedLostPath)
            #expect(change.path.pair.remote.address.ipBytes[1] != selectedNetwork)
            // Silence for the failover timeout (2.5 s), plus a check's round.
            #expect(change.at > cut && change.at - cut < .seconds(5))
        }
        let moves = net.sides.compactMap { $0.pathChanges.last?.at }
        let moved = try #require(moves.max())
        let firstAfter = Int((moved - cut) / .milliseconds(20)) + 2
        let received = Set(net.sides[1].application)
        for n in firstAfter...sent { #expect(received.contains(Self.record(n)), "message \(n) of \(sent) lost after the move") }
        #expect(net.sides.allSatisfy { $0.failed == nil })
    }

    @Test func aFailedSendMovesToTheBackupPairAtOnce() throws {
        var net = try VirtualConnectivity()
        net.start()
        net.run(until: .seconds(5)) { !$0.bothConnected }
        net.run(until: net.now + .seconds(8))
        let selected = try #require(net.sides[0].core.selected?.pair)
        // The shell reports that the kernel refused a send on the selected pair.
        let moved = net.sides[0].core.sendFailed(to: selected.remote.address, now: net.now)
        #expect(moved)
        net.drain(0)
        let change = try #require(net.sides[0].pathChanges.last)
        #expect(change.at == net.now)
        #expect(change.path.replacedLostPath)
        #expect(change.path.pair.remote.address != selected.remote.address)
        // A failed send to an address that is not the selected pair's changes nothing.
        let other = try #require(STUNAddress(ipBytes: [10, 9, 0, 9], port: 1))
        let movedAgain = net.sides[0].core.sendFailed(to: other, now: net.now)
        #expect(!movedAgain)
    }

    @Test func givesUpAtTheICETimeoutWhenNothingGetsThrough() throws {
        var net = try VirtualConnectivity(failureTimeout: .seconds(10))
        net.networks[0]?.up = false
        net.networks[1]?.up = false
        net.start()
        net.run(until: .seconds(30)) { net in net.sides.contains { $0.failed == nil } }
        for side in net.sides {
            let failure = try #require(side.failed)
            guard case .noPath(let sentence) = failure.error else {
                Issue.record("expected noPath, got \(failure.error)")
                continue
            }
            #expect(sentence.contains("host→host"), "\(sentence)")
            // Ten seconds without progress from the peer's credentials (30 ms in).
            #expect(failure.at >= .seconds(10) && failure.at < .seconds(11), "failed at \(failure.at)")
        }
    }

    @Test func givesUpWhenThePeerSignalsNothing() throws {
        var net = try VirtualConnectivity(signallingTimeout: .seconds(15))
        net.signallingCut = [1]
        net.start()
        net.run(until: .seconds(30)) { $0.sides[0].failed == nil }
        let failure = try #require(net.sides[0].failed)
        #expect(failure.at == .seconds(15))
        #expect(failure.error == .noPath("the other side sent no connection details within 15 s"))
    }
}
