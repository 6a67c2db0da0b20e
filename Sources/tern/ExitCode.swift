import TernSession

/// Exit codes, as documented in docs/cli.md.
enum TernExit: Int32 {
    case success = 0
    case failure = 1
    case usage = 2
    case wrongCode = 3
    case unreachable = 4
    case integrity = 5
    case declined = 6
    case interrupted = 130
    /// SIGTERM (128 + 15, as a shell reports it).
    case terminated = 143
}

/// An error the CLI reports in one sentence and exits with.
struct CLIError: Error {
    var exit: TernExit
    var message: String

    init(_ exit: TernExit, _ message: String) {
        self.exit = exit
        self.message = message
    }

    init(_ error: SessionError) {
        self.message = error.message
        switch error {
        case .badRelayURL, .badCode: self.exit = .usage
        case .relayUnreachable, .relayLost, .timedOut, .noPath, .connectionLost: self.exit = .unreachable
        case .localNetwork, .secureChannel: self.exit = .failure
        case .wrongCode: self.exit = .wrongCode
        case .relayRefused(let code, _):
            switch code {
            case .crowded, .expired, .unknownNameplate: self.exit = .wrongCode
            default: self.exit = .failure
            }
        case .peerLeft(let mood):
            switch mood {
            case .scary: self.exit = .wrongCode
            case .lonely: self.exit = .unreachable  // it found no path to us
            case .happy, .errory: self.exit = .failure
            }
        case .declined: self.exit = .declined
        case .relayProtocol, .pairing: self.exit = .failure
        }
    }
}
