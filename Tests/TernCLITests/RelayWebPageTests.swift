import Foundation
import Testing
import TernTestSupport

/// `tern relay` serves the browser page at / (issue 17): found with no flag
/// beside the binary (here .build/web, which `make web` builds), another
/// copy with --web DIR, none with --no-web; strict headers and the right
/// types, and nothing outside the page's own files.
@Suite struct RelayWebPageTests {
    static let builtPage = PackagePaths.root.appendingPathComponent(".build/web")

    /// Status line, lower-cased headers and body of a GET (or HEAD) with curl.
    static func fetch(_ port: Int, _ path: String, head: Bool = false) async throws -> (status: String, headers: [String: String], body: Data) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-web-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // The unprivileged curl writes into it.
        _ = chmod(directory.path, 0o777)
        defer { try? FileManager.default.removeItem(at: directory) }
        let headerFile = directory.appendingPathComponent("headers")
        let bodyFile = directory.appendingPathComponent("body")
        let curl = try RunningProcess(executable: URL(fileURLWithPath: "/usr/bin/curl"), arguments: [
            "-s", "-m", "5", "--path-as-is", "-D", headerFile.path, "-o", bodyFile.path,
        ] + (head ? ["-I"] : []) + ["http://127.0.0.1:\(port)\(path)"])
        _ = try await curl.wait()
        let lines = (try String(contentsOf: headerFile, encoding: .utf8)).components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = (try? Data(contentsOf: bodyFile)) ?? Data()
        return (lines.first ?? "", headers, body)
    }

    @Test func thePageIsServedWithStrictHeadersAndItsTypes() async throws {
        try #require(FileManager.default.fileExists(atPath: Self.builtPage.appendingPathComponent("sodium.wasm").path),
                     "no .build/web: run `make web`, which `make test` runs first")
        let relay = try await RelayProcess.start()
        let page = try await Self.fetch(relay.port, "/")
        #expect(page.status.hasPrefix("HTTP/1.1 200"), "\(page.status)")
        #expect(page.headers["content-type"] == "text/html; charset=utf-8")
        #expect(page.body == (try Data(contentsOf: Self.builtPage.appendingPathComponent("index.html"))))
        let policy = try #require(page.headers["content-security-policy"])
        #expect(policy.contains("default-src 'none'") || policy.contains("default-src 'self'"), "\(policy)")
        #expect(policy.contains("script-src 'self'"), "\(policy)")
        #expect(!policy.contains("unsafe-inline"), "\(policy)")
        #expect(page.headers["x-content-type-options"] == "nosniff")
        #expect(page.headers["referrer-policy"] == "no-referrer")
        // The page as opened from `tern send`'s link: the code after #, or a query.
        #expect(try await Self.fetch(relay.port, "/?x=1").status.hasPrefix("HTTP/1.1 200"))

        let wasm = try await Self.fetch(relay.port, "/sodium.wasm")
        #expect(wasm.headers["content-type"] == "application/wasm")
        #expect(wasm.body.prefix(4) == Data([0x00, 0x61, 0x73, 0x6d]), "a WebAssembly module")
        #expect(try await Self.fetch(relay.port, "/app.js").headers["content-type"] == "text/javascript; charset=utf-8")
        #expect(try await Self.fetch(relay.port, "/tern.css").headers["content-type"] == "text/css; charset=utf-8")
        // The service worker of streamed downloads: a script type, from the page's own directory (scope "/").
        #expect(try await Self.fetch(relay.port, "/sw.js").headers["content-type"] == "text/javascript; charset=utf-8")
        let script = try await Self.fetch(relay.port, "/app.js")
        let head = try await Self.fetch(relay.port, "/app.js", head: true)
        #expect(head.status.hasPrefix("HTTP/1.1 200"))
        #expect(head.headers["content-length"] == String(script.body.count) && !script.body.isEmpty)

        // Nothing but the page's own files: no traversal, no dot files, no subdirectories.
        for path in ["/../Package.swift", "/%2e%2e/Package.swift", "/.hidden", "/web/index.html", "/nothing.js", "/index.html/"] {
            let refused = try await Self.fetch(relay.port, path)
            #expect(refused.status.hasPrefix("HTTP/1.1 404"), "\(path): \(refused.status)")
        }
        // The relay's own endpoints are where they were.
        #expect(try await Self.fetch(relay.port, "/health").status.hasPrefix("HTTP/1.1 200"))
        try await relay.stop()
    }

    @Test func noWebServesNothingAtTheRoot() async throws {
        let relay = try await RelayProcess.start(["--no-web"])
        #expect(try await Self.fetch(relay.port, "/").status.hasPrefix("HTTP/1.1 404"))
        #expect(try await Self.fetch(relay.port, "/app.js").status.hasPrefix("HTTP/1.1 404"))
        try await relay.stop()
    }

    @Test func webServesAnotherCopy() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        _ = chmod(directory.path, 0o755)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("<!doctype html><title>another page</title>\n".utf8).write(to: directory.appendingPathComponent("index.html"))
        let relay = try await RelayProcess.start(["--web", directory.path])
        let page = try await Self.fetch(relay.port, "/")
        #expect(String(decoding: page.body, as: UTF8.self).contains("another page"))
        #expect(try await Self.fetch(relay.port, "/sodium.wasm").status.hasPrefix("HTTP/1.1 404"))
        try await relay.stop()
    }

    @Test func aMissingWebDirectoryIsAUsageError() async throws {
        let relay = try RunningProcess(arguments: ["relay", "--listen", "127.0.0.1:0", "--web", "/nonexistent/tern-web"])
        #expect(try await relay.wait() == 2)
        #expect(relay.stderr.text.contains("browser page"), "\(relay.stderr.text)")
        let both = try RunningProcess(arguments: ["relay", "--listen", "127.0.0.1:0", "--web", "/tmp", "--no-web"])
        #expect(try await both.wait() == 2)
    }
}
