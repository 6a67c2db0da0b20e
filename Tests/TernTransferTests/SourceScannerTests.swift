import Foundation
import Glibc
import Testing
@testable import TernTransfer

/// What the sender finds before anything is offered: names the receiver
/// would refuse and links it would not make. (Unreadable files are tested
/// with real processes in TransferCLITests, which run tern as a user root's
/// permissions do not cover.)
@Suite struct SourceScannerTests {
    @Test(arguments: ["bad\u{1}name.txt", "con.txt", "trailing.", "a:b", "back\\slash", "x.tern-partial"])
    func refusesANameTheReceiverWouldRefuse(name: String) throws {
        let scratch = try ScratchDirectory("scan-name")
        try scratch.makeDirectory("docs")
        try scratch.write(Array("ok".utf8), to: "docs/good.txt")
        try scratch.write(Array("x".utf8), to: "docs/" + name)

        #expect {
            _ = try SourceScanner.scan([scratch.absolute("docs")], warn: { _ in })
        } throws: { error in
            guard case TransferError.unsendable(let path, let reason) = error else { return false }
            return path.hasSuffix(TerminalText.escaped("docs/" + name)) && reason.contains("the receiver would refuse its name")
        }

        // Asked to, it leaves the file out and says so.
        var warnings: [String] = []
        let items = try SourceScanner.scan([scratch.absolute("docs")], skipUnsendable: true, warn: { warnings.append($0) })
        #expect(items.map(\.entry.path) == ["docs", "docs/good.txt"])
        #expect(warnings.count == 1 && warnings[0].hasPrefix("skipped '"), "\(warnings)")
    }

    @Test func leavesOutALinkWhoseTargetClimbsAfterAName() throws {
        let scratch = try ScratchDirectory("scan-link")
        try scratch.makeDirectory("docs")
        try scratch.makeDirectory("docs/a")
        try scratch.write(Array("x".utf8), to: "docs/b.txt")
        // Inside the directory, but with '..' after a name: the receiver
        // refuses it on arrival, which would stop the whole transfer.
        try scratch.symlink("docs/l", to: "a/../b.txt")
        try scratch.symlink("docs/fine", to: "b.txt")
        var warnings: [String] = []

        let items = try SourceScanner.scan([scratch.absolute("docs")], warn: { warnings.append($0) })

        #expect(items.map(\.entry.path) == ["docs", "docs/a", "docs/b.txt", "docs/fine"])
        #expect(warnings.count == 1 && warnings[0].contains("after a name"), "\(warnings)")
    }
}
