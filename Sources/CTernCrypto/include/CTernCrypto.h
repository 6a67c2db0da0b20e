#ifndef CTERN_CRYPTO_H
#define CTERN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// AES-GCM (NIST SP 800-38D) with a 12-byte nonce and a 16-byte tag, for
/// DTLS records. x86-64 only, on processors with AES-NI, PCLMULQDQ, AVX2,
/// VAES and VPCLMULQDQ; everywhere else `ctern_aesgcm_available` is 0 and
/// the caller uses OpenSSL.
typedef struct ctern_aesgcm_key ctern_aesgcm_key;

/// 1 when this machine can run the functions below, else 0.
int ctern_aesgcm_available(void);

/// The expanded key for a 16-byte (AES-128) or 32-byte (AES-256) key, or NULL
/// (wrong length, out of memory, or not available). Free with
/// `ctern_aesgcm_destroy`, which wipes it.
ctern_aesgcm_key *ctern_aesgcm_create(const uint8_t *key, size_t keyLength);
void ctern_aesgcm_destroy(ctern_aesgcm_key *key);

/// Encrypts `length` bytes of `plaintext` into `ciphertext` (the same
/// pointer, or not overlapping) and writes the tag.
void ctern_aesgcm_seal(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                       const uint8_t *plaintext, size_t length, uint8_t *ciphertext, uint8_t tag[16]);

/// Checks the tag (in constant time) and decrypts. Returns 0 when the tag is
/// right; otherwise -1, with the `length` bytes at `plaintext` zeroed.
/// `plaintext` is the same pointer as `ciphertext`, or does not overlap it.
int ctern_aesgcm_open(const ctern_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aadLength,
                      const uint8_t *ciphertext, size_t length, const uint8_t tag[16], uint8_t *plaintext);

#ifdef __cplusplus
}
#endif

#endif
