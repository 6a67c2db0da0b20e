import TernWire

/// The written limits of the LAN beacon (see docs/protocol.md, "LAN beacon").
public enum LANLimits {
    /// Digits of a nameplate, as in the code (`Nameplate.maxDigits`).
    public static let maximumNameplateDigits = 6
    /// The longest message: magic, version, kind, length, six digits, port.
    public static let maximumDatagramBytes = 4 + 1 + 1 + 1 + maximumNameplateDigits + 2
}

/// A datagram on the LAN beacon port: a sender announcing where its embedded
/// rendezvous listens, or a receiver asking for the sender of a nameplate.
///
/// On purpose it carries the nameplate and the port and nothing else: no
/// name, no size, nothing derived from the code's words, so an observer on
/// the LAN learns what a relay would (a nameplate is in use) and no more.
///
///     0      4       5      6        7          7+n
///     "tern" version kind   n        nameplate  [port, big-endian, announce only]
public enum LANMessage: Equatable, Sendable {
    /// "The rendezvous for `nameplate` listens on `port` of the sending address."
    case announce(nameplate: String, port: UInt16)
    /// "Who has `nameplate`?" With `unicastReply` the answer goes back to the
    /// asking address only (a query sent to one address, `--from`); otherwise
    /// it goes to the group.
    case query(nameplate: String, unicastReply: Bool)

    static let magic: [UInt8] = Array("tern".utf8)
    static let version: UInt8 = 1

    enum Kind: UInt8 {
        case announce = 1
        case query = 2
        case queryUnicastReply = 3
    }

    public var nameplate: String {
        switch self {
        case .announce(let nameplate, _), .query(let nameplate, _): return nameplate
        }
    }

    /// The datagram; throws `badNameplate`/`badPort` for values that would
    /// not parse back.
    public func encoded() throws(LANError) -> [UInt8] {
        let digits = Array(nameplate.utf8)
        try Self.check(digits)
        var bytes = Self.magic
        bytes.append(Self.version)
        switch self {
        case .announce(_, let port):
            guard port != 0 else { throw .badPort }
            bytes.append(Kind.announce.rawValue)
            bytes.append(UInt8(digits.count))
            bytes += digits
            bytes.append(UInt8(port >> 8))
            bytes.append(UInt8(port & 0xff))
        case .query(_, let unicastReply):
            bytes.append((unicastReply ? Kind.queryUnicastReply : Kind.query).rawValue)
            bytes.append(UInt8(digits.count))
            bytes += digits
        }
        return bytes
    }

    /// Parses one whole datagram. Every byte is from an unknown host on the
    /// LAN: the length is bounded before anything else, every field is read
    /// through TernWire's bounded reader, and trailing bytes are refused.
    public init(parsing datagram: some Collection<UInt8>) throws(LANError) {
        guard datagram.count <= LANLimits.maximumDatagramBytes else {
            throw .tooLong(size: datagram.count, limit: LANLimits.maximumDatagramBytes)
        }
        let bytes = Array(datagram)
        var reader = WireReader(bytes)
        do {
            guard Array(try reader.readSlice(count: Self.magic.count)) == Self.magic else { throw LANError.notTern }
            let version = try reader.readUInt8()
            guard version == Self.version else { throw LANError.unknownVersion(version) }
            let rawKind = try reader.readUInt8()
            guard let kind = Kind(rawValue: rawKind) else { throw LANError.unknownKind(rawKind) }
            let length = try reader.readUInt8()
            guard length >= 1, Int(length) <= LANLimits.maximumNameplateDigits else { throw LANError.badNameplate }
            let digits = Array(try reader.readSlice(count: Int(length)))
            try Self.check(digits)
            let nameplate = String(decoding: digits, as: UTF8.self)
            switch kind {
            case .announce:
                let port = try reader.readUInt16()
                guard port != 0 else { throw LANError.badPort }
                self = .announce(nameplate: nameplate, port: port)
            case .query, .queryUnicastReply:
                self = .query(nameplate: nameplate, unicastReply: kind == .queryUnicastReply)
            }
            guard reader.isAtEnd else { throw LANError.trailingBytes(reader.remaining) }
        } catch let error as LANError {
            throw error
        } catch {
            // A read past the end (WireError).
            throw .truncated
        }
    }

    /// A nameplate as the code has it: 1-6 ASCII digits, no leading zero.
    static func check(_ digits: [UInt8]) throws(LANError) {
        guard (1...LANLimits.maximumNameplateDigits).contains(digits.count),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              digits.first != UInt8(ascii: "0")
        else { throw .badNameplate }
    }
}
