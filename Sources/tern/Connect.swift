import Foundation
import Logging
import TernICE
import TernPairing
import TernRendezvous
import TernSession
import TernTURN

/// The connectivity step both commands share: start the driver, trade
/// session descriptions and candidates through the sealed mailbox until both
/// sides have selected a pair, and report the path.
enum Connect {
    /// - Parameter first: the peer's message that started it (the receiver
    ///   starts on the sender's session description).
    static func establish(
        session: PairingSession, role: ICERole, first: PeerMessage?, pairedAt: ContinuousClock.Instant,
        options: SessionOptions, output: Output
    ) async throws -> (ConnectivityDriver, ConnectedPath) {
        let outbox = session.outbox
        let driver = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: role, stun: session.welcome.stun, turn: session.welcome.turn, forceRelay: options.forceRelay),
            signal: { outbox.send($0) })
        // Wakes the mailbox reader when ICE finishes on its own (a local
        // selection after the peer's `connected`, or a failure).
        let waiter = Task {
            defer { outbox.wake() }
            return try await driver.connected()
        }
        do {
            if let first, await driver.handle(first) {
                // Both selected already (not possible for a first message, but harmless).
            } else {
                while let message = try await session.receiveUntilWoken() {
                    if await driver.handle(message) { break }
                }
            }
            let path = try await waiter.value
            // Our own `connected` may still sit in the outbox: the peer waits for it.
            try await session.flushOutbox()
            report(path, since: pairedAt, output: output)
            return (driver, path)
        } catch SessionError.peerLeft(.lonely) {
            // The peer's checks failed first; ours are about to. Prefer our
            // own reason (it names what was tried) if it comes soon.
            let own = await firstResult(of: waiter, within: .seconds(3))
            await driver.close()
            if case .failure(let error as SessionError) = own, case .noPath = error { throw error }
            throw SessionError.noPath("the other side found no path to this one and gave up")
        } catch {
            await driver.close()
            throw error
        }
    }

    /// The task's result, or nil if it takes longer than `limit`.
    static func firstResult<T: Sendable>(of task: Task<T, Error>, within limit: Duration) async -> Result<T, Error>? {
        await withTaskGroup(of: Result<T, Error>?.self) { group in
            group.addTask { await task.result }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The mood to leave the mailbox with after `error`: `lonely` when no
    /// path was found (the peer then reports exit 4 too), `errory` otherwise.
    static func mood(after error: Error) -> Mood {
        if case SessionError.noPath = error { return .lonely }
        return .errory
    }

    static func report(_ path: ConnectedPath, since pairedAt: ContinuousClock.Instant, output: Output) {
        let elapsed = ContinuousClock.now - pairedAt
        let direct = !path.isRelayed
        var fields: [(String, JSONValue)] = [
            ("path", .string(direct ? "direct" : "relayed")),
            ("local", .string(path.pair.local.type.rawValue)),
            ("remote", .string(path.pair.remote.type.rawValue)),
        ]
        if let transport = path.relayTransport {
            fields.append(("relay_protocol", .string(transport == .tcp ? "tcp" : "udp")))
        }
        let rttMilliseconds = path.roundTrip.map { Int64(milliseconds($0).rounded()) }
        fields.append(("rtt_ms", rttMilliseconds.map { .int($0) } ?? .null))
        fields.append(("since_paired_ms", .int(Int64(milliseconds(elapsed).rounded()))))
        output.event("connected", fields)
        let how = direct ? "Connected directly" : path.relayTransport == .tcp ? "Connected through the TURN relay (over TCP)" : "Connected through the TURN relay"
        let rtt = path.roundTrip.map { String(format: ", %.1f ms round trip", milliseconds($0)) } ?? ""
        output.say("\(how) (\(describe(path.pair.local.type)) to \(describe(path.pair.remote.type))\(rtt)).")
    }

    static func describe(_ type: ICECandidateType) -> String {
        switch type {
        case .host: return "local address"
        case .serverReflexive: return "NAT address"
        case .peerReflexive: return "NAT address"
        case .relayed: return "relay"
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
