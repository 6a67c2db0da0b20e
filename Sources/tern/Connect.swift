import Foundation
import Logging
import TernDTLS
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
        options: SessionOptions, certificate: DTLSCertificate, output: Output
    ) async throws -> (ConnectivityDriver, ConnectedPath) {
        let (driver, path) = try await PeerConnection.connect(
            session: session, role: role, first: first, forceRelay: options.forceRelay, certificate: certificate)
        report(path, since: pairedAt, output: output)
        // Start at once, move to the best path: a better pair that succeeds
        // later carries the transfer from then on; say so.
        Task {
            var relayed = path.isRelayed
            for await changed in driver.pathChanges {
                reportChange(changed, since: pairedAt, output: output, fromRelay: relayed)
                relayed = changed.isRelayed
            }
        }
        return (driver, path)
    }

    /// A `path` event when the transfer moved to another pair, "Now direct
    /// (…)." when it left the relay for a direct path, "The direct path
    /// stopped answering; now relayed (…)." when the pair it was on died,
    /// and "…; ICE restarted, now direct (…)." when no other pair was left
    /// and a restart through the mailbox found a new one.
    static func reportChange(_ path: ConnectedPath, since pairedAt: ContinuousClock.Instant, output: Output, fromRelay: Bool) {
        var fields = pathFields(path, since: pairedAt)
        fields.append(("reason", .string(path.afterRestart ? "restart" : path.replacedLostPath ? "path_lost" : "better_path")))
        output.event("path", fields)
        let rtt = path.roundTrip.map { String(format: ", %.1f ms round trip", milliseconds($0)) } ?? ""
        let pair = "\(describe(path.pair.local.type)) to \(describe(path.pair.remote.type))\(rtt)"
        if path.afterRestart {
            let now = path.isRelayed ? "now relayed" : "now direct"
            output.say("The \(fromRelay ? "relayed" : "direct") path stopped answering; ICE restarted, \(now) (\(pair)).")
            return
        }
        if path.replacedLostPath {
            let now = path.isRelayed ? "now relayed" : "now direct"
            output.say("The \(fromRelay ? "relayed" : "direct") path stopped answering; \(now) (\(pair)).")
            return
        }
        guard fromRelay, !path.isRelayed else { return }
        output.say("Now direct (\(pair)).")
    }

    static func pathFields(_ path: ConnectedPath, since pairedAt: ContinuousClock.Instant) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [
            ("path", .string(path.isRelayed ? "relayed" : "direct")),
            ("local", .string(path.pair.local.type.rawValue)),
            ("remote", .string(path.pair.remote.type.rawValue)),
        ]
        if let transport = path.relayTransport {
            fields.append(("relay_protocol", .string(path.relayOverTLS ? "tls" : transport == .tcp ? "tcp" : "udp")))
        }
        let rttMilliseconds = path.roundTrip.map { Int64(milliseconds($0).rounded()) }
        fields.append(("rtt_ms", rttMilliseconds.map { .int($0) } ?? .null))
        fields.append(("since_paired_ms", .int(Int64(milliseconds(ContinuousClock.now - pairedAt).rounded()))))
        return fields
    }

    /// The mood to leave the mailbox with after `error`: `lonely` when no
    /// path was found (the peer then reports exit 4 too), `errory` otherwise.
    static func mood(after error: Error) -> Mood {
        if case SessionError.noPath = error { return .lonely }
        return .errory
    }

    static func report(_ path: ConnectedPath, since pairedAt: ContinuousClock.Instant, output: Output) {
        let direct = !path.isRelayed
        output.event("connected", pathFields(path, since: pairedAt))
        let how = direct ? "Connected directly"
            : path.relayOverTLS ? "Connected through the TURN relay (over TLS)"
            : path.relayTransport == .tcp ? "Connected through the TURN relay (over TCP)" : "Connected through the TURN relay"
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
