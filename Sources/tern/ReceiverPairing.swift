import Foundation
import TernLAN
import TernPairing
import TernRendezvous
import TernSession

/// How the receiver reaches its sender: through the relay, on the LAN, or
/// both at once, the first to pair winning.
enum ReceiverPairing {
    /// Looking on the LAN: where (`from`), whether to ask (queries) or only
    /// listen for announcements, and for how long.
    struct LAN: Sendable {
        var from: String?
        /// False when racing a relay: listening costs the network nothing.
        var asks: Bool
        var timeout: Double
    }

    /// A session handed once from the task that paired it to the job that
    /// owns it from then on (PairingSession is owned by one task at a time).
    final class Handover: @unchecked Sendable {
        let session: PairingSession
        init(_ session: PairingSession) { self.session = session }
    }

    enum Outcome: Sendable {
        case paired(Handover)
        case failed(Error)
        /// The LAN search ended without hearing the sender.
        case notFound
        /// The relay failed and the LAN was given its last chance.
        case graceOver
    }

    /// How long a receiver racing a relay keeps listening on the LAN after
    /// the relay failed (a wrong scheme, a refused certificate, no relay at
    /// that address): two of a LAN-mode sender's announcements (one a
    /// second), so a sender on this network is still found, while a relay
    /// error is not hidden behind the whole discovery timeout.
    static let lanGraceAfterRelayFailure: Duration = .milliseconds(2500)

    static func pair(relay: RelayURL?, lan: LAN?, code: Code, output: Output) async throws -> PairingSession {
        switch (relay, lan) {
        case (let relay?, nil):
            return try await PairingSession.pair(relay: relay, role: .receiver, code: code) { output.report($0, showCode: false) }
        case (nil, let lan?):
            output.event("mode", [("mode", .string("lan"))])
            if let from = lan.from {
                output.say("LAN mode: asking the sender at \(from)…")
            } else {
                output.say("No relay configured: looking for the sender on this network…")
            }
            switch await viaLAN(lan, code: code, output: output) {
            case .paired(let handover): return handover.session
            case .failed(let error): throw error
            case .notFound, .graceOver: throw LANMode.nothingHeard(nameplate: code.nameplate, after: lan.timeout)
            }
        case (let relay?, let lan?):
            // Nothing extra is said: a relay user sees what it always saw,
            // and "Found the sender at …" only when the LAN wins.
            return try await race(relay: relay, lan: lan, code: code, output: output)
        case (nil, nil):
            throw CLIError(.usage, "no relay: pass --relay ws://HOST:4747 or set TERN_RELAY, or turn LAN mode on")
        }
    }

    private static func viaLAN(_ lan: LAN, code: Code, output: Output) async -> Outcome {
        do {
            guard let found = try await LANMode.discover(code: code, from: lan.from, asks: lan.asks, timeout: lan.timeout, output: output) else {
                return .notFound
            }
            let url = try LANMode.url(host: found.host, port: found.port)
            let session = try await PairingSession.pair(relay: url, role: .receiver, code: code) { output.report($0, showCode: false) }
            return .paired(Handover(session))
        } catch let error as LANError {
            return .failed(error.cli)
        } catch {
            return .failed(error)
        }
    }

    /// Pairs through whichever of the relay and the LAN gets there first;
    /// the other attempt is cancelled (its connection closed). A failure of
    /// the LAN leaves the relay to finish; a failure of the relay leaves the
    /// LAN `lanGraceAfterRelayFailure` more, then the relay's error is
    /// reported.
    private static func race(relay: RelayURL, lan: LAN, code: Code, output: Output) async throws -> PairingSession {
        try await withThrowingTaskGroup(of: (viaRelay: Bool, outcome: Outcome).self) { group in
            group.addTask {
                do {
                    let session = try await PairingSession.pair(relay: relay, role: .receiver, code: code) { output.report($0, showCode: false) }
                    return (true, .paired(Handover(session)))
                } catch {
                    return (true, .failed(error))
                }
            }
            group.addTask { (false, await viaLAN(lan, code: code, output: output)) }
            var relayError: Error?
            var lanError: Error?
            while let (viaRelay, outcome) = try await group.next() {
                switch outcome {
                case .paired(let handover):
                    group.cancelAll()
                    // The other attempt may have paired in the same instant:
                    // that session is closed, not leaked.
                    while let (_, other) = try await group.next() {
                        if case .paired(let extra) = other { await extra.session.close(mood: .errory) }
                    }
                    return handover.session
                case .failed(let error):
                    if viaRelay {
                        relayError = error
                        group.addTask {
                            try? await Task.sleep(for: lanGraceAfterRelayFailure)
                            return (false, .graceOver)
                        }
                    } else {
                        lanError = error
                    }
                case .notFound:
                    lanError = LANMode.nothingHeard(nameplate: code.nameplate, after: lan.timeout)
                case .graceOver:
                    group.cancelAll()
                }
            }
            if let relayError { throw relayError }
            throw lanError ?? CLIError(.unreachable, "found the sender neither through the relay nor on this network")
        }
    }
}
