import ArgumentParser
import Foundation
import TernPairing
import TernRendezvous
import TernSession
import TernTransfer
import TernCollections

struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive what another machine sends, with the code it printed.",
        discussion: """
            The code comes from the argument, from TERN_CODE, or from a prompt on the \
            terminal (so it need not appear in the process list). Files go under the output \
            directory with the sender's layout; a stream goes to standard output with '-o -' \
            (or, without --json, when standard output is not a terminal).
            """)

    @Argument(help: ArgumentHelp("The code the sender printed, such as 7-bluebird-caravan.", valueName: "code"))
    var code: String?

    @Flag(name: .shortAndLong, help: "Accept the offer without asking.")
    var yes = false

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp(
        "Write under this directory (default: the current one); '-' writes a stream to standard output.", valueName: "dir"),
        completion: .directory)
    var output: String?

    @Flag(name: .long, help: "Replace files that already exist.")
    var overwrite = false

    @Flag(name: .long, help: "Keep files that already exist and write 'name (1).ext' instead.")
    var rename = false

    @Flag(name: .long, help: "Ignore partial files of an earlier attempt and start over.")
    var noResume = false

    @OptionGroup var session: SessionOptions

    func validate() throws {
        if overwrite && rename { throw ValidationError("give --overwrite or --rename, not both") }
    }

    func run() async throws {
        session.bootstrapLogging()
        let toStdout = output == "-"
        let output = Output(json: session.json, quiet: session.quiet, eventsOnStderr: toStdout)
        let job: @Sendable () async throws -> Void
        do {
            let relay = try session.relayURL()
            let code = try readCode()
            let askFirst = !yes
            if askFirst && !stdinIsTerminal {
                throw CLIError(.usage, "cannot ask whether to accept: standard input is not a terminal; pass --yes to accept")
            }
            var plan = ReceivePlan(directory: self.output ?? ".", streamToStdout: toStdout)
            // Without -o and without --json, a stream follows standard output when it is a pipe or a file.
            plan.streamToStdoutIfPiped = self.output == nil && !session.json && isatty(STDOUT_FILENO) == 0
            plan.conflict = overwrite ? .overwrite : rename ? .rename : .refuse
            plan.resume = !noResume
            let options = session
            let fixed = plan
            job = { try await Self.receive(relay: relay, code: code, askFirst: askFirst, plan: fixed, options: options, output: output) }
        } catch let error as CLIError {
            throw output.fail(error)
        }
        try await runJob(output: output, timeout: session.timeout, job)
    }

    private func readCode() throws(CLIError) -> Code {
        if let code { return try parseCode(code) }
        if let code = ProcessInfo.processInfo.environment["TERN_CODE"], !code.isEmpty { return try parseCode(code) }
        guard stdinIsTerminal else {
            throw CLIError(.usage, "no code: give it as an argument or in TERN_CODE (standard input is not a terminal to ask on)")
        }
        return try promptForCode()
    }

    /// Where and how to write what arrives.
    struct ReceivePlan: Sendable {
        var directory: String
        var streamToStdout: Bool
        var streamToStdoutIfPiped = false
        var conflict: TransferReceiver.Conflict = .refuse
        var resume = true
    }

    static func receive(relay: RelayURL, code: Code, askFirst: Bool, plan: ReceivePlan, options: SessionOptions, output: Output) async throws {
        let session: PairingSession
        do {
            session = try await PairingSession.pair(relay: relay, role: .receiver, code: code) { output.report($0, showCode: false) }
        } catch {
            // Advice only the receiver can follow: the code came from the sender.
            if case .relayRefused(let refusal, _) = error, [.crowded, .expired, .unknownNameplate].contains(refusal) {
                throw CLIError(.wrongCode, error.message + ": ask the sender for a new code")
            }
            throw error
        }
        let pairedAt = ContinuousClock.now
        let message = try await session.receive()
        guard case .offer(let offer) = message else {
            await session.close(mood: .errory)
            throw CLIError(.failure, "the sender sent something other than an offer")
        }
        output.event("offer", Output.offerFields(offer))
        if offer.text == nil || askFirst {
            // With --quiet too when asking: the question needs the offer.
            output.say("Offer: \(Output.describe(offer))", essential: askFirst)
        }
        if let text = offer.text {
            try await session.send(.answer(accept: true, reason: nil))
            await session.close(mood: .happy)
            if output.json {
                output.event("text", [("text", .string(text))])
            } else {
                // The text is the result: it goes to stdout, escaped.
                FileHandle.standardOutput.write(Data((DisplayText.escaped(text) + "\n").utf8))
            }
            return
        }

        // Where it goes, checked before we accept: the directory, its free space.
        let isStream = offer.entries.count == 1 && offer.entries.first?.kind == .stream
        let streamOut = isStream && (plan.streamToStdout || plan.streamToStdoutIfPiped)
        if plan.streamToStdout && !isStream {
            try await decline(session, reason: "the receiver wanted a stream")
            throw CLIError(.usage, "-o - writes a stream to standard output, but the offer is files; give a directory")
        }
        var target: TargetDirectory?
        // A directory made for this offer is removed again if the offer is
        // declined: saying no leaves nothing behind.
        let madeDirectory = !streamOut && access(plan.directory, F_OK) != 0
        func removeMadeDirectory() {
            if madeDirectory { _ = rmdir(plan.directory) }
        }
        if !streamOut {
            do {
                let directory = try TargetDirectory(path: plan.directory, create: true)
                if let needed = offer.totalBytes, let available = directory.availableBytes(), needed > available {
                    throw TransferError.noSpace(needed: needed, available: available)
                }
                target = directory
            } catch let error as TransferError {
                removeMadeDirectory()
                try await decline(session, reason: error.message)
                throw CLIError(.failure, error.message)
            }
        }
        if askFirst {
            let reply = prompt("Accept? [y/N] ")?.trimmingCharacters(in: .whitespaces).lowercased()
            guard reply == "y" || reply == "yes" else {
                removeMadeDirectory()
                try await decline(session, reason: "declined by the receiver")
                throw CLIError(.declined, "declined the offer")
            }
        }
        try await session.send(.answer(accept: true, reason: nil))
        output.event("accepted")

        let (driver, path, channels) = try await DataPath.open(
            session: session, role: .controlled, pairedAt: pairedAt, options: options, output: output)
        // The mailbox is closed at the end (see Send).

        var transferOptions = TransferReceiver.Options(offer: OfferBuilder.limits(for: offer))
        transferOptions.conflict = plan.conflict
        transferOptions.resume = plan.resume
        transferOptions.streamOutput = streamOut ? STDOUT_FILENO : nil
        let progress = ProgressReporter(output: output, verb: "Received")
        defer { progress.abandon() }
        let pipe = DataChannelPipe(channels: channels, stream: nil)
        let receiver = TransferReceiver(target: target, channel: pipe, options: transferOptions, report: { progress.handle($0) })
        do {
            let summary = try await DataPath.run({ try await receiver.run() }, channels: channels, pipe: pipe) {
                await DataPath.interrupt(pipe, saying: "the receiver was interrupted")
            }
            progress.finish(summary, path: path)
            // The sender closes once it has our `finished`; give it a moment.
            await waitForClose(pipe, within: .seconds(2))
        } catch {
            await channels.close()
            await driver.close()
            await session.close(mood: .errory)
            throw error
        }
        await channels.close()
        await driver.close()
        await session.close(mood: .happy)
    }

    private static func decline(_ session: PairingSession, reason: String) async throws {
        try await session.send(.answer(accept: false, reason: reason))
        await session.close(mood: .happy)
    }

    /// Waits until the peer closes the channel (nothing more is read), or the limit.
    private static func waitForClose(_ pipe: DataChannelPipe, within limit: Duration) async {
        await finishes(within: limit) {
            while (try? await pipe.receive()) != nil {}
        }
    }
}
