import TernDTLS
import TernICE
import TernPairing
import TernRendezvous
import TernSDP

/// A paired session's path to the peer: ICE through the sealed mailbox, then
/// (optionally) DTLS, SCTP and data channels on the selected pair. What the
/// CLI and the benchmark share.
public enum PeerConnection {
    /// How long a side waits for each of the peer's signals: its session
    /// description, its `connected` (`ConnectivityOptions.signallingTimeout`).
    public static let signallingTimeout: Duration = .seconds(15)

    /// The peer's session description did not come within `signallingTimeout`.
    public static var descriptionOverdue: SessionError {
        .noPath("the other side sent no connection details within \(PeerWatch.words(signallingTimeout))")
    }

    /// Starts the driver, trades descriptions and candidates through the
    /// mailbox until both sides have selected a pair.
    ///
    /// - Parameters:
    ///   - first: the peer's message that started it (the receiver starts on
    ///     the sender's session description).
    ///   - certificate: our DTLS certificate, whose fingerprint goes in our description.
    public static func connect(
        session: PairingSession, role: ICERole, first: PeerMessage?, forceRelay: Bool, certificate: DTLSCertificate?
    ) async throws(SessionError) -> (ConnectivityDriver, ConnectedPath) {
        let outbox = session.outbox
        let fingerprint = certificate.map { Fingerprint(algorithm: DTLSFingerprint.algorithm, digest: $0.fingerprint.bytes) }
        let driver = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: role, stun: session.welcome.stun, turn: session.welcome.turn, forceRelay: forceRelay, fingerprint: fingerprint),
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
            return (driver, path)
        } catch SessionError.peerLeft(.lonely) {
            // The peer's checks failed first; ours are about to. Prefer our
            // own reason (it names what was tried) if it comes soon.
            let own = await firstResult(of: waiter, within: .seconds(3))
            await driver.close()
            if case .failure(let error as SessionError) = own, case .noPath = error { throw error }
            throw .noPath("the other side found no path to this one and gave up")
        } catch {
            await driver.close()
            throw error as? SessionError ?? .noPath("\(error)")
        }
    }

    /// DTLS, SCTP and data channels over a connected driver, with the roles
    /// the descriptions set (design.md: the sender offers `actpass` and is
    /// the DTLS server; the receiver answers `active`).
    public static func secure(
        driver: ConnectivityDriver, path: ConnectedPath, role: ICERole, certificate: DTLSCertificate
    ) async throws(SessionError) -> SecureChannels {
        guard let remote = path.remoteFingerprints.first(where: { $0.algorithm == DTLSFingerprint.algorithm }) else {
            throw .secureChannel("the peer's description has no sha-256 fingerprint")
        }
        let expected: DTLSFingerprint
        do {
            expected = try DTLSFingerprint(bytes: remote.digest)
        } catch {
            throw .secureChannel("the peer's fingerprint is malformed: \(error.reason)")
        }
        // RFC 8842 §5: our offer says actpass and lets the answer choose; our
        // answer says active.
        let localSetup = role == .controlling ? "actpass" : "active"
        guard let remoteSetup = path.remoteSetup, let dtlsRole = DTLSRole(localSetup: localSetup, remoteSetup: remoteSetup.rawValue) else {
            throw .secureChannel("the peer's a=setup (\(path.remoteSetup?.rawValue ?? "none")) does not fit our \(localSetup)")
        }
        var options = SecureChannels.Options(role: dtlsRole, certificate: certificate, expectedPeerFingerprint: expected)
        options.maximumDatagramSize = path.maximumDatagramSize
        options.pathRoundTrip = path.roundTrip
        // RFC 8841 §6: absent means 64 KiB; 0 means no limit.
        switch path.remoteMaxMessageSize {
        case nil: options.peerMaximumMessageSize = 65536
        case 0?: options.peerMaximumMessageSize = options.maximumMessageSize
        case let size?: options.peerMaximumMessageSize = Int(clamping: min(size, UInt64(options.maximumMessageSize)))
        }
        return try await SecureChannels.establish(over: driver, options: options)
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
}
