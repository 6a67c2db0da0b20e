import TernCrypto
import Testing

@Suite("Random bytes, wiping and constant-time compares")
struct MemoryTests {
    @Test("random bytes have the length asked for", arguments: [0, 1, 16, 32, 1000])
    func randomBytesHaveTheLengthAskedFor(count: Int) throws {
        #expect(try SecureRandom.bytes(count: count).count == count)
    }

    @Test("two draws of 32 random bytes differ, and none is all zero")
    func randomDrawsDiffer() throws {
        let draws = try (0..<8).map { _ in try SecureRandom.bytes(count: 32) }
        #expect(Set(draws).count == draws.count)
        #expect(!draws.contains([UInt8](repeating: 0, count: 32)))
    }

    @Test("every byte value turns up in 64 KiB of random bytes")
    func randomBytesCoverEveryValue() throws {
        // The chance that one of 256 values is missing from 65536 uniform
        // bytes is about 256 * e^-256: never, unless the source is broken.
        let bytes = try SecureRandom.bytes(count: 65536)
        #expect(Set(bytes).count == 256)
    }

    @Test("a negative count is refused")
    func negativeCountIsRefused() {
        let error = #expect(throws: CryptoError.self) { try SecureRandom.bytes(count: -1) }
        #expect(error?.code == .invalidArgument)
    }

    @Test("the generator gives the standard library random numbers in range")
    func generatorStaysInRange() {
        var generator = SecureRandomNumberGenerator()
        let values = (0..<64).map { _ in UInt32.random(in: 10...20, using: &generator) }
        #expect(values.allSatisfy { (10...20).contains($0) })
        #expect(Set(values).count > 1)
    }

    @Test("cleanse zeroes an array in place")
    func cleanseZeroes() {
        var bytes: [UInt8] = [1, 2, 3, 0xff]
        Memory.cleanse(&bytes)
        #expect(bytes == [0, 0, 0, 0])
    }

    @Test(
        "constant-time compare is equality",
        arguments: [
            ([UInt8](), [UInt8](), true),
            ([1, 2, 3], [1, 2, 3], true),
            ([1, 2, 3], [1, 2, 4], false),
            ([0, 2, 3], [1, 2, 3], false),
            ([1, 2, 3], [1, 2], false),
            ([], [0], false),
        ] as [([UInt8], [UInt8], Bool)])
    func constantTimeCompareIsEquality(a: [UInt8], b: [UInt8], equal: Bool) {
        #expect(Memory.constantTimeEqual(a, b) == equal)
        #expect(Memory.constantTimeEqual(a[...], b) == equal)
    }

    @Test("secret bytes keep what they were given")
    func secretBytesKeepTheirBytes() throws {
        let secret = SecretBytes(copying: [9, 8, 7])
        #expect(secret.count == 3)
        #expect(secret.bytes == [9, 8, 7])
        let filled = try SecretBytes(count: 2) { (pointer: UnsafeMutablePointer<UInt8>) throws(CryptoError) in
            pointer[0] = 1
            pointer[1] = 2
        }
        #expect(filled.bytes == [1, 2])
        #expect(SecretBytes(copying: [UInt8]()).bytes.isEmpty)
    }

    @Test("keyed BLAKE2b refuses a key shorter than 16 bytes")
    func blake2bRefusesShortKey() {
        let key = [UInt8](repeating: 1, count: 8)
        var out = [UInt8](repeating: 0, count: 32)
        let error = #expect(throws: CryptoError.self) {
            try key.withUnsafeBufferPointer { keyBytes in
                try out.withUnsafeMutableBufferPointer { output in
                    try Sodium.blake2b(key: keyBytes.baseAddress!, keyCount: 8, message: [], into: output.baseAddress!)
                }
            }
        }
        #expect(error?.code == .invalidArgument)
    }
}
