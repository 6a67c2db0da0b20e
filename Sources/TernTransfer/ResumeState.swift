import Foundation

/// The small state file beside a partial file (docs/protocol.md §11.5): which
/// source it came from and how many of its chunks are verified.
struct ResumeState: Codable, Equatable {
    static let version = 1
    /// State files are tiny; anything larger is not ours.
    static let maxBytes = TransferLimits.standard.maximumStateFileBytes

    var version: Int
    var size: UInt64
    var mtime: Int64?
    var chunkSize: Int
    var chunks: UInt64
    var chain: String

    enum CodingKeys: String, CodingKey {
        case version, size, mtime, chunkSize = "chunk_size", chunks, chain
    }

    init(size: UInt64, mtime: Int64?, chunkSize: Int, chain: ChunkChain) {
        self.version = Self.version
        self.size = size
        self.mtime = mtime
        self.chunkSize = chunkSize
        self.chunks = chain.chunks
        self.chain = chain.value.hex
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(self))) ?? []
    }

    static func decode(_ bytes: [UInt8]) -> ResumeState? {
        guard bytes.count <= maxBytes, let state = try? JSONDecoder().decode(ResumeState.self, from: Data(bytes)),
              state.version == version
        else { return nil }
        return state
    }

    /// Whether this state describes the partial of `entry` sent in `chunkSize` chunks.
    func matches(_ entry: ManifestEntry, chunkSize: Int) -> Bool {
        size == entry.size && mtime == entry.mtime && self.chunkSize == chunkSize
    }
}
