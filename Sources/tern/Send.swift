import ArgumentParser
import Foundation
import TernPairing
import TernRendezvous
import TernSession

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send files, directories, a stream or a text to another machine.",
        discussion: """
            Prints a code such as 7-bluebird-caravan; run 'tern receive' with it on the \
            other machine. With --code (or TERN_CODE) both sides use a code agreed in advance.
            """)

    @Argument(help: ArgumentHelp("Files and directories to send; '-' sends standard input.", valueName: "path"),
              completion: .file())
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("Use this pre-agreed code instead of asking the relay for one (default: $TERN_CODE).", valueName: "code"))
    var code: String?

    @Option(name: .long, help: ArgumentHelp("Send a short text instead of files.", valueName: "message"))
    var text: String?

    @OptionGroup var session: SessionOptions

    func validate() throws {
        if text != nil && !paths.isEmpty { throw ValidationError("give either paths or --text, not both") }
        if text == nil && paths.isEmpty { throw ValidationError("nothing to send: give a path, '-' for standard input, or --text") }
        if let text, text.utf8.count > 32 * 1024 { throw ValidationError("--text is limited to 32 KiB; send a file instead") }
    }

    func run() async throws {
        session.bootstrapLogging()
        let output = Output(json: session.json)
        let environment = ProcessInfo.processInfo.environment
        let job: @Sendable () async throws -> Void
        do {
            let relay = try session.relayURL()
            let preagreed = try (code ?? environment["TERN_CODE"]).map(parseCode)
            let offer = try text.map { Offer(entries: [OfferEntry(name: "text", kind: .text, size: UInt64($0.utf8.count), files: 0)], text: $0) }
                ?? OfferBuilder.offer(for: paths)
            let options = session
            job = { try await Self.send(offer: offer, relay: relay, code: preagreed, options: options, output: output) }
        } catch let error as CLIError {
            throw output.fail(error)
        }
        try await runJob(output: output, timeout: session.timeout, job)
    }

    static func send(offer: Offer, relay: RelayURL, code: Code?, options: SessionOptions, output: Output) async throws {
        let session = try await PairingSession.pair(relay: relay, role: .sender, code: code) { output.report($0, showCode: true) }
        let pairedAt = ContinuousClock.now
        try await session.send(.offer(offer))
        output.event("offer", Output.offerFields(offer))
        output.say("Offered \(Output.describe(offer))")
        let answer = try await session.receive()
        guard case .answer(let accept, let reason) = answer else {
            await session.close(mood: .errory)
            throw CLIError(.failure, "the receiver sent something other than an answer")
        }
        guard accept else {
            await session.close(mood: .happy)
            throw CLIError(.declined, SessionError.declined(reason.map(DisplayText.escaped)).message)
        }
        output.event("accepted")
        output.say(offer.text != nil ? "The receiver got the text." : "The receiver accepted the offer.")
        if offer.text == nil {
            // Addresses are exchanged only now: a declined offer reveals none.
            do {
                let (driver, _) = try await Connect.establish(
                    session: session, role: .controlling, first: nil, pairedAt: pairedAt, options: options, output: output)
                await driver.close()
            } catch {
                await session.close(mood: Connect.mood(after: error))
                throw error
            }
        }
        await session.close(mood: .happy)
    }
}
