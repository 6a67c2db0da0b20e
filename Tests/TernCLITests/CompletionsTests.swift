import Foundation
import Testing
import TernTestSupport

/// The committed completion scripts are generated from the CLI definition
/// (`make completions`); a change to the flags must regenerate them.
@Suite struct CompletionsTests {
    @Test(arguments: [("bash", "tern.bash"), ("zsh", "_tern"), ("fish", "tern.fish")])
    func committedCompletionsMatchTheCLI(shell: String, file: String) async throws {
        let process = try RunningProcess(arguments: ["--generate-completion-script", shell])
        #expect(try await process.wait() == 0)
        let committed = try String(contentsOf: PackagePaths.root.appendingPathComponent("completions/\(file)"), encoding: .utf8)
        #expect(process.stdout.text == committed, "completions/\(file) is stale: run 'make completions'")
    }

    /// Every flag a subcommand's --help lists appears in its committed man page.
    @Test(arguments: ["send", "receive", "relay"])
    func manPagesListEveryFlag(subcommand: String) async throws {
        let help = try RunningProcess(arguments: [subcommand, "--help"])
        #expect(try await help.wait() == 0)
        let flags = Set(help.stdout.text.split(whereSeparator: { !$0.isLetter && $0 != "-" })
            .filter { $0.hasPrefix("--") && $0.count > 2 }.map { String($0.dropFirst(2)) })
            .subtracting(["help", "version"])
        #expect(flags.count >= 3)
        let page = try String(contentsOf: PackagePaths.root.appendingPathComponent("docs/man/tern.\(subcommand).1"), encoding: .utf8)
        #expect(page.contains(".Dt TERN.\(subcommand.uppercased()) 1"))
        for flag in flags.sorted() {
            #expect(page.contains("Fl -\(flag)"), "docs/man/tern.\(subcommand).1 lacks --\(flag): run 'make man'")
        }
    }
}
