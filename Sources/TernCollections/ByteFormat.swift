/// Sizes and rates for people, in one set of units: binary (IEC 80000-13)
/// multiples of 1,024, for sizes and rates alike, so "300.0 MiB in 10 s" is
/// "30.0 MiB/s" and not "31.5 MB/s".
public enum ByteFormat {
    static let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]

    /// "512 B", "1.5 KiB", "300.0 MiB".
    public static func size(_ bytes: UInt64) -> String {
        scaled(Double(bytes), exactBytes: bytes)
    }

    /// "0 B/s", "512 B/s", "6.7 MiB/s".
    public static func rate(_ bytesPerSecond: Double) -> String {
        guard bytesPerSecond.isFinite, bytesPerSecond > 0 else { return "0 B/s" }
        return scaled(bytesPerSecond, exactBytes: nil) + "/s"
    }

    private static func scaled(_ amount: Double, exactBytes: UInt64?) -> String {
        var value = amount
        var unit = 0
        // Rounded to one decimal, 1023.96 KiB would read "1024.0 KiB": move
        // up a unit before that.
        while value >= 1023.95 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 {
            return "\(exactBytes.map(String.init) ?? String(Int(value.rounded()))) B"
        }
        return formatTenths(value) + " " + units[unit]
    }

    /// One decimal, without Foundation's String(format:).
    static func formatTenths(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
