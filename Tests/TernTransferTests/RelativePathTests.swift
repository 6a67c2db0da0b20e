import Testing
@testable import TernTransfer

@Suite struct RelativePathTests {
    @Test(arguments: [
        ("a/b/c.txt", ["a", "b", "c.txt"]),
        ("notes.txt", ["notes.txt"]),
        (".bashrc", [".bashrc"]),
        ("dir/.hidden/.config.json", ["dir", ".hidden", ".config.json"]),
        ("my files/a name with spaces.txt", ["my files", "a name with spaces.txt"]),
        ("Ünïcödé/日本語のファイル.txt", ["Ünïcödé", "日本語のファイル.txt"]),
        ("Фото/🎉 party.jpeg", ["Фото", "🎉 party.jpeg"]),
        ("...x", ["...x"]),
        ("CONSOLE/com10/LPT/nul_file/xcon.txt", ["CONSOLE", "com10", "LPT", "nul_file", "xcon.txt"]),
        ("archive.tern-partial.txt", ["archive.tern-partial.txt"]),
        ("a-b_c~d(1)[2]{3}!@#$%^&'+=,;", ["a-b_c~d(1)[2]{3}!@#$%^&'+=,;"]),
    ])
    func acceptsOrdinaryNames(raw: String, components: [String]) throws {
        let path = try RelativePath(validating: raw)
        #expect(path.components == components)
        #expect(path.string == raw)
        #expect(path.description == raw)
        #expect(try RelativePath(components: components) == path)
    }

    @Test func acceptsNamesAndPathsExactlyAtTheLimits() throws {
        let longest = String(repeating: "a", count: 255)
        #expect(try RelativePath(validating: longest).name == longest)
        // 85 three-byte characters are 255 bytes.
        let multibyte = String(repeating: "€", count: 85)
        #expect(try RelativePath(validating: multibyte).name == multibyte)
        let deepest = Array(repeating: "d", count: 256)
        #expect(try RelativePath(components: deepest).components.count == 256)
        // 16 components of 255 bytes and 15 separators: 4095 bytes.
        let widest = Array(repeating: longest, count: 16).joined(separator: "/")
        #expect(widest.utf8.count == 4095)
        #expect(try RelativePath(validating: widest).components.count == 16)
    }

    /// Every class of hostile path, with a word its reason must contain, so a
    /// path refused for the wrong reason fails too.
    @Test(arguments: [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("/", "absolute"),
        ("//server/share", "UNC"),
        ("\\\\server\\share", "UNC"),
        ("a\\b", "backslash"),
        ("dir\\..\\..\\x", "backslash"),
        ("C:\\x", "drive"),
        ("C:x", "drive"),
        ("c:", "drive"),
        ("dir/D:evil", "drive"),
        ("file.txt:stream", "':'"),
        ("../x", "'..'"),
        ("..", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        (".", "'.'"),
        ("./a", "'.'"),
        ("a/./b", "'.'"),
        ("a//b", "empty component"),
        ("a/", "ends with '/'"),
        ("a\u{0}b", "control"),
        ("a\nb", "control"),
        ("a\rb", "control"),
        ("tab\there", "control"),
        ("\u{1b}[31m", "control"),
        ("del\u{7f}", "control"),
        ("csi\u{9b}31m", "control"),
        ("c1\u{85}", "control"),
        ("bad\u{fffd}bytes", "U+FFFD"),
        ("CON", "device"),
        ("con.txt", "device"),
        ("Nul", "device"),
        ("LPT9.log", "device"),
        ("com1", "device"),
        ("dir/prn", "device"),
        ("AUX .tar.gz", "device"),
        ("COM\u{b9}", "device"),
        ("conout$", "device"),
        ("name.", "strips"),
        ("name ", "strips"),
        ("dir./x", "strips"),
        (" ", "strips"),
        ("x.tern-partial", "resume"),
        ("dir/.a.TERN-STATE", "resume"),
        (".a.tern-state.tmp", "resume"),
        (String(repeating: "a", count: 256), "255 bytes"),
        (String(repeating: "€", count: 86), "255 bytes"),
        (Array(repeating: "a", count: 257).joined(separator: "/"), "256 components"),
        (Array(repeating: String(repeating: "a", count: 255), count: 17).joined(separator: "/"), "4096 bytes"),
    ])
    func rejectsHostilePath(raw: String, reasonMentions word: String) {
        let error = #expect(throws: TransferError.self) { try RelativePath(validating: raw) }
        guard case .unsafePath(_, let reason) = error else {
            Issue.record("expected .unsafePath, got \(String(describing: error))")
            return
        }
        #expect(reason.contains(word), "reason: \(reason)")
    }

    @Test(arguments: [
        ([], "empty"),
        (["a/b"], "'/'"),
        (["..", "x"], "'..'"),
        (["a", ""], "empty component"),
        (["a\\b"], "backslash"),
        (["NUL"], "device"),
    ] as [([String], String)])
    func componentsAreCheckedOneByOne(components: [String], reasonMentions word: String) {
        let error = #expect(throws: TransferError.self) { try RelativePath(components: components) }
        guard case .unsafePath(_, let reason) = error else {
            Issue.record("expected .unsafePath, got \(String(describing: error))")
            return
        }
        #expect(reason.contains(word), "reason: \(reason)")
    }

    @Test func errorShowsThePathWithControlCharactersEscaped() {
        let error = #expect(throws: TransferError.self) {
            try RelativePath(validating: "\u{1b}[2J\u{202e}evil\\x/..")
        }
        guard case .unsafePath(let shown, _) = error else {
            Issue.record("expected .unsafePath, got \(String(describing: error))")
            return
        }
        #expect(shown == "\\u{1b}[2J\\u{202e}evil\\\\x/..")
        #expect(!shown.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x202e })
    }

    @Test func errorCutsAVeryLongPathShort() {
        let raw = String(repeating: "x", count: 100_000)
        let error = #expect(throws: TransferError.self) { try RelativePath(validating: raw) }
        guard case .unsafePath(let shown, _) = error else {
            Issue.record("expected .unsafePath, got \(String(describing: error))")
            return
        }
        #expect(shown.count < 300)
        #expect(shown.hasSuffix("…"))
    }

    @Test func parentAndNameSplitOffTheLastComponent() throws {
        let path = try RelativePath(validating: "a/b/c.txt")
        #expect(path.name == "c.txt")
        #expect(path.parent == (try RelativePath(validating: "a/b")))
        #expect(path.parent?.parent?.parent == nil)
        let top = try RelativePath(validating: "top.txt")
        #expect(top.parent == nil)
        #expect(top.name == "top.txt")
    }

    @Test func appendingChecksTheNewComponent() throws {
        let dir = try RelativePath(validating: "a/b")
        #expect(try dir.appending("c.txt").string == "a/b/c.txt")
        #expect(throws: TransferError.self) { try dir.appending("..") }
        #expect(throws: TransferError.self) { try dir.appending("x/y") }
        #expect(throws: TransferError.self) { try dir.appending("") }
        let deep = try RelativePath(components: Array(repeating: "d", count: 256))
        #expect(throws: TransferError.self) { try deep.appending("one-too-many") }
    }
}
