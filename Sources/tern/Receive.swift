import ArgumentParser
import Foundation
import TernPairing
import TernRendezvous
import TernSession

struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive what another machine sends, with the code it printed.",
        discussion: """
            The code comes from the argument, from TERN_CODE, or from a prompt on the \
            terminal (so it need not appear in the process list).
            """)

    @Argument(help: ArgumentHelp("The code the sender printed, such as 7-bluebird-caravan.", valueName: "code"))
    var code: String?

    @Flag(name: .shortAndLong, help: "Accept the offer without asking.")
    var yes = false

    @OptionGroup var session: SessionOptions

    func run() async throws {
        session.bootstrapLogging()
        let output = Output(json: session.json)
        let job: @Sendable () async throws -> Void
        do {
            let relay = try session.relayURL()
            let code = try readCode()
            let askFirst = !yes
            if askFirst && !stdinIsTerminal {
                throw CLIError(.usage, "cannot ask whether to accept: standard input is not a terminal; pass --yes to accept")
            }
            let options = session
            job = { try await Self.receive(relay: relay, code: code, askFirst: askFirst, options: options, output: output) }
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
        guard let typed = prompt("Enter the code: ") else { throw CLIError(.usage, "no code given") }
        return try parseCode(typed)
    }

    static func receive(relay: RelayURL, code: Code, askFirst: Bool, options: SessionOptions, output: Output) async throws {
        let session = try await PairingSession.pair(relay: relay, role: .receiver, code: code) { output.report($0, showCode: false) }
        let pairedAt = ContinuousClock.now
        let message = try await session.receive()
        guard case .offer(let offer) = message else {
            await session.close(mood: .errory)
            throw CLIError(.failure, "the sender sent something other than an offer")
        }
        output.event("offer", Output.offerFields(offer))
        if offer.text == nil || askFirst {
            output.say("Offer: \(Output.describe(offer))")
        }
        var accept = true
        if askFirst && offer.text == nil {
            let reply = prompt("Accept? [y/N] ")?.trimmingCharacters(in: .whitespaces).lowercased()
            accept = reply == "y" || reply == "yes"
        }
        try await session.send(.answer(accept: accept, reason: accept ? nil : "declined by the receiver"))
        guard accept else {
            await session.close(mood: .happy)
            throw CLIError(.declined, "declined the offer")
        }
        if offer.text == nil {
            output.event("accepted")
            do {
                let first = try await session.receive()
                guard case .sessionDescription(.offer, _) = first else {
                    throw CLIError(.failure, "the sender sent something other than a session description")
                }
                let (driver, _) = try await Connect.establish(
                    session: session, role: .controlled, first: first, pairedAt: pairedAt, options: options, output: output)
                await driver.close()
            } catch {
                await session.close(mood: Connect.mood(after: error))
                throw error
            }
        }
        await session.close(mood: .happy)
        if let text = offer.text {
            if output.json {
                output.event("text", [("text", .string(text))])
            } else {
                // The text is the result: it goes to stdout, escaped.
                FileHandle.standardOutput.write(Data((DisplayText.escaped(text) + "\n").utf8))
            }
        } else {
            output.say("(This version of tern pairs, exchanges the offer and connects; the transfer itself comes next.)")
        }
    }
}
