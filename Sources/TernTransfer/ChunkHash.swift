import TernCrypto

/// SHA-256 (OpenSSL's, through TernCrypto; design.md and docs/architecture.md
/// say why SHA-256 rather than BLAKE2b).
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let zero = Digest(unchecked: [UInt8](repeating: 0, count: byteCount))

    public let bytes: [UInt8]

    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// From 64 lowercase or uppercase hex digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == Self.byteCount * 2 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.byteCount)
        var index = 0
        while index < utf8.count {
            guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.bytes = bytes
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    /// SHA-256 of `data`, hashed straight into the digest's storage.
    public static func sha256(_ data: UnsafeRawBufferPointer) -> Digest {
        var out = [UInt8](repeating: 0, count: byteCount)
        var failure: CryptoError?
        out.withUnsafeMutableBytes { digest in
            do throws(CryptoError) { try HashFunction.sha256.hash(data, into: digest) } catch { failure = error }
        }
        // A digest fails only when OpenSSL cannot allocate.
        if let failure { preconditionFailure("SHA-256 failed: \(failure.reason)") }
        return Digest(unchecked: out)
    }

    public static func sha256(_ bytes: [UInt8]) -> Digest {
        bytes.withUnsafeBytes { sha256($0) }
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// The running hash of a file's chunks (docs/protocol.md §11.4): a chain
/// c₀ = 32 zero bytes, cₖ₊₁ = SHA-256(cₖ ‖ hₖ) where hₖ is chunk k's SHA-256;
/// the root of a file of n chunks and `size` bytes is SHA-256(cₙ ‖ size as
/// 8 bytes big-endian). The chain is 32 bytes of state, so a receiver can
/// store it beside a partial file and a sender can check a resume claim
/// by hashing only the chunks the receiver says it has.
public struct ChunkChain: Equatable, Sendable {
    public private(set) var value: Digest
    public private(set) var chunks: UInt64

    public init() {
        value = .zero
        chunks = 0
    }

    public init(value: Digest, chunks: UInt64) {
        self.value = value
        self.chunks = chunks
    }

    public mutating func append(_ chunkHash: Digest) {
        var input = value.bytes
        input.append(contentsOf: chunkHash.bytes)
        value = Digest.sha256(input)
        chunks += 1
    }

    public func root(size: UInt64) -> Digest {
        var input = value.bytes
        withUnsafeBytes(of: size.bigEndian) { input.append(contentsOf: $0) }
        return Digest.sha256(input)
    }
}
