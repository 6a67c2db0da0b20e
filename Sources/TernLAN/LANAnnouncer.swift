import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sender's side of the beacon: announces where its embedded rendezvous
/// listens, at once, again after 0.25, 0.5 and 1 s, then every second, and
/// answers a query for its nameplate straight away (to the group, or to the
/// asking address for a unicast query). Stops when told (once paired).
public final class LANAnnouncer: Sendable {
    private let beacon: LANBeacon
    private let task: Task<Void, Never>

    /// Seconds between the announcements after the first ones.
    static let period: Duration = .seconds(1)
    static let firstDelays: [Duration] = [.zero, .milliseconds(250), .milliseconds(250), .milliseconds(500)]
    /// Answers to multicast queries are at most this frequent (a flood of
    /// queries makes no flood of answers).
    static let answerInterval: Duration = .milliseconds(100)

    public static func start(nameplate: String, port: UInt16, beaconPort: Int = LANBeacon.port) async throws(LANError) -> LANAnnouncer {
        let announcement = LANMessage.announce(nameplate: nameplate, port: port)
        _ = try announcement.encoded()
        let beacon = try await LANBeacon.open(port: beaconPort)
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var delays = firstDelays.makeIterator()
                    while !Task.isCancelled {
                        try? await Task.sleep(for: delays.next() ?? period)
                        guard !Task.isCancelled else { return }
                        await beacon.sendToGroups(announcement)
                    }
                }
                group.addTask {
                    var lastAnswer: ContinuousClock.Instant?
                    for await heard in beacon.heard {
                        guard case .query(let asked, let unicast) = heard.message, asked == nameplate else { continue }
                        if unicast {
                            try? await beacon.send(announcement, to: heard.from)
                        } else {
                            let now = ContinuousClock.now
                            if let lastAnswer, now - lastAnswer < answerInterval { continue }
                            lastAnswer = now
                            await beacon.sendToGroups(announcement)
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
        return LANAnnouncer(beacon: beacon, task: task)
    }

    private init(beacon: LANBeacon, task: Task<Void, Never>) {
        self.beacon = beacon
        self.task = task
    }

    public func stop() async {
        task.cancel()
        await beacon.close()
        await task.value
    }
}

/// Where a sender's embedded rendezvous listens, as heard.
public struct LANRendezvous: Sendable, Equatable {
    /// A numeric address; an IPv6 link-local one carries its zone ("fe80::1%eth0").
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// The receiver's side: finds the sender of a nameplate.
public enum LANDiscovery {
    /// When queries go out, from the start: quickly at first (a lost
    /// datagram costs little), then every two seconds.
    static let queryDelays: [Duration] = [.zero, .milliseconds(150), .milliseconds(350), .milliseconds(800), .milliseconds(1500)]
    static let queryPeriod: Duration = .seconds(2)

    /// Listens for the sender of `nameplate` until `timeout`.
    ///
    /// - Parameters:
    ///   - from: a host to ask by unicast (`--from`), when multicast does not
    ///     reach the sender; nil asks the group.
    ///   - asks: false only listens for announcements, sending nothing (a
    ///     receiver racing a relay).
    /// - Returns: the rendezvous, or nil when nothing was heard in time.
    public static func find(
        nameplate: String, from: String? = nil, asks: Bool = true, timeout: Duration, beaconPort: Int = LANBeacon.port
    ) async throws(LANError) -> LANRendezvous? {
        let beacon: LANBeacon
        do {
            beacon = try await LANBeacon.open(port: beaconPort)
        } catch {
            // Port taken by a program that did not set SO_REUSEADDR: a unicast
            // question can still be asked from another port.
            guard from != nil else { throw error }
            beacon = try await LANBeacon.open(port: 0)
        }
        let target: SocketAddress?
        if let from {
            do {
                target = try SocketAddress(ipAddress: from, port: beaconPort)
            } catch {
                await beacon.close()
                throw .socket("'\(from.prefix(64))' is not an IP address")
            }
        } else {
            target = nil
        }
        let query = LANMessage.query(nameplate: nameplate, unicastReply: from != nil)
        let found = await withTaskGroup(of: LANRendezvous?.self) { group -> LANRendezvous? in
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            if asks {
                group.addTask {
                    var delays = queryDelays.makeIterator()
                    while !Task.isCancelled {
                        try? await Task.sleep(for: delays.next() ?? queryPeriod)
                        guard !Task.isCancelled else { break }
                        if let target {
                            try? await beacon.send(query, to: target)
                        } else {
                            await beacon.sendToGroups(query)
                        }
                    }
                    return nil
                }
            }
            group.addTask {
                for await heard in beacon.heard {
                    guard case .announce(let announced, let port) = heard.message, announced == nameplate,
                          let host = Self.host(of: heard.from) else { continue }
                    return LANRendezvous(host: host, port: Int(port))
                }
                return nil
            }
            // The first to finish ends the search: the finder with an
            // answer, or the timer with nothing.
            let result = await group.next() ?? nil
            group.cancelAll()
            return result
        }
        await beacon.close()
        return found
    }

    /// The numeric host of `address`; an IPv6 link-local one gets its zone.
    static func host(of address: SocketAddress) -> String? {
        guard let ip = address.ipAddress else { return nil }
        if case .v6(let v6) = address, v6.address.sin6_scope_id != 0 {
            var name = [CChar](repeating: 0, count: 64)
            if if_indextoname(v6.address.sin6_scope_id, &name) != nil {
                return ip + "%" + String(cString: name)
            }
        }
        return ip
    }
}
