import COpenSSL

/// Everything that can go wrong in TernCrypto: a digest, MAC or random
/// source that failed inside OpenSSL or libsodium, or an argument the
/// primitive refuses (a key of the wrong size).
///
/// One error type for the module: `code` is the stable part a caller
/// switches on, `reason` one sentence for a log line (with OpenSSL's own
/// words when its error queue held any). Nothing in it is secret.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// A message digest (MD5, SHA-1, SHA-256, SHA-512) failed.
        case digestFailed
        /// An HMAC or keyed BLAKE2b failed.
        case macFailed
        /// The random source failed (RAND_bytes).
        case randomFailed
        /// libsodium could not be initialised.
        case libraryUnavailable
        /// An argument the primitive refuses: a key or output of the wrong
        /// size, a length beyond what the C interface takes.
        case invalidArgument
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }

    /// `what` failed inside OpenSSL: drains its error queue into the reason.
    static func openSSL(_ code: Code, _ what: String) -> CryptoError {
        CryptoError(code, OpenSSLErrorQueue.text(OpenSSLErrorQueue.drain(), fallback: what))
    }
}

/// OpenSSL's thread-local error queue, turned into words. Every module that
/// calls OpenSSL (TernDTLS, TernTLS, this one) drains it through here.
public enum OpenSSLErrorQueue {
    /// One entry of the queue.
    public struct Entry: Hashable, Sendable {
        /// ERR_GET_LIB: which part of OpenSSL (ERR_LIB_SSL, ...).
        public var library: Int32
        /// ERR_GET_REASON: the library's reason code.
        public var reason: Int32
        /// ERR_error_string_n's text.
        public var text: String
    }

    /// Takes every entry off the queue, oldest first.
    public static func drain() -> [Entry] {
        var entries: [Entry] = []
        // Bounded: the queue holds at most ERR_NUM_ERRORS (16) entries, and
        // ERR_get_error removes one each time.
        for _ in 0..<64 {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            entries.append(Entry(
                library: ERR_GET_LIB(code),
                reason: ERR_GET_REASON(code),
                text: String(decoding: bytes, as: UTF8.self)
            ))
        }
        return entries
    }

    /// The queue's entries as one sentence, or `fallback` when it is empty.
    public static func text(_ entries: [Entry], fallback: String) -> String {
        entries.isEmpty ? fallback : "\(fallback): " + entries.map(\.text).joined(separator: "; ")
    }

    /// Drains the queue into one sentence about `what`.
    public static func describe(_ what: String) -> String {
        text(drain(), fallback: what)
    }

    /// Empties the queue before a call whose failure is read from it.
    /// Skipped when it is already empty (the usual case): ERR_clear_error
    /// walks every slot of the thread's queue.
    @inline(__always)
    public static func clear() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }
}
