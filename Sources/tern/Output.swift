import Foundation
import NIOConcurrencyHelpers
import TernPairing
import TernRendezvous
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
///
/// On a terminal, stderr also carries one status line (the progress bar),
/// redrawn in place: every sentence clears it first, and an error ends it
/// for good, so nothing is drawn below "interrupted".
final class Output {
    let json: Bool
    let quiet: Bool
    /// JSON events go to stderr because stdout carries a received stream.
    let eventsOnStderr: Bool
    /// Whether a status line may be drawn: a person at a terminal.
    let drawsStatus: Bool

    private let lock = NIOLock()
    private var statusShown = false
    private var statusEnded = false
    /// The columns the status line took, and the terminal's width then.
    private var statusWidth = 0
    private var statusColumns = 0
    /// Bumped when pairing moves on, so a "Waiting…" hint scheduled for an
    /// earlier stage is not shown.
    private var stage = 0

    /// How long pairing may take before the receiver says it is waiting.
    static let waitingHintDelay: DispatchTimeInterval = .milliseconds(500)

    init(json: Bool, quiet: Bool = false, eventsOnStderr: Bool = false) {
        self.json = json
        self.quiet = quiet
        self.eventsOnStderr = eventsOnStderr
        self.drawsStatus = !json && !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Whether sentences for a person are shown.
    var speaks: Bool { !json && !quiet }

    /// A JSON event (only with --json).
    func event(_ name: String, _ fields: [(String, JSONValue)] = []) {
        guard json else { return }
        var line = ""
        JSONValue.object([("event", .string(name))] + fields).write(into: &line)
        line += "\n"
        (eventsOnStderr ? FileHandle.standardError : FileHandle.standardOutput).write(Data(line.utf8))
    }

    /// A sentence for a person (not with --json; with --quiet only when
    /// `essential`: the code the other side needs, an offer to answer).
    func say(_ text: String, essential: Bool = false) {
        guard !json, !quiet || essential else { return }
        lock.withLock {
            clearStatusLocked()
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    /// A warning for a person ("tern: warning: …") and as an event.
    func warn(_ text: String) {
        event("warning", [("message", .string(text))])
        guard speaks else { return }
        lock.withLock {
            clearStatusLocked()
            FileHandle.standardError.write(Data(("tern: warning: " + DisplayText.escaped(text) + "\n").utf8))
        }
    }

    /// Draws the status line `line(columns)` makes for the terminal's
    /// width now, replacing the one before. The width is read once per
    /// draw, so the line and the clean-up of the one before agree on it.
    func status(_ line: (Int) -> String) {
        guard drawsStatus else { return }
        lock.withLock {
            guard !statusEnded else { return }
            let columns = TerminalSize.read()
            let line = line(columns)
            var text = "\r"
            // The terminal got narrower than the line last drawn: terminals
            // that reflow (tmux, VTE, kitty, iTerm2) have wrapped it onto
            // more rows, with the cursor on the last. Up to its first row,
            // and clear everything below, so no piece of it stays behind.
            if statusShown, columns != statusColumns, statusWidth > columns {
                let rows = (statusWidth + columns - 1) / columns
                if rows > 1 { text += "\u{1b}[\(rows - 1)A" }
                text += "\u{1b}[J"
            }
            FileHandle.standardError.write(Data((text + line + "\u{1b}[K").utf8))
            statusShown = true
            statusWidth = TerminalText.width(line)
            statusColumns = columns
        }
    }

    /// Removes the status line (the next `status` draws it again).
    func clearStatus() {
        lock.withLock { clearStatusLocked() }
    }

    private func clearStatusLocked() {
        guard statusShown else { return }
        FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
        statusShown = false
    }

    /// Reports what happened while pairing, both ways. Only the sender
    /// shows the code (`showCode`): the receiver typed it. A code that was
    /// given (`codeWasGiven`, pre-agreed) is not essential with --quiet:
    /// the other side has it already.
    func report(_ pairing: PairingEvent, showCode: Bool, codeWasGiven: Bool = false, link: ((Code) -> String?)? = nil) {
        switch pairing {
        case .connected:
            break
        case .code(let code):
            guard showCode else {
                // The receiver has claimed the nameplate: until the sender
                // is there too, nothing happens; say so if it takes a while.
                hintLater("Waiting for the sender…")
                return
            }
            var fields: [(String, JSONValue)] = [("code", .string(code.description)), ("nameplate", .string(code.nameplate))]
            // The receive link (the relay's page, the code in the fragment), for a phone or a browser.
            if let link = link?(code) { fields.append(("link", .string(link))) }
            event("code", fields)
            say("Code: \(code)", essential: !codeWasGiven)
            say("On the other machine run: tern receive \(code)")
        case .paired:
            nextStage()
            event("paired")
            say("Paired: the key is confirmed.")
        case .reconnected:
            event("reconnected")
            say("Reconnected to the relay.")
        }
    }

    /// Says `text` after `waitingHintDelay` unless the stage moves on first.
    func hintLater(_ text: String) {
        guard speaks else { return }
        let scheduled = lock.withLock { stage }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.waitingHintDelay) { [self] in
            guard lock.withLock({ stage == scheduled && !statusEnded }) else { return }
            say(text)
        }
    }

    /// Pairing (or the job) moved on: pending hints are dropped.
    func nextStage() {
        lock.withLock { stage += 1 }
    }

    /// Reports an error both ways and returns it, for `throw output.fail(...)`.
    /// The status line is cleared and never drawn again.
    func fail(_ error: CLIError) -> CLIError {
        lock.withLock {
            clearStatusLocked()
            statusEnded = true
            stage += 1
        }
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
                ("directories", .uint(entry.directories ?? 0)),
                ("links", .uint(entry.links ?? 0)),
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
        if let text = offer.text {
            let lines = DisplayText.escaped(text, keepingLines: true).split(separator: "\n", omittingEmptySubsequences: false)
            return "a text message:\n" + lines.map { "  " + $0 }.joined(separator: "\n")
        }
        if offer.entries.count == 1, let stream = offer.entries.first, stream.kind == .stream {
            return "a stream" + (stream.size.map { " of \(formatBytes($0))" } ?? " of unknown length")
        }
        var lines: [String] = []
        let shown = offer.entries.prefix(10)
        for entry in shown {
            let name = DisplayText.escaped(entry.name)
            switch entry.kind {
            case .file: lines.append("  \(name) (\(formatBytes(entry.size ?? 0)))")
            case .directory:
                // Directories and links are limits too (a tree of no files may still make many).
                var counts = ["\(entry.files) file\(entry.files == 1 ? "" : "s")"]
                if let directories = entry.directories, directories > 0 { counts.append("\(directories) director\(directories == 1 ? "y" : "ies")") }
                if let links = entry.links, links > 0 { counts.append("\(links) link\(links == 1 ? "" : "s")") }
                lines.append("  \(name)/ (\(counts.joined(separator: ", ")), \(formatBytes(entry.size ?? 0)))")
            case .stream: lines.append("  a stream" + (entry.size.map { " of \(formatBytes($0))" } ?? " of unknown length"))
            case .text: lines.append("  text")
            }
        }
        if offer.entries.count > shown.count { lines.append("  … and \(offer.entries.count - shown.count) more") }
        let total = offer.totalBytes.map(formatBytes) ?? "unknown size"
        return "\(offer.totalFiles) file\(offer.totalFiles == 1 ? "" : "s"), \(total):\n" + lines.joined(separator: "\n")
    }
}

/// A size in the CLI's units (binary, as the rates).
func formatBytes(_ bytes: UInt64) -> String {
    ByteFormat.size(bytes)
}

/// A rate in the CLI's units (binary, as the sizes).
func formatRate(_ bytesPerSecond: Double) -> String {
    ByteFormat.rate(bytesPerSecond)
}
