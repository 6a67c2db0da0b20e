import ArgumentParser

struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Send files, directories and streams between two machines with a short code.",
        discussion: """
            On one machine run 'tern send PATH' and give the code it prints to the other \
            machine, which runs 'tern receive CODE'. The two pair through a rendezvous relay \
            ('tern relay') that never sees the words of the code or, with no relay configured, \
            on the local network (LAN mode). 'tern config' shows the settings and where they come from.

            Exit codes: 0 success, 1 other failure, 2 usage, 3 wrong or expired code, \
            4 relay or peer unreachable, 5 integrity failure, 6 declined, 130 interrupted.
            """,
        version: ternVersion,
        subcommands: [Send.self, Receive.self, Relay.self, ConfigCommand.self]
    )
}

let ternVersion = "0.1.0"
