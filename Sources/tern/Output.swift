import Foundation
import TernPairing
import TernSession
import TernCollections

/// A JSON value for event lines; keys keep the order they are given in.
enum JSONValue {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    /// A duration in seconds, written with millisecond precision.
    case seconds(Double)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    func write(into out: inout String) {
        switch self {
        case .string(let text): JSONValue.quote(text, into: &out)
        case .int(let value): out += String(value)
        case .uint(let value): out += String(value)
        case .bool(let value): out += value ? "true" : "false"
        case .seconds(let value): out += value.isFinite ? String(format: "%.3f", value) : "null"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out += "," }
                JSONValue.quote(key, into: &out)
                out += ":"
                value.write(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
                    || (0x2028...0x2029).contains(scalar.value) {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// Where the CLI's words go: human sentences on stderr, or one JSON object per
/// line on stdout with `--json`.
final class Output {
    let json: Bool
    let quiet: Bool
    /// JSON events go to stderr because stdout carries a received stream.
    let eventsOnStderr: Bool

    init(json: Bool, quiet: Bool = false, eventsOnStderr: Bool = false) {
        self.json = json
        self.quiet = quiet
        self.eventsOnStderr = eventsOnStderr
    }

    /// A JSON event (only with --json).
    func event(_ name: String, _ fields: [(String, JSONValue)] = []) {
        guard json else { return }
        var line = ""
        JSONValue.object([("event", .string(name))] + fields).write(into: &line)
        line += "\n"
        (eventsOnStderr ? FileHandle.standardError : FileHandle.standardOutput).write(Data(line.utf8))
    }

    /// A sentence for a person (not with --json; with --quiet only when
    /// `essential`: the code the other side needs).
    func say(_ text: String, essential: Bool = false) {
        guard !json, !quiet || essential else { return }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Reports what happened while pairing, both ways. Only the sender
    /// shows the code (`showCode`): the receiver typed it.
    func report(_ pairing: PairingEvent, showCode: Bool) {
        switch pairing {
        case .connected:
            break
        case .code(let code):
            guard showCode else { return }
            event("code", [("code", .string(code.description)), ("nameplate", .string(code.nameplate))])
            say("Code: \(code)", essential: true)
            say("On the other machine run: tern receive \(code)")
        case .paired:
            event("paired")
            say("Paired: the key is confirmed.")
        case .reconnected:
            event("reconnected")
            say("Reconnected to the relay.")
        }
    }

    /// Reports an error both ways and returns it, for `throw output.fail(...)`.
    func fail(_ error: CLIError) -> CLIError {
        if json {
            event("error", [("exit", .int(Int64(error.exit.rawValue))), ("message", .string(error.message))])
        } else {
            FileHandle.standardError.write(Data(("tern: " + error.message + "\n").utf8))
        }
        return error
    }

    static func offerFields(_ offer: Offer) -> [(String, JSONValue)] {
        let entries = offer.entries.map { entry -> JSONValue in
            .object([
                ("name", .string(entry.name)),
                ("kind", .string(entry.kind.rawValue)),
                ("size", entry.size.map { .uint($0) } ?? .null),
                ("files", .uint(entry.files)),
            ])
        }
        var fields: [(String, JSONValue)] = [
            ("entries", .array(entries)),
            ("files", .uint(offer.totalFiles)),
            ("bytes", offer.totalBytes.map { .uint($0) } ?? .null),
        ]
        if let text = offer.text { fields.append(("text", .string(text))) }
        return fields
    }

    /// A one-paragraph description of an offer for a terminal, names escaped.
    static func describe(_ offer: Offer) -> String {
        if let text = offer.text { return "a text message:\n  \(DisplayText.escaped(text))" }
        var lines: [String] = []
        let shown = offer.entries.prefix(10)
        for entry in shown {
            let name = DisplayText.escaped(entry.name)
            switch entry.kind {
            case .file: lines.append("  \(name) (\(formatBytes(entry.size ?? 0)))")
            case .directory:
                lines.append("  \(name)/ (\(entry.files) file\(entry.files == 1 ? "" : "s"), \(formatBytes(entry.size ?? 0)))")
            case .stream: lines.append("  a stream" + (entry.size.map { " of \(formatBytes($0))" } ?? " of unknown length"))
            case .text: lines.append("  text")
            }
        }
        if offer.entries.count > shown.count { lines.append("  … and \(offer.entries.count - shown.count) more") }
        let total = offer.totalBytes.map(formatBytes) ?? "unknown size"
        return "\(offer.totalFiles) file\(offer.totalFiles == 1 ? "" : "s"), \(total):\n" + lines.joined(separator: "\n")
    }
}

func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f ", value) + units[unit]
}
