import Foundation
import TernTransfer

/// One end of an in-memory `TransferChannel` pair: what one end sends, the
/// other receives, in order.
///
/// Each direction queues at most `capacity` messages; a send beyond that
/// waits until the other end takes one (back-pressure, like the data
/// channel's buffered-amount limit). Closing either end closes both:
/// messages already queued are still delivered, then every receive returns
/// nil, and every send (waiting or new) throws `connectionLost`.
final class MemoryChannel: TransferChannel, @unchecked Sendable {
    private let link: MemoryLink
    /// The direction this end receives from (0 or 1); it sends on the other.
    private let side: Int

    /// Two connected ends.
    static func pair(capacity: Int = 8) -> (MemoryChannel, MemoryChannel) {
        let link = MemoryLink(capacity: capacity)
        return (MemoryChannel(link: link, side: 0), MemoryChannel(link: link, side: 1))
    }

    private init(link: MemoryLink, side: Int) {
        self.link = link
        self.side = side
    }

    func send(_ message: [UInt8]) async throws {
        try await link.send(message, to: 1 - side)
    }

    func receive() async throws -> [UInt8]? {
        await link.receive(from: side)
    }

    func close() async {
        link.close()
    }

    /// Messages sent to this end and not yet received.
    var queued: Int { link.queued(for: side) }
}

/// The shared state of a pair: one bounded FIFO per direction.
private final class MemoryLink: @unchecked Sendable {
    struct Direction {
        var messages: [[UInt8]] = []
        var head = 0
        /// The receive waiting on an empty queue (one receiver per end).
        var receiver: CheckedContinuation<[UInt8]?, Never>?
        /// Sends waiting for room, oldest first, with their messages.
        var senders: [(message: [UInt8], wake: CheckedContinuation<Void, any Error>)] = []

        var count: Int { messages.count - head }

        mutating func popFirst() -> [UInt8]? {
            guard head < messages.count else { return nil }
            let message = messages[head]
            head += 1
            if head > 64 && head * 2 > messages.count {
                messages.removeFirst(head)
                head = 0
            }
            return message
        }
    }

    private let lock = NSLock()
    private var directions = [Direction(), Direction()]
    private var closed = false
    private let capacity: Int

    init(capacity: Int) {
        precondition(capacity >= 1, "a channel needs room for one message")
        self.capacity = capacity
    }

    private enum SendAction {
        case fail, sent, deliver(CheckedContinuation<[UInt8]?, Never>), wait
    }

    func send(_ message: [UInt8], to direction: Int) async throws {
        try await withCheckedThrowingContinuation { (wake: CheckedContinuation<Void, any Error>) in
            let action: SendAction = lock.withLock {
                if closed { return .fail }
                if let receiver = directions[direction].receiver {
                    directions[direction].receiver = nil
                    return .deliver(receiver)
                }
                if directions[direction].count < capacity {
                    directions[direction].messages.append(message)
                    return .sent
                }
                directions[direction].senders.append((message, wake))
                return .wait
            }
            switch action {
            case .fail: wake.resume(throwing: TransferError.connectionLost("the in-memory channel is closed"))
            case .sent: wake.resume()
            case .deliver(let receiver):
                receiver.resume(returning: message)
                wake.resume()
            case .wait: break
            }
        }
    }

    private enum ReceiveAction {
        case take([UInt8], wakeSender: CheckedContinuation<Void, any Error>?), closed, wait
    }

    func receive(from direction: Int) async -> [UInt8]? {
        await withCheckedContinuation { (wake: CheckedContinuation<[UInt8]?, Never>) in
            let action: ReceiveAction = lock.withLock {
                if let message = directions[direction].popFirst() {
                    // Room again: the oldest waiting send goes into the queue.
                    guard !directions[direction].senders.isEmpty else { return .take(message, wakeSender: nil) }
                    let waiting = directions[direction].senders.removeFirst()
                    directions[direction].messages.append(waiting.message)
                    return .take(message, wakeSender: waiting.wake)
                }
                if closed { return .closed }
                precondition(directions[direction].receiver == nil, "two receives at once on one end")
                directions[direction].receiver = wake
                return .wait
            }
            switch action {
            case .take(let message, let sender):
                sender?.resume()
                wake.resume(returning: message)
            case .closed: wake.resume(returning: nil)
            case .wait: break
            }
        }
    }

    func close() {
        let (receivers, senders): ([CheckedContinuation<[UInt8]?, Never>], [CheckedContinuation<Void, any Error>]) = lock.withLock {
            closed = true
            var receivers: [CheckedContinuation<[UInt8]?, Never>] = []
            var senders: [CheckedContinuation<Void, any Error>] = []
            for index in directions.indices {
                if let receiver = directions[index].receiver { receivers.append(receiver) }
                directions[index].receiver = nil
                senders += directions[index].senders.map(\.wake)
                directions[index].senders = []
            }
            return (receivers, senders)
        }
        for receiver in receivers { receiver.resume(returning: nil) }
        for sender in senders { sender.resume(throwing: TransferError.connectionLost("the in-memory channel is closed")) }
    }

    func queued(for direction: Int) -> Int {
        lock.withLock { directions[direction].count }
    }
}
