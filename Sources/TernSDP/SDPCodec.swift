// Parsing and writing session descriptions. Every SDP comes from the peer
// through the sealed mailbox, or from a browser: bounded, strict about what
// tern uses, silent about what it does not (RFC 8866 §5: unknown attributes
// are ignored).

/// Every bound on a description from the peer, checked before what it
/// bounds is kept (`ResourceLimitTests` drives each past its value). A
/// browser's data-channel offer is about 600 bytes, 20 lines, one media
/// section and a handful of candidates.
public enum SDPLimits {
    /// The whole description, in bytes: 64 KiB.
    public static let maxBytes = 64 * 1024
    /// Lines, counted before any is parsed: 2048.
    public static let maxLines = 2048
    /// One line, in bytes: 4096.
    public static let maxLineBytes = 4096
    /// `m=` sections: 32.
    public static let maxMediaSections = 32
    /// `a=candidate` lines in one media section: 256.
    public static let maxCandidates = 256
    /// One candidate's value (after `candidate:`), in bytes: 1024.
    public static let maxCandidateBytes = 1024
}

extension SessionDescription {
    /// Parses SDP text (CRLF or LF line ends).
    public init(parsing text: String) throws(SDPError) {
        guard text.utf8.count <= SDPLimits.maxBytes else { throw SDPError("larger than \(SDPLimits.maxBytes) bytes") }
        // Split on bytes: Swift treats "\r\n" as one Character.
        var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            Substring(line.last == UInt8(ascii: "\r") ? line.dropLast() : line)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count <= SDPLimits.maxLines else { throw SDPError("more than \(SDPLimits.maxLines) lines") }
        guard lines.first == "v=0" else { throw SDPError("must start with v=0", line: 1) }

        var sessionID: UInt64?
        var sessionVersion: UInt64 = 0
        var session = MediaDescription(kind: "", port: 0, proto: "", formats: [])  // session-level defaults
        var media: [MediaDescription] = []

        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            guard line.utf8.count <= SDPLimits.maxLineBytes else { throw SDPError("line too long", line: number) }
            let bytes = Array(line.utf8)
            guard bytes.count >= 2, bytes[1] == UInt8(ascii: "="), bytes[0] >= UInt8(ascii: "a"), bytes[0] <= UInt8(ascii: "z") else {
                throw SDPError("not a '<letter>=<value>' line", line: number)
            }
            guard !bytes.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7f }) else {
                throw SDPError("control character", line: number)
            }
            let value = String(line.dropFirst(2))
            switch bytes[0] {
            case UInt8(ascii: "o"):
                let fields = value.split(separator: " ")
                guard fields.count == 6, let id = UInt64(fields[1]), let version = UInt64(fields[2]) else {
                    throw SDPError("bad origin line", line: number)
                }
                sessionID = id
                sessionVersion = version
            case UInt8(ascii: "m"):
                guard media.count < SDPLimits.maxMediaSections else { throw SDPError("too many media sections", line: number) }
                media.append(try Self.parseMediaLine(value, line: number))
            case UInt8(ascii: "a"):
                if media.isEmpty {
                    try Self.apply(attribute: value, to: &session, line: number)
                } else {
                    try Self.apply(attribute: value, to: &media[media.count - 1], line: number)
                }
            default:
                break  // s=, t=, c=, b=, …: nothing tern needs
            }
        }
        guard let sessionID else { throw SDPError("no origin (o=) line") }
        // Session-level ICE and DTLS attributes apply to sections without their own (RFC 8839 §5.4, RFC 8122 §5).
        for index in media.indices {
            if media[index].iceUfrag == nil { media[index].iceUfrag = session.iceUfrag }
            if media[index].icePwd == nil { media[index].icePwd = session.icePwd }
            if media[index].iceOptions.isEmpty { media[index].iceOptions = session.iceOptions }
            if media[index].fingerprints.isEmpty { media[index].fingerprints = session.fingerprints }
            if media[index].setup == nil { media[index].setup = session.setup }
            if media[index].port == 0 {
                // A rejected section (JSEP §5.3.1) carries nothing but its mid.
                var rejected = MediaDescription(kind: media[index].kind, port: 0, proto: media[index].proto, formats: media[index].formats)
                rejected.mid = media[index].mid
                media[index] = rejected
            }
        }
        self.init(sessionID: sessionID, sessionVersion: sessionVersion, media: media)
    }

    static func parseMediaLine(_ value: String, line: Int) throws(SDPError) -> MediaDescription {
        let fields = value.split(separator: " ")
        guard fields.count >= 4 else { throw SDPError("bad media line", line: line) }
        let portField = fields[1].split(separator: "/", maxSplits: 1).first ?? ""
        guard let port = UInt16(portField) else { throw SDPError("bad media port", line: line) }
        return MediaDescription(kind: String(fields[0]), port: port, proto: String(fields[2]), formats: fields[3...].map(String.init))
    }

    static func apply(attribute: String, to media: inout MediaDescription, line: Int) throws(SDPError) {
        let name: Substring
        let value: Substring
        if let colon = attribute.firstIndex(of: ":") {
            name = attribute[..<colon]
            value = attribute[attribute.index(after: colon)...]
        } else {
            name = Substring(attribute)
            value = ""
        }
        switch name {
        case "ice-ufrag":
            // RFC 8839 §5.4: 4 to 256 ice-chars.
            guard (4...256).contains(value.utf8.count), value.utf8.allSatisfy(isICEChar) else { throw SDPError("bad ice-ufrag", line: line) }
            media.iceUfrag = String(value)
        case "ice-pwd":
            // RFC 8839 §5.4: 22 to 256 ice-chars.
            guard (22...256).contains(value.utf8.count), value.utf8.allSatisfy(isICEChar) else { throw SDPError("bad ice-pwd", line: line) }
            media.icePwd = String(value)
        case "ice-options":
            media.iceOptions = value.split(separator: " ").map(String.init)
        case "fingerprint":
            media.fingerprints.append(try parseFingerprint(value, line: line))
        case "setup":
            guard let setup = DTLSSetup(rawValue: String(value)) else { throw SDPError("unsupported setup '\(value.prefix(16))'", line: line) }
            media.setup = setup
        case "mid":
            guard (1...64).contains(value.utf8.count), !value.contains(" ") else { throw SDPError("bad mid", line: line) }
            media.mid = String(value)
        case "sctp-port":
            guard let port = UInt16(value), port > 0 else { throw SDPError("bad sctp-port", line: line) }
            media.sctpPort = port
        case "max-message-size":
            // RFC 8841 §6: 0 means "no limit"; anything else is a byte count.
            guard let size = UInt64(value), size <= UInt64(UInt32.max) else { throw SDPError("bad max-message-size", line: line) }
            media.maxMessageSize = size
        case "candidate":
            guard media.candidates.count < SDPLimits.maxCandidates else { throw SDPError("too many candidates", line: line) }
            guard !value.isEmpty, value.utf8.count <= SDPLimits.maxCandidateBytes else { throw SDPError("bad candidate", line: line) }
            media.candidates.append("candidate:" + value)
        case "end-of-candidates":
            media.endOfCandidates = true
        default:
            break
        }
    }

    static func parseFingerprint(_ value: Substring, line: Int) throws(SDPError) -> Fingerprint {
        let parts = value.split(separator: " ")
        guard parts.count == 2 else { throw SDPError("bad fingerprint", line: line) }
        let algorithm = parts[0].lowercased()
        let expected: [String: Int] = ["sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64]
        var digest: [UInt8] = []
        for pair in parts[1].split(separator: ":", omittingEmptySubsequences: false) {
            guard pair.utf8.count == 2, let byte = UInt8(pair, radix: 16) else { throw SDPError("bad fingerprint digest", line: line) }
            digest.append(byte)
        }
        if let length = expected[algorithm] {
            guard digest.count == length else { throw SDPError("\(algorithm) fingerprint must be \(length) bytes", line: line) }
        } else {
            guard (1...64).contains(digest.count), algorithm.utf8.count <= 16 else { throw SDPError("bad fingerprint", line: line) }
        }
        return Fingerprint(algorithm: algorithm, digest: digest)
    }

    /// The SDP text, CRLF line ends, in the order browsers write it.
    public func formatted() -> String {
        var lines = [
            "v=0",
            "o=- \(sessionID) \(sessionVersion) IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
        ]
        let bundled = media.filter { $0.port != 0 }.compactMap(\.mid)
        if !bundled.isEmpty { lines.append("a=group:BUNDLE " + bundled.joined(separator: " ")) }
        lines.append("a=msid-semantic: WMS")
        for section in media {
            lines.append("m=\(section.kind) \(section.port) \(section.proto) \(section.formats.joined(separator: " "))")
            lines.append("c=IN IP4 0.0.0.0")
            if section.port == 0 {
                // A rejected section (JSEP §5.3.1): only its mid.
                if let mid = section.mid { lines.append("a=mid:\(mid)") }
                continue
            }
            lines += section.candidates.map { "a=" + $0 }
            if section.endOfCandidates { lines.append("a=end-of-candidates") }
            if let ufrag = section.iceUfrag { lines.append("a=ice-ufrag:\(ufrag)") }
            if let pwd = section.icePwd { lines.append("a=ice-pwd:\(pwd)") }
            if !section.iceOptions.isEmpty { lines.append("a=ice-options:" + section.iceOptions.joined(separator: " ")) }
            lines += section.fingerprints.map { "a=fingerprint:\($0)" }
            if let setup = section.setup { lines.append("a=setup:\(setup.rawValue)") }
            if let mid = section.mid { lines.append("a=mid:\(mid)") }
            if let port = section.sctpPort { lines.append("a=sctp-port:\(port)") }
            if let size = section.maxMessageSize { lines.append("a=max-message-size:\(size)") }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

/// ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4)
@inline(__always)
func isICEChar(_ c: UInt8) -> Bool {
    (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
        || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
}
