import Foundation

// The rendezvous protocol: one JSON object per WebSocket text frame, in both
// directions. docs/protocol.md describes every frame; this file is the codec.
// Decoding is strict about what it needs (types, lengths, ranges) and ignores
// fields it does not know, so later versions can add some.

/// The protocol version this code speaks; the relay announces its own in `welcome`.
public let rendezvousProtocolVersion = 1

/// A random 128-bit identifier in lowercase hex: a client's side, or a mailbox.
public struct Identifier: Sendable, Hashable, CustomStringConvertible {
    public let hex: String
    public var description: String { hex }

    public init(validating hex: String) throws(RendezvousError) {
        guard hex.utf8.count == 32,
              hex.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f")) })
        else { throw .malformedFrame("an identifier must be 32 lowercase hex digits") }
        self.hex = hex
    }

    /// From 16 bytes of a cryptographic random source.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "identifiers are 16 bytes")
        self.hex = bytes.map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]], as: UTF8.self)
        }.joined()
    }

    public static func random() -> Identifier {
        var generator = SystemRandomNumberGenerator()
        return Identifier(bytes: (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// The 16 bytes it stands for.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            out.append(Identifier.nibble(high) << 4 | Identifier.nibble(low))
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8 {
        c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : c - UInt8(ascii: "a") + 10
    }
}

/// How a side leaves its mailbox; the other side is told.
public enum Mood: String, Sendable, Codable, CaseIterable {
    /// The job is done.
    case happy
    /// Gave up waiting.
    case lonely
    /// The PAKE or a seal failed: a wrong code, or someone in the middle.
    case scary
    /// Something else went wrong.
    case errory
}

/// Why the relay refused a frame or a request.
public enum RelayErrorCode: String, Sendable, Codable, CaseIterable {
    case malformed = "malformed"
    case tooLarge = "too-large"
    case outOfOrder = "out-of-order"
    case unknownNameplate = "unknown-nameplate"
    case crowded = "crowded"
    case expired = "expired"
    case unknownMailbox = "unknown-mailbox"
    case mailboxFull = "mailbox-full"
    case limit = "limit"
    case unsupportedVersion = "unsupported-version"
    /// A code this side does not know (from a newer relay); the message says what.
    case other = "other"
}

/// TURN servers and short-lived credentials the relay hands out (coturn's
/// shared-secret REST scheme: username "<expiry>:<name>", credential
/// base64(HMAC-SHA1(secret, username))).
public struct TURNCredentials: Sendable, Hashable, Codable {
    public var uris: [String]
    public var username: String
    public var credential: String
    /// Seconds the credentials stay valid from when they were issued.
    public var ttl: Int
    /// For `turns:` servers: the one certificate to accept, `sha-256 AB:…`
    /// (the server's own, self-signed say); without it a `turns:` server's
    /// certificate must chain to the client's trust store.
    public var tlsPin: String?

    public init(uris: [String], username: String, credential: String, ttl: Int, tlsPin: String? = nil) {
        self.uris = uris
        self.username = username
        self.credential = credential
        self.ttl = ttl
        self.tlsPin = tlsPin
    }

    enum CodingKeys: String, CodingKey {
        case uris, username, credential, ttl
        case tlsPin = "tls_pin"
    }
}

/// The first frame the relay sends on every connection.
public struct Welcome: Sendable, Hashable {
    public var version: Int
    /// Largest `add` body, in bytes, the relay accepts.
    public var maxMessageBytes: Int
    /// STUN servers, `stun:host:port`: the relay's own responder, or what
    /// its operator announces instead (`--stun-advertise`).
    public var stun: [String]
    public var turn: TURNCredentials?

    public init(version: Int = rendezvousProtocolVersion, maxMessageBytes: Int, stun: [String], turn: TURNCredentials?) {
        self.version = version
        self.maxMessageBytes = maxMessageBytes
        self.stun = stun
        self.turn = turn
    }
}

/// Frames a client sends to the relay.
public enum ClientFrame: Sendable, Hashable {
    /// Ask for the smallest free nameplate and join it.
    case allocate(side: Identifier)
    /// Join a nameplate: one the other side allocated, or a pre-agreed one.
    case claim(nameplate: String, side: Identifier)
    /// Come back to a mailbox after a lost connection; the relay resends the
    /// peer's messages from index `received` on.
    case attach(mailbox: Identifier, side: Identifier, received: Int)
    /// Append this side's message number `seq` (from 0, no gaps) to the mailbox.
    case add(seq: Int, body: [UInt8])
    /// Leave the mailbox for good.
    case close(mood: Mood)
}

/// Frames the relay sends to a client.
public enum RelayFrame: Sendable, Hashable {
    case welcome(Welcome)
    case allocated(nameplate: String, mailbox: Identifier)
    case claimed(nameplate: String, mailbox: Identifier)
    case attached(mailbox: Identifier)
    /// The peer's message number `seq`.
    case message(seq: Int, body: [UInt8])
    /// The peer left the mailbox; every message it added was delivered before this.
    case peerClosed(mood: Mood)
    /// This side's `close` was done; the relay closes the connection next.
    case closed
    /// TURN servers and credentials, sent once both sides are in the
    /// mailbox (not to every connection: credentials are a resource).
    case turn(TURNCredentials)
    case error(code: RelayErrorCode, message: String)
}

/// The JSON shape shared by every frame: a `type` and optional fields.
private struct Wire: Codable {
    var type: String
    var side: String?
    var nameplate: String?
    var mailbox: String?
    var received: Int?
    var seq: Int?
    var body: String?
    var mood: Mood?
    var code: String?
    var message: String?
    var version: Int?
    var max_message_bytes: Int?
    var stun: [String]?
    var turn: TURNCredentials?

    init(type: String) { self.type = type }
}

/// Limits that bound every decode, client's and relay's frames alike
/// (`ResourceLimitTests` drives each past its value).
public enum FrameLimits {
    /// The largest `add`/`message` body the protocol allows at all, 1 MiB;
    /// relays may announce a smaller one.
    public static let maxBodyBytes = 1 << 20
    /// The largest frame text, with base64 and JSON overhead over a body
    /// (4/3 of it plus 4 KiB), refused before it is parsed.
    public static func maxFrameBytes(forBody body: Int) -> Int { body / 3 * 4 + 4096 }
    /// Highest sequence number or index accepted anywhere: 2^20.
    public static let maxSequence = 1 << 20
    /// One string from the relay (a STUN or TURN URI, a TURN username,
    /// credential or pin, an error message): 1024 bytes.
    static let maxStringBytes = 1024
    /// STUN or TURN URIs in one list: 16.
    static let maxListItems = 16
    /// An error frame's code: 64 bytes.
    static let maxErrorCodeBytes = 64
}

extension ClientFrame {
    public func encoded() -> String {
        var wire: Wire
        switch self {
        case .allocate(let side):
            wire = Wire(type: "allocate")
            wire.side = side.hex
        case .claim(let nameplate, let side):
            wire = Wire(type: "claim")
            wire.nameplate = nameplate
            wire.side = side.hex
        case .attach(let mailbox, let side, let received):
            wire = Wire(type: "attach")
            wire.mailbox = mailbox.hex
            wire.side = side.hex
            wire.received = received
        case .add(let seq, let body):
            wire = Wire(type: "add")
            wire.seq = seq
            wire.body = Data(body).base64EncodedString()
        case .close(let mood):
            wire = Wire(type: "close")
            wire.mood = mood
        }
        return encode(wire)
    }

    /// Decodes a frame from a client; `maxBodyBytes` is the relay's limit.
    public init(decoding text: some Collection<UInt8>, maxBodyBytes: Int) throws(RendezvousError) {
        let wire = try decodeWire(text, limit: FrameLimits.maxFrameBytes(forBody: maxBodyBytes))
        switch wire.type {
        case "allocate":
            self = .allocate(side: try Identifier(validating: required(wire.side, "side")))
        case "claim":
            let nameplate = try required(wire.nameplate, "nameplate")
            do { try Nameplate.validate(nameplate) } catch { throw .malformedFrame("bad nameplate") }
            self = .claim(nameplate: nameplate, side: try Identifier(validating: required(wire.side, "side")))
        case "attach":
            self = .attach(
                mailbox: try Identifier(validating: required(wire.mailbox, "mailbox")),
                side: try Identifier(validating: required(wire.side, "side")),
                received: try sequence(wire.received, "received"))
        case "add":
            self = .add(seq: try sequence(wire.seq, "seq"), body: try body(wire.body, limit: maxBodyBytes))
        case "close":
            self = .close(mood: try required(wire.mood, "mood"))
        default:
            throw .unknownFrameType(wire.type)
        }
    }
}

extension RelayFrame {
    public func encoded() -> String {
        var wire: Wire
        switch self {
        case .welcome(let welcome):
            wire = Wire(type: "welcome")
            wire.version = welcome.version
            wire.max_message_bytes = welcome.maxMessageBytes
            wire.stun = welcome.stun
            wire.turn = welcome.turn
        case .allocated(let nameplate, let mailbox):
            wire = Wire(type: "allocated")
            wire.nameplate = nameplate
            wire.mailbox = mailbox.hex
        case .claimed(let nameplate, let mailbox):
            wire = Wire(type: "claimed")
            wire.nameplate = nameplate
            wire.mailbox = mailbox.hex
        case .attached(let mailbox):
            wire = Wire(type: "attached")
            wire.mailbox = mailbox.hex
        case .message(let seq, let body):
            wire = Wire(type: "message")
            wire.seq = seq
            wire.body = Data(body).base64EncodedString()
        case .peerClosed(let mood):
            wire = Wire(type: "peer-closed")
            wire.mood = mood
        case .closed:
            wire = Wire(type: "closed")
        case .turn(let credentials):
            wire = Wire(type: "turn")
            wire.turn = credentials
        case .error(let code, let message):
            wire = Wire(type: "error")
            wire.code = code.rawValue
            wire.message = message
        }
        return encode(wire)
    }

    /// Decodes a frame from the relay. A client treats the relay as hostile
    /// too: every field is checked and bounded.
    public init(decoding text: some Collection<UInt8>) throws(RendezvousError) {
        let wire = try decodeWire(text, limit: FrameLimits.maxFrameBytes(forBody: FrameLimits.maxBodyBytes))
        switch wire.type {
        case "welcome":
            let version = try required(wire.version, "version")
            let maxMessage = try required(wire.max_message_bytes, "max_message_bytes")
            guard maxMessage > 0, maxMessage <= FrameLimits.maxBodyBytes else { throw .malformedFrame("max_message_bytes out of range") }
            let stun = wire.stun ?? []
            guard stun.count <= FrameLimits.maxListItems, stun.allSatisfy({ $0.utf8.count <= FrameLimits.maxStringBytes }) else {
                throw .malformedFrame("stun list too long")
            }
            if let turn = wire.turn {
                guard turn.uris.count <= FrameLimits.maxListItems,
                      (turn.uris + [turn.username, turn.credential, turn.tlsPin ?? ""]).allSatisfy({ $0.utf8.count <= FrameLimits.maxStringBytes }),
                      turn.ttl >= 0
                else { throw .malformedFrame("turn credentials out of range") }
            }
            self = .welcome(Welcome(version: version, maxMessageBytes: maxMessage, stun: stun, turn: wire.turn))
        case "allocated", "claimed":
            let nameplate = try required(wire.nameplate, "nameplate")
            do { try Nameplate.validate(nameplate) } catch { throw .malformedFrame("bad nameplate") }
            let mailbox = try Identifier(validating: required(wire.mailbox, "mailbox"))
            self = wire.type == "allocated" ? .allocated(nameplate: nameplate, mailbox: mailbox) : .claimed(nameplate: nameplate, mailbox: mailbox)
        case "attached":
            self = .attached(mailbox: try Identifier(validating: required(wire.mailbox, "mailbox")))
        case "message":
            self = .message(seq: try sequence(wire.seq, "seq"), body: try body(wire.body, limit: FrameLimits.maxBodyBytes))
        case "peer-closed":
            self = .peerClosed(mood: try required(wire.mood, "mood"))
        case "closed":
            self = .closed
        case "turn":
            let turn = try required(wire.turn, "turn")
            try checkTURN(turn)
            self = .turn(turn)
        case "error":
            let raw = try required(wire.code, "code")
            guard raw.utf8.count <= FrameLimits.maxErrorCodeBytes else { throw .malformedFrame("error code too long") }
            let code = RelayErrorCode(rawValue: raw) ?? .other
            let message = try required(wire.message, "message")
            guard message.utf8.count <= FrameLimits.maxStringBytes else { throw .malformedFrame("error message too long") }
            self = .error(code: code, message: message)
        default:
            throw .unknownFrameType(wire.type)
        }
    }
}

private func encode(_ wire: Wire) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding a struct of strings, integers and arrays cannot fail.
    guard let data = try? encoder.encode(wire) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

private func decodeWire(_ text: some Collection<UInt8>, limit: Int) throws(RendezvousError) -> Wire {
    guard text.count <= limit else { throw .frameTooLarge(size: text.count, limit: limit) }
    guard text.first == UInt8(ascii: "{") else { throw .malformedFrame("a frame is one JSON object") }
    do {
        return try JSONDecoder().decode(Wire.self, from: Data(text))
    } catch DecodingError.keyNotFound(let key, _) {
        throw .malformedFrame("missing field '\(key.stringValue)'")
    } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
        throw .malformedFrame("wrong type for '\(context.codingPath.map(\.stringValue).joined(separator: "."))'")
    } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
        throw .malformedFrame("bad value for '\(context.codingPath.map(\.stringValue).joined(separator: "."))'")
    } catch {
        throw .malformedFrame("not valid JSON")
    }
}

/// The bounds a `turn` frame's credentials must keep.
private func checkTURN(_ turn: TURNCredentials) throws(RendezvousError) {
    guard turn.uris.count <= FrameLimits.maxListItems,
          (turn.uris + [turn.username, turn.credential, turn.tlsPin ?? ""]).allSatisfy({ $0.utf8.count <= FrameLimits.maxStringBytes }),
          turn.ttl >= 0
    else { throw .malformedFrame("turn credentials out of range") }
}

private func required<T>(_ value: T?, _ name: String) throws(RendezvousError) -> T {
    guard let value else { throw .malformedFrame("missing field '\(name)'") }
    return value
}

private func sequence(_ value: Int?, _ name: String) throws(RendezvousError) -> Int {
    let value = try required(value, name)
    guard value >= 0, value <= FrameLimits.maxSequence else { throw .malformedFrame("'\(name)' out of range") }
    return value
}

private func body(_ value: String?, limit: Int) throws(RendezvousError) -> [UInt8] {
    let text = try required(value, "body")
    let frameLimit = FrameLimits.maxFrameBytes(forBody: limit)
    guard text.utf8.count <= frameLimit else { throw .frameTooLarge(size: text.utf8.count, limit: frameLimit) }
    guard let data = Data(base64Encoded: text) else { throw .malformedFrame("body is not base64") }
    guard data.count <= limit else { throw .frameTooLarge(size: data.count, limit: limit) }
    return Array(data)
}
