// AES-GCM for DTLS records (NIST SP 800-38D; FIPS 197 for AES), written for
// records of about 1.2-1.5 KB: after the handshake each record costs OpenSSL's
// EVP interface about as much in parameter handling as in cryptography, and
// this path has none of it. Eight blocks per round of the main loop: AES on
// two blocks per instruction (VAES on 256-bit registers), GHASH on the eight
// with carry-less multiplication (VPCLMULQDQ) and one reduction.
//
// Correctness is held to OpenSSL by the tests (every length 0...2100 and
// more, both key sizes, AAD of every length 0...40, every tag bit), and to
// the published GCM test vectors.
//
// Nothing here branches on or indexes by secret data: AES rounds and
// carry-less products are single instructions, and the tag comparison is a
// full XOR and test.

#include "CTernCrypto.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))

#include <cpuid.h>
#include <immintrin.h>

#define TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq")))

struct ctern_aesgcm_key {
    __m256i roundKeysTwice[15];  // each round key in both 128-bit lanes
    __m128i roundKeys[15];
    // H, H^2, ..., H^9 in the representation described at `reduce`.
    __m128i powers[9];
    int rounds;
};

// MARK: - Processor support

int ctern_aesgcm_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned pclmul = 1u << 1, ssse3 = 1u << 9, sse41 = 1u << 19, osxsave = 1u << 27, avx = 1u << 28, aes = 1u << 25;
    if ((c & (pclmul | ssse3 | sse41 | osxsave | avx | aes)) != (pclmul | ssse3 | sse41 | osxsave | avx | aes)) return 0;
    // The operating system must save the SSE and AVX register state.
    unsigned xcr0Low, xcr0High;
    __asm__ volatile("xgetbv" : "=a"(xcr0Low), "=d"(xcr0High) : "c"(0));
    if ((xcr0Low & 6u) != 6u) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned avx2 = 1u << 5;       // EBX
    const unsigned vaes = 1u << 9, vpclmulqdq = 1u << 10;  // ECX
    return (b & avx2) && (c & vaes) && (c & vpclmulqdq);
}

// MARK: - AES key schedule (FIPS 197 §5.2)

// One step of the schedule: the previous four words, each XORed into the
// next (the three shifts), then the word `assist` supplies in all four lanes.
TARGET static __m128i scheduleStep(__m128i previous, __m128i assist) {
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    previous = _mm_xor_si128(previous, _mm_slli_si128(previous, 4));
    return _mm_xor_si128(previous, assist);
}

// RotWord(SubWord(last word)) ^ Rcon, from AESKEYGENASSIST's fourth lane.
#define ROTATED(k, rcon) _mm_shuffle_epi32(_mm_aeskeygenassist_si128((k), (rcon)), 0xff)
// SubWord(last word) alone, from its third lane (AES-256's middle step).
#define SUBSTITUTED(k) _mm_shuffle_epi32(_mm_aeskeygenassist_si128((k), 0), 0xaa)

TARGET static void schedule128(__m128i *k, const uint8_t *key) {
    k[0] = _mm_loadu_si128((const __m128i *)key);
    k[1] = scheduleStep(k[0], ROTATED(k[0], 0x01));
    k[2] = scheduleStep(k[1], ROTATED(k[1], 0x02));
    k[3] = scheduleStep(k[2], ROTATED(k[2], 0x04));
    k[4] = scheduleStep(k[3], ROTATED(k[3], 0x08));
    k[5] = scheduleStep(k[4], ROTATED(k[4], 0x10));
    k[6] = scheduleStep(k[5], ROTATED(k[5], 0x20));
    k[7] = scheduleStep(k[6], ROTATED(k[6], 0x40));
    k[8] = scheduleStep(k[7], ROTATED(k[7], 0x80));
    k[9] = scheduleStep(k[8], ROTATED(k[8], 0x1b));
    k[10] = scheduleStep(k[9], ROTATED(k[9], 0x36));
}

TARGET static void schedule256(__m128i *k, const uint8_t *key) {
    k[0] = _mm_loadu_si128((const __m128i *)key);
    k[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    k[2] = scheduleStep(k[0], ROTATED(k[1], 0x01));
    k[3] = scheduleStep(k[1], SUBSTITUTED(k[2]));
    k[4] = scheduleStep(k[2], ROTATED(k[3], 0x02));
    k[5] = scheduleStep(k[3], SUBSTITUTED(k[4]));
    k[6] = scheduleStep(k[4], ROTATED(k[5], 0x04));
    k[7] = scheduleStep(k[5], SUBSTITUTED(k[6]));
    k[8] = scheduleStep(k[6], ROTATED(k[7], 0x08));
    k[9] = scheduleStep(k[7], SUBSTITUTED(k[8]));
    k[10] = scheduleStep(k[8], ROTATED(k[9], 0x10));
    k[11] = scheduleStep(k[9], SUBSTITUTED(k[10]));
    k[12] = scheduleStep(k[10], ROTATED(k[11], 0x20));
    k[13] = scheduleStep(k[11], SUBSTITUTED(k[12]));
    k[14] = scheduleStep(k[12], ROTATED(k[13], 0x40));
}

TARGET static __m128i encryptBlock(const struct ctern_aesgcm_key *key, __m128i block) {
    block = _mm_xor_si128(block, key->roundKeys[0]);
    for (int r = 1; r < key->rounds; r++) block = _mm_aesenc_si128(block, key->roundKeys[r]);
    return _mm_aesenclast_si128(block, key->roundKeys[key->rounds]);
}

// MARK: - GHASH

// A 16-byte block B is held as v = B with its bytes reversed, read as one
// 128-bit little-endian number. GCM numbers the bits of B from the first
// byte's high bit as x^0 on, so in v bit 127 is x^0 and bit 0 is x^127: v is
// the bit reversal of the polynomial.
//
// The carry-less product of two such values is then the polynomial product
// reversed over 255 bits; shifted left by one it is reversed over 256 bits,
// with the product's low-degree half L (x^0...x^127) in the high 128 bits and
// its high-degree half (x^128...x^255) in the low 128 bits, call it h.
//
// Modulo P = x^128 + x^7 + x^2 + x + 1, x^128 is x^7 + x^2 + x + 1, and a
// multiplication by x^k is a right shift by k in this representation. So the
// high half folds in as h ^ h>>1 ^ h>>2 ^ h>>7, except that the bits a right
// shift moves out of the bottom (the terms past x^127, at most x^134) have to
// fold once more. They are h's low seven bits shifted left by 127, 126 and
// 121, all landing in the top word; folding them into h first gives
// D = h ^ those bits, and the reduced product is L ^ D ^ D>>1 ^ D>>2 ^ D>>7.

static const uint8_t byteReversal[16] = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};

TARGET static inline __m128i reversed(__m128i v) {
    return _mm_shuffle_epi8(v, _mm_loadu_si128((const __m128i *)byteReversal));
}

// (high, low) is an unreduced carry-less product of two field elements.
TARGET static inline __m128i reduce(__m128i high, __m128i low) {
    // The 256-bit shift left by one, across the four 64-bit words.
    __m128i lowCarries = _mm_srli_epi64(low, 63);
    __m128i highCarries = _mm_srli_epi64(high, 63);
    low = _mm_or_si128(_mm_slli_epi64(low, 1), _mm_slli_si128(lowCarries, 8));
    high = _mm_or_si128(_mm_slli_epi64(high, 1), _mm_slli_si128(highCarries, 8));
    high = _mm_or_si128(high, _mm_srli_si128(lowCarries, 8));
    // high is now L, low is h.
    __m128i overflow = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi64(low, 63), _mm_slli_epi64(low, 62)), _mm_slli_epi64(low, 57));
    __m128i d = _mm_xor_si128(low, _mm_slli_si128(overflow, 8));
    // d >> 1, 2, 7 as 128-bit shifts: each word shifted, plus the bits the
    // top word passes down to the bottom one.
    __m128i top = _mm_srli_si128(d, 8);
    __m128i shifted1 = _mm_xor_si128(_mm_srli_epi64(d, 1), _mm_slli_epi64(top, 63));
    __m128i shifted2 = _mm_xor_si128(_mm_srli_epi64(d, 2), _mm_slli_epi64(top, 62));
    __m128i shifted7 = _mm_xor_si128(_mm_srli_epi64(d, 7), _mm_slli_epi64(top, 57));
    return _mm_xor_si128(_mm_xor_si128(high, d), _mm_xor_si128(shifted1, _mm_xor_si128(shifted2, shifted7)));
}

// Adds a's and b's carry-less product, as its high, middle and low parts.
TARGET static inline void multiplyInto(__m128i a, __m128i b, __m128i *high, __m128i *middle, __m128i *low) {
    *low = _mm_xor_si128(*low, _mm_clmulepi64_si128(a, b, 0x00));
    *high = _mm_xor_si128(*high, _mm_clmulepi64_si128(a, b, 0x11));
    *middle = _mm_xor_si128(*middle, _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10)));
}

TARGET static inline __m128i combine(__m128i high, __m128i middle, __m128i low) {
    high = _mm_xor_si128(high, _mm_srli_si128(middle, 8));
    low = _mm_xor_si128(low, _mm_slli_si128(middle, 8));
    return reduce(high, low);
}

TARGET static __m128i multiply(__m128i a, __m128i b) {
    __m128i high = _mm_setzero_si128(), middle = high, low = high;
    multiplyInto(a, b, &high, &middle, &low);
    return combine(high, middle, low);
}

// GHASH's step Y = (Y ^ X) · H over several blocks at once:
// Y' = (Y ^ X1)·H^n ^ X2·H^(n-1) ^ ... ^ Xn·H, reduced once.
// `blocks` are already in the reversed representation; 1 <= count <= 9.
TARGET static __m128i hashBlocks(const struct ctern_aesgcm_key *key, __m128i y, const __m128i *blocks, int count) {
    __m128i high = _mm_setzero_si128(), middle = high, low = high;
    multiplyInto(_mm_xor_si128(y, blocks[0]), key->powers[count - 1], &high, &middle, &low);
    for (int i = 1; i < count; i++) multiplyInto(blocks[i], key->powers[count - 1 - i], &high, &middle, &low);
    return combine(high, middle, low);
}

// The same for eight blocks in four registers (block 2i in the low lane of
// register i, block 2i+1 in the high lane), as read from memory.
TARGET static inline __m128i hashEight(const struct ctern_aesgcm_key *key, __m128i y, __m256i b01, __m256i b23, __m256i b45,
                                       __m256i b67) {
    const __m256i reversal = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)byteReversal));
    b01 = _mm256_xor_si256(_mm256_shuffle_epi8(b01, reversal), _mm256_zextsi128_si256(y));
    b23 = _mm256_shuffle_epi8(b23, reversal);
    b45 = _mm256_shuffle_epi8(b45, reversal);
    b67 = _mm256_shuffle_epi8(b67, reversal);
    // Powers lined up with the blocks: H^8 for block 0, H^7 for block 1, ...
    __m256i h87 = _mm256_set_m128i(key->powers[6], key->powers[7]);
    __m256i h65 = _mm256_set_m128i(key->powers[4], key->powers[5]);
    __m256i h43 = _mm256_set_m128i(key->powers[2], key->powers[3]);
    __m256i h21 = _mm256_set_m128i(key->powers[0], key->powers[1]);
    __m256i low = _mm256_xor_si256(
        _mm256_xor_si256(_mm256_clmulepi64_epi128(b01, h87, 0x00), _mm256_clmulepi64_epi128(b23, h65, 0x00)),
        _mm256_xor_si256(_mm256_clmulepi64_epi128(b45, h43, 0x00), _mm256_clmulepi64_epi128(b67, h21, 0x00)));
    __m256i high = _mm256_xor_si256(
        _mm256_xor_si256(_mm256_clmulepi64_epi128(b01, h87, 0x11), _mm256_clmulepi64_epi128(b23, h65, 0x11)),
        _mm256_xor_si256(_mm256_clmulepi64_epi128(b45, h43, 0x11), _mm256_clmulepi64_epi128(b67, h21, 0x11)));
    __m256i middle = _mm256_xor_si256(
        _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(b01, h87, 0x01), _mm256_clmulepi64_epi128(b01, h87, 0x10)),
                         _mm256_xor_si256(_mm256_clmulepi64_epi128(b23, h65, 0x01), _mm256_clmulepi64_epi128(b23, h65, 0x10))),
        _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(b45, h43, 0x01), _mm256_clmulepi64_epi128(b45, h43, 0x10)),
                         _mm256_xor_si256(_mm256_clmulepi64_epi128(b67, h21, 0x01), _mm256_clmulepi64_epi128(b67, h21, 0x10))));
    // The two lanes' sums are parts of one sum.
    return combine(_mm_xor_si128(_mm256_castsi256_si128(high), _mm256_extracti128_si256(high, 1)),
                   _mm_xor_si128(_mm256_castsi256_si128(middle), _mm256_extracti128_si256(middle, 1)),
                   _mm_xor_si128(_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1)));
}

// MARK: - Counter mode

// Counter blocks are kept byte-reversed too, which puts GCM's 32-bit
// big-endian counter in the low 32 bits of the register, where a 32-bit add
// increments it modulo 2^32 (SP 800-38D's inc32) without touching the nonce.

// The keystream for eight counters, starting with lane 0 of `counters`
// (lane 1 holds the counter after it).
TARGET static inline void keystreamEight(const struct ctern_aesgcm_key *key, __m256i counters, __m256i *s0, __m256i *s1, __m256i *s2,
                                         __m256i *s3) {
    const __m256i reversal = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)byteReversal));
    const __m256i two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
    __m256i c1 = _mm256_add_epi32(counters, two), c2 = _mm256_add_epi32(c1, two), c3 = _mm256_add_epi32(c2, two);
    __m256i k = key->roundKeysTwice[0];
    __m256i a = _mm256_xor_si256(_mm256_shuffle_epi8(counters, reversal), k);
    __m256i b = _mm256_xor_si256(_mm256_shuffle_epi8(c1, reversal), k);
    __m256i c = _mm256_xor_si256(_mm256_shuffle_epi8(c2, reversal), k);
    __m256i d = _mm256_xor_si256(_mm256_shuffle_epi8(c3, reversal), k);
    for (int r = 1; r < key->rounds; r++) {
        k = key->roundKeysTwice[r];
        a = _mm256_aesenc_epi128(a, k);
        b = _mm256_aesenc_epi128(b, k);
        c = _mm256_aesenc_epi128(c, k);
        d = _mm256_aesenc_epi128(d, k);
    }
    k = key->roundKeysTwice[key->rounds];
    *s0 = _mm256_aesenclast_epi128(a, k);
    *s1 = _mm256_aesenclast_epi128(b, k);
    *s2 = _mm256_aesenclast_epi128(c, k);
    *s3 = _mm256_aesenclast_epi128(d, k);
}

// Encrypts or decrypts `length` bytes and hashes the ciphertext, ending with
// the lengths block; returns GHASH's final value. `y` is the hash of the AAD,
// `j0` the pre-counter block (reversed).
TARGET static __m128i cryptAndHash(const struct ctern_aesgcm_key *key, __m128i y, __m128i j0, const uint8_t *input, uint8_t *output,
                                   size_t length, size_t aadLength, int encrypting) {
    // Data starts at counter J0 + 1.
    __m256i counters = _mm256_add_epi32(_mm256_broadcastsi128_si256(j0), _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 1));
    const __m256i eight = _mm256_set_epi32(0, 0, 0, 8, 0, 0, 0, 8);
    size_t offset = 0;
    while (length - offset >= 128) {
        __m256i s0, s1, s2, s3;
        keystreamEight(key, counters, &s0, &s1, &s2, &s3);
        counters = _mm256_add_epi32(counters, eight);
        const uint8_t *in = input + offset;
        __m256i d0 = _mm256_loadu_si256((const __m256i *)in);
        __m256i d1 = _mm256_loadu_si256((const __m256i *)(in + 32));
        __m256i d2 = _mm256_loadu_si256((const __m256i *)(in + 64));
        __m256i d3 = _mm256_loadu_si256((const __m256i *)(in + 96));
        if (!encrypting) y = hashEight(key, y, d0, d1, d2, d3);
        d0 = _mm256_xor_si256(d0, s0);
        d1 = _mm256_xor_si256(d1, s1);
        d2 = _mm256_xor_si256(d2, s2);
        d3 = _mm256_xor_si256(d3, s3);
        uint8_t *out = output + offset;
        _mm256_storeu_si256((__m256i *)out, d0);
        _mm256_storeu_si256((__m256i *)(out + 32), d1);
        _mm256_storeu_si256((__m256i *)(out + 64), d2);
        _mm256_storeu_si256((__m256i *)(out + 96), d3);
        if (encrypting) y = hashEight(key, y, d0, d1, d2, d3);
        offset += 128;
    }

    // The last 0...127 bytes go through a zero-padded buffer; their blocks
    // and the lengths block are hashed together.
    size_t rest = length - offset;
    int count = (int)((rest + 15) / 16);
    __m128i blocks[9];
    if (rest > 0) {
        _Alignas(32) uint8_t buffer[128];
        _Alignas(32) uint8_t stream[128];
        memset(buffer, 0, sizeof buffer);
        memcpy(buffer, input + offset, rest);
        __m256i s0, s1, s2, s3;
        keystreamEight(key, counters, &s0, &s1, &s2, &s3);
        _mm256_store_si256((__m256i *)stream, s0);
        _mm256_store_si256((__m256i *)(stream + 32), s1);
        _mm256_store_si256((__m256i *)(stream + 64), s2);
        _mm256_store_si256((__m256i *)(stream + 96), s3);
        if (!encrypting) {
            for (int i = 0; i < count; i++) blocks[i] = reversed(_mm_load_si128((const __m128i *)(buffer + 16 * i)));
        }
        for (int i = 0; i < count; i++) {
            __m128i block = _mm_xor_si128(_mm_load_si128((const __m128i *)(buffer + 16 * i)), _mm_load_si128((const __m128i *)(stream + 16 * i)));
            _mm_store_si128((__m128i *)(buffer + 16 * i), block);
        }
        memcpy(output + offset, buffer, rest);
        if (encrypting) {
            // GHASH pads the ciphertext with zeroes, not keystream.
            memset(buffer + rest, 0, sizeof buffer - rest);
            for (int i = 0; i < count; i++) blocks[i] = reversed(_mm_load_si128((const __m128i *)(buffer + 16 * i)));
        }
        memset(stream, 0, sizeof stream);
        memset(buffer, 0, sizeof buffer);
    }
    // The lengths block: the AAD's and the ciphertext's lengths in bits, each
    // 64-bit big endian; reversed, the AAD's is the high half.
    blocks[count] = _mm_set_epi64x((long long)((uint64_t)aadLength * 8), (long long)((uint64_t)length * 8));
    return hashBlocks(key, y, blocks, count + 1);
}

TARGET static __m128i hashAAD(const struct ctern_aesgcm_key *key, const uint8_t *aad, size_t aadLength) {
    __m128i y = _mm_setzero_si128();
    while (aadLength > 0) {
        size_t n = aadLength < 16 ? aadLength : 16;
        uint8_t block[16] = {0};
        memcpy(block, aad, n);
        y = multiply(_mm_xor_si128(y, reversed(_mm_loadu_si128((const __m128i *)block))), key->powers[0]);
        aad += n;
        aadLength -= n;
    }
    return y;
}

// J0 = nonce || 0x00000001 for a 12-byte nonce (SP 800-38D §7.1), reversed.
TARGET static __m128i preCounter(const uint8_t nonce[12]) {
    uint8_t block[16];
    memcpy(block, nonce, 12);
    block[12] = 0;
    block[13] = 0;
    block[14] = 0;
    block[15] = 1;
    return reversed(_mm_loadu_si128((const __m128i *)block));
}

TARGET static __m128i tagFor(const struct ctern_aesgcm_key *key, __m128i hash, __m128i j0) {
    return _mm_xor_si128(reversed(hash), encryptBlock(key, reversed(j0)));
}

TARGET static void initialize(struct ctern_aesgcm_key *key, const uint8_t *bytes, size_t keyLength) {
    if (keyLength == 16) {
        schedule128(key->roundKeys, bytes);
        key->rounds = 10;
    } else {
        schedule256(key->roundKeys, bytes);
        key->rounds = 14;
    }
    for (int r = 0; r <= key->rounds; r++) key->roundKeysTwice[r] = _mm256_broadcastsi128_si256(key->roundKeys[r]);
    __m128i h = reversed(encryptBlock(key, _mm_setzero_si128()));
    key->powers[0] = h;
    for (int i = 1; i < 9; i++) key->powers[i] = multiply(key->powers[i - 1], h);
}

ctern_aesgcm_key *ctern_aesgcm_create(const uint8_t *bytes, size_t keyLength) {
    if ((keyLength != 16 && keyLength != 32) || !ctern_aesgcm_available()) return NULL;
    void *memory = NULL;
    if (posix_memalign(&memory, 32, sizeof(struct ctern_aesgcm_key)) != 0) return NULL;
    struct ctern_aesgcm_key *key = memory;
    initialize(key, bytes, keyLength);
    return key;
}

TARGET void ctern_aesgcm_seal(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                              const uint8_t *plaintext, size_t length, uint8_t *ciphertext, uint8_t tag[16]) {
    __m128i j0 = preCounter(nonce);
    __m128i hash = cryptAndHash(key, hashAAD(key, aad, aadLength), j0, plaintext, ciphertext, length, aadLength, 1);
    _mm_storeu_si128((__m128i *)tag, tagFor(key, hash, j0));
}

TARGET int ctern_aesgcm_open(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                             const uint8_t *ciphertext, size_t length, const uint8_t tag[16], uint8_t *plaintext) {
    __m128i j0 = preCounter(nonce);
    // The tag is read before decryption, which may overwrite it in place.
    __m128i received = _mm_loadu_si128((const __m128i *)tag);
    __m128i hash = cryptAndHash(key, hashAAD(key, aad, aadLength), j0, ciphertext, plaintext, length, aadLength, 0);
    __m128i difference = _mm_xor_si128(tagFor(key, hash, j0), received);
    if (!_mm_testz_si128(difference, difference)) {
        memset(plaintext, 0, length);
        return -1;
    }
    return 0;
}

#else  // not x86-64: OpenSSL does the work.

struct ctern_aesgcm_key {
    int unused;
};

int ctern_aesgcm_available(void) { return 0; }

ctern_aesgcm_key *ctern_aesgcm_create(const uint8_t *key, size_t keyLength) {
    (void)key;
    (void)keyLength;
    return NULL;
}

void ctern_aesgcm_seal(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                       const uint8_t *plaintext, size_t length, uint8_t *ciphertext, uint8_t tag[16]) {
    (void)key, (void)nonce, (void)aad, (void)aadLength, (void)plaintext, (void)length, (void)ciphertext;
    memset(tag, 0, 16);
}

int ctern_aesgcm_open(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                      const uint8_t *ciphertext, size_t length, const uint8_t tag[16], uint8_t *plaintext) {
    (void)key, (void)nonce, (void)aad, (void)aadLength, (void)ciphertext, (void)tag;
    memset(plaintext, 0, length);
    return -1;
}

#endif

void ctern_aesgcm_destroy(ctern_aesgcm_key *key) {
    if (key == NULL) return;
    // Wipe the round keys and H's powers; the volatile pointer keeps the
    // compiler from dropping stores to memory about to be freed.
    volatile uint8_t *bytes = (volatile uint8_t *)key;
    for (size_t i = 0; i < sizeof(struct ctern_aesgcm_key); i++) bytes[i] = 0;
    free(key);
}
