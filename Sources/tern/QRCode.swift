import CQRencode
import Foundation
import TernSession

/// A QR code of the receive link, from libqrencode, drawn with Unicode half
/// blocks: one text row holds two rows of modules, so the code is about as
/// tall as it is wide on a terminal.
struct QRCode {
    /// Modules per side, without the quiet zone.
    let width: Int
    /// Row-major; true is a dark module.
    let modules: [Bool]

    /// Light modules around the code, as scanners need (the standard asks 4).
    static let quietZone = 2

    /// Encodes `text` (8-bit mode, error correction level M); nil when
    /// libqrencode cannot (a text too long for any version).
    init?(_ text: String) {
        guard let code = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        guard width > 0, let data = code.pointee.data else { return nil }
        self.width = width
        // Bit 0 of each byte is the module's colour (qrencode.h).
        modules = (0..<width * width).map { data[$0] & 1 == 1 }
    }

    func isDark(_ x: Int, _ y: Int) -> Bool {
        guard x >= 0, y >= 0, x < width, y < width else { return false }
        return modules[y * width + x]
    }

    /// Columns the drawing takes.
    var columns: Int { width + 2 * Self.quietZone }

    /// The lines to print. Light modules are drawn (the terminal's
    /// foreground) and dark ones left blank (its background), as
    /// `qrencode -t UTF8` does: right on the usual light-on-dark terminal;
    /// scanners read the inverted code a light terminal shows too.
    func lines() -> [String] {
        let low = -Self.quietZone
        let high = width + Self.quietZone
        var lines: [String] = []
        for top in stride(from: low, to: high, by: 2) {
            var line = ""
            for x in low..<high {
                let upperLight = !isDark(x, top)
                let lowerLight = top + 1 < high ? !isDark(x, top + 1) : false
                switch (upperLight, lowerLight) {
                case (true, true): line += "\u{2588}"   // █
                case (true, false): line += "\u{2580}"  // ▀
                case (false, true): line += "\u{2584}"  // ▄
                case (false, false): line += " "
                }
            }
            lines.append(line)
        }
        return lines
    }

    /// The receive link for a code: the relay's web page with the code in
    /// the fragment (which browsers never send to the server), http(s) for
    /// ws(s), the default port left out.
    static func link(relay: RelayURL, code: String) -> String {
        let scheme = relay.secure ? "https" : "http"
        let host = relay.host.contains(":") ? "[\(relay.host)]" : relay.host
        let port = relay.port == (relay.secure ? 443 : 80) ? "" : ":\(relay.port)"
        return "\(scheme)://\(host)\(port)/#\(code)"
    }
}
