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
        return (driver, path)
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
            fields.append(("relay_protocol", .string(path.relayOverTLS ? "tls" : transport == .tcp ? "tcp" : "udp")))
        }
        let rttMilliseconds = path.roundTrip.map { Int64(milliseconds($0).rounded()) }
        fields.append(("rtt_ms", rttMilliseconds.map { .int($0) } ?? .null))
        fields.append(("since_paired_ms", .int(Int64(milliseconds(elapsed).rounded()))))
        output.event("connected", fields)
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
