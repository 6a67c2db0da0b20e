import Foundation
import NIOConcurrencyHelpers

/// The width of the terminal on stderr, where progress is drawn: read with
/// TIOCGWINSZ when first asked and again on every SIGWINCH.
enum TerminalSize {
    /// Columns when the size cannot be read (a terminal that reports 0).
    static let fallbackColumns = 80

    private static let cached = NIOLockedValueBox<Int?>(nil)
    /// Follows resizes; made (once, thread-safely, as every static let) by
    /// the first read of `columns`. Dispatch sources are not Sendable, but
    /// this one is never touched again once made.
    private nonisolated(unsafe) static let watcher: DispatchSourceSignal = {
        // SIGWINCH is ignored by default; the dispatch source sees it once
        // the default action is out of the way.
        signal(SIGWINCH, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        source.setEventHandler { cached.withLockedValue { $0 = read() } }
        source.resume()
        return source
    }()

    /// The terminal's columns; the first call starts following resizes.
    static var columns: Int {
        if let known = cached.withLockedValue({ $0 }) { return known }
        _ = watcher
        let columns = read()
        cached.withLockedValue { $0 = columns }
        return columns
    }

    static func read(fd: Int32 = STDERR_FILENO) -> Int {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return fallbackColumns }
        return Int(size.ws_col)
    }
}
