/// Key material on the heap that is zeroed (OPENSSL_cleanse) when the last
/// reference goes away.
///
/// `@unchecked Sendable`: the bytes are written only while `init` runs and are
/// read-only afterwards; `deinit` runs when no other reference exists.
public final class SecretBytes: @unchecked Sendable {
    /// Never null; at least one byte is allocated so that even an empty
    /// secret has a valid address for the C calls.
    private let base: UnsafeMutablePointer<UInt8>
    public let count: Int

    /// Allocates `count` zero bytes and lets `fill` write them.
    public init<E: Error>(count: Int, fill: (UnsafeMutablePointer<UInt8>) throws(E) -> Void) throws(E) {
        self.count = max(count, 0)
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        // If `fill` throws, the object is fully initialised, so `deinit`
        // still runs and wipes whatever was written.
        try fill(base)
    }

    /// Copies `bytes` (the caller remains responsible for its own copy).
    public convenience init(copying bytes: some Collection<UInt8>) {
        let count = bytes.count
        self.init(count: count) { (base: UnsafeMutablePointer<UInt8>) in
            // Bounded by `count` even for a collection whose count and
            // contents disagree.
            for (index, byte) in bytes.enumerated() where index < count { base[index] = byte }
        }
    }

    public func withPointer<R, E: Error>(_ body: (UnsafePointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafePointer(base))
    }

    /// The bytes, valid during the call.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A copy as an array, for values that leave this type (a session
    /// secret, tests).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    deinit {
        Memory.cleanse(base, count: max(count, 1))
        base.deallocate()
    }
}
