import Foundation

/// The width of the terminal on stderr, where progress is drawn, read with
/// TIOCGWINSZ at every draw (one system call, a few times a second). A width
/// cached and refreshed on SIGWINCH lagged behind a resize: a bar drawn for
/// the old width after the terminal had narrowed wrapped, and a piece of it
/// stayed on the screen.
enum TerminalSize {
    /// Columns when the size cannot be read (a terminal that reports 0).
    static let fallbackColumns = 80

    static func read(fd: Int32 = STDERR_FILENO) -> Int {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return fallbackColumns }
        return Int(size.ws_col)
    }
}
