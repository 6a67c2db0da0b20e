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
            guard let position = positions[top], item.entry.kind == .file else { continue }
            entries[position].files += 1
            entries[position].size = (entries[position].size ?? 0) + (item.entry.size ?? 0)
        }
        return Offer(entries: entries)
    }

    /// The offer as limits for the receiver's checks.
    static func limits(for offer: Offer) -> [OfferedItem] {
        offer.entries.compactMap { entry in
            let kind: EntryKind
            switch entry.kind {
            case .file: kind = .file
            case .directory: kind = .directory
            case .stream: kind = .stream
            case .text: return nil
            }
            return OfferedItem(name: entry.name, kind: kind, size: entry.size, files: entry.files)
        }
    }
}
