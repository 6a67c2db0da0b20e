import Testing
@testable import TernSDP

/// Each of `SDPLimits` at its value and one past it, in a description
/// otherwise like Chromium's offer: at the limit it parses, past it the
/// parse is refused with the limit's reason.
@Suite("SDP resource limits")
struct ResourceLimitTests {
    /// Chromium's offer with `extra` lines in its media section, after `c=`.
    static func offer(extra: [String] = [], trailing: [String] = []) -> String {
        let lines = SDPTests.chromeOffer.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        var out: [String] = []
        for line in lines {
            out.append(line)
            if line.hasPrefix("c=") { out += extra }
        }
        while out.last?.isEmpty == true { out.removeLast() }
        return (out + trailing).joined(separator: "\r\n") + "\r\n"
    }

    static func reason(_ text: String) -> String? {
        do {
            _ = try SessionDescription(parsing: text)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func theLimitsAreTheDocumentedOnes() {
        #expect(SDPLimits.maxBytes == 65_536)
        #expect(SDPLimits.maxLines == 2048)
        #expect(SDPLimits.maxLineBytes == 4096)
        #expect(SDPLimits.maxMediaSections == 32)
        #expect(SDPLimits.maxCandidates == 256)
        #expect(SDPLimits.maxCandidateBytes == 1024)
    }

    @Test func theBaseOfferParses() {
        #expect(Self.reason(Self.offer()) == nil)
    }

    @Test func wholeSize() {
        let base = Self.offer().utf8.count
        // Ignored attributes fill the description up to its limit and past it.
        func padded(to total: Int) -> String {
            var extra: [String] = []
            var size = base
            while size < total {
                let line = "a=x-pad:" + String(repeating: "p", count: min(4000, max(0, total - size - 10)))
                extra.append(line)
                size += line.utf8.count + 2
            }
            return Self.offer(extra: extra)
        }
        let atLimit = padded(to: SDPLimits.maxBytes)
        #expect(atLimit.utf8.count <= SDPLimits.maxBytes)
        #expect(Self.reason(atLimit) == nil)
        let past = padded(to: SDPLimits.maxBytes + 1)
        #expect(past.utf8.count > SDPLimits.maxBytes)
        #expect(Self.reason(past) == "larger than 65536 bytes")
    }

    @Test func lineCount() {
        let base = Self.offer().split(separator: "\r\n").count
        let fill = SDPLimits.maxLines - base
        #expect(Self.reason(Self.offer(extra: Array(repeating: "a=x", count: fill))) == nil)
        #expect(Self.reason(Self.offer(extra: Array(repeating: "a=x", count: fill + 1))) == "more than 2048 lines")
    }

    @Test func lineLength() {
        let atLimit = "a=x-pad:" + String(repeating: "p", count: SDPLimits.maxLineBytes - 8)
        #expect(Self.reason(Self.offer(extra: [atLimit])) == nil)
        #expect(Self.reason(Self.offer(extra: [atLimit + "p"])) == "line too long")
    }

    @Test func mediaSections() {
        let section = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"
        let more = SDPLimits.maxMediaSections - 1
        #expect(Self.reason(Self.offer(trailing: Array(repeating: section, count: more))) != "too many media sections")
        #expect(Self.reason(Self.offer(trailing: Array(repeating: section, count: more + 1))) == "too many media sections")
    }

    @Test func candidates() {
        let candidate = { (i: Int) in "a=candidate:\(i) 1 udp 2122260223 192.168.0.196 \(10_000 + i) typ host" }
        let base = 2 // the offer's own
        let atLimit = (0..<(SDPLimits.maxCandidates - base)).map(candidate)
        #expect(Self.reason(Self.offer(extra: atLimit)) == nil)
        #expect(Self.reason(Self.offer(extra: atLimit + [candidate(999)])) == "too many candidates")
        // One candidate's value.
        let long = "a=candidate:" + String(repeating: "c", count: SDPLimits.maxCandidateBytes)
        #expect(Self.reason(Self.offer(extra: [long])) == nil)
        #expect(Self.reason(Self.offer(extra: [long + "c"])) == "bad candidate")
    }
}
