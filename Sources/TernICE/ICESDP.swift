import TernSTUN

// The ICE attributes of SDP (RFC 8839 §5) and of trickle ICE (RFC 8840 §8.2):
// candidate, ice-ufrag, ice-pwd, ice-options, end-of-candidates.
//
// Every line is hostile: the parser bounds the line length and the number of
// fields before it looks at them, accepts printable ASCII only, and throws an
// `ICEError` that names the field; it never traps.

/// A candidate whose connection address is a host name rather than an IP
/// address: an mDNS name (`<uuid>.local`, draft-ietf-mmusic-mdns-ice-candidates)
/// or, rarely, an FQDN (RFC 8839 §5.1). The caller resolves the name and
/// calls `resolved(to:)`, or skips the candidate.
public struct ICEUnresolvedCandidate: Hashable, Sendable {
    public var foundation: String
    public var component: Int
    public var transport: ICETransport
    public var priority: UInt32
    public var hostname: String
    public var port: UInt16
    public var type: ICECandidateType
    /// raddr/rport when it was an IP address (a host-name raddr is dropped: it is informational).
    public var relatedAddress: STUNAddress?

    public init(
        foundation: String, component: Int = 1, transport: ICETransport = .udp, priority: UInt32,
        hostname: String, port: UInt16, type: ICECandidateType, relatedAddress: STUNAddress? = nil
    ) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.hostname = hostname
        self.port = port
        self.type = type
        self.relatedAddress = relatedAddress
    }

    /// True for a `.local` name, to be resolved with multicast DNS (RFC 6762).
    public var isMDNS: Bool {
        hostname.utf8.count > 6 && hostname.lowercased().hasSuffix(".local")
    }

    /// The candidate with `ip` as its address.
    public func resolved(to ip: STUNAddress.Family) -> ICECandidate {
        ICECandidate(
            foundation: foundation, component: component, transport: transport, priority: priority,
            address: STUNAddress(family: ip, port: port), type: type, relatedAddress: relatedAddress
        )
    }
}

/// What a candidate line holds: a candidate ready to use, or one whose
/// address is still a name.
public enum ICEParsedCandidate: Hashable, Sendable {
    case candidate(ICECandidate)
    case unresolved(ICEUnresolvedCandidate)

    /// The candidate, if its address is an IP address.
    public var candidate: ICECandidate? {
        if case .candidate(let candidate) = self { return candidate }
        return nil
    }
}

extension ICECandidate {
    /// The longest line accepted (Chromium's lines are under 250 bytes).
    public static let maximumLineLength = 1024
    /// The most space-separated fields accepted (8 mandatory, 4 raddr/rport, extensions).
    public static let maximumFieldCount = 64

    /// Parses `candidate:...` (RFC 8839 §5.1), with or without the `a=` prefix,
    /// or the bare value after `candidate:`. One trailing CRLF is allowed.
    /// Extension attributes (Chromium's generation, ufrag, network-id,
    /// network-cost) are checked for syntax and ignored; `tcptype` is kept.
    ///
    ///     candidate-attribute = "candidate" ":" foundation SP component-id SP
    ///                           transport SP priority SP connection-address SP
    ///                           port SP cand-type [SP rel-addr] [SP rel-port]
    ///                           *(SP cand-extension)
    public static func parse(_ line: some StringProtocol) throws(ICEError) -> ICEParsedCandidate {
        var bytes = try SDPLine.bytes(of: line)
        for prefix in ["a=candidate:", "candidate:"] where bytes.starts(with: prefix.utf8) {
            bytes = bytes.dropFirst(prefix.utf8.count)
            break
        }
        return try parseValue(bytes)
    }

    static func parseValue(_ bytes: ArraySlice<UInt8>) throws(ICEError) -> ICEParsedCandidate {
        let fields = bytes.split(separator: UInt8(ascii: " "))
        guard fields.count <= maximumFieldCount else { throw .tooManyFields(limit: maximumFieldCount) }
        var cursor = FieldCursor(fields: fields)

        // RFC 8839 §5.1: foundation = 1*32ice-char
        let foundationField = try cursor.next("foundation")
        guard (1...32).contains(foundationField.count), foundationField.allSatisfy(SDPLine.isICEChar) else {
            throw .invalidField(name: "foundation", value: ICEError.shown(String(decoding: foundationField, as: UTF8.self)))
        }
        // component-id = 1*3DIGIT, 1-256 (RFC 8445 §5.1.2.1)
        let componentField = try cursor.next("component")
        guard let component = IPAddressText.decimal(componentField, maxDigits: 3), (1...256).contains(component) else {
            throw cursor.invalid("component", componentField)
        }
        // transport = "UDP" / transport-extension (compared case-insensitively)
        let transportField = try cursor.next("transport")
        let transportName = SDPLine.lowercased(transportField)
        guard transportName == "udp" || transportName == "tcp" else {
            throw .unsupportedTransport(ICEError.shown(String(decoding: transportField, as: UTF8.self)))
        }
        // priority = 1*10DIGIT, 1 ... 2^31 - 1 (RFC 8445 §5.1.2)
        let priorityField = try cursor.next("priority")
        guard let priority = IPAddressText.decimal(priorityField, maxDigits: 10), (1...0x7FFF_FFFF).contains(priority) else {
            throw cursor.invalid("priority", priorityField)
        }
        let addressField = try cursor.next("connection-address")
        let portField = try cursor.next("port")
        guard let port = IPAddressText.decimal(portField, maxDigits: 5), port <= 65535 else {
            throw cursor.invalid("port", portField)
        }
        // cand-type = "typ" SP candidate-types
        let typKeyword = try cursor.next("typ")
        guard SDPLine.lowercased(typKeyword) == "typ" else { throw cursor.invalid("typ", typKeyword) }
        let typeField = try cursor.next("candidate type")
        guard let type = ICECandidateType(rawValue: SDPLine.lowercased(typeField)) else {
            throw .unsupportedCandidateType(ICEError.shown(String(decoding: typeField, as: UTF8.self)))
        }

        // [SP rel-addr] [SP rel-port] *(SP cand-extension)
        var relatedFamily: STUNAddress.Family?
        var relatedPort: UInt16?
        var tcpType: ICETCPType?
        while let name = cursor.peek() {
            cursor.skip()
            let lowered = SDPLine.lowercased(name)
            switch lowered {
            case "raddr":
                let value = try cursor.next("raddr value")
                if let family = IPAddressText.parse(value) {
                    relatedFamily = family
                } else if !IPAddressText.isHostname(value) {
                    throw cursor.invalid("raddr", value)
                }
            case "rport":
                let value = try cursor.next("rport value")
                guard let number = IPAddressText.decimal(value, maxDigits: 5), number <= 65535 else {
                    throw cursor.invalid("rport", value)
                }
                relatedPort = UInt16(number)
            case "tcptype":
                let value = try cursor.next("tcptype value")
                guard let parsed = ICETCPType(rawValue: SDPLine.lowercased(value)) else { throw cursor.invalid("tcptype", value) }
                tcpType = parsed
            default:
                // RFC 8839 §5.1: extension-att-name = token; extension-att-value = *VCHAR.
                // Unknown extensions are ignored. A name at the very end gets an empty value.
                guard name.allSatisfy(SDPLine.isTokenChar) else { throw cursor.invalid("extension name", name) }
                cursor.skip()
            }
        }

        let transport: ICETransport
        if transportName == "tcp" {
            // RFC 6544 §4.5: a TCP candidate carries its tcptype.
            guard let tcpType else { throw .missingField("tcptype") }
            transport = .tcp(tcpType)
        } else {
            transport = .udp
        }
        let related = relatedFamily.map { STUNAddress(family: $0, port: relatedPort ?? 0) }
        let foundation = String(decoding: foundationField, as: UTF8.self)

        if let family = IPAddressText.parse(addressField) {
            return .candidate(ICECandidate(
                foundation: foundation, component: Int(component), transport: transport, priority: UInt32(priority),
                address: STUNAddress(family: family, port: UInt16(port)), type: type, relatedAddress: related
            ))
        }
        guard IPAddressText.isHostname(addressField) else { throw cursor.invalid("connection-address", addressField) }
        return .unresolved(ICEUnresolvedCandidate(
            foundation: foundation, component: Int(component), transport: transport, priority: UInt32(priority),
            hostname: String(decoding: addressField, as: UTF8.self), port: UInt16(port), type: type, relatedAddress: related
        ))
    }

    /// `candidate:<foundation> <component> udp <priority> <address> <port> typ <type> [raddr <a> rport <p>] [tcptype <t>]`,
    /// the form of RTCIceCandidate.candidate.
    public var sdpAttribute: String {
        var text = "candidate:\(foundation) \(component) \(transport.sdpName) \(priority) "
        text += "\(IPAddressText.format(address.family)) \(address.port) typ \(type.rawValue)"
        if let relatedAddress {
            text += " raddr \(IPAddressText.format(relatedAddress.family)) rport \(relatedAddress.port)"
        }
        if case .tcp(let tcpType) = transport {
            text += " tcptype \(tcpType.rawValue)"
        }
        return text
    }

    /// `a=candidate:...` for an SDP body.
    public var sdpLine: String { "a=" + sdpAttribute }
}

/// One ICE-related SDP attribute line.
public enum ICESDPAttribute: Hashable, Sendable {
    case candidate(ICEParsedCandidate)
    /// RFC 8839 §5.4.
    case ufrag(String)
    /// RFC 8839 §5.4.
    case password(String)
    /// RFC 8839 §5.6, e.g. ["trickle"] (RFC 8840 §6).
    case options([String])
    /// RFC 8840 §8.2.
    case endOfCandidates

    /// Parses one line, with or without `a=`. Lines for other attributes
    /// throw `.unsupportedAttribute`, so a caller can feed every line of a
    /// media section and keep what parses.
    public static func parse(_ line: some StringProtocol) throws(ICEError) -> ICESDPAttribute {
        var bytes = try SDPLine.bytes(of: line)
        if bytes.starts(with: "a=".utf8) { bytes = bytes.dropFirst(2) }
        let colon = bytes.firstIndex(of: UInt8(ascii: ":"))
        let name = bytes[bytes.startIndex..<(colon ?? bytes.endIndex)]
        let value = colon.map { bytes[bytes.index(after: $0)...] } ?? bytes[bytes.endIndex...]
        switch String(decoding: name, as: UTF8.self) {
        case "candidate":
            guard colon != nil else { throw .missingField("foundation") }
            return .candidate(try ICECandidate.parseValue(value))
        case "ice-ufrag":
            return .ufrag(try ICECredentials.validatedUfrag(value))
        case "ice-pwd":
            return .password(try ICECredentials.validatedPassword(value))
        case "ice-options":
            let tags = value.split(separator: UInt8(ascii: " "))
            guard !tags.isEmpty, tags.count <= ICECandidate.maximumFieldCount,
                tags.allSatisfy({ $0.allSatisfy(SDPLine.isICEChar) || $0.allSatisfy(SDPLine.isTokenChar) })
            else { throw .invalidField(name: "ice-options", value: ICEError.shown(String(decoding: value, as: UTF8.self))) }
            return .options(tags.map { String(decoding: $0, as: UTF8.self) })
        case "end-of-candidates":
            guard colon == nil else { throw .invalidField(name: "end-of-candidates", value: ICEError.shown(String(decoding: value, as: UTF8.self))) }
            return .endOfCandidates
        default:
            throw .unsupportedAttribute(ICEError.shown(String(decoding: name, as: UTF8.self)))
        }
    }

    /// The line with its `a=` prefix and no line ending.
    public var sdpLine: String {
        switch self {
        case .candidate(.candidate(let candidate)):
            return candidate.sdpLine
        case .candidate(.unresolved(let unresolved)):
            var text = "a=candidate:\(unresolved.foundation) \(unresolved.component) \(unresolved.transport.sdpName) "
            text += "\(unresolved.priority) \(unresolved.hostname) \(unresolved.port) typ \(unresolved.type.rawValue)"
            if let related = unresolved.relatedAddress {
                text += " raddr \(IPAddressText.format(related.family)) rport \(related.port)"
            }
            if case .tcp(let tcpType) = unresolved.transport { text += " tcptype \(tcpType.rawValue)" }
            return text
        case .ufrag(let ufrag):
            return "a=ice-ufrag:\(ufrag)"
        case .password(let password):
            return "a=ice-pwd:\(password)"
        case .options(let tags):
            return "a=ice-options:\(tags.joined(separator: " "))"
        case .endOfCandidates:
            return "a=end-of-candidates"
        }
    }
}

/// Local ICE credentials (RFC 8445 §5.3, RFC 8839 §5.4).
public struct ICECredentials: Hashable, Sendable {
    public var ufrag: String
    public var password: String

    /// Checks the RFC 8839 §5.4 length and character rules.
    public init(ufrag: String, password: String) throws(ICEError) {
        self.ufrag = try Self.validatedUfrag(Array(ufrag.utf8)[...])
        self.password = try Self.validatedPassword(Array(password.utf8)[...])
    }

    /// Fresh random credentials: an 8-character ufrag (48 bits, RFC 8445 §5.3
    /// asks for at least 24) and a 24-character password (144 bits; at least 128).
    public static func random() -> ICECredentials {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> ICECredentials {
        func text(_ count: Int) -> String {
            var bytes: [UInt8] = []
            for _ in 0..<count { bytes.append(SDPLine.iceChars[Int(generator.next() % 64)]) }
            return String(decoding: bytes, as: UTF8.self)
        }
        // Both values are ice-chars of valid lengths by construction.
        return ICECredentials(unchecked: text(8), password: text(24))
    }

    private init(unchecked ufrag: String, password: String) {
        self.ufrag = ufrag
        self.password = password
    }

    /// RFC 8839 §5.4: ufrag = 4*256ice-char.
    static func validatedUfrag(_ value: ArraySlice<UInt8>) throws(ICEError) -> String {
        guard (4...256).contains(value.count), value.allSatisfy(SDPLine.isICEChar) else {
            throw .invalidUfrag(ICEError.shown(String(decoding: value, as: UTF8.self)))
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// RFC 8839 §5.4: password = 22*256ice-char.
    static func validatedPassword(_ value: ArraySlice<UInt8>) throws(ICEError) -> String {
        guard (22...256).contains(value.count), value.allSatisfy(SDPLine.isICEChar) else {
            throw .invalidPassword(length: value.count)
        }
        return String(decoding: value, as: UTF8.self)
    }
}

/// Byte-level helpers for SDP lines.
enum SDPLine {
    static let iceChars: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The line's bytes without one trailing CRLF (or LF), bounded and checked
    /// to be printable ASCII and spaces.
    static func bytes(of line: some StringProtocol) throws(ICEError) -> ArraySlice<UInt8> {
        let length = line.utf8.count
        guard length <= ICECandidate.maximumLineLength + 2 else {
            throw .lineTooLong(length: length, limit: ICECandidate.maximumLineLength)
        }
        var bytes = Array(line.utf8)[...]
        if bytes.last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        guard bytes.count <= ICECandidate.maximumLineLength else {
            throw .lineTooLong(length: bytes.count, limit: ICECandidate.maximumLineLength)
        }
        if let bad = bytes.firstIndex(where: { $0 < 0x20 || $0 > 0x7E }) {
            throw .invalidCharacter(offset: bad - bytes.startIndex)
        }
        return bytes
    }

    /// RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/".
    static func isICEChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    /// RFC 4566 §9 token-char: printable ASCII except the separators SDP reserves.
    static func isTokenChar(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x30...0x39, 0x41...0x5A, 0x5E...0x7E:
            return true
        default:
            return false
        }
    }

    static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}

/// Walks the fields of a candidate line, naming the one that is missing.
private struct FieldCursor {
    var fields: [ArraySlice<UInt8>]
    var index = 0

    mutating func next(_ name: String) throws(ICEError) -> ArraySlice<UInt8> {
        guard index < fields.count else { throw .missingField(name) }
        defer { index += 1 }
        return fields[index]
    }

    func peek() -> ArraySlice<UInt8>? {
        index < fields.count ? fields[index] : nil
    }

    mutating func skip() {
        index += 1
    }

    func invalid(_ name: String, _ value: ArraySlice<UInt8>) -> ICEError {
        .invalidField(name: name, value: ICEError.shown(String(decoding: value, as: UTF8.self)))
    }
}
