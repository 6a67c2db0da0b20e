import TernPairing
import TernTransfer

/// The offer sent through the sealed mailbox, from the scanned sources: each
/// top-level item with its bytes and regular files counted. The receiver
/// holds the manifest to these numbers.
enum OfferBuilder {
    static func offer(for items: [SourceItem]) -> Offer {
        var entries: [OfferEntry] = []
        var positions: [String: Int] = [:]
        for item in items {
            let top = item.entry.path.split(separator: "/", maxSplits: 1).first.map(String.init) ?? item.entry.path
            if positions[top] == nil {
                positions[top] = entries.count
                let kind: OfferEntry.Kind
                switch item.entry.kind {
                case .directory: kind = .directory
                case .stream: kind = .stream
                case .file, .symlink: kind = .file
                }
                entries.append(OfferEntry(name: top, kind: kind, size: kind == .stream ? nil : 0, files: 0))
            }
            guard let position = positions[top] else { continue }
            switch item.entry.kind {
            case .file:
                entries[position].files += 1
                entries[position].size = (entries[position].size ?? 0) + (item.entry.size ?? 0)
            case .directory where item.entry.path != top:
                entries[position].directories = (entries[position].directories ?? 0) + 1
            case .symlink:
                entries[position].links = (entries[position].links ?? 0) + 1
            case .directory, .stream:
                continue
            }
        }
        return Offer(entries: entries)
    }

    /// Why `offer` cannot go in one sealed message, or nil when it fits:
    /// at most `PeerMessage.maxEntries` items, and the sealed body within
    /// the relay's default limit of 64 KiB (docs/protocol.md §7).
    static func problem(with offer: Offer) -> String? {
        let sealedBytes = PeerMessage.offer(offer).encoded().count + sealingOverhead
        guard offer.entries.count > PeerMessage.maxEntries || sealedBytes > defaultRelayMessageBytes else { return nil }
        return "an offer holds at most \(PeerMessage.maxEntries) items and 64 KiB of names, and these \(offer.entries.count) items "
            + "need \(sealedBytes) bytes: put them in a directory and send that"
    }

    /// The kind byte, sealed sequence number and tag around a sealed plaintext (docs/protocol.md §6).
    static let sealingOverhead = 25
    /// A relay's `max_message_bytes` unless it was started with another.
    static let defaultRelayMessageBytes = 65536
}
