import TernPairing
import TernRendezvous

/// Everything that can end a session, each with one sentence for the user.
/// The CLI maps them to exit codes (docs/cli.md).
public enum SessionError: Error, Equatable, Sendable {
    case badRelayURL(String)
    case badCode(String)
    /// Could not connect to the relay, or it refused the WebSocket upgrade.
    case relayUnreachable(String)
    /// The connection to the relay broke.
    case relayLost(String)
    /// The relay sent something that breaks the protocol.
    case relayProtocol(String)
    /// The relay refused a request.
    case relayRefused(RelayErrorCode, String)
    /// Key confirmation failed: the two sides typed different codes, or
    /// someone in the middle guessed wrong.
    case wrongCode
    /// The other side left before the job was done.
    case peerLeft(Mood)
    /// The peer broke the pairing protocol or sent a bad sealed message.
    case pairing(PairingError)
    /// The receiver declined the offer.
    case declined(String?)
    case timedOut(String)
    /// No network path to the peer: ICE found no working candidate pair.
    case noPath(String)
    /// The local network stack refused (no socket could be opened).
    case localNetwork(String)
    /// DTLS, SCTP or the data channels on the path failed or ended.
    case secureChannel(String)
    /// The peer stopped answering on the connected path: a stage of setting
    /// up the channels ran out, or nothing came for too long (it is gone,
    /// or the path broke).
    case connectionLost(String)

    public var message: String {
        switch self {
        case .badRelayURL(let why): return "bad relay URL: \(why)"
        case .badCode(let why): return why
        case .relayUnreachable(let why): return why
        case .relayLost(let why): return why
        case .relayProtocol(let why): return "the relay broke the protocol: \(why)"
        case .relayRefused(let code, let why):
            switch code {
            case .crowded: return "that code is already in use by two other sides"
            case .expired, .unknownNameplate: return "that code has expired or is no longer in use"
            default: return "the relay refused: \(why)"
            }
        case .wrongCode: return "the code is wrong: the other side typed a different code (or someone tried to guess it)"
        case .peerLeft(let mood):
            switch mood {
            case .scary: return "the other side reported a wrong code"
            case .lonely: return "the other side found no network path to this one and gave up"
            case .errory: return "the other side stopped (it was interrupted or failed)"
            case .happy: return "the other side closed the session"
            }
        case .pairing(let error): return error.reason
        case .declined(let reason): return "the receiver declined the offer" + (reason.map { ": \($0)" } ?? "")
        case .timedOut(let what): return "timed out \(what)"
        case .noPath(let why): return "could not connect to the other side: \(why)"
        case .localNetwork(let why): return why
        case .secureChannel(let why): return why
        case .connectionLost(let why): return why
        }
    }
}
