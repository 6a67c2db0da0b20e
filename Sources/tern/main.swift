import ArgumentParser
import Foundation

// A hand-written entry point instead of @main so usage errors exit with 2
// (ArgumentParser's default is 64) and every CLIError exits with its code.

// Signal masks are inherited across exec: a parent that had SIGINT or SIGTERM
// blocked (some supervisors and test harnesses do) would leave tern deaf to
// Ctrl-C and to `kill`. Unblock them before any thread starts, so every
// thread inherits the open mask.
var handledSignals = sigset_t()
sigemptyset(&handledSignals)
sigaddset(&handledSignals, SIGINT)
sigaddset(&handledSignals, SIGTERM)
pthread_sigmask(SIG_UNBLOCK, &handledSignals, nil)

do {
    var command = try Tern.parseAsRoot()
    if var command = command as? any AsyncParsableCommand {
        try await runAsync(&command)
    } else {
        try command.run()
    }
    exit(TernExit.success.rawValue)
} catch let error as CLIError {
    exit(error.exit.rawValue)
} catch {
    let code = Tern.exitCode(for: error)
    if code == .success {
        Tern.exit(withError: error)
    }
    FileHandle.standardError.write(Data((Tern.fullMessage(for: error) + "\n").utf8))
    exit(code == .validationFailure ? TernExit.usage.rawValue : code.rawValue)
}

/// Opens the existential so the async `run()` is the one called.
func runAsync(_ command: inout some AsyncParsableCommand) async throws {
    try await command.run()
}
