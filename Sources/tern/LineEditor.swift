import Foundation
import TernCollections
import TernRendezvous

/// A one-line editor for the code prompt: the terminal in raw mode (no
/// echo, no line discipline, no signals from keys), keys read one at a
/// time. TAB completes, Backspace deletes, Ctrl-U clears, Ctrl-W deletes a
/// word, Ctrl-C interrupts, Ctrl-D on an empty line ends, Enter accepts.
/// Other control keys and escape sequences (arrows) are ignored: nothing
/// but printable ASCII ever enters the line, so a TAB is never inserted.
/// The terminal's settings are restored on every way out, including
/// SIGTERM, SIGHUP and SIGQUIT while the prompt waits.
enum LineEditor {
    enum Outcome: Equatable {
        case line(String)
        /// Ctrl-D on an empty line, or the end of input.
        case end
        /// Ctrl-C.
        case interrupted
    }

    /// Longer than any code (6 digits and two words of at most 11 letters).
    static let maxLength = 48
    /// More candidates than this are counted, not listed.
    static let maxListed = 64

    /// Reads a line from standard input (a terminal), showing `prompt` on stderr.
    static func read(prompt: String, complete: (String) -> CodeCompletion.Result) -> Outcome {
        guard let raw = RawMode.enter(STDIN_FILENO) else {
            // Not a terminal after all: plain line reading.
            write(prompt)
            return readLine(strippingNewline: true).map(Outcome.line) ?? .end
        }
        defer { raw.restore() }
        var line = ""
        var lastWasTab = false
        write(prompt)
        while true {
            guard let byte = readByte() else {
                write("\r\n")
                return .end
            }
            let wasTab = lastWasTab
            lastWasTab = false
            switch byte {
            case 0x0d, 0x0a:  // Enter
                write("\r\n")
                return .line(line)
            case 0x03:  // Ctrl-C
                write("^C\r\n")
                return .interrupted
            case 0x04:  // Ctrl-D
                if line.isEmpty {
                    write("\r\n")
                    return .end
                }
            case 0x09:  // TAB
                lastWasTab = true
                let result = complete(line)
                if result.text != line, result.text.utf8.count <= maxLength {
                    line = result.text
                    redraw(prompt, line)
                } else if result.candidates.count > 1 {
                    // Ambiguous and nothing more to add: the second TAB
                    // (or the first, when it could add nothing) lists them.
                    if wasTab || result.text == line {
                        list(result.candidates)
                        redraw(prompt, line)
                    }
                } else {
                    write("\u{7}")
                }
            case 0x7f, 0x08:  // Backspace
                if !line.isEmpty {
                    line.removeLast()
                    write("\u{8} \u{8}")
                }
            case 0x15:  // Ctrl-U
                line = ""
                redraw(prompt, line)
            case 0x17:  // Ctrl-W: the last word and the dash after it
                while line.last == "-" { line.removeLast() }
                while let last = line.last, last != "-" { line.removeLast() }
                redraw(prompt, line)
            case 0x1b:  // an escape sequence (arrow keys and the like): skipped
                skipEscapeSequence()
            case 0x20...0x7e:
                guard line.utf8.count < maxLength else {
                    write("\u{7}")
                    break
                }
                let character = Character(Unicode.Scalar(byte))
                line.append(character)
                write(String(character))
            default:
                break  // other control bytes and non-ASCII: not part of a code
            }
        }
    }

    private static func redraw(_ prompt: String, _ line: String) {
        write("\r\u{1b}[K" + prompt + line)
    }

    /// The candidates in columns under the prompt line.
    private static func list(_ candidates: [String]) {
        guard candidates.count <= maxListed else {
            write("\r\n(\(candidates.count) words fit; type a letter or two more)\r\n")
            return
        }
        let cell = (candidates.map(\.count).max() ?? 0) + 2
        let perRow = max(1, (TerminalSize.read(fd: STDERR_FILENO) - 1) / cell)
        var text = "\r\n"
        for (index, word) in candidates.enumerated() {
            let last = index == candidates.count - 1 || (index + 1) % perRow == 0
            text += last ? word + "\r\n" : word.padding(toLength: cell, withPad: " ", startingAt: 0)
        }
        write(text)
    }

    private static func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let count = Foundation.read(STDIN_FILENO, &byte, 1)
            if count == 1 { return byte }
            if count < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// ESC [ … final byte, or ESC O x, or a lone ESC.
    private static func skipEscapeSequence() {
        guard let next = readByte() else { return }
        if next == UInt8(ascii: "O") {
            _ = readByte()
        } else if next == UInt8(ascii: "[") {
            while let byte = readByte(), !(0x40...0x7e).contains(byte) {}
        }
    }

    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeMutableBytes { Foundation.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            offset += count
        }
    }
}

/// The terminal in raw mode until `restore()`; also restored by SIGTERM,
/// SIGHUP and SIGQUIT, which then end the process as they would have.
final class RawMode {
    private let fd: Int32
    private var restored = false

    /// The settings to put back from a signal handler (which can capture
    /// nothing): written before the handlers are installed, read only by them.
    private nonisolated(unsafe) static var saved = termios()
    private nonisolated(unsafe) static var savedFD: Int32 = -1
    private static let signals = [SIGTERM, SIGHUP, SIGQUIT]

    private init(fd: Int32) {
        self.fd = fd
    }

    /// Raw mode on `fd`, or nil when it is not a terminal.
    static func enter(_ fd: Int32) -> RawMode? {
        var original = termios()
        guard isatty(fd) == 1, tcgetattr(fd, &original) == 0 else { return nil }
        saved = original
        savedFD = fd
        for number in signals {
            signal(number) { received in
                _ = tcsetattr(RawMode.savedFD, TCSAFLUSH, &RawMode.saved)
                signal(received, SIG_DFL)
                raise(received)
            }
        }
        var raw = original
        // Keys arrive one by one, unechoed; Ctrl-C, Ctrl-Z and Ctrl-\ are
        // bytes, not signals. Output processing stays on (\n is \r\n).
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL | INLCR | ISTRIP)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(fd, TCSAFLUSH, &raw) == 0 else {
            for number in signals { signal(number, SIG_DFL) }
            return nil
        }
        return RawMode(fd: fd)
    }

    func restore() {
        guard !restored else { return }
        restored = true
        _ = tcsetattr(fd, TCSAFLUSH, &RawMode.saved)
        for number in Self.signals { signal(number, SIG_DFL) }
    }

    deinit { restore() }
}

/// Asks for the code on the terminal until a well-formed one is typed; a
/// typo gets its reason and the question again instead of an exit.
func promptForCode() throws(CLIError) -> Code {
    let question = "Enter the code (TAB completes words): "
    guard stdinIsTerminal else {
        guard let typed = prompt(question) else { throw CLIError(.usage, "no code given") }
        return try parseCode(typed)
    }
    while true {
        switch LineEditor.read(prompt: question, complete: CodeCompletion.complete) {
        case .interrupted:
            throw CLIError(.interrupted, "interrupted")
        case .end:
            throw CLIError(.usage, "no code given")
        case .line(let typed):
            if typed.allSatisfy(\.isWhitespace) { continue }
            do {
                return try Code(parsing: typed)
            } catch {
                let reason: String
                if case .badCode(let why) = error { reason = why } else { reason = error.reason }
                LineEditor.write("Not a valid code: \(DisplayText.escaped(reason)). Try again (Ctrl-C to stop).\n")
            }
        }
    }
}
