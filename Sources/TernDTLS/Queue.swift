/// A first-in first-out queue with a moving head: O(1) amortised pops, and
/// the storage is kept for reuse once drained. (TernSTUN has the same thing
/// as `FIFO`; DTLS sits beside STUN, not above it, so it keeps its own.)
struct Queue<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func push(_ element: Element) {
        items.append(element)
    }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= items.count {
            items.removeSubrange(0..<head)
            head = 0
        }
        return element
    }
}
