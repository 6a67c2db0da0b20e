import TernCollections
/// A path received from the peer, checked to name something strictly inside
/// the target directory on every platform tern may run on.
///
/// The sender is hostile: a received path must never climb out of the target
/// (`..`, absolute paths, drive letters, UNC prefixes), never alias another
/// name after a platform rewrites it (Windows strips trailing dots and spaces
/// and reads `:` as a drive or an alternate data stream), never open a device
/// (`CON`, `NUL`, `COM1`, ...), never carry bytes that drive a terminal when
/// printed, and never overwrite tern's own resume files.
///
/// The rules, all enforced by both initialisers:
/// - `/` is the only separator; a backslash anywhere is refused because
///   Windows reads it as one.
/// - No empty path, no leading `/` (absolute), no `//` prefix (UNC), no
///   trailing `/` and no empty component (`a//b`).
/// - No `.` or `..` component.
/// - No `:` anywhere. A drive (`C:`) and an NTFS stream (`a:b`) both need it;
///   refusing every colon is one simple rule that keeps a transfer portable.
/// - No control character (U+0000–U+001F, U+007F, U+0080–U+009F) and no
///   U+FFFD (the mark of bytes that were not valid UTF-8).
/// - No component ending with a dot or a space, and no Windows device name
///   (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, `COM¹`–`COM³`,
///   `LPT¹`–`LPT³`, `CONIN$`, `CONOUT$`), whatever the case and extension
///   (`con.txt`, `Nul`, `lpt9.log`).
/// - No component ending with `.tern-partial`, `.tern-state` or
///   `.tern-state.tmp` (any case): those names belong to tern's resume files.
/// - At most 255 UTF-8 bytes per component (NAME_MAX), 4096 bytes for the
///   whole path (PATH_MAX) and 256 components.
///
/// Equality follows `String`, which compares canonically equivalent Unicode
/// as equal, while the file system compares bytes: two paths that differ only
/// in normalisation are equal here but name two files on Linux.
public struct RelativePath: Hashable, Sendable, CustomStringConvertible {
    /// Longest component in UTF-8 bytes (NAME_MAX on Linux and most file systems).
    public static let maxComponentBytes = TransferLimits.standard.maximumComponentBytes
    /// Longest path in UTF-8 bytes, separators included (PATH_MAX on Linux).
    public static let maxPathBytes = TransferLimits.standard.maximumPathBytes
    /// Deepest path accepted.
    public static let maxComponents = TransferLimits.standard.maximumDepth

    /// The names from the top of the target down; never empty.
    public let components: [String]

    /// Checks a path as received from the peer, with `/` as the separator.
    public init(validating raw: String) throws(TransferError) {
        if let reason = Self.problem(inRaw: raw) {
            throw .unsafePath(TerminalText.escaped(raw), reason: reason)
        }
        let parts = raw.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        try self.init(checking: parts, shown: raw)
    }

    /// Checks a path given as its components, each a single name.
    public init(components: [String]) throws(TransferError) {
        try self.init(checking: components, shown: components.joined(separator: "/"))
    }

    /// For components already known to pass `problem(inComponents:)`.
    init(unchecked components: [String]) {
        self.components = components
    }

    private init(checking components: [String], shown: String) throws(TransferError) {
        if let reason = Self.problem(inComponents: components) {
            throw .unsafePath(TerminalText.escaped(shown), reason: reason)
        }
        self.components = components
    }

    /// The components joined with `/`.
    public var string: String { components.joined(separator: "/") }

    public var description: String { string }

    /// The directory holding this entry, or nil for an entry at the top of the target.
    public var parent: RelativePath? {
        components.count > 1 ? RelativePath(unchecked: Array(components.dropLast())) : nil
    }

    /// The last component.
    public var name: String {
        // Safe: both initialisers refuse an empty component list.
        components[components.count - 1]
    }

    /// This path with one more component, checked like any received name.
    public func appending(_ component: String) throws(TransferError) -> RelativePath {
        try RelativePath(components: components + [component])
    }

    // MARK: - The rules

    /// Problems visible only in the raw string, before it is split on `/`.
    private static func problem(inRaw raw: String) -> String? {
        let bytes = raw.utf8
        if bytes.isEmpty { return "the path is empty" }
        if bytes.count > maxPathBytes { return "the path is longer than \(maxPathBytes) bytes" }
        if bytes.starts(with: "\\\\".utf8) { return "it is a Windows network (UNC) path" }
        if bytes.starts(with: "//".utf8) { return "it is a network (UNC) path" }
        if bytes.first == UInt8(ascii: "/") { return "it is an absolute path" }
        if bytes.last == UInt8(ascii: "/") { return "it ends with '/'" }
        return nil
    }

    private static func problem(inComponents components: [String]) -> String? {
        if components.isEmpty { return "the path is empty" }
        if components.count > maxComponents { return "it has more than \(maxComponents) components" }
        let totalBytes = components.reduce(components.count - 1) { $0 + $1.utf8.count }
        if totalBytes > maxPathBytes { return "the path is longer than \(maxPathBytes) bytes" }
        for component in components {
            if let reason = problem(inComponent: component) { return reason }
        }
        return nil
    }

    /// Why one name is refused, or nil when it is safe.
    static func problem(inComponent component: String) -> String? {
        let bytes = Array(component.utf8)
        if bytes.isEmpty { return "it has an empty component" }
        // Compared as bytes: String equality would also match canonically
        // equivalent text, which the file system treats as another name.
        if bytes == [0x2e] { return "it has a '.' component" }
        if bytes == [0x2e, 0x2e] { return "it climbs out with '..'" }
        if bytes.count > maxComponentBytes { return "a component is longer than \(maxComponentBytes) bytes" }
        for scalar in component.unicodeScalars {
            switch scalar.value {
            case 0x2f: return "a component contains '/'"
            case 0x5c: return "it contains a backslash, which Windows reads as a separator"
            case 0x3a:
                if bytes.count >= 2, bytes[1] == 0x3a, isASCIILetter(bytes[0]) {
                    return "it starts with a Windows drive letter"
                }
                return "it contains ':', which Windows reads as a drive or a stream name"
            case 0x00...0x1f, 0x7f...0x9f: return "it contains a control character"
            case 0xfffd: return "it contains U+FFFD, the mark of bytes that were not UTF-8"
            default: continue
            }
        }
        if let last = bytes.last, last == 0x2e || last == 0x20 {
            return "a component ends with a dot or a space, which Windows strips"
        }
        if isWindowsDeviceName(bytes) { return "it uses a name Windows reserves for a device" }
        if hasReservedSuffix(bytes) { return "names ending in .tern-partial or .tern-state are kept for tern's resume files" }
        return nil
    }

    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
    }

    private static func asciiUppercased(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        bytes.map { (0x61...0x7a).contains($0) ? $0 - 0x20 : $0 }
    }

    private static let deviceNames: Set<[UInt8]> = {
        var names = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
        // Windows also reserves the superscript digits ¹ ² ³ after COM and LPT.
        for port in ["COM", "LPT"] {
            for digit in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u{b9}", "\u{b2}", "\u{b3}"] {
                names.append(port + digit)
            }
        }
        return Set(names.map { Array($0.utf8) })
    }()

    /// Windows maps a device name to the device whatever the case, whatever
    /// follows the first dot, and with trailing spaces before the dot ignored
    /// (`con.txt`, `NUL .tar.gz`).
    private static func isWindowsDeviceName(_ bytes: [UInt8]) -> Bool {
        var stem = bytes.prefix { $0 != 0x2e }
        while stem.last == 0x20 { stem = stem.dropLast() }
        return deviceNames.contains(asciiUppercased(stem))
    }

    static let reservedSuffixes: [[UInt8]] = [".TERN-PARTIAL", ".TERN-STATE", ".TERN-STATE.TMP"].map { Array($0.utf8) }

    private static func hasReservedSuffix(_ bytes: [UInt8]) -> Bool {
        let upper = asciiUppercased(bytes)
        return reservedSuffixes.contains { upper.count >= $0.count && upper.suffix($0.count).elementsEqual($0) }
    }
}

/// Peer-supplied text made safe to print (`DisplayText`, shared with the
/// session layer), cut after 200 characters.
enum TerminalText {
    static func escaped(_ text: String, limit: Int = 200) -> String {
        DisplayText.escaped(text, limit: limit)
    }
}
