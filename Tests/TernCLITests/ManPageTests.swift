import Foundation
import Testing
import TernTestSupport

/// The committed man pages (docs/man, `make man`): the sections a reader
/// looks for, facts that match the code, and no mdoc warnings.
@Suite struct ManPageTests {
    static let pages = ["tern", "tern.send", "tern.receive", "tern.relay"]

    static func page(_ name: String) throws -> String {
        try String(contentsOf: PackagePaths.root.appendingPathComponent("docs/man/\(name).1"), encoding: .utf8)
    }

    static func source(_ path: String) throws -> String {
        try String(contentsOf: PackagePaths.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The lines of section `title`, up to the next one.
    static func section(_ title: String, of text: String) -> [String] {
        let lines = text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0 == ".Sh \(title)" || $0 == ".Sh \"\(title)\"" }) else { return [] }
        return Array(lines[(start + 1)...].prefix { !$0.hasPrefix(".Sh ") })
    }

    /// Every `case name = N` of `enum TernExit` in ExitCode.swift.
    static func exitCodes() throws -> [String] {
        let text = try source("Sources/tern/ExitCode.swift")
        let start = try #require(text.range(of: "enum TernExit"))
        let body = text[start.upperBound...].prefix { $0 != "}" }
        return body.components(separatedBy: "\n").compactMap { line -> String? in
            guard line.contains("case "), let equals = line.firstIndex(of: "=") else { return nil }
            return line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
    }

    /// Every variable the CLI reads: `environment["NAME"]`.
    static func environmentVariables() throws -> Set<String> {
        var names: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: PackagePaths.root.appendingPathComponent("Sources/tern").path) {
            let text = try source("Sources/tern/\(file)")
            var rest = text[...]
            while let found = rest.range(of: "environment[\"") {
                let name = rest[found.upperBound...].prefix { $0 != "\"" }
                names.insert(String(name))
                rest = rest[found.upperBound...]
            }
        }
        return names
    }

    @Test(arguments: pages)
    func everyPageHasEnvironmentExitStatusAndExamples(name: String) throws {
        let text = try Self.page(name)
        #expect(!Self.section("ENVIRONMENT", of: text).isEmpty)
        #expect(!Self.section("EXIT STATUS", of: text).isEmpty)
        #expect(Self.section("EXAMPLES", of: text).contains { $0.hasPrefix(".Dl tern") || $0.contains("| tern") })
        // The generator's boilerplate ("0 on success, >0 if an error occurs") is gone.
        #expect(!text.contains(".Ex -std"))
        #expect(!text.contains("tern.help"))
    }

    @Test(arguments: ["tern", "tern.send", "tern.receive"])
    func theExitStatusListsEveryCodeTheCodeUses(name: String) throws {
        let listed = Self.section("EXIT STATUS", of: try Self.page(name)).filter { $0.hasPrefix(".It ") }.map { String($0.dropFirst(4)) }
        let codes = try Self.exitCodes()
        #expect(codes.count >= 8)
        #expect(Set(listed) == Set(codes), "listed \(listed), ExitCode.swift has \(codes)")
    }

    @Test func theEnvironmentListsEveryVariableTheCodeReads() throws {
        let read = try Self.environmentVariables()
        #expect(read.isSuperset(of: ["TERN_RELAY", "TERN_CODE", "TERN_TURN_SECRET"]))
        let listed = Self.section("ENVIRONMENT", of: try Self.page("tern")).filter { $0.hasPrefix(".It Ev ") }.map { String($0.dropFirst(7)) }
        #expect(Set(listed) == read)
    }

    @Test func thePagesLintWithoutWarnings() async throws {
        let mandoc = "/usr/bin/mandoc"
        try #require(FileManager.default.isExecutableFile(atPath: mandoc), "mandoc is missing: `make deps` installs it")
        let paths = Self.pages.map { PackagePaths.root.appendingPathComponent("docs/man/\($0).1").path }
        let lint = try RunningProcess(executable: URL(fileURLWithPath: mandoc), arguments: ["-T", "lint", "-W", "warning"] + paths)
        #expect(try await lint.wait() == 0)
        #expect(lint.stdout.text.isEmpty && lint.stderr.text.isEmpty, "\(lint.stdout.text)\(lint.stderr.text)")
    }
}
