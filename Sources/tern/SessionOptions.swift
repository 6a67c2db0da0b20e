import ArgumentParser
import Foundation
import Logging
import TernRendezvous
import TernSession

/// Options both `send` and `receive` take.
struct SessionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The rendezvous relay, a ws:// base URL such as ws://127.0.0.1:4747 (default: $TERN_RELAY).",
        valueName: "url"))
    var relay: String?

    @Flag(name: .long, help: "LAN mode even with a relay configured: the sender runs the rendezvous itself and announces it on the local network, the receiver looks for it there (the default when no relay is configured).")
    var lan = false

    @Flag(name: .long, help: "Print one JSON object per line for each event, on stdout.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Give up after this many seconds for the whole job.", valueName: "seconds"))
    var timeout: Double?

    @Flag(name: .long, help: "Connect through the relay's TURN server only, so the other side never learns this machine's addresses.")
    var forceRelay = false

    @Flag(name: .shortAndLong, help: "Print nothing but errors (no progress, no summary).")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Log what the connection does (candidates, checks, TURN) on stderr.")
    var verbose = false

    /// Sends log lines to stderr as logfmt: debug with --verbose, errors
    /// only with --quiet, warnings otherwise.
    func bootstrapLogging() {
        let level: Logger.Level = verbose ? .debug : quiet ? .error : .warning
        LoggingSystem.bootstrap { label in
            var handler = LogfmtHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The relay from --relay, TERN_RELAY or the config file; nil when none
    /// is configured.
    func configuredRelay(_ settings: Settings) throws(CLIError) -> RelayURL? {
        guard let text = relay ?? settings.relay.value, !text.isEmpty else { return nil }
        do {
            return try RelayURL(parsing: text)
        } catch {
            throw CLIError(error)
        }
    }

    /// The relay to use, or nil for LAN mode; a usage error when there is
    /// none and LAN mode is off in the settings.
    func relayOrLAN(_ settings: Settings) throws(CLIError) -> RelayURL? {
        if lan { return nil }
        let relay = try configuredRelay(settings)
        if relay == nil && !settings.lan.value {
            throw CLIError(.usage, "no relay: pass --relay ws://HOST:4747 or set TERN_RELAY (start one with 'tern relay'); LAN mode is off (\(settings.lan.origin.description))")
        }
        return relay
    }

    /// These options with the settings' TURN preference applied.
    func applying(_ settings: Settings) -> SessionOptions {
        var options = self
        if settings.turn.value == .force { options.forceRelay = true }
        return options
    }

    /// How long a receiver looks for a sender on the LAN: --timeout less a
    /// little (so the sentence with the ways forward comes before the
    /// job's deadline), or `LANMode.defaultDiscoveryTimeout`.
    var discoveryTimeout: Double {
        guard let timeout else { return LANMode.defaultDiscoveryTimeout }
        return max(0.1, min(timeout * 0.9, timeout - 0.3))
    }

    func validate() throws {
        if lan && relay != nil { throw ValidationError("give either --lan or --relay, not both") }
        if lan && forceRelay { throw ValidationError("--force-relay needs a relay's TURN server; LAN mode has none") }
        if let timeout, !(timeout > 0 && timeout <= 7 * 24 * 3600) {
            throw ValidationError("--timeout must be a number of seconds above 0")
        }
    }
}

/// Parses a code from a flag, the environment or a prompt, as a usage error when bad.
func parseCode(_ text: String) throws(CLIError) -> Code {
    do {
        return try Code(parsing: text)
    } catch {
        if case .badCode(let why) = error { throw CLIError(.usage, why) }
        throw CLIError(.usage, error.reason)
    }
}

var stdinIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }

/// Reads one line from the terminal after showing `prompt` on stderr.
func prompt(_ text: String) -> String? {
    FileHandle.standardError.write(Data(text.utf8))
    return readLine(strippingNewline: true)
}

/// Runs the job; turns session errors into CLI errors reported once. Ctrl-C
/// (exit 130), SIGTERM (143) and the --timeout deadline (4) end the process
/// within `EarlyEnd.grace`, having told the peer and released the nameplate.
func runJob(output: Output, timeout: Double?, _ job: @escaping @Sendable () async throws -> Void) async throws {
    let end = EarlyEnd(output: output)
    let signals = [
        end.watch(signal: SIGINT, as: CLIError(.interrupted, "interrupted")),
        end.watch(signal: SIGTERM, as: CLIError(.terminated, "terminated (SIGTERM)")),
    ]
    let deadline = timeout.map { end.deadline(after: $0) }
    defer {
        for source in signals { source.cancel() }
        deadline?.cancel()
    }
    do {
        try await job()
    } catch {
        // Ending early closes the job's channels: its error is a consequence.
        if end.happened != nil { await end.waitForExit() }
        // Whatever failed, a mailbox still open is closed, so the nameplate
        // is released now rather than when the relay gives up on this side.
        await RelayConnection.leaveAll(mood: .errory)
        if let error = error as? CLIError { throw output.fail(error) }
        if let error = error as? SessionError { throw output.fail(CLIError(error)) }
        throw error
    }
    if end.happened != nil { await end.waitForExit() }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
}

/// Output is shared between the job task and the signal handler; it only
/// writes whole lines to file handles.
extension Output: @unchecked Sendable {}
