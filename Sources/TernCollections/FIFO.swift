/// A first-in first-out queue over an array with a moving head, so that
/// popping is O(1) amortised and the storage is reused once drained. Every
/// sans-IO core (ICE, TURN, DTLS, SCTP, data channels) queues its datagrams
/// and events in it.
public struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    public init() {}

    public var isEmpty: Bool { head == items.count }
    public var count: Int { items.count - head }
    /// The element `pop` would return, left in place.
    public var first: Element? { head < items.count ? items[head] : nil }

    public mutating func push(_ element: Element) {
        items.append(element)
    }

    public mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 32, head * 2 >= items.count {
            items.removeSubrange(0..<head)
            head = 0
        }
        return element
    }

    /// Removes the queued elements that match, keeping the order of the rest.
    public mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows {
        items = try Array(items[head...]).filter { try !shouldRemove($0) }
        head = 0
    }
}

extension FIFO: Sendable where Element: Sendable {}
