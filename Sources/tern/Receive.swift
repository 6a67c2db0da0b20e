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
        "Write under this directory (default: the current one). When one file or stream is offered, a name that is not a directory names it, and '-' writes it to standard output.",
        valueName: "dir"),
        completion: .directory)
    var output: String?

    @Flag(name: .long, help: "Replace files that already exist.")
    var overwrite = false

    @Flag(name: .long, help: "Keep files that already exist and write 'name (1).ext' instead.")
    var rename = false

    @Flag(name: .long, help: "Keep files that already exist and leave the offered ones out.")
    var skipExisting = false

    @Flag(name: .long, help: "Ignore partial files of an earlier attempt and start over.")
    var noResume = false

    @Option(name: .long, help: ArgumentHelp(
        "LAN mode: ask the sender at this IP address directly (when multicast does not reach it), or connect to the address:port it printed. IPv6: fd74:6e::11 or [fd74:6e::11]:PORT; a link-local one with its interface, fe80::1%eth0.",
        valueName: "address"))
    var from: String?

    @OptionGroup var session: SessionOptions

    func validate() throws {
        if from != nil && session.relay != nil { throw ValidationError("give either --from or --relay, not both") }
        if [overwrite, rename, skipExisting].filter({ $0 }).count > 1 {
            throw ValidationError("give one of --overwrite, --rename and --skip-existing")
        }
    }

    func run() async throws {
        session.bootstrapLogging()
        let toStdout = output == "-"
        let output = Output(json: session.json, quiet: session.quiet, eventsOnStderr: toStdout)
        let job: @Sendable () async throws -> Void
        do {
            // --from and --lan look on the LAN only; with no relay configured
            // LAN mode is all there is; with one, the LAN is tried beside it.
            let environment = ProcessInfo.processInfo.environment
            let settings = try Settings.load(environment: environment)
            let relay = from != nil ? nil : try session.relayOrLAN(settings)
            let options = session.applying(settings)
            if let from { _ = try LANMode.parseFrom(from) }
            if relay == nil && options.forceRelay {
                throw CLIError(.usage, "--force-relay needs a relay's TURN server: pass --relay ws://HOST:4747 or set TERN_RELAY")
            }
            // With a relay configured, the LAN is tried beside it unless LAN mode is off.
            let lan: ReceiverPairing.LAN? = relay != nil && !settings.lan.value
                ? nil : ReceiverPairing.LAN(from: from, asks: relay == nil, timeout: session.discoveryTimeout)
            let code = try readCode()
            let askFirst = !yes
            if askFirst && !stdinIsTerminal {
                throw CLIError(.usage, "cannot ask whether to accept: standard input is not a terminal; pass --yes to accept")
            }
            var plan = ReceivePlan(output: self.output)
            plan.configuredOutput = settings.outputDirectory(environment: environment)
            // Without -o and without --json, a stream follows standard output when it is a pipe or a file.
            plan.streamToStdoutIfPiped = self.output == nil && !session.json && isatty(STDOUT_FILENO) == 0
            // The target is checked before pairing: a typo in -o costs nobody a code. (Not the
            // current directory when a stream may go to a piped stdout: `cd /; tern receive | tar x`.)
            if !toStdout && !plan.streamToStdoutIfPiped { try ReceiveTarget.check(self.output ?? plan.configuredOutput ?? ".") }
            plan.conflict = overwrite ? .overwrite : rename ? .rename : skipExisting ? .skip : settings.conflict
            plan.resume = !noResume
            let fixed = plan
            job = { try await Self.receive(relay: relay, lan: lan, code: code, askFirst: askFirst, plan: fixed, options: options, output: output) }
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
        /// `-o` as given ("-" for standard output).
        var output: String?
        /// The settings' output directory, used when -o is not given.
        var configuredOutput: String?
        var streamToStdoutIfPiped = false
        var conflict: TransferReceiver.Conflict = .refuse
        var resume = true
    }

    static func receive(relay: RelayURL?, lan: ReceiverPairing.LAN?, code: Code, askFirst: Bool, plan: ReceivePlan, options: SessionOptions, output: Output) async throws {
        let session: PairingSession
        do {
            session = try await ReceiverPairing.pair(relay: relay, lan: lan, code: code, output: output)
        } catch let error as SessionError {
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
                // The text is the result: it goes to stdout, escaped but
                // with its lines and tabs kept.
                FileHandle.standardOutput.write(Data((DisplayText.escaped(text, keepingLines: true) + "\n").utf8))
            }
            return
        }

        // Where it goes, checked before we accept: the place, its free space, what is already there.
        let placement: ReceiveTarget.Placement
        do {
            // Without -o: a piped stream still goes to stdout; anything else to the configured directory.
            let pipedStream = plan.streamToStdoutIfPiped && offer.entries.count == 1 && offer.entries[0].kind == .stream
            let option = plan.output ?? (pipedStream ? nil : plan.configuredOutput)
            placement = try ReceiveTarget.place(option, offer: offer, streamIfPiped: plan.streamToStdoutIfPiped)
        } catch {
            try await decline(session, reason: "the receiver cannot write this offer where it was told to")
            throw error
        }
        var target: TargetDirectory?
        var directory = "."
        var singleName: RelativePath?
        switch placement {
        case .standardOutput: break
        case .directory(let path): directory = path
        case .file(let parent, let name):
            directory = parent
            singleName = name
        }
        // A directory made for this offer is removed again if the offer is
        // declined: saying no leaves nothing behind.
        let madeDirectory = placement != .standardOutput && access(directory, F_OK) != 0
        func removeMadeDirectory() {
            if madeDirectory { _ = rmdir(directory) }
        }
        var conflict = plan.conflict
        if placement != .standardOutput {
            do {
                let opened = try TargetDirectory(path: directory, create: singleName == nil)
                if let needed = offer.totalBytes, let available = opened.availableBytes(), needed > available {
                    throw TransferError.noSpace(needed: needed, available: available)
                }
                target = opened
            } catch let error as TransferError {
                removeMadeDirectory()
                try await decline(session, reason: error.message)
                throw CLIError(.failure, error.message)
            }
        }
        let existing = target.map { ReceiveTarget.existing(offer, in: $0, name: singleName) } ?? []
        if !existing.isEmpty {
            output.event("existing", [("directory", .string(directory)), ("names", .array(existing.map { .string($0) }))])
            output.say(ReceiveTarget.existingSentence(existing, of: singleName == nil ? offer.entries.count : 1, in: directory), essential: askFirst)
            if !askFirst && conflict == .refuse {
                output.say("A file there that differs stops the transfer (exit 6): --overwrite, --rename or --skip-existing settle it.")
            }
        }
        if askFirst {
            if existing.isEmpty || conflict != .refuse {
                let reply = prompt("Accept? [y/N] ")?.trimmingCharacters(in: .whitespaces).lowercased()
                guard reply == "y" || reply == "yes" else {
                    removeMadeDirectory()
                    try await decline(session, reason: "declined by the receiver")
                    throw CLIError(.declined, "declined the offer")
                }
            } else {
                let reply = prompt("Accept and [o]verwrite, [r]ename or [s]kip the existing ones? [o/r/s/N] ")
                guard let choice = ReceiveTarget.conflictChoice(reply) else {
                    removeMadeDirectory()
                    try await decline(session, reason: "declined by the receiver")
                    throw CLIError(.declined, "declined the offer")
                }
                conflict = choice
            }
        }
        try await session.send(.answer(accept: true, reason: nil))
        output.event("accepted")

        let (driver, path, channels) = try await DataPath.open(
            session: session, role: .controlled, pairedAt: pairedAt, options: options, output: output)
        // The mailbox is closed at the end (see Send).

        var transferOptions = TransferReceiver.Options(offer: offer.entries)
        transferOptions.conflict = conflict
        transferOptions.resume = plan.resume
        transferOptions.streamOutput = placement == .standardOutput ? STDOUT_FILENO : nil
        transferOptions.singleName = singleName
        let progress = ProgressReporter(output: output, verb: "Received")
        defer { progress.abandon() }
        let pipe = DataChannelPipe(channels: channels, stream: nil)
        let receiver = TransferReceiver(target: target, channel: pipe, options: transferOptions, report: { progress.handle($0) })
        // After an interruption: what stays for a later attempt, and how to use it.
        let keptIn = directory
        let keptSentence: @Sendable () -> String? = {
            let kept = receiver.keptPartialBytes
            guard kept > 0 else { return nil }
            output.event("partial", [("bytes", .uint(kept)), ("directory", .string(keptIn))])
            return "Kept \(formatBytes(kept)) of partial data in \(DisplayText.escaped(keptIn)); run the same transfer again to resume."
        }
        do {
            let summary = try await DataPath.run({ try await receiver.run() }, channels: channels, pipe: pipe) {
                await DataPath.interrupt(pipe, saying: "the receiver was interrupted")
            } afterInterrupt: {
                if let sentence = keptSentence() { output.say(sentence) }
            }
            progress.finish(summary, path: path)
            // The sender closes once it has our `finished`; give it a moment.
            await waitForClose(pipe, within: .seconds(2))
        } catch {
            await DataPath.close(channels, driver, session, mood: .errory)
            if let failure = error as? CLIError, !InterruptHook.wasInterrupted, let sentence = keptSentence() {
                throw CLIError(failure.exit, output.json ? failure.message : failure.message + "\n" + sentence)
            }
            throw error
        }
        await DataPath.close(channels, driver, session, mood: .happy)
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
