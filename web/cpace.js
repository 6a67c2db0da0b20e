// The pairing cryptography of docs/pairing-crypto.md for the page: CPace
// (draft-irtf-cfrg-cpace-21, CPACE-RISTR255-SHA512, initiator-responder),
// tern's key schedule, key confirmation and sealed messages. The primitives
// come from libsodium (sodium.js); this file only arranges bytes, in the
// same order as Sources/TernPairing/Crypto.

const encoder = new TextEncoder();
export const utf8 = (text) => encoder.encode(text);

export class PairingError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "PairingError";
    this.kind = kind;
  }
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** prepend_len: unsigned LEB128 length, then the bytes (draft §6.3). */
export function prependLen(data) {
  const prefix = [];
  let remaining = data.length;
  do {
    const low = remaining & 0x7f;
    remaining = Math.floor(remaining / 128);
    prefix.push(remaining === 0 ? low : low | 0x80);
  } while (remaining !== 0);
  return concat(Uint8Array.from(prefix), data);
}

/** lv_cat(a0, a1, ...) = prepend_len(a0) || prepend_len(a1) || ... */
export const lvCat = (...fields) => concat(...fields.map(prependLen));

const domainSeparator = utf8("CPaceRistretto255");
const iskDomainSeparator = utf8("CPaceRistretto255_ISK");
const hashBlockBytes = 128;

/** generator_string(DSI, PRS, CI, sid, 128) (draft §8.1, Appendix A.2). */
export function generatorString(password, channelIdentifier, sessionID) {
  const used = 1 + prependLen(password).length + prependLen(domainSeparator).length;
  const zeroPadding = new Uint8Array(Math.max(0, hashBlockBytes - used));
  return lvCat(domainSeparator, password, zeroPadding, channelIdentifier, sessionID);
}

/** transcript_ir = lv_cat(Ya, ADa) || lv_cat(Yb, ADb) (draft §6.3). */
export const transcriptIR = (ya, adA, yb, adB) => concat(lvCat(ya, adA), lvCat(yb, adB));

/**
 * One CPace run. `role` is "initiator" or "responder"; `scalar` is for test
 * vectors only (a fresh random scalar otherwise). Finish at most once.
 */
export class CPace {
  constructor(sodium, { password, channelIdentifier, sessionID, role, associatedData, scalar }) {
    if (role !== "initiator" && role !== "responder") throw new PairingError("invalidParameter", `unknown role ${role}`);
    this.sodium = sodium;
    this.role = role;
    this.sessionID = sessionID;
    this.associatedData = associatedData;
    this.scalar = scalar ? Uint8Array.from(scalar) : sodium.ristretto255ScalarRandom();
    if (this.scalar.length !== 32) throw new PairingError("invalidParameter", `a CPace scalar is 32 bytes, not ${this.scalar.length}`);
    const text = generatorString(password, channelIdentifier, sessionID);
    const hash = sodium.sha512(text);
    const generator = sodium.ristretto255FromHash(hash);
    const share = sodium.ristretto255ScalarMult(this.scalar, generator);
    text.fill(0);
    hash.fill(0);
    generator.fill(0);
    if (!share) throw new PairingError("libsodiumFailure", "crypto_scalarmult_ristretto255 (own share)");
    this.share = share;
    this.finished = false;
  }

  transcript(peerShare, peerAssociatedData) {
    return this.role === "initiator"
      ? transcriptIR(this.share, this.associatedData, peerShare, peerAssociatedData)
      : transcriptIR(peerShare, peerAssociatedData, this.share, this.associatedData);
  }

  /** The 64-byte ISK, or a PairingError for a share that must abort the run (draft §7.2, §9). */
  finish(peerShare, peerAssociatedData) {
    if (this.finished) throw new PairingError("invalidParameter", "a CPace run is finished only once");
    this.finished = true;
    try {
      if (peerShare.length !== 32) throw new PairingError("invalidPeerShare", `expected 32 bytes, got ${peerShare.length}`);
      if (peerShare.every((byte) => byte === 0)) throw new PairingError("invalidPeerShare", "it is the identity element");
      if (!this.sodium.ristretto255IsValidPoint(peerShare)) {
        throw new PairingError("invalidPeerShare", "it is not a valid ristretto255 encoding");
      }
      const k = this.sodium.ristretto255ScalarMult(this.scalar, peerShare);
      if (!k) throw new PairingError("invalidPeerShare", "the shared point is the identity element");
      const input = concat(lvCat(iskDomainSeparator, this.sessionID, k), this.transcript(peerShare, peerAssociatedData));
      const isk = this.sodium.sha512(input);
      k.fill(0);
      input.fill(0);
      return isk;
    } finally {
      this.scalar.fill(0);
    }
  }
}

const labels = {
  confirmInitiator: "tern v1 confirm initiator",
  confirmResponder: "tern v1 confirm responder",
  sealInitiatorToResponder: "tern v1 seal initiator->responder",
  sealResponderToInitiator: "tern v1 seal responder->initiator",
  sessionSecret: "tern v1 session secret",
};

/** The five 32-byte keys: BLAKE2b(key = ISK, message = label, length 32) (section 4). */
export class SessionKeys {
  constructor(sodium, isk) {
    if (isk.length !== 64) throw new PairingError("invalidParameter", `the ISK is 64 bytes, not ${isk.length}`);
    this.sodium = sodium;
    for (const [name, label] of Object.entries(labels)) this[name] = sodium.blake2b(32, utf8(label), isk);
  }

  /** The tag `role` sends over transcript T (section 5). */
  confirmationTag(role, transcript) {
    const key = role === "initiator" ? this.confirmInitiator : this.confirmResponder;
    return this.sodium.blake2b(32, transcript, key);
  }

  /** Whether `tag` is the peer role's tag over T, compared in constant time. */
  verifyConfirmation(tag, fromRole, transcript) {
    return this.sodium.equal32(tag, this.confirmationTag(fromRole, transcript));
  }
}

const sealedPrefix = utf8("tern v1 sealed");
const maxSequence = (1n << 64n) - 1n;

function u64be(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}

/** Sealed mailbox messages (section 6): seq || XChaCha20-Poly1305(P) || tag, strictly in order. */
export class SealingChannel {
  constructor(sodium, keys, role, maxPlaintextSize = 64 * 1024) {
    this.sodium = sodium;
    this.maxPlaintextSize = maxPlaintextSize;
    const initiator = role === "initiator";
    this.sendKey = initiator ? keys.sealInitiatorToResponder : keys.sealResponderToInitiator;
    this.receiveKey = initiator ? keys.sealResponderToInitiator : keys.sealInitiatorToResponder;
    this.sendDirection = initiator ? 0x01 : 0x02;
    this.receiveDirection = initiator ? 0x02 : 0x01;
    this.nextSendSequence = 0n;
    this.nextReceiveSequence = 0n;
  }

  static nonce(direction, seq) {
    const nonce = new Uint8Array(24);
    nonce[0] = direction;
    nonce.set(u64be(seq), 16);
    return nonce;
  }

  static associatedData(direction, seq) {
    return concat(sealedPrefix, Uint8Array.of(direction), u64be(seq));
  }

  seal(plaintext) {
    if (plaintext.length > this.maxPlaintextSize) {
      throw new PairingError("messageTooLarge", `${plaintext.length} bytes is over the ${this.maxPlaintextSize}-byte limit`);
    }
    if (this.nextSendSequence >= maxSequence) throw new PairingError("sequenceExhausted", "no sequence numbers left");
    const seq = this.nextSendSequence;
    const sealed = this.sodium.xchachaSeal(
      plaintext, SealingChannel.associatedData(this.sendDirection, seq),
      SealingChannel.nonce(this.sendDirection, seq), this.sendKey);
    this.nextSendSequence = seq + 1n;
    return concat(u64be(seq), sealed);
  }

  open(message) {
    if (message.length < 24) throw new PairingError("badSeal", `${message.length} bytes is shorter than the 24-byte minimum`);
    if (message.length - 24 > this.maxPlaintextSize) {
      throw new PairingError("messageTooLarge", `${message.length - 24} bytes is over the ${this.maxPlaintextSize}-byte limit`);
    }
    if (this.nextReceiveSequence >= maxSequence) throw new PairingError("sequenceExhausted", "no sequence numbers left");
    const seq = new DataView(message.buffer, message.byteOffset, 8).getBigUint64(0);
    if (seq !== this.nextReceiveSequence) {
      throw new PairingError("replayedOrReordered", `expected message ${this.nextReceiveSequence}, got ${seq}`);
    }
    const plaintext = this.sodium.xchachaOpen(
      message.subarray(8), SealingChannel.associatedData(this.receiveDirection, seq),
      SealingChannel.nonce(this.receiveDirection, seq), this.receiveKey);
    if (!plaintext) throw new PairingError("badSeal", "the message does not authenticate");
    this.nextReceiveSequence = seq + 1n;
    return plaintext;
  }
}
