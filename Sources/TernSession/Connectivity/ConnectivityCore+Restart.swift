import TernICE
import TernPairing
import TernSDP
import TernSTUN

// ICE restart through the mailbox, between tern peers (docs/protocol.md
// §7.3, docs/architecture.md "When the only path dies"). When the selected
// pair has answered nothing for the failover timeout and no other valid
// pair is left to move to (no TURN, or the relayed pair died with it), the
// side that notices restarts its agent with new credentials
// (ICEAgent+Restart.swift), gathers again from the machine's current
// addresses and sends one `ice-restart` with its credentials and the
// candidates it has at once; the peer restarts too and answers the same
// way (ICERestartGenerations settles two sides that notice together). The
// old pair keeps carrying DTLS and SCTP until the new checks select one;
// the association stays the same, as for any other move.
//
// A side whose own address went away (the selected pair's local address is
// no longer among the machine's, looked at every second) restarts at once
// rather than after the failover timeout's silence. Its TURN allocations
// over UDP were made from the old address too: their 5-tuples are gone, so
// the restart gives them up and allocates afresh from the new one (the new
// relayed candidate follows the `ice-restart` as a `candidate`). When no
// address went away, each allocation is asked whether it still lives (a
// Refresh), and one the server refuses or does not answer is replaced the
// same way (TURNClient.checkAllocation).

/// The core's restart bookkeeping.
struct ConnectivityRestart {
    /// The peer's description carried `MediaDescription.ternICERestartOption`.
    var peerRestarts = false
    var generations = ICERestartGenerations()
    /// Candidates sent inside this side's latest `ice-restart`: not trickled again.
    var announced: Set<String> = []
    /// The next selected pair ends a restart.
    var selectionEndsRestart = false
    /// A restart could not start (the agent refused it): none is tried again.
    var gaveUp = false
    /// The machine's usable addresses now (the shell's LocalAddresses); nil:
    /// the addresses the session started with.
    var currentAddresses: (@Sendable () -> [[UInt8]])?
    /// When the selected pair's local address is next looked for among the
    /// machine's addresses (`addressCheckInterval`); nil until connected.
    var nextAddressCheck: Duration?
    /// When this side's latest restart began (its `ice-restart` went out).
    var begunAt: Duration?
    /// The peer did not answer a restart within `peerAnswerTimeout`: the
    /// session was ended once for it.
    var peerGone = false
}

extension ConnectivityCore {
    /// Why the session ended when a restart's checks selected no pair
    /// within the agent's failure timeout (or every new pair failed).
    static let restartFoundNothing =
        "the path to the other side stopped answering and an ICE restart found no new path (the other side is gone, or no network path to it is left)"

    /// Why the session ended when this side restarted and the peer's own
    /// `ice-restart` did not come within `peerAnswerTimeout`.
    static let peerDidNotAnswerRestart =
        "the other side stopped answering and did not answer an ICE restart through the relay: it is gone or lost its network"

    /// How long a restart waits for the peer's `ice-restart` before the
    /// peer is taken for gone. A live tern peer answers as soon as the
    /// relay hands it ours (a mailbox round trip: tens to hundreds of ms;
    /// its restart gathers host candidates at once and sends without
    /// waiting for server-reflexive ones). 3 s also covers a peer whose
    /// relay connection dropped with the path and is reconnecting (its
    /// first three attempts are at 0.1, 0.3 and 1 s after the drop), or one
    /// that moved and reattaches as it sends its own restart (the lab's
    /// roam: 87-1090 ms from the move to the restart path, docs/lab.md),
    /// while a peer that was killed is noticed after about 2.5 + 3 s of
    /// silence rather than after the restart's whole failure timeout.
    static let peerAnswerTimeout: Duration = .seconds(3)

    /// Restarts this side starts in one session: each costs at least one
    /// mailbox message of the relay's 64 per side (docs/protocol.md §5.8).
    static let maximumRestarts = 4
    /// How often a connected session looks whether the selected pair's
    /// local address is still the machine's (one getifaddrs in the shell).
    static let addressCheckInterval: Duration = .seconds(1)

    /// This side may start a restart: both are tern peers that move between
    /// pairs (`upgradesPath`), the peer announced restarts, the session is
    /// connected and no restart is under way.
    var canRestart: Bool {
        options.upgradesPath && restart.peerRestarts && finished && !closed && !restart.gaveUp
            && !agent.isRestarting && restart.generations.local < Self.maximumRestarts
    }

    /// ICE itself is recovering the path, or will: a restart is under way,
    /// or no check on any pair has been answered for half the failover
    /// timeout and this side may still restart (it fails over to the
    /// backups it still counts as live, then restarts when none is left).
    /// The layer above then leaves the session's fate to ICE rather than
    /// end it on its own silence limit: a restart that finds nothing ends
    /// it with its own sentence.
    public func recoversPath(now: Duration) -> Bool {
        guard !closed else { return false }
        if agent.isRestarting { return true }
        guard canRestart, let heard = agent.lastAnswerFromPeer else { return false }
        return now - heard >= agent.configuration.failoverTimeout / 2
    }

    /// When `advanceTime` should look at restarting: the agent's
    /// `restartDeadline`, or the next look at the machine's addresses.
    var restartDeadline: Duration? {
        if let answer = peerAnswerDeadline { return answer }
        guard canRestart else { return nil }
        return [agent.restartDeadline, restart.nextAddressCheck].compactMap { $0 }.min()
    }

    /// While a restart this side began waits for the peer's `ice-restart`:
    /// when the peer is taken for gone without it.
    var peerAnswerDeadline: Duration? {
        guard finished, !closed, !restart.peerGone, agent.isRestarting, !restart.generations.peerIsCurrent,
            let begun = restart.begunAt
        else { return nil }
        return begun + Self.peerAnswerTimeout
    }

    /// The peer's `ice-restart` did not come within `peerAnswerTimeout`: a
    /// live tern peer answers within a relay round trip, so the session ends
    /// now rather than when the restart's checks time out (the agent's
    /// failure timeout, 10 s). When the answer came the checks keep their
    /// whole failure timeout.
    mutating func endIfPeerDidNotAnswer(now: Duration) {
        guard let deadline = peerAnswerDeadline, now >= deadline else { return }
        restart.peerGone = true
        logger.info("the peer did not answer the ICE restart", metadata: [
            "generation": "\(restart.generations.local)", "at_ms": "\(milliseconds(now))",
        ])
        outputs.append(.pathLost(Self.peerDidNotAnswerRestart))
    }

    /// Starts a restart when the agent advises one (the only path is
    /// silent), or when the selected pair's local address went away.
    mutating func restartIfAdvised(now: Duration) {
        guard canRestart else { return }
        if agent.restartAdvised(now: now) {
            startRestart(because: "the selected pair stopped answering and no other is left", now: now)
        } else if let gone = localAddressGone(now: now) {
            startRestart(because: "this machine's address \(LocalAddresses.text(gone)) went away", now: now)
        }
    }

    /// An address the selected pair depends on that is no longer one of
    /// the machine's (looked at every `addressCheckInterval`); nil
    /// otherwise. For a pair whose local base is a host address, that
    /// address; for one through a TURN allocation over UDP, any of the
    /// session's host addresses, since the allocation was made from one of
    /// them (the socket is bound to the wildcard address: which one is the
    /// kernel's choice).
    private mutating func localAddressGone(now: Duration) -> [UInt8]? {
        guard let lookup = restart.currentAddresses, let base = selected?.pair.localBase else {
            restart.nextAddressCheck = nil
            return nil
        }
        let needed: [STUNAddress]
        if hostBases.contains(base) {
            needed = [base]
        } else if turns.contains(where: { $0.uri.transport == .udp && ($0.relayed == base || $0.retired.contains(base)) }) {
            needed = hostBases
        } else {
            restart.nextAddressCheck = nil
            return nil
        }
        guard let due = restart.nextAddressCheck, now >= due else {
            if restart.nextAddressCheck == nil { restart.nextAddressCheck = now + Self.addressCheckInterval }
            return nil
        }
        restart.nextAddressCheck = now + Self.addressCheckInterval
        let current = lookup()
        // Nothing at all: the lookup failed, which says nothing about the address.
        guard !current.isEmpty else { return nil }
        return needed.first { !current.contains($0.ipBytes) }?.ipBytes
    }

    /// A send on the selected direct pair failed hard (no route, the local
    /// address went away) and no live backup pair is left: restart at once
    /// rather than after the failover timeout's silence.
    mutating func restartAfterSendError(now: Duration) {
        guard canRestart else { return }
        startRestart(because: "sending on the selected pair failed and no other pair is left", now: now)
    }

    private mutating func startRestart(because reason: String, now: Duration) {
        _ = restart.generations.begin()
        logger.info("restarting ICE", metadata: [
            "reason": "\(reason)", "generation": "\(restart.generations.local)",
            "at_ms": "\(milliseconds(now))",
        ])
        restartAgent(now: now)
        pump(now: now)
    }

    /// The peer's `ice-restart`: restart too and answer (a generation newer
    /// than ours), or take its credentials and candidates (ours already).
    mutating func handlePeerRestart(_ message: ICERestartMessage, now: Duration) {
        guard options.upgradesPath, restart.peerRestarts else { return }
        switch restart.generations.peerAnnounced(message.generation) {
        case .ignore:
            return
        case .restartAndAnswer:
            logger.info("the peer restarted ICE", metadata: ["generation": "\(message.generation)"])
            restartAgent(now: now)
        case .adopt:
            break
        }
        guard agent.isRestarting || !agent.state.isFailed else { return }
        do {
            try agent.setRemoteCredentials(ufrag: message.ufrag, password: message.password, now: now)
        } catch {
            logger.debug("the peer's restart credentials are unusable", metadata: ["reason": "\(error.reason)"])
            return
        }
        for line in message.candidates { addRemote(line, now: now) }
        if message.complete { agent.remoteCandidatesComplete(now: now) }
    }

    /// New credentials, the candidates gathered again, and this side's
    /// `ice-restart` with those known at once (server-reflexive ones follow
    /// as `candidate` messages, then `end-of-candidates`).
    private mutating func restartAgent(now: Duration) {
        do {
            try agent.restart(localCredentials: .random(), now: now)
        } catch {
            logger.debug("ICE restart refused", metadata: ["reason": "\(error.reason)"])
            restart.gaveUp = true
            return
        }
        restart.selectionEndsRestart = true
        restart.begunAt = now
        outputs.append(.restarting(true))
        restart.nextAddressCheck = nil
        var lines: [String] = []
        var addressGone = false
        if let current = restart.currentAddresses?(), !current.isEmpty {
            addressGone = hostBases.contains { !current.contains($0.ipBytes) }
            if !options.forceRelay {
                hostBases = current.filter { dualStack || $0.count == 4 }.compactMap { STUNAddress(ipBytes: $0, port: localPort) }
            }
        }
        if !options.forceRelay {
            for base in hostBases {
                do {
                    lines.append(try agent.addHostCandidate(base, now: now).sdpAttribute)
                } catch {
                    logger.debug("host candidate skipped", metadata: ["address": "\(base)", "reason": "\(error.reason)"])
                }
            }
            for server in stunServers {
                for base in hostBases where base.family.code == server.family.code {
                    try? agent.gatherServerReflexive(from: server, base: base, now: now)
                }
            }
        }
        for index in turns.indices {
            guard let relayed = turns[index].relayed else { continue }
            if addressGone {
                // The allocation's 5-tuple may have gone with the address: nothing
                // from it is announced, and nothing is sent from it any more.
                turns[index].retired.insert(relayed)
                turns[index].relayed = nil
                agent.localCandidateGone(base: relayed, now: now)
                switch turns[index].uri.transport {
                case .udp:
                    // `.allocated` adds the new relayed candidate, trickled.
                    logger.debug("TURN allocation given up for a fresh one", metadata: ["server": "\(turns[index].uri)", "relayed": "\(relayed)"])
                    turns[index].client.allocateAfresh(now: now)
                case .tcp:
                    // Its connection left from the old address; it is not made again.
                    turns[index].failure = turns[index].failure ?? "its connection was made from an address that went away"
                }
                continue
            }
            turns[index].client.checkAllocation(now: now)
            if let candidate = try? agent.addRelayedCandidate(
                relayed, mappedAddress: nil, server: turns[index].server, overTCP: turns[index].uri.transport == .tcp, now: now) {
                lines.append(candidate.sdpAttribute)
            }
        }
        let sent = Array(lines.prefix(ICERestartMessage.maximumCandidates))
        restart.announced = Set(sent)
        let complete = !agent.isGathering && turns.allSatisfy(\.settled) && sent.count == lines.count
        // `pump` signals end-of-candidates once the gathering is over.
        signalledEnd = complete
        let credentials = agent.configuration.localCredentials
        outputs.append(.signal(.iceRestart(ICERestartMessage(
            generation: restart.generations.local, ufrag: credentials.ufrag, password: credentials.password,
            candidates: sent, complete: complete))))
    }
}
