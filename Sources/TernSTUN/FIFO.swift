/// A first-in first-out queue over an array with a moving head, so that
/// popping is O(1) amortised and the storage is reused once drained. The
/// sans-IO cores above STUN (ICE, TURN) queue their datagrams and events in it.
public struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    public init() {}

    public var isEmpty: Bool { head == items.count }
    public var count: Int { items.count - head }

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
}

extension FIFO: Sendable where Element: Sendable {}
