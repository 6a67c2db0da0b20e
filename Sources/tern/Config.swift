import ArgumentParser
import Foundation
import TOMLKit
import TernCollections
import TernSession
import TernTransfer

/// tern's settings with where each came from: a flag, the environment, the
/// config file ($XDG_CONFIG_HOME/tern/config.toml), or the built-in default,
/// in that order of precedence.
struct Settings: Sendable {
    enum Origin: Sendable, Equatable {
        case flag(String)
        case environment(String)
        case file(line: Int)
        case builtIn

        var description: String {
            switch self {
            case .flag(let name): return "flag \(name)"
            case .environment(let name): return "environment \(name)"
            case .file(let line): return "config file, line \(line)"
            case .builtIn: return "default"
            }
        }

        var kind: String {
            switch self {
            case .flag: return "flag"
            case .environment: return "environment"
            case .file: return "file"
            case .builtIn: return "default"
            }
        }
    }

    struct Setting<Value: Sendable>: Sendable {
        var value: Value
        var origin: Origin
    }

    /// What to do with a file that already exists (receive).
    enum Existing: String, Sendable, CaseIterable {
        case refuse, overwrite, rename, skip
    }

    /// TURN preference: `auto` uses whatever path works; `force` is
    /// --force-relay (through the relay's TURN server only).
    enum TURNPreference: String, Sendable, CaseIterable {
        case auto, force
    }

    var relay: Setting<String?> = .init(value: nil, origin: .builtIn)
    var output: Setting<String?> = .init(value: nil, origin: .builtIn)
    var existing: Setting<Existing> = .init(value: .refuse, origin: .builtIn)
    var turn: Setting<TURNPreference> = .init(value: .auto, origin: .builtIn)
    var lan: Setting<Bool> = .init(value: true, origin: .builtIn)
    var qr: Setting<Bool> = .init(value: true, origin: .builtIn)
    /// The file that was read, if there was one.
    var file: String?

    static let keys = ["relay", "output", "existing", "turn", "lan", "qr"]

    /// The config file's path: $XDG_CONFIG_HOME/tern/config.toml, or
    /// ~/.config/tern/config.toml when XDG_CONFIG_HOME is unset or relative.
    static func path(environment: [String: String]) -> String? {
        if let base = environment["XDG_CONFIG_HOME"], base.hasPrefix("/") { return base + "/tern/config.toml" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.config/tern/config.toml" }
        return nil
    }

    /// Reads the file (a missing one is fine) and the environment.
    static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws(CLIError) -> Settings {
        var settings = Settings()
        if let path = path(environment: environment), FileManager.default.fileExists(atPath: path) {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw CLIError(.usage, "cannot read the config file \(path): \(error.localizedDescription)")
            }
            do {
                try settings.apply(file: text)
            } catch {
                throw CLIError(.usage, "bad config file \(path): \(error.message)")
            }
            settings.file = path
        }
        do {
            try settings.apply(environment: environment)
        } catch {
            throw CLIError(.usage, error.message)
        }
        return settings
    }

    struct Problem: Error {
        var message: String
    }

    /// The file's settings. Errors name the line (TOML syntax, an unknown
    /// key, a wrong type or value).
    mutating func apply(file text: String) throws(Problem) {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw Problem(message: "line \(error.source.begin.line): \(error.description)")
        } catch {
            throw Problem(message: "\(error)")
        }
        for key in table.keys {
            let line = Self.line(of: key, in: text)
            guard Self.keys.contains(key) else {
                throw Problem(message: "line \(line): unknown setting '\(key.prefix(40))' (known: \(Self.keys.joined(separator: ", ")))")
            }
            guard let value = table[key] else { continue }
            let origin = Origin.file(line: line)
            func stringValue() throws(Problem) -> String {
                guard let string = value.string else { throw Problem(message: "line \(line): '\(key)' takes a string in quotes") }
                return string
            }
            func boolValue() throws(Problem) -> Bool {
                guard let bool = value.bool else { throw Problem(message: "line \(line): '\(key)' takes true or false") }
                return bool
            }
            do throws(Problem) {
                switch key {
                case "relay": relay = .init(value: try Self.checkedRelay(try stringValue()), origin: origin)
                case "output": output = .init(value: try Self.checkedOutput(try stringValue()), origin: origin)
                case "existing": existing = .init(value: try Self.choice(try stringValue(), key: key), origin: origin)
                case "turn": turn = .init(value: try Self.choice(try stringValue(), key: key), origin: origin)
                case "lan": lan = .init(value: try boolValue(), origin: origin)
                case "qr": qr = .init(value: try boolValue(), origin: origin)
                default: break
                }
            } catch let problem where !problem.message.hasPrefix("line ") {
                throw Problem(message: "line \(line): \(problem.message)")
            }
        }
    }

    /// The environment's settings (each variable read by name here, so the
    /// man page test finds every one).
    mutating func apply(environment: [String: String]) throws(Problem) {
        func given(_ text: String?) -> String? { text.flatMap { $0.isEmpty ? nil : $0 } }
        if let text = given(environment["TERN_RELAY"]) { relay = .init(value: try Self.checkedRelay(text), origin: .environment("TERN_RELAY")) }
        if let text = given(environment["TERN_OUTPUT"]) { output = .init(value: try Self.checkedOutput(text), origin: .environment("TERN_OUTPUT")) }
        if let text = given(environment["TERN_EXISTING"]) {
            existing = .init(value: try Self.choice(text, key: "existing"), origin: .environment("TERN_EXISTING"))
        }
        if let text = given(environment["TERN_TURN"]) { turn = .init(value: try Self.choice(text, key: "turn"), origin: .environment("TERN_TURN")) }
        if let text = given(environment["TERN_LAN"]) { lan = .init(value: try Self.boolean(text, name: "TERN_LAN"), origin: .environment("TERN_LAN")) }
        if let text = given(environment["TERN_QR"]) { qr = .init(value: try Self.boolean(text, name: "TERN_QR"), origin: .environment("TERN_QR")) }
    }

    static func checkedRelay(_ text: String) throws(Problem) -> String {
        do {
            _ = try RelayURL(parsing: text)
        } catch {
            throw Problem(message: error.message)
        }
        return text
    }

    static func checkedOutput(_ text: String) throws(Problem) -> String {
        guard !text.isEmpty, !text.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw Problem(message: "'output' takes a directory")
        }
        return text
    }

    static func choice<Choice: RawRepresentable & CaseIterable>(_ text: String, key: String) throws(Problem) -> Choice where Choice.RawValue == String {
        guard let choice = Choice(rawValue: text.lowercased()) else {
            let shown = String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(40).map(Character.init))
            throw Problem(message: "'\(key)' is one of \(Choice.allCases.map(\.rawValue).joined(separator: ", ")), not '\(shown)'")
        }
        return choice
    }

    static func boolean(_ text: String, name: String) throws(Problem) -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw Problem(message: "\(name) is on or off (1/0, true/false, yes/no)")
        }
    }

    /// The line where `key` is set (first `key =` at the start of a line).
    static func line(of key: String, in text: String) -> Int {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            for form in [key, "\"\(key)\"", "'\(key)'"] where trimmed.hasPrefix(form) {
                let rest = trimmed.dropFirst(form.count).drop { $0 == " " || $0 == "\t" }
                if rest.hasPrefix("=") { return index + 1 }
            }
        }
        return 1
    }

    /// The configured output as a directory: `~/` expanded, and a `/` at
    /// the end, so that a one-file offer is written into it, not as it.
    func outputDirectory(environment: [String: String]) -> String? {
        guard var path = output.value else { return nil }
        if path == "~" || path.hasPrefix("~/"), let home = environment["HOME"] { path = home + path.dropFirst() }
        return path.hasSuffix("/") ? path : path + "/"
    }

    var conflict: TransferReceiver.Conflict {
        switch existing.value {
        case .refuse: return .refuse
        case .overwrite: return .overwrite
        case .rename: return .rename
        case .skip: return .skip
        }
    }
}

/// `tern config`: the effective settings and where each came from.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show the effective settings and where each comes from.",
        discussion: """
            Settings come from a flag, the environment (TERN_RELAY, TERN_OUTPUT, TERN_EXISTING, \
            TERN_TURN, TERN_LAN, TERN_QR), the config file $XDG_CONFIG_HOME/tern/config.toml \
            (~/.config/tern/config.toml), or the built-in default, in that order.
            """)

    @Flag(name: .long, help: "Print one JSON object: each setting with its value and origin.")
    var json = false

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let settings: Settings
        do {
            settings = try Settings.load(environment: environment)
        } catch {
            throw Output(json: json).fail(error)
        }
        let rows: [(String, JSONValue, String, Settings.Origin)] = [
            ("relay", settings.relay.value.map { .string($0) } ?? .null, settings.relay.value ?? "(none: LAN mode)", settings.relay.origin),
            ("output", settings.output.value.map { .string($0) } ?? .null, settings.output.value ?? "(the current directory)", settings.output.origin),
            ("existing", .string(settings.existing.value.rawValue), settings.existing.value.rawValue, settings.existing.origin),
            ("turn", .string(settings.turn.value.rawValue), settings.turn.value.rawValue, settings.turn.origin),
            ("lan", .bool(settings.lan.value), settings.lan.value ? "on" : "off", settings.lan.origin),
            ("qr", .bool(settings.qr.value), settings.qr.value ? "on" : "off", settings.qr.origin),
        ]
        let path = Settings.path(environment: environment)
        if json {
            var fields: [(String, JSONValue)] = [("file", path.map { .string($0) } ?? .null), ("file_read", .bool(settings.file != nil))]
            for (key, value, _, origin) in rows {
                var described: [(String, JSONValue)] = [("value", value), ("origin", .string(origin.kind))]
                if case .file(let line) = origin { described.append(("line", .int(Int64(line)))) }
                if case .environment(let name) = origin { described.append(("variable", .string(name))) }
                fields.append((key, .object(described)))
            }
            var line = ""
            JSONValue.object(fields).write(into: &line)
            print(line)
            return
        }
        print("config file: \(path ?? "(no HOME)")\(settings.file == nil ? " (not present)" : "")")
        for (key, _, shown, origin) in rows {
            let padded = key.padding(toLength: 9, withPad: " ", startingAt: 0)
            print("\(padded) = \(DisplayText.escaped(shown))    (\(origin.description))")
        }
    }
}
