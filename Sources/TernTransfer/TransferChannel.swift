import Foundation

/// The message pipe a transfer runs over: in tern one reliable, ordered data
/// channel (SecureChannels); in tests an in-memory pair or a hostile script.
public protocol TransferChannel: Sendable {
    /// Queues one message; waits while too much is queued (back-pressure).
    func send(_ message: [UInt8]) async throws
    /// Queues messages in order; a channel whose sends cross threads takes
    /// them in one trip (the default sends them one by one).
    func send(contentsOf messages: [[UInt8]]) async throws
    /// The next message, or nil once the channel closed.
    func receive() async throws -> [UInt8]?
    /// Closes the channel so that pending sends and receives end.
    func close() async
}

extension TransferChannel {
    public func send(contentsOf messages: [[UInt8]]) async throws {
        for message in messages { try await send(message) }
    }

    /// The peer's next message, decoded; a failure the peer sent, or a
    /// closed channel, throws. `peer` names the other side in the error.
    func nextMessage(from peer: String) async throws -> TransferMessage {
        guard let bytes = try await receive() else {
            throw TransferError.connectionLost("the \(peer) closed the channel")
        }
        let message = try TransferMessage(decoding: bytes)
        if case .failure(let code, let text) = message { throw TransferError.peerFailed(code, text) }
        return message
    }
}

/// What a transfer reports while it runs (the CLI turns these into the
/// progress bar and JSON events).
public enum TransferEvent: Sendable {
    /// The manifest was sent or accepted: `bytes` is nil while a stream's length is unknown.
    case started(files: Int, bytes: UInt64?, resumedBytes: UInt64)
    /// Data moved: `bytes` counts everything the receiver holds (resumed bytes included).
    case progress(bytes: UInt64, total: UInt64?, file: String)
    /// A file (or stream) arrived whole and matched its root hash.
    case verified(path: String, size: UInt64, root: Digest)
    /// Something was left out or changed (a symlink pointing outside, a name taken).
    case warning(String)
}

/// What a finished transfer did.
public struct TransferSummary: Sendable, Equatable {
    /// Files and streams.
    public var files: Int
    /// Their bytes, resumed ones included.
    public var bytes: UInt64
    /// Bytes that crossed the network this time.
    public var sentBytes: UInt64
    /// SHA-256 over the root hashes of every file, in manifest order.
    public var hash: Digest
}

/// SHA-256 over the roots, in manifest order (the `finished` message's hash).
func transferHash(_ roots: [Digest]) -> Digest {
    var input: [UInt8] = []
    input.reserveCapacity(roots.count * Digest.byteCount)
    for root in roots { input.append(contentsOf: root.bytes) }
    return Digest.sha256(input)
}

/// Splits items into messages no larger than `limit` bytes each, halving the
/// batch until it fits (JSON sizes vary with the names).
func splitIntoMessages<Item>(_ items: [Item], limit: Int, encode: ([Item], Bool) -> [UInt8]) throws(TransferError) -> [[UInt8]] {
    if items.isEmpty { return [encode([], false)] }
    var messages: [[UInt8]] = []
    var start = 0
    var batch = min(items.count, TransferMessage.maxItemsPerMessage)
    // A long list is not encoded whole only to be halved again and again
    // (10,000 entries were encoded about 2.5 times): the first 64 items
    // give the size of one, and the first batch aims at 7/8 of the limit.
    if items.count > 64 {
        let sample = encode(Array(items[0..<64]), true).count
        batch = max(1, min(batch, limit * 7 / 8 / max(1, sample / 64)))
    }
    while start < items.count {
        let end = min(items.count, start + batch)
        let message = encode(Array(items[start..<end]), end < items.count)
        if message.count > limit {
            guard batch > 1 else { throw .io("one manifest entry does not fit in a \(limit)-byte message") }
            // Shrunk in proportion to the overshoot, by half at least.
            batch = max(1, min(batch / 2, batch * (limit * 7 / 8) / message.count))
            continue
        }
        messages.append(message)
        start = end
    }
    return messages
}

/// Runs `work` in its own task and waits for it at most `limit`; true when it
/// finished in time. The task is left running otherwise (a receive blocked on
/// a channel ends when the channel closes), so the caller is never stuck.
@discardableResult
public func finishes(within limit: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
    let done = DoneFlag()
    Task {
        await work()
        done.set()
    }
    let deadline = ContinuousClock.now + limit
    while !done.isSet {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return true
}

/// A value shared between tasks.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) {
        stored = value
    }

    var value: Value {
        get {
            lock.lock()
            defer { lock.unlock() }
            return stored
        }
        set {
            lock.lock()
            stored = newValue
            lock.unlock()
        }
    }
}

final class DoneFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// `withUnsafeMutableBytes` for a body with typed throws (the standard
/// library's version rethrows as `any Error`).
func withMutableBytes<Value>(
    of array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(TransferError) -> Value
) throws(TransferError) -> Value {
    var failure: TransferError?
    let value: Value? = array.withUnsafeMutableBytes { raw in
        do throws(TransferError) {
            return try body(raw)
        } catch {
            failure = error
            return nil
        }
    }
    if let failure { throw failure }
    guard let value else { throw .io("a buffer operation returned nothing") }
    return value
}
