/// RFC 6347 §4.1.2.6 anti-replay: a 64-record sliding window over the
/// sequence numbers of one epoch. Bit i of `seen` stands for `highest - i`.
///
/// `isFresh` is asked before a record is opened; `accept` is called only
/// after it authenticated, so a forged record cannot move the window
/// (RFC 6347 §4.1.2.6: "The receive window is updated only if the MAC
/// verification succeeds").
struct DTLSReplayWindow: Equatable, Sendable {
    static let width = UInt64(DTLSLimits.replayWindowRecords)

    /// The highest sequence number accepted (0 when none has been; `seen`
    /// then has no bit set, so 0 still counts as fresh).
    private var highest: UInt64
    private var seen: UInt64

    /// Nothing seen yet: every sequence number is fresh.
    init() {
        highest = 0
        seen = 0
    }

    /// Every sequence number up to and including `seenThrough` counts as
    /// seen (those that OpenSSL's record layer already took, at the hand-over).
    init(seenThrough: UInt64) {
        highest = seenThrough
        seen = UInt64.max
    }

    /// Whether a record with this sequence number may be processed: newer
    /// than any seen, or inside the window and not seen. Anything 64 or more
    /// below the highest is refused, seen or not.
    func isFresh(_ sequence: UInt64) -> Bool {
        guard sequence <= highest else { return true }
        let age = highest - sequence
        guard age < Self.width else { return false }
        return seen & (1 << age) == 0
    }

    /// Marks `sequence` as seen; a newer one slides the window forward.
    mutating func accept(_ sequence: UInt64) {
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= Self.width ? 1 : (seen << shift) | 1
            highest = sequence
        } else {
            let age = highest - sequence
            if age < Self.width { seen |= 1 << age }
        }
    }
}
