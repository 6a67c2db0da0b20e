// The receiving side of the transfer protocol (docs/protocol.md §11.2-§11.6)
// over an RTCDataChannel: the manifest checked against the sealed offer, every
// chunk checked against its SHA-256 before it is written, every file against
// its root before it is complete, the transfer hash in `finished`.

import { checkedPath, shown } from "./paths.js";

// Types 2 and 3 are retired (docs/protocol.md §10); 12 and 13 (hashes,
// need) follow only an ask that asked something, which this page never does.
export const type = { manifest: 1, chunk: 4, end: 5, verified: 6, done: 7, finished: 8, error: 9, files: 10, ask: 11 };
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const zeros32 = new Uint8Array(32);
export const maxEntries = 1000000;

export class TransferError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "TransferError";
    this.code = code; // integrity, exists, unsafe-path, protocol, io, no-space, cancelled
  }
}

// WebCrypto's SHA-256 where the page is a secure context; libsodium's
// (set by receiveTransfer) where the browser withholds crypto.subtle.
let fallbackSHA256 = null;

/** Hashes with libsodium's SHA-256 where WebCrypto is missing (the sending side's hook). */
export function useSodiumSHA256(sodium) {
  fallbackSHA256 = (data) => sodium.sha256(data);
}

export async function sha256(...parts) {
  let data = parts[0];
  if (parts.length > 1) {
    data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      data.set(part, offset);
      offset += part.length;
    }
  }
  if (!globalThis.crypto?.subtle) {
    if (!fallbackSHA256) throw new TransferError("io", "this page has no SHA-256 here");
    return fallbackSHA256(data);
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
export function u64be(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

export function jsonBody(bytes) {
  let value;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new TransferError("protocol", "a message body is not JSON");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new TransferError("protocol", "a message body is not a JSON object");
  return value;
}

const isCount = (n) => Number.isSafeInteger(n) && n >= 0;

/**
 * Where received files go. `directory` is a FileSystemDirectoryHandle (a
 * folder the person picked, or the origin's private file system); without
 * one, files are kept in memory and offered as downloads.
 */
export class DirectorySink {
  constructor(directory) {
    this.root = directory;
  }

  async directory(components, create) {
    let handle = this.root;
    for (const name of components) handle = await handle.getDirectoryHandle(name, { create });
    return handle;
  }

  async exists(components) {
    try {
      const parent = await this.directory(components.slice(0, -1), false);
      const name = components[components.length - 1];
      for await (const key of parent.keys()) if (key === name) return true;
      return false;
    } catch {
      return false;
    }
  }

  async makeDirectory(components) {
    await this.directory(components, true);
  }

  /** A writer for a file: write(bytes), then finish() (moves it into place) or abandon(). */
  async open(components) {
    const parent = await this.directory(components.slice(0, -1), true);
    const name = components[components.length - 1];
    const partialName = `.${name}.tern-partial`;
    const handle = await parent.getFileHandle(partialName, { create: true });
    const writable = await handle.createWritable({ keepExistingData: false });
    return {
      write: (bytes) => writable.write(bytes),
      finish: async () => {
        await writable.close();
        if (typeof handle.move === "function") {
          await handle.move(parent, name);
        } else {
          // No move(): copy into place (older browsers).
          const target = await parent.getFileHandle(name, { create: true });
          const out = await target.createWritable();
          await out.write(await handle.getFile());
          await out.close();
          await parent.removeEntry(partialName);
        }
      },
      abandon: async () => {
        try { await writable.abort(); } catch { /* already closed */ }
        try { await parent.removeEntry(partialName); } catch { /* not there */ }
      },
    };
  }
}

/** Files held in memory and handed to `onFile(path, blob)`: only for small transfers. */
export class MemorySink {
  constructor(onFile, limit = 256 * 1000 * 1000) {
    this.onFile = onFile;
    this.limit = limit;
    this.held = 0;
  }

  async exists() { return false; }
  async makeDirectory() {}

  async open(components) {
    const parts = [];
    return {
      write: async (bytes) => {
        this.held += bytes.length;
        if (this.held > this.limit) throw new TransferError("no-space", "this browser keeps downloads in memory and the transfer is too large for it: choose a folder to save into");
        parts.push(bytes.slice());
      },
      finish: async () => this.onFile(components.join("/"), new Blob(parts)),
      abandon: async () => { parts.length = 0; },
    };
  }
}

/**
 * The peer's binary messages on a data channel, in order, for the sending
 * and the receiving side alike: `next(lost)` waits for the next one, turns
 * the peer's `error` message into a TransferError, and throws `lost()` once
 * the channel closed with nothing left. `sleep()` waits for the next
 * message, the close or a `wake()` (the sender wakes it on buffered-amount-low).
 */
export class Inbox {
  constructor(channel) {
    this.queue = [];
    this.wakers = [];
    this.closed = false;
    channel.onmessage = (event) => {
      if (typeof event.data === "string") return; // string messages are ignored (§11.1)
      this.queue.push(new Uint8Array(event.data));
      this.wake();
    };
    channel.onclose = () => {
      this.closed = true;
      this.wake();
    };
  }

  wake() {
    const wakers = this.wakers;
    this.wakers = [];
    wakers.forEach((wake) => wake());
  }

  sleep() {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  async next(lost) {
    for (;;) {
      if (this.queue.length > 0) {
        const message = this.queue.shift();
        if (message.length === 0) throw new TransferError("protocol", "an empty message");
        if (message[0] === type.error) {
          const body = jsonBody(message.subarray(1));
          const failure = new TransferError(typeof body.code === "string" ? body.code : "protocol",
            `the other side stopped: ${shown(body.message ?? "", 1024)}`);
          failure.fromPeer = true;
          throw failure;
        }
        return message;
      }
      if (this.closed) throw lost();
      await this.sleep();
    }
  }
}

/**
 * Receives one transfer on `channel` (the sender's `tern-transfer` channel)
 * into `sink`, holding the manifest to `offer` (the sealed offer's entries).
 * `progress({bytes, file})` is called as data arrives; `sodium` hashes where
 * WebCrypto is missing (not a secure context). Resolves with
 * `{files, bytes, hash, links}`; rejects with a TransferError after sending
 * the peer an `error` message.
 */
export function receiveTransfer(channel, offer, sink, progress = () => {}, sodium = null) {
  if (sodium) fallbackSHA256 = (data) => sodium.sha256(data);
  channel.binaryType = "arraybuffer";
  const receiver = new Receiver(channel, offer, sink, progress);
  return receiver.run();
}

class Receiver {
  constructor(channel, offer, sink, progress) {
    this.channel = channel;
    this.offer = offer;
    this.sink = sink;
    this.progress = progress;
    this.entries = [];
    this.roots = [];
    this.bytes = 0;
    this.files = 0;
    this.lastVerifiedSent = -1;
    this.lastVerifiedAt = 0;
  }

  async run() {
    this.inbox = new Inbox(this.channel);
    try {
      return await this.protocol();
    } catch (error) {
      const failure = error instanceof TransferError ? error : new TransferError("io", `${error.name}: ${error.message}`);
      if (this.current) await this.current.writer.abandon();
      if (!failure.fromPeer) this.send(type.error, { code: failure.code, message: failure.message.slice(0, 1000) });
      throw failure;
    }
  }

  send(kind, body) {
    if (this.channel.readyState !== "open") return;
    const json = encoder.encode(JSON.stringify(Object.fromEntries(Object.entries(body).sort(([a], [b]) => (a < b ? -1 : 1)))));
    const message = new Uint8Array(1 + json.length);
    message[0] = kind;
    message.set(json, 1);
    this.channel.send(message);
  }

  message() {
    return this.inbox.next(() => new TransferError("protocol", "the other side closed the channel before the transfer was finished"));
  }

  async expectJSON(kind, name) {
    const message = await this.message();
    if (message[0] !== kind) throw new TransferError("protocol", `expected a ${name} message, got type ${message[0]}`);
    return jsonBody(message.subarray(1));
  }

  async protocol() {
    // 1. The manifest, possibly in several messages.
    let chunkSize = null;
    for (;;) {
      const manifest = await this.expectJSON(type.manifest, "manifest");
      if (!Number.isInteger(manifest.chunk_size) || manifest.chunk_size < 1024 || manifest.chunk_size > 262099) {
        throw new TransferError("protocol", "the manifest's chunk size is out of range");
      }
      if (chunkSize !== null && manifest.chunk_size !== chunkSize) throw new TransferError("protocol", "the chunk size changed");
      chunkSize = manifest.chunk_size;
      if (!Array.isArray(manifest.entries)) throw new TransferError("protocol", "the manifest has no entries list");
      for (const entry of manifest.entries) this.addEntry(entry);
      if (manifest.more !== true) break;
    }
    this.chunkSize = chunkSize;
    this.checkAgainstOffer();
    for (const entry of this.entries) {
      if (entry.kind === "file" || entry.kind === "stream") {
        if (await this.sink.exists(entry.components)) {
          throw new TransferError("exists", `${shown(entry.path)} is already in the chosen folder; nothing was overwritten`);
        }
      }
    }
    for (const entry of this.entries) if (entry.kind === "directory") await this.sink.makeDirectory(entry.components);

    // 2-3. Nothing held here: an empty ask, so the data follows at once.
    this.send(type.ask, { asks: [] });

    // 4-5. Data, file by file in manifest order.
    const pending = this.entries.filter((e) => e.kind === "file" || e.kind === "stream");
    let next = 0;
    for (;;) {
      const message = await this.message();
      const kind = message[0];
      if (kind === type.done) {
        const done = jsonBody(message.subarray(1));
        if (next !== pending.length) throw new TransferError("protocol", "done came before every file");
        if (done.files !== this.files || done.bytes !== this.bytes) {
          throw new TransferError("protocol", "done's counts differ from what arrived");
        }
        break;
      }
      if (kind === type.chunk) {
        next = await this.chunk(message, pending, next);
      } else if (kind === type.end) {
        next = await this.end(jsonBody(message.subarray(1)), pending, next);
      } else if (kind === type.files) {
        next = await this.records(message, pending, next);
      } else {
        throw new TransferError("protocol", `unexpected message type ${kind} during the data`);
      }
      if (next > 0) this.maybeVerified(pending[next - 1].index, false);
    }
    if (pending.length > 0) this.maybeVerified(pending[pending.length - 1].index, true);
    const hash = hex(await sha256(...(this.roots.length ? this.roots : [new Uint8Array()])));
    this.send(type.finished, { bytes: this.bytes, files: this.files, hash });
    const links = this.entries.filter((e) => e.kind === "symlink").length;
    return { files: this.files, bytes: this.bytes, hash, links };
  }

  maybeVerified(index, force) {
    if (index < 0 || index <= this.lastVerifiedSent) return;
    const now = performance.now();
    if (!force && now - this.lastVerifiedAt < 100) return;
    this.send(type.verified, { index });
    this.lastVerifiedSent = index;
    this.lastVerifiedAt = now;
  }

  addEntry(entry) {
    if (this.entries.length >= maxEntries) throw new TransferError("protocol", `the manifest has more than ${maxEntries} entries`);
    if (!entry || typeof entry !== "object") throw new TransferError("protocol", "a manifest entry is not an object");
    let components;
    try {
      components = checkedPath(entry.path);
    } catch (error) {
      throw new TransferError("unsafe-path", error.message);
    }
    if (!["file", "directory", "symlink", "stream"].includes(entry.kind)) {
      throw new TransferError("protocol", `${shown(entry.path)} has an unknown kind`);
    }
    const path = components.join("/");
    this.paths ??= new Map();
    if (this.paths.has(path)) throw new TransferError("protocol", `${shown(path)} appears twice in the manifest`);
    if (components.length > 1) {
      const parent = this.paths.get(components.slice(0, -1).join("/"));
      if (!parent || parent.kind !== "directory") {
        throw new TransferError("protocol", `${shown(path)} is not inside a directory listed before it`);
      }
    }
    let size = null;
    if (entry.kind === "file") {
      if (!isCount(entry.size)) throw new TransferError("protocol", `${shown(path)} has no usable size`);
      size = entry.size;
    }
    if (entry.kind === "symlink") {
      if (typeof entry.target !== "string" || entry.target.length === 0) {
        throw new TransferError("protocol", `the link ${shown(path)} has no target`);
      }
      this.checkLinkTarget(components, entry.target);
    }
    const record = { path, components, kind: entry.kind, size, index: this.entries.length };
    this.paths.set(path, record);
    this.entries.push(record);
  }

  // §11.6: `..` components first, no more than the link's depth, then names only.
  checkLinkTarget(components, target) {
    const refuse = (why) => { throw new TransferError("unsafe-path", `the link ${shown(components.join("/"))} points ${why}`); };
    if (encoder.encode(target).length > 4096) refuse("too far (a target over 4096 bytes)");
    if (target.startsWith("/")) refuse("to an absolute path");
    if (/[\\\u0000-\u001f\u007f-\u009f]/.test(target)) refuse("through a backslash or a control character");
    let climbing = true;
    let up = 0;
    for (const part of target.split("/")) {
      if (part === "..") {
        if (!climbing) refuse("back up after a name");
        up++;
      } else if (part !== "." && part !== "") {
        climbing = false;
      }
    }
    if (up > components.length - 1) refuse("outside the received folder");
  }

  checkAgainstOffer() {
    const offered = new Map((this.offer.entries ?? []).map((e) => [e.name, e]));
    const totals = new Map();
    for (const entry of this.entries) {
      const top = entry.components[0];
      const item = offered.get(top);
      if (!item) throw new TransferError("protocol", `${shown(top)} was not in the offer`);
      if (entry.components.length === 1 && entry.kind !== (item.kind === "directory" ? "directory" : item.kind)) {
        throw new TransferError("protocol", `${shown(top)} is not the ${item.kind} that was offered`);
      }
      const sum = totals.get(top) ?? { files: 0, directories: 0, links: 0, size: 0 };
      if (entry.kind === "file" || entry.kind === "stream") sum.files++;
      if (entry.kind === "directory" && entry.components.length > 1) sum.directories++;
      if (entry.kind === "symlink") sum.links++;
      if (entry.size !== null) sum.size += entry.size;
      totals.set(top, sum);
    }
    for (const [name, sum] of totals) {
      const item = offered.get(name);
      const over = (field, limit) => { throw new TransferError("protocol", `${shown(name)} holds more ${field} than were offered`); };
      if (sum.files > (item.files ?? 0)) over("files");
      if (sum.directories > (item.directories ?? 0)) over("directories");
      if (sum.links > (item.links ?? 0)) over("links");
      if (item.size !== undefined && item.size !== null && sum.size > item.size) over("bytes");
      if (!Number.isSafeInteger(sum.size)) throw new TransferError("protocol", "the sizes add up to more than this page can count");
    }
  }

  async begin(entry) {
    this.current = { entry, writer: await this.sink.open(entry.components), chunks: 0, received: 0, chain: zeros32 };
  }

  async chunk(message, pending, next) {
    if (message.length < 1 + 4 + 8 + 32 + 1) throw new TransferError("protocol", "a chunk message is too short");
    const view = new DataView(message.buffer, message.byteOffset, message.length);
    const index = view.getUint32(1);
    const number = view.getBigUint64(5);
    const hash = message.subarray(13, 45);
    const data = message.subarray(45);
    const entry = pending[next];
    if (!entry || entry.index !== index) throw new TransferError("protocol", "a chunk for a file that is not next");
    if (!this.current || this.current.entry !== entry) await this.begin(entry);
    const current = this.current;
    if (number !== BigInt(current.chunks)) throw new TransferError("protocol", "a chunk out of order");
    if (data.length > this.chunkSize) throw new TransferError("protocol", "a chunk larger than the chunk size");
    if (entry.kind === "file") {
      const remaining = entry.size - current.received;
      if (data.length > remaining || (data.length < this.chunkSize && data.length !== remaining)) {
        throw new TransferError("protocol", `a chunk of ${shown(entry.path)} has a length the manifest does not allow`);
      }
    }
    const actual = await sha256(data);
    if (!equalBytes(actual, hash)) throw new TransferError("integrity", `a chunk of ${shown(entry.path)} does not match its hash`);
    await current.writer.write(data);
    current.chain = await sha256(current.chain, actual);
    current.chunks++;
    current.received += data.length;
    this.progress({ file: entry.path, bytes: data.length });
    return next;
  }

  async end(body, pending, next) {
    const entry = pending[next];
    if (!entry || body.index !== entry.index) throw new TransferError("protocol", "an end for a file that is not next");
    if (!this.current || this.current.entry !== entry) await this.begin(entry); // an empty file
    const current = this.current;
    if (!isCount(body.size) || body.size !== current.received || (entry.kind === "file" && body.size !== entry.size)) {
      throw new TransferError("protocol", `${shown(entry.path)} ended at a size the data does not have`);
    }
    const root = await sha256(current.chain, u64be(body.size));
    if (hex(root) !== body.hash) throw new TransferError("integrity", `${shown(entry.path)} does not match its root hash`);
    await current.writer.finish();
    this.current = null;
    this.roots.push(root);
    this.files++;
    this.bytes += body.size;
    return next + 1;
  }

  async records(message, pending, next) {
    const view = new DataView(message.buffer, message.byteOffset, message.length);
    let offset = 1;
    if (message.length === 1) throw new TransferError("protocol", "a files message with no record");
    while (offset < message.length) {
      if (message.length - offset < 40) throw new TransferError("protocol", "a files record is cut short");
      const index = view.getUint32(offset);
      const length = view.getUint32(offset + 4);
      const root = message.subarray(offset + 8, offset + 40);
      offset += 40;
      if (length > message.length - offset) throw new TransferError("protocol", "a files record is cut short");
      const data = message.subarray(offset, offset + length);
      offset += length;
      const entry = pending[next];
      if (!entry || entry.index !== index || entry.kind !== "file" || this.current) {
        throw new TransferError("protocol", "a files record for a file that is not next");
      }
      if (length !== entry.size || length > this.chunkSize) throw new TransferError("protocol", "a files record of the wrong length");
      const chain = length === 0 ? zeros32 : await sha256(zeros32, await sha256(data));
      const actual = await sha256(chain, u64be(length));
      if (!equalBytes(actual, root)) throw new TransferError("integrity", `${shown(entry.path)} does not match its root hash`);
      const writer = await this.sink.open(entry.components);
      this.current = { entry, writer };
      if (length > 0) await writer.write(data);
      await writer.finish();
      this.current = null;
      this.roots.push(actual);
      this.files++;
      this.bytes += length;
      this.progress({ file: entry.path, bytes: length });
      next++;
    }
    return next;
  }
}
