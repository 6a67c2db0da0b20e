import TernCollections
import TernTransfer

/// The progress bar's one line, laid out to fit the terminal: it never
/// wraps (a wrapped line cannot be redrawn in place and leaves a trail of
/// bars), and the file name, shortened in the middle, takes what room the
/// numbers leave. On a narrow terminal the bar shrinks, then ETA, the bar
/// and the total go, in that order.
struct ProgressLine {
    var bytes: UInt64
    var total: UInt64?
    /// Bytes per second of this run; nil while too early to tell.
    var rate: Double?
    /// The name as it may be shown (escaped).
    var name: String

    /// How long a run goes before its rate is shown.
    static let rateAfter: Duration = .milliseconds(500)
    /// The least room worth giving a name; below it the name is left out.
    static let minimumName = 8

    private struct Layout {
        var showTotal: Bool
        var barWidth: Int
        var showETA: Bool
    }

    /// The line for a terminal `columns` wide: at most `columns - 3`
    /// columns, so that even terminals that wrap at the last column do not,
    /// and the "^C" a terminal echoes after it stays on its row (the line
    /// is then cleared whole before "interrupted").
    func text(columns: Int) -> String {
        let room = max(1, columns - 3)
        let layouts = [
            Layout(showTotal: true, barWidth: 20, showETA: true),
            Layout(showTotal: true, barWidth: 10, showETA: true),
            Layout(showTotal: true, barWidth: 10, showETA: false),
            Layout(showTotal: true, barWidth: 0, showETA: false),
            Layout(showTotal: false, barWidth: 0, showETA: false),
        ]
        for layout in layouts {
            let numbers = self.numbers(layout)
            let left = room - TerminalText.width(numbers) - 2
            if left >= Self.minimumName {
                return numbers + "  " + TerminalText.elidingMiddle(name, toWidth: left)
            }
        }
        // Not even the shortest numbers leave room for a name.
        return TerminalText.prefix(numbers(layouts[layouts.count - 1]), width: room)
    }

    private func numbers(_ layout: Layout) -> String {
        var line = "  " + formatBytes(bytes)
        if let total, total > 0 {
            let fraction = min(1, Double(bytes) / Double(total))
            if layout.showTotal { line += " of " + formatBytes(total) }
            if layout.barWidth > 0 {
                let filled = min(layout.barWidth, Int(fraction * Double(layout.barWidth)))
                line += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: layout.barWidth - filled) + "]"
            }
            line += " \(Int(fraction * 100))%"
        }
        line += "  " + (rate.map(formatRate) ?? "…")
        if layout.showETA, let rate, rate > 0, let total, bytes < total {
            line += "  ETA " + formatSeconds((Double(total - bytes) / rate).rounded())
        }
        return line
    }

    /// The line after the transfer: what arrived, in how long, how fast
    /// (over the bytes that moved this time), and how. After a resume it
    /// adds up: "300.0 MiB (12.0 MiB sent, 288.0 MiB already there)".
    static func summary(verb: String, summary: TransferSummary, seconds: Double, relayed: Bool) -> String {
        let rate = seconds > 0 ? Double(summary.sentBytes) / seconds : 0
        let how = relayed ? "through the TURN relay" : "directly"
        let files = "\(summary.files) file\(summary.files == 1 ? "" : "s")"
        var size = formatBytes(summary.bytes)
        if summary.sentBytes < summary.bytes {
            let moved = verb == "Sent" ? "sent" : "received"
            size += " (\(formatBytes(summary.sentBytes)) \(moved), \(formatBytes(summary.bytes - summary.sentBytes)) already there)"
        }
        // Under a tenth of a second (a small transfer on a LAN) in
        // milliseconds: "in 0 s" read as if nothing had happened.
        let took = seconds < 0.095 ? "\(max(1, Int((seconds * 1000).rounded()))) ms" : formatSeconds((seconds * 10).rounded() / 10)
        return "\(verb) \(files), \(size) in \(took) (\(formatRate(rate))), \(how); verified."
    }
}
