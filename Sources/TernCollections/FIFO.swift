/// A first-in first-out queue over an array with a moving head, so that
/// popping is O(1) amortised and the storage is reused once drained. Every
/// sans-IO core (ICE, TURN, DTLS, SCTP, data channels) queues its datagrams
/// and events in it.
///
/// `@inlinable` throughout: the queue sits on every core's data path in other
/// modules, and an unspecialized generic queue there costs a metadata lookup
/// and boxed element copies per call (docs/architecture.md, "Measurements
/// behind constants", has the profile that showed it).
public struct FIFO<Element> {
    @usableFromInline var items: [Element] = []
    @usableFromInline var head = 0

    @inlinable
    public init() {}

    @inlinable
    public var isEmpty: Bool { head == items.count }
    @inlinable
    public var count: Int { items.count - head }
    /// The element `pop` would return, left in place.
    @inlinable
    public var first: Element? { head < items.count ? items[head] : nil }

    @inlinable
    public mutating func push(_ element: Element) {
        items.append(element)
    }

    @inlinable
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
    @inlinable
    public mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows {
        if head > 0 {
            items.removeSubrange(0..<head)
            head = 0
        }
        try items.removeAll(where: shouldRemove)
    }
}

extension FIFO: Sendable where Element: Sendable {}
