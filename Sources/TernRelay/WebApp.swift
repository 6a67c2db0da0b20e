import Foundation
import NIOHTTP1

/// The browser page the relay serves at `/` (web/ and sodium.wasm, built by
/// scripts/build-web.sh): read once at start from one flat directory, only
/// files of the types below, and served from memory with strict headers.
/// Nothing else of the directory (no subdirectory, no dot file, no other
/// type) is reachable.
public struct WebApp: Sendable {
    public struct File: Sendable {
        public var contentType: String
        public var bytes: [UInt8]
    }

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8",
        "js": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8",
        "wasm": "application/wasm",
        "svg": "image/svg+xml",
        "png": "image/png",
        "ico": "image/x-icon",
        "json": "application/json",
    ]

    /// Larger files are not served (the whole page is well under 1 MiB).
    static let maxFileBytes = 4 * 1024 * 1024

    /// The headers every answer carries: no inline script, scripts and
    /// WebAssembly only from this origin, no framing by other origins, no
    /// type sniffing, no referrer (the code travels in the fragment, which a
    /// browser never sends, but a page the person opens next should learn
    /// nothing either).
    static let securityHeaders: [(String, String)] = [
        ("content-security-policy",
         "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
            + "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-cache"),
    ]

    public let directory: String
    let files: [String: File]

    /// Reads the page's files from `directory`; throws when it holds no index.html.
    public init(directory: String) throws {
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        var files: [String: File] = [:]
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path)
        } catch {
            throw WebAppError(description: "\(directory) is not a directory tern can read")
        }
        for name in names where !name.hasPrefix(".") {
            let ext = (name as NSString).pathExtension.lowercased()
            guard let type = Self.contentTypes[ext] else { continue }
            let file = url.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let attributes = try? FileManager.default.attributesOfItem(atPath: file.path),
                  let size = attributes[.size] as? Int, size <= Self.maxFileBytes
            else { continue }
            files[name] = File(contentType: type, bytes: Array(try Data(contentsOf: file)))
        }
        guard files["index.html"] != nil else {
            throw WebAppError(description: "\(directory) has no index.html (build the page with `make web`)")
        }
        self.directory = directory
        self.files = files
    }

    /// The file for a request target: `/` (with or without a query, which the
    /// page reads itself) is index.html; `/NAME` a file of the directory.
    public func file(for uri: String) -> File? {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        if path == "/" || path == "/index.html" { return files["index.html"] }
        guard path.hasPrefix("/") else { return nil }
        let name = String(path.dropFirst())
        guard !name.contains("/"), !name.hasPrefix(".") else { return nil }
        return files[name]
    }

    /// Where the page is found with no flag: beside an installed tern
    /// (PREFIX/share/tern/web) or a built one (.build/web beside .build/debug).
    public static func defaultDirectory(executable: String) -> String? {
        let binary = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [
            binary.deletingLastPathComponent().appendingPathComponent("share/tern/web"),
            binary.deletingLastPathComponent().appendingPathComponent("web"),
            // A build tree: .build/<triple>/debug/tern beside .build/web.
            binary.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("web"),
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("index.html").path) }?.path
    }
}

public struct WebAppError: Error, CustomStringConvertible {
    public var description: String
}
