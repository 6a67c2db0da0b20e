import Foundation

/// The folders one test makes under the temporary folder, removed when the
/// test ends, on success and on failure. A suite keeps one as a stored
/// property: Swift Testing makes a value of the suite for each test and
/// drops it when the test has returned or thrown, and this goes with it.
public final class TestDirectories: @unchecked Sendable {
    private let lock = NSLock()
    private var made: [URL] = []

    public init() {}

    /// A fresh folder the test user may write into (`makeTestDirectory`).
    public func make(_ prefix: String) throws -> URL {
        let url = try makeTestDirectory(prefix: prefix)
        lock.withLock { made.append(url) }
        return url
    }

    /// A file holding `contents`, alone in a fresh folder.
    public func file(_ prefix: String, named name: String, contents: Data) throws -> URL {
        let file = try make(prefix).appendingPathComponent(name)
        try contents.write(to: file)
        return file
    }

    deinit {
        // The test's processes were stopped a moment ago and may still be
        // ending: a second's grace for what they write on the way out.
        for url in made { removeTestItem(url, retryingFor: 1) }
    }
}

/// Removes what a test made under the temporary folder, with everything in
/// it, whoever owns it (a test run as root removes the test user's files).
/// A process stopped a moment ago may still be writing into it (a browser's
/// helpers end after its main process): the removal is tried again for up
/// to `seconds` while something is left.
public func removeTestItem(_ url: URL, retryingFor seconds: Double = 0) {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        try? FileManager.default.removeItem(at: url)
        var status = stat()
        guard lstat(url.path, &status) == 0, Date() < deadline else { return }
        usleep(50_000)
    }
}
