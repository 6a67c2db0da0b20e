import Foundation
import TernWire

/// What an entry of the manifest is.
public enum EntryKind: String, Codable, Sendable {
    case file, directory, symlink, stream
}

/// One entry of the manifest (docs/protocol.md §11.2). Everything in it is a
/// claim by the sender: the receiver validates the path, and the size is a
/// limit the data must meet exactly.
public struct ManifestEntry: Equatable, Sendable, Codable {
    /// Relative path with "/" separators (untrusted until `RelativePath` accepts it).
    public var path: String
    public var kind: EntryKind
    /// Bytes of a file; absent for a stream (unknown), a directory, a link.
    public var size: UInt64?
    /// Permission bits (`st_mode & 0o777`) of a file or directory.
    public var mode: UInt32?
    /// Modification time, seconds since 1970 (part of a file's identity for resume).
    public var mtime: Int64?
    /// A symbolic link's target (relative, inside the transfer).
    public var target: String?

    public init(path: String, kind: EntryKind, size: UInt64? = nil, mode: UInt32? = nil, mtime: Int64? = nil, target: String? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.target = target
    }
}

/// The receiver holds the first `chunks` chunks of file `index` (a verified
/// partial, or the whole of a file already in place when `chunks` is its
/// chunk count) and asks for the sender's chain over them. It says nothing
/// of its data (docs/protocol.md §11.3).
public struct ResumeAsk: Equatable, Sendable {
    public var index: Int
    public var chunks: UInt64

    public init(index: Int, chunks: UInt64) {
        self.index = index
        self.chunks = chunks
    }
}

/// The sender's answer to an ask: its own chain value over the first
/// `chunks` chunks of file `index` (section 11.4).
public struct PrefixChain: Equatable, Sendable {
    public var index: Int
    public var chunks: UInt64
    public var chain: Digest

    public init(index: Int, chunks: UInt64, chain: Digest) {
        self.index = index
        self.chunks = chunks
        self.chain = chain
    }
}

/// The receiver's answer to the sender's chain: send file `index` from chunk
/// `from` (the asked count when the chains matched, otherwise 0).
public struct PlanStart: Equatable, Sendable {
    public var index: Int
    public var from: UInt64

    public init(index: Int, from: UInt64) {
        self.index = index
        self.from = from
    }
}

/// Why a side stopped, in the `error` message.
public enum FailureCode: String, Sendable {
    case integrity, exists, unsafePath = "unsafe-path", protocolViolation = "protocol", io, noSpace = "no-space", cancelled
}

/// One chunk of file data as it arrives: `data` is a slice of the message.
public struct ChunkMessage: Sendable {
    public var index: Int
    public var number: UInt64
    public var hash: Digest
    public var data: ArraySlice<UInt8>
}

/// One whole file of a `files` message: its data (a slice of the message)
/// and the root the sender computed over it (docs/protocol.md §11.4).
public struct WholeFile: Sendable {
    public var index: Int
    public var root: Digest
    public var data: ArraySlice<UInt8>
}

/// The messages on the transfer channel (docs/protocol.md §11). One byte of
/// type, then JSON for control messages or a fixed binary header for chunks.
public enum TransferMessage: Sendable {
    case manifest(chunkSize: Int, entries: [ManifestEntry], more: Bool)
    /// `skip`: entries the receiver keeps as they are (existing files it
    /// was told to skip); the sender sends nothing for them.
    case ask(asks: [ResumeAsk], skip: [Int], more: Bool)
    /// The sender's chains for the asks (sent only when there was one).
    case hashes(chains: [PrefixChain], more: Bool)
    /// Where the sender starts each asked file (sent only after `hashes`).
    case need(starts: [PlanStart], more: Bool)
    case chunk(ChunkMessage)
    case end(index: Int, size: UInt64, root: Digest)
    case verified(index: Int)
    case done(files: UInt64, bytes: UInt64)
    case finished(files: UInt64, bytes: UInt64, hash: Digest)
    case failure(FailureCode, String)
    /// Several small files, each whole: one record stands for the file's
    /// chunk (none when it is empty) and its `end`.
    case files([WholeFile])

    /// Types 2 (`have`) and 3 (`plan`) are retired: their claims carried
    /// the receiver's own hashes (docs/protocol.md §10).
    enum MessageType: UInt8 {
        case manifest = 1, chunk = 4, end, verified, done, finished, failure, files, ask, hashes, need
    }

    /// The retired types, named when a peer of an older version sends one.
    static let retiredTypes: Set<UInt8> = [2, 3]

    /// type (1) + file index (4) + chunk number (8) + SHA-256 (32).
    public static let chunkHeaderSize = 45
    // The bounds a decoded message meets: TransferLimits.standard.
    public static let maxChunkSize = TransferLimits.standard.maximumChunkSize
    public static let minChunkSize = TransferLimits.standard.minimumChunkSize
    /// Entries, asks, chains or starts in one message.
    public static let maxItemsPerMessage = TransferLimits.standard.maximumItemsPerMessage
    public static let maxFailureMessageBytes = TransferLimits.standard.maximumFailureReasonBytes
    /// A record of a `files` message: file index (4) + length (4) + root (32), then the data.
    public static let wholeFileHeaderSize = 40
    /// The largest message tern accepts (`a=max-message-size`, docs/protocol.md §11.1).
    public static let maxMessageSize = TransferLimits.standard.maximumMessageSize

    /// Appends one record of a `files` message (the type byte is the
    /// caller's): header and `length` bytes that `fill` writes and returns
    /// the root of (it gets exactly the data's room, uninitialised). Returns
    /// nil, and leaves `buffer` as it was, when `fill` writes fewer bytes.
    public static func appendWholeFile(
        _ buffer: inout [UInt8], index: Int, length: Int,
        fill: (UnsafeMutableRawBufferPointer) throws(TransferError) -> (written: Int, root: Digest)
    ) throws(TransferError) -> Digest? {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: wholeFileHeaderSize + length))
        var failure: TransferError?
        let result: (written: Int, root: Digest)? = buffer.withUnsafeMutableBytes { raw in
            do throws(TransferError) {
                return try fill(UnsafeMutableRawBufferPointer(rebasing: raw[(start + wholeFileHeaderSize)...]))
            } catch {
                failure = error
                return nil
            }
        }
        if let failure {
            buffer.removeSubrange(start...)
            throw failure
        }
        guard let result, result.written == length else {
            buffer.removeSubrange(start...)
            return nil
        }
        buffer.setBigEndian(UInt64(UInt32(truncatingIfNeeded: index)) << 32 | UInt64(UInt32(truncatingIfNeeded: length)), at: start)
        buffer.replaceSubrange((start + 8)..<(start + wholeFileHeaderSize), with: result.root.bytes)
        return result.root
    }

    // MARK: - Encoding

    /// A chunk message built in place: `buffer` holds `chunkHeaderSize` bytes
    /// of room followed by the data; the header is written over the room.
    public static func fillChunkHeader(_ buffer: inout [UInt8], index: Int, number: UInt64, hash: Digest) {
        buffer.setBigEndian(MessageType.chunk.rawValue, at: 0)
        buffer.setBigEndian(UInt32(truncatingIfNeeded: index), at: 1)
        buffer.setBigEndian(number, at: 5)
        buffer.replaceSubrange(13..<chunkHeaderSize, with: hash.bytes)
    }

    public func encoded() -> [UInt8] {
        let body: Wire
        let type: MessageType
        switch self {
        case .chunk(let chunk):
            var buffer = [UInt8](repeating: 0, count: Self.chunkHeaderSize)
            Self.fillChunkHeader(&buffer, index: chunk.index, number: chunk.number, hash: chunk.hash)
            buffer.append(contentsOf: chunk.data)
            return buffer
        case .files(let files):
            var buffer = [MessageType.files.rawValue]
            for file in files {
                // The closure cannot fail and always writes the whole length.
                _ = try? Self.appendWholeFile(&buffer, index: file.index, length: file.data.count) { room in
                    file.data.withUnsafeBytes { room.copyMemory(from: $0) }
                    return (file.data.count, file.root)
                }
            }
            return buffer
        case .manifest(let chunkSize, let entries, let more):
            type = .manifest
            body = Wire(chunkSize: chunkSize, entries: entries, more: more)
        case .ask(let asks, let skip, let more):
            type = .ask
            body = Wire(asks: asks.map { WireAsk(index: $0.index, chunks: $0.chunks) }, more: more, skip: skip.isEmpty ? nil : skip)
        case .hashes(let chains, let more):
            type = .hashes
            body = Wire(chains: chains.map { WireChain(index: $0.index, chunks: $0.chunks, chain: $0.chain.hex) }, more: more)
        case .need(let starts, let more):
            type = .need
            body = Wire(more: more, starts: starts.map { WireStart(index: $0.index, from: $0.from) })
        case .end(let index, let size, let root):
            type = .end
            body = Wire(hash: root.hex, index: index, size: size)
        case .verified(let index):
            type = .verified
            body = Wire(index: index)
        case .done(let files, let bytes):
            type = .done
            body = Wire(bytes: bytes, files: files)
        case .finished(let files, let bytes, let hash):
            type = .finished
            body = Wire(bytes: bytes, files: files, hash: hash.hex)
        case .failure(let code, let message):
            type = .failure
            body = Wire(code: code.rawValue, message: Self.shortReason(message))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A struct of strings, numbers and booleans always encodes.
        let json = (try? encoder.encode(body)) ?? Data("{}".utf8)
        return [type.rawValue] + Array(json)
    }

    // MARK: - Decoding (the peer is hostile)

    public init(decoding message: [UInt8]) throws(TransferError) {
        if let first = message.first, Self.retiredTypes.contains(first) {
            throw .protocolViolation("a message of the retired type \(first): the other side runs an older tern (both need the same version)")
        }
        guard let first = message.first, let type = MessageType(rawValue: first) else {
            throw .protocolViolation("a message of unknown type \(message.first.map(String.init) ?? "(empty)")")
        }
        if type == .chunk {
            self = .chunk(try Self.decodeChunk(message))
            return
        }
        if type == .files {
            self = .files(try Self.decodeFiles(message))
            return
        }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(message[1...]))
        } catch {
            throw .protocolViolation("a malformed \(type) message")
        }
        switch type {
        case .manifest:
            guard let chunkSize = wire.chunkSize, (Self.minChunkSize...Self.maxChunkSize).contains(chunkSize) else {
                throw .protocolViolation("the manifest's chunk size is missing or out of range")
            }
            guard let entries = wire.entries, entries.count <= Self.maxItemsPerMessage else {
                throw .protocolViolation("a manifest message without entries or with too many")
            }
            self = .manifest(chunkSize: chunkSize, entries: entries, more: wire.more ?? false)
        case .ask:
            let skip = wire.skip ?? []
            guard let asks = wire.asks, asks.count + skip.count <= Self.maxItemsPerMessage, skip.allSatisfy({ $0 >= 0 }),
                  asks.allSatisfy({ $0.index >= 0 })
            else {
                throw .protocolViolation("an ask message without asks, with too many, or with a negative index")
            }
            self = .ask(asks: asks.map { ResumeAsk(index: $0.index, chunks: $0.chunks) }, skip: skip, more: wire.more ?? false)
        case .hashes:
            guard let chains = wire.chains, chains.count <= Self.maxItemsPerMessage else {
                throw .protocolViolation("a hashes message without chains or with too many")
            }
            var decoded: [PrefixChain] = []
            for chain in chains {
                guard let value = Digest(hex: chain.chain), chain.index >= 0 else { throw .protocolViolation("a malformed chain in a hashes message") }
                decoded.append(PrefixChain(index: chain.index, chunks: chain.chunks, chain: value))
            }
            self = .hashes(chains: decoded, more: wire.more ?? false)
        case .need:
            guard let starts = wire.starts, starts.count <= Self.maxItemsPerMessage, starts.allSatisfy({ $0.index >= 0 }) else {
                throw .protocolViolation("a malformed need message")
            }
            self = .need(starts: starts.map { PlanStart(index: $0.index, from: $0.from) }, more: wire.more ?? false)
        case .end:
            guard let index = wire.index, index >= 0, let size = wire.size, let hash = wire.hash.flatMap(Digest.init(hex:)) else {
                throw .protocolViolation("a malformed end message")
            }
            self = .end(index: index, size: size, root: hash)
        case .verified:
            guard let index = wire.index, index >= 0 else { throw .protocolViolation("a malformed verified message") }
            self = .verified(index: index)
        case .done:
            guard let files = wire.files, let bytes = wire.bytes else { throw .protocolViolation("a malformed done message") }
            self = .done(files: files, bytes: bytes)
        case .finished:
            guard let files = wire.files, let bytes = wire.bytes, let hash = wire.hash.flatMap(Digest.init(hex:)) else {
                throw .protocolViolation("a malformed finished message")
            }
            self = .finished(files: files, bytes: bytes, hash: hash)
        case .failure:
            let code = wire.code.flatMap(FailureCode.init(rawValue:)) ?? .protocolViolation
            let text = wire.message ?? "no reason given"
            self = .failure(code, Self.shortReason(text))
        case .chunk, .files:
            throw .protocolViolation("unreachable")  // handled above
        }
    }

    /// `text` cut to `maxFailureMessageBytes` UTF-8 bytes between scalars
    /// (a cut inside a scalar would leave invalid UTF-8, and no reason at all).
    static func shortReason(_ text: String) -> String {
        TargetDirectory.prefix(of: text, maxBytes: maxFailureMessageBytes)
    }

    private static func decodeChunk(_ message: [UInt8]) throws(TransferError) -> ChunkMessage {
        guard message.count > chunkHeaderSize, message.count - chunkHeaderSize <= maxChunkSize else {
            throw .protocolViolation("a chunk message of \(message.count) bytes")
        }
        var reader = WireReader(message)
        do {
            _ = try reader.readUInt8()  // the type
            let index = try reader.readUInt32(), number = try reader.readUInt64()
            let hash = Digest(unchecked: Array(try reader.readSlice(count: chunkHeaderSize - 13)))
            return ChunkMessage(index: Int(index), number: number, hash: hash, data: reader.readRemaining())
        } catch {
            throw .protocolViolation("a chunk message of \(message.count) bytes")  // the length was checked above
        }
    }

    /// Records to the end of the message, each within the largest chunk; at
    /// least one, nothing left over.
    private static func decodeFiles(_ message: [UInt8]) throws(TransferError) -> [WholeFile] {
        guard message.count <= maxMessageSize else { throw .protocolViolation("a files message of \(message.count) bytes") }
        var files: [WholeFile] = []
        var reader = WireReader(message)
        _ = try? reader.readUInt8()  // the type
        while !reader.isAtEnd {
            guard reader.remaining >= wholeFileHeaderSize,
                  let index = try? reader.readUInt32(), let length = try? reader.readUInt32(),
                  let root = try? reader.readSlice(count: wholeFileHeaderSize - 8)
            else {
                throw .protocolViolation("a files message that ends inside a record header")
            }
            guard length <= maxChunkSize, let data = try? reader.readSlice(count: Int(length)) else {
                throw .protocolViolation("a record of \(length) bytes in a files message that has \(reader.remaining) left")
            }
            files.append(WholeFile(index: Int(index), root: Digest(unchecked: Array(root)), data: data))
        }
        guard !files.isEmpty else { throw .protocolViolation("a files message without a file") }
        return files
    }

    // MARK: - JSON shape

    struct WireAsk: Codable {
        var index: Int
        var chunks: UInt64
    }

    struct WireChain: Codable {
        var index: Int
        var chunks: UInt64
        var chain: String
    }

    struct WireStart: Codable {
        var index: Int
        var from: UInt64
    }

    struct Wire: Codable {
        var asks: [WireAsk]?
        var bytes: UInt64?
        var chains: [WireChain]?
        var chunkSize: Int?
        var code: String?
        var entries: [ManifestEntry]?
        var files: UInt64?
        var hash: String?
        var index: Int?
        var message: String?
        var more: Bool?
        var size: UInt64?
        var skip: [Int]?
        var starts: [WireStart]?

        enum CodingKeys: String, CodingKey {
            case asks, bytes, chains, chunkSize = "chunk_size", code, entries, files, hash, index, message, more, size, skip, starts
        }

        init(
            asks: [WireAsk]? = nil, bytes: UInt64? = nil, chains: [WireChain]? = nil, chunkSize: Int? = nil, code: String? = nil, entries: [ManifestEntry]? = nil,
            files: UInt64? = nil, hash: String? = nil, index: Int? = nil, message: String? = nil, more: Bool? = nil, size: UInt64? = nil,
            skip: [Int]? = nil, starts: [WireStart]? = nil
        ) {
            self.asks = asks
            self.bytes = bytes
            self.chains = chains
            self.chunkSize = chunkSize
            self.code = code
            self.entries = entries
            self.files = files
            self.hash = hash
            self.index = index
            self.message = message
            self.more = more
            self.size = size
            self.skip = skip
            self.starts = starts
        }
    }
}
