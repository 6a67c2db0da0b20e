import ArgumentParser
import Foundation
import TernPairing
import TernRendezvous
import TernSession
import TernTransfer
import TernCollections

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send files, directories, a stream or a text to another machine.",
        discussion: """
            Prints a code such as 7-bluebird-caravan; run 'tern receive' with it on the \
            other machine. With --code (or TERN_CODE) both sides use a code agreed in advance. \
            With no path and standard input not a terminal, standard input is sent as a stream.
            """)

    @Argument(help: ArgumentHelp("Files and directories to send; '-' sends standard input.", valueName: "path"),
              completion: .file())
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Use this pre-agreed code instead of asking the relay for one (default: $TERN_CODE).", valueName: "code"))
    var code: String?

    @Option(name: .long, help: ArgumentHelp("Send a short text instead of files.", valueName: "message"))
    var text: String?

    @Flag(name: .long, help: "Leave out, with a warning each, files that cannot be read or whose names the receiver would refuse (by default they stop tern before anything is offered).")
    var ignoreUnsendableFiles = false

    @OptionGroup var session: SessionOptions

    func validate() throws {
        if text != nil && !paths.isEmpty { throw ValidationError("give either paths or --text, not both") }
        if text == nil && paths.isEmpty && stdinIsTerminal {
            throw ValidationError("nothing to send: give a path, '-' for standard input, or --text")
        }
        if let text, text.utf8.count > 32 * 1024 { throw ValidationError("--text is limited to 32 KiB; send a file instead") }
    }

    func run() async throws {
        session.bootstrapLogging()
        let output = Output(json: session.json, quiet: session.quiet)
        let environment = ProcessInfo.processInfo.environment
        let job: @Sendable () async throws -> Void
        do {
            let relay = try session.relayURL()
            let preagreed = try (code ?? environment["TERN_CODE"]).map(parseCode)
            let items: [SourceItem]
            let offer: Offer
            if let text {
                items = []
                offer = Offer(entries: [OfferEntry(name: "text", kind: .text, size: UInt64(text.utf8.count), files: 0)], text: text)
            } else {
                let given = paths.isEmpty ? ["-"] : paths
                do {
                    items = try SourceScanner.scan(given, skipUnsendable: ignoreUnsendableFiles) { warning in output.warn(warning) }
                } catch .unsendable(let path, let reason) {
                    throw CLIError(.usage, TransferError.unsendable(path, reason: reason).message + "; --ignore-unsendable-files leaves such files out")
                } catch {
                    throw CLIError(.usage, error.message)
                }
                guard !items.isEmpty else { throw CLIError(.usage, "nothing left to send: every path given was left out") }
                offer = OfferBuilder.offer(for: items)
                if let problem = OfferBuilder.problem(with: offer) { throw CLIError(.usage, problem) }
            }
            let options = session
            job = { try await Self.send(offer: offer, items: items, relay: relay, code: preagreed, options: options, output: output) }
        } catch let error as CLIError {
            throw output.fail(error)
        }
        try await runJob(output: output, timeout: session.timeout, job)
    }

    static func send(offer: Offer, items: [SourceItem], relay: RelayURL, code: Code?, options: SessionOptions, output: Output) async throws {
        let session = try await PairingSession.pair(relay: relay, role: .sender, code: code) { output.report($0, showCode: true, codeWasGiven: code != nil) }
        let pairedAt = ContinuousClock.now
        try await session.send(.offer(offer))
        output.event("offer", Output.offerFields(offer))
        output.say("Offered \(Output.describe(offer))")
        output.say("Waiting for the receiver to accept…")
        let answer = try await session.receive()
        guard case .answer(let accept, let reason) = answer else {
            await session.close(mood: .errory)
            throw CLIError(.failure, "the receiver sent something other than an answer")
        }
        guard accept else {
            await session.close(mood: .happy)
            throw CLIError(.declined, SessionError.declined(reason.map { DisplayText.escaped($0) }).message)
        }
        output.event("accepted")
        guard offer.text == nil else {
            output.say("The receiver got the text.")
            await session.close(mood: .happy)
            return
        }
        output.say("The receiver accepted the offer.")
        // Addresses are exchanged only now: a declined offer reveals none.
        let (driver, path, channels) = try await DataPath.open(
            session: session, role: .controlling, pairedAt: pairedAt, options: options, output: output)
        // Everything else travels on the data channel. The mailbox is closed
        // at the end, with the outcome's mood: closing it now would put a
        // round trip to the relay before the first byte.
        let progress = ProgressReporter(output: output, verb: "Sent")
        defer { progress.abandon() }
        do {
            let opening = ContinuousClock.now
            let stream = try await channels.open(label: DataPath.channelLabel)
            DataPath.logger.debug("transfer channel open", metadata: ["ms": "\(Connect.milliseconds(ContinuousClock.now - opening))"])
            let pipe = DataChannelPipe(channels: channels, stream: stream)
            let sender = TransferSender(
                items: items, channel: pipe, maxMessageSize: channels.peerMaximumMessageSize, report: { progress.handle($0) })
            let summary = try await DataPath.run({ try await sender.run() }, channels: channels, pipe: pipe) {
                await DataPath.interrupt(pipe, saying: "the sender was interrupted")
            }
            progress.finish(summary, path: path)
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
}
