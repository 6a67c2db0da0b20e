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

    @Flag(name: .long, help: "Do not print the QR code of the receive link (it is printed when standard output is a terminal wide enough).")
    var noQr = false

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
            let settings = try Settings.load(environment: environment)
            // No relay configured (or --lan): LAN mode.
            let relay = try session.relayOrLAN(settings)
            let options = session.applying(settings)
            if relay == nil && options.forceRelay {
                throw CLIError(.usage, "--force-relay needs a relay's TURN server: pass --relay ws://HOST:4747 or set TERN_RELAY")
            }
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
            let qr = !noQr && settings.qr.value
            job = { try await Self.send(offer: offer, items: items, relay: relay, code: preagreed, qr: qr, options: options, output: output) }
        } catch let error as CLIError {
            throw output.fail(error)
        }
        try await runJob(output: output, timeout: session.timeout, job)
    }

    /// Sends through `relay`, or in LAN mode (nil) through a rendezvous of its
    /// own, which is announced until paired and closed when the job ends.
    static func send(offer: Offer, items: [SourceItem], relay: RelayURL?, code: Code?, qr: Bool, options: SessionOptions, output: Output) async throws {
        guard relay == nil else {
            return try await send(offer: offer, items: items, relay: relay, rendezvous: nil, code: code, qr: qr, options: options, output: output)
        }
        let rendezvous = try await LANMode.startRendezvous()
        do {
            try await send(offer: offer, items: items, relay: nil, rendezvous: rendezvous, code: code, qr: qr, options: options, output: output)
        } catch {
            await rendezvous.close()
            throw error
        }
        await rendezvous.close()
    }

    /// The QR code of `link` on stdout, when a person sees it: stdout is a
    /// terminal at least as wide as the code (and not --json or --quiet).
    static func printQR(_ link: String, output: Output) {
        guard output.speaks, isatty(STDOUT_FILENO) == 1, let code = QRCode(link) else { return }
        guard TerminalSize.read(fd: STDOUT_FILENO) >= code.columns else { return }
        FileHandle.standardOutput.write(Data((code.lines().joined(separator: "\n") + "\n").utf8))
        output.say("Receive link: \(link)")
    }

    private static func send(
        offer: Offer, items: [SourceItem], relay: RelayURL?, rendezvous: LANMode.Rendezvous?, code: Code?, qr: Bool,
        options: SessionOptions, output: Output
    ) async throws {
        let session: PairingSession
        if let rendezvous {
            let lanCode = try code ?? LANMode.newCode()
            try await rendezvous.announce(nameplate: lanCode.nameplate)
            let addresses = LANMode.addressesForHint()
            output.event("mode", [("mode", .string("lan")), ("port", .int(Int64(rendezvous.port))), ("addresses", .array(addresses.map { .string($0) }))])
            output.say("No relay configured: this machine is the rendezvous (LAN mode), announced on this network.")
            // The page a phone on the same network opens: this machine's rendezvous.
            let pageURL = try addresses.first.map { try LANMode.url(host: $0, port: rendezvous.port) }
            let link: (Code) -> String? = { code in pageURL.map { QRCode.link(relay: $0, code: code.description) } }
            session = try await PairingSession.pair(relay: rendezvous.url(), role: .sender, code: lanCode) { event in
                output.report(event, showCode: true, codeWasGiven: code != nil, link: link)
                if case .code(let shown) = event {
                    if qr, let text = link(shown) { Self.printQR(text, output: output) }
                    if let address = addresses.first {
                        output.say("On another network segment: tern receive \(shown) --from \(LANMode.hostPort(address, rendezvous.port))")
                    }
                }
            }
            let waited = await rendezvous.stopAnnouncing()
            output.event("receiver_found", [("waited_ms", .int(Int64(Connect.milliseconds(waited).rounded())))])
            output.say("The receiver found this machine after \(LANMode.formatMilliseconds(Connect.milliseconds(waited))).")
        } else if let relay {
            let link: (Code) -> String? = { QRCode.link(relay: relay, code: $0.description) }
            session = try await PairingSession.pair(relay: relay, role: .sender, code: code) { event in
                output.report(event, showCode: true, codeWasGiven: code != nil, link: link)
                if qr, case .code(let shown) = event, let text = link(shown) { Self.printQR(text, output: output) }
            }
        } else {
            throw CLIError(.failure, "neither a relay nor a LAN rendezvous")
        }
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
            await DataPath.close(channels, driver, session, mood: .errory)
            throw error
        }
        await DataPath.close(channels, driver, session, mood: .happy)
    }
}
