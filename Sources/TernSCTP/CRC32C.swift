/// CRC-32c (Castagnoli), the SCTP checksum (RFC 9260 §6.8, Appendix B):
/// polynomial 0x1EDC6F41 in its reflected form 0x82F63B78, register starting
/// at all ones, result complemented. "123456789" gives 0xE3069283.
///
/// The checksum sits on the data path (every packet in and out), so this is
/// slicing-by-8: eight 256-entry tables let one step fold in eight input bytes
/// with eight table look-ups, instead of eight dependent one-byte steps.
///
/// Use `checksum(_:)` for a whole buffer, or a value of this type to feed the
/// bytes in pieces (the SCTP checksum covers the packet with its checksum
/// field taken as zero, without copying the packet).
public struct CRC32C: Sendable {
    /// The running register, before the final complement.
    private var register: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The CRC-32c of everything fed so far.
    public var value: UInt32 { ~register }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        register = Self.fold(register, bytes)
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { register = Self.fold(register, $0) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { register = Self.fold(register, $0) }
    }

    /// Feeds `count` zero bytes.
    public mutating func update(zeros count: Int) {
        Self.tables.withUnsafeBufferPointer { table in
            for _ in 0..<count {
                register = table[Int(register & 0xFF)] ^ (register >> 8)
            }
        }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ~fold(0xFFFF_FFFF, bytes)
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Reflected polynomial (RFC 9260 Appendix B).
    static let polynomial: UInt32 = 0x82F6_3B78

    /// Eight tables of 256 entries, one after the other. Table 0 is the
    /// classic byte-at-a-time table; entry `b` of table `k` is the register
    /// after byte `b` followed by `k` zero bytes, so one 8-byte step can look
    /// every byte up in the table for its distance from the end of the word.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            tables[byte] = crc
        }
        for table in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(table - 1) * 256 + byte]
                tables[table * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// Folds `bytes` into `register` (no initial or final complement).
    ///
    /// Every table index below is a byte (masked with 0xFF or shifted down by
    /// 24 from a 32-bit value) plus a multiple of 256 below 8 * 256, so it is
    /// always inside the 2048-entry table.
    @inline(__always)
    static func fold(_ register: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = register
        guard var pointer = bytes.baseAddress else { return crc }
        var remaining = bytes.count
        tables.withUnsafeBufferPointer { table in
            while remaining >= 8 {
                // Little-endian load: the first byte of the word is the lowest.
                let word = UInt64(littleEndian: pointer.loadUnaligned(as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ crc
                let high = UInt32(truncatingIfNeeded: word >> 32)
                crc = table[7 * 256 + Int(low & 0xFF)]
                    ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)]
                    ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ table[Int(high >> 24)]
                pointer += 8
                remaining -= 8
            }
            while remaining > 0 {
                let byte = pointer.load(as: UInt8.self)
                crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                pointer += 1
                remaining -= 1
            }
        }
        return crc
    }
}
