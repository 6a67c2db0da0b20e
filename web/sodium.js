// libsodium compiled to WebAssembly (scripts/build-web.sh), and the few WASI
// imports it needs. Every primitive the page uses comes from here: this file
// only moves bytes in and out of the module's memory.

/** Loads sodium.wasm and returns a `Sodium` ready to use. */
export async function loadSodium(url = new URL("sodium.wasm", import.meta.url)) {
  let memory = null;
  const imports = {
    wasi_snapshot_preview1: {
      // libsodium's randombytes uses arc4random, which wasi-libc fills from
      // random_get: the browser's CSPRNG (getRandomValues takes at most
      // 65536 bytes per call).
      random_get(pointer, length) {
        const bytes = new Uint8Array(memory.buffer, pointer, length);
        for (let offset = 0; offset < length; offset += 65536) {
          crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + 65536)));
        }
        return 0;
      },
      // Only a misuse report would write (to stderr); count it as written.
      fd_write(fd, iovs, iovsLength, written) {
        const view = new DataView(memory.buffer);
        let total = 0;
        for (let i = 0; i < iovsLength; i++) total += view.getUint32(iovs + 8 * i + 4, true);
        view.setUint32(written, total, true);
        return 0;
      },
      fd_close() { return 0; },
      fd_seek() { return 70; }, // ESPIPE: there are no files
    },
  };
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const { instance } = await WebAssembly.instantiate(bytes, imports);
  memory = instance.exports.memory;
  if (instance.exports.sodium_init() < 0) throw new Error("sodium_init failed");
  return new Sodium(instance.exports, memory);
}

/** Byte-array wrappers around libsodium's functions (Uint8Array in and out). */
export class Sodium {
  constructor(exports, memory) {
    this.x = exports;
    this.memory = memory;
  }

  // Runs `body` with buffers allocated in the module's memory, zeroed and
  // freed afterwards whatever happens. `inputs` are copied in; `outputs` are
  // sizes of buffers to allocate. `body` gets the pointers in that order.
  withBuffers(inputs, outputs, body) {
    const pointers = [];
    const sizes = [];
    try {
      for (const bytes of inputs) {
        const pointer = this.x.malloc(Math.max(1, bytes.length));
        if (pointer === 0) throw new Error("out of memory in sodium.wasm");
        new Uint8Array(this.memory.buffer, pointer, bytes.length).set(bytes);
        pointers.push(pointer);
        sizes.push(bytes.length);
      }
      for (const size of outputs) {
        const pointer = this.x.malloc(Math.max(1, size));
        if (pointer === 0) throw new Error("out of memory in sodium.wasm");
        pointers.push(pointer);
        sizes.push(size);
      }
      return body(...pointers);
    } finally {
      pointers.forEach((pointer, i) => {
        this.x.sodium_memzero(pointer, sizes[i]);
        this.x.free(pointer);
      });
    }
  }

  read(pointer, length) {
    return new Uint8Array(this.memory.buffer, pointer, length).slice();
  }

  sha512(message) {
    return this.withBuffers([message], [64], (m, out) => {
      this.x.crypto_hash_sha512(out, m, BigInt(message.length));
      return this.read(out, 64);
    });
  }

  sha256(message) {
    return this.withBuffers([message], [32], (m, out) => {
      this.x.crypto_hash_sha256(out, m, BigInt(message.length));
      return this.read(out, 32);
    });
  }

  /** Keyed BLAKE2b with the given output length (crypto_generichash). */
  blake2b(outputLength, message, key) {
    return this.withBuffers([message, key], [outputLength], (m, k, out) => {
      if (this.x.crypto_generichash(out, outputLength, m, BigInt(message.length), k, key.length) !== 0) {
        throw new Error("crypto_generichash failed");
      }
      return this.read(out, outputLength);
    });
  }

  /** Constant-time comparison of two 32-byte arrays. */
  equal32(a, b) {
    if (a.length !== 32 || b.length !== 32) return false;
    return this.withBuffers([a, b], [], (p, q) => this.x.crypto_verify_32(p, q) === 0);
  }

  ristretto255FromHash(hash) {
    return this.withBuffers([hash], [32], (h, out) => {
      this.x.crypto_core_ristretto255_from_hash(out, h);
      return this.read(out, 32);
    });
  }

  ristretto255IsValidPoint(point) {
    if (point.length !== 32) return false;
    return this.withBuffers([point], [], (p) => this.x.crypto_core_ristretto255_is_valid_point(p) === 1);
  }

  ristretto255ScalarRandom() {
    return this.withBuffers([], [32], (out) => {
      this.x.crypto_core_ristretto255_scalar_random(out);
      return this.read(out, 32);
    });
  }

  /** scalar * point, or null when the point does not decode or the product is the identity. */
  ristretto255ScalarMult(scalar, point) {
    return this.withBuffers([scalar, point], [32], (n, p, out) =>
      this.x.crypto_scalarmult_ristretto255(out, n, p) === 0 ? this.read(out, 32) : null);
  }

  /** XChaCha20-Poly1305-IETF: ciphertext || 16-byte tag. */
  xchachaSeal(plaintext, ad, nonce, key) {
    const length = plaintext.length + 16;
    return this.withBuffers([plaintext, ad, nonce, key], [length, 8], (m, a, n, k, out, outLength) => {
      const rc = this.x.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, outLength, m, BigInt(plaintext.length), a, BigInt(ad.length), 0, n, k);
      if (rc !== 0) throw new Error("crypto_aead_xchacha20poly1305_ietf_encrypt failed");
      return this.read(out, length);
    });
  }

  /** The plaintext, or null when the message does not authenticate. */
  xchachaOpen(sealed, ad, nonce, key) {
    if (sealed.length < 16) return null;
    const length = sealed.length - 16;
    return this.withBuffers([sealed, ad, nonce, key], [length, 8], (c, a, n, k, out, outLength) => {
      const rc = this.x.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, outLength, 0, c, BigInt(sealed.length), a, BigInt(ad.length), n, k);
      return rc === 0 ? this.read(out, length) : null;
    });
  }
}
