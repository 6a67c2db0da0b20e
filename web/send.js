// The sending side of the page: what the person chose (files and folders,
// with their relative paths), the sealed offer and the manifest made from it,
// and the sender's half of the transfer protocol (docs/protocol.md §11.2-§11.4)
// over an RTCDataChannel, as Sources/TernTransfer/TransferSender.swift does it:
// manifest, the receiver's `ask` (answered with `hashes`, then its `need`, so
// that a receiver holding a partial resumes it), chunks with their SHA-256 read
// from the File with Blob.slice one at a time behind the channel's
// back-pressure, whole small files in `files` messages, `end` with each root,
// `done`, and the receiver's `finished` checked against our own transfer hash.

import { checkedPath, shown } from "./paths.js";
import { sortedJSON } from "./rendezvous.js";
import { Inbox, TransferError, type as receiveTypes, sha256, hex, u64be, jsonBody, useSodiumSHA256 } from "./transfer.js";
import { even, odd } from "./words.js";

const type = { ...receiveTypes, hashes: 12, need: 13 };
const encoder = new TextEncoder();
const zeros32 = new Uint8Array(32);
export const chunkHeaderSize = 45;
export const maxChunkSize = 262099;
/** An offer holds at most this many items, and its sealed body at most 65536 bytes (§7). */
export const maxOfferEntries = 1024;
const maxOfferPlaintext = 65536 - 25;
/** A list carries at most this many items per message (§11.2). */
const maxListItems = 65536;
// The channel's queue: sending waits above `highWater` until the browser has
// passed it down to `lowWater` (RTCDataChannel bufferedAmountLowThreshold).
const highWater = 8 * 1024 * 1024;
const lowWater = 2 * 1024 * 1024;
/** Sending gives up when the channel's queue has not moved for this long (ms). */
const stallLimit = 10000;
/** A `files` batch waits at most this long after its first record (§11.2). */
const batchDelay = 50;

/** The two words of a new code (§3): two random bytes, even word first. */
export function newWords() {
  const bytes = crypto.getRandomValues(new Uint8Array(2));
  return `${even[bytes[0]]}-${odd[bytes[1]]}`;
}

/**
 * What the person chose to send: files under their relative paths
 * (`photos/2024/a.jpg`) and directories (empty ones too). A path the
 * receiver would refuse (docs/protocol.md §11.6) is left out and listed in
 * `refused`, as `tern send` refuses an unsendable name before pairing.
 */
export class Selection {
  constructor() {
    this.clear();
  }

  clear() {
    this.files = new Map(); // path -> File
    this.directories = new Set();
    this.refused = [];
  }

  get isEmpty() {
    return this.files.size === 0 && this.directories.size === 0;
  }

  /** Adds `file` under `path`; a later file with the same path replaces the earlier one. */
  addFile(path, file) {
    const components = this.checked(path);
    if (!components) return;
    const joined = components.join("/");
    if (this.directories.has(joined)) return this.refuse(path, "a folder of that name was chosen too");
    for (let depth = 1; depth < components.length; depth++) {
      const parent = components.slice(0, depth).join("/");
      if (this.files.has(parent)) return this.refuse(path, "a file of its folder's name was chosen too");
    }
    for (let depth = 1; depth < components.length; depth++) this.directories.add(components.slice(0, depth).join("/"));
    this.files.set(joined, file);
  }

  addDirectory(path) {
    const components = this.checked(path);
    if (!components) return;
    for (let depth = 1; depth <= components.length; depth++) {
      const prefix = components.slice(0, depth).join("/");
      if (this.files.has(prefix)) return this.refuse(path, "a file of that name was chosen too");
    }
    for (let depth = 1; depth <= components.length; depth++) this.directories.add(components.slice(0, depth).join("/"));
  }

  checked(path) {
    try {
      return checkedPath(path);
    } catch (error) {
      this.refuse(path, error.message);
      return null;
    }
  }

  refuse(path, why) {
    this.refused.push({ path, why });
  }

  /** The top-level items as the offer lists them (§7): `{name, kind, size, files, directories}`. */
  items() {
    const tops = new Map();
    const top = (path) => path.split("/")[0];
    for (const path of this.directories) {
      const name = top(path);
      const item = tops.get(name) ?? { name, kind: "directory", size: 0, files: 0, directories: 0 };
      if (path !== name) item.directories++;
      tops.set(name, item);
    }
    for (const [path, file] of this.files) {
      const name = top(path);
      if (path === name) {
        tops.set(name, { name, kind: "file", size: file.size, files: 1 });
      } else {
        const item = tops.get(name);
        item.size += file.size;
        item.files++;
      }
    }
    return [...tops.values()].sort((a, b) => compare(a.name, b.name));
  }

  /** Removes a top-level item and everything below it. */
  remove(name) {
    const inside = (path) => path === name || path.startsWith(`${name}/`);
    for (const path of [...this.files.keys()]) if (inside(path)) this.files.delete(path);
    for (const path of [...this.directories]) if (inside(path)) this.directories.delete(path);
  }

  /** The sealed offer's message, or throws a TransferError (`unsendable`) naming why it cannot be sent. */
  offerMessage() {
    const entries = this.items().map((item) => (item.kind === "file"
      ? { files: 1, kind: "file", name: item.name, size: item.size }
      : { directories: item.directories, files: item.files, kind: "directory", name: item.name, size: item.size }));
    if (entries.length === 0) throw new TransferError("unsendable", "nothing was chosen");
    if (entries.length > maxOfferEntries) {
      throw new TransferError("unsendable", `${entries.length} items are more than one offer holds (${maxOfferEntries}): put them in a folder and send the folder`);
    }
    const message = { offer: { entries }, type: "offer" };
    if (encoder.encode(sortedJSON(message)).length > maxOfferPlaintext) {
      throw new TransferError("unsendable", "the names of these items are too long for one offer: put them in a folder and send the folder");
    }
    return message;
  }

  /**
   * The manifest's entries in pre-order (each directory before what it
   * holds), each file with its `File`: `{path, kind, size, mtime, file}`.
   */
  manifest() {
    const entries = [];
    for (const path of this.directories) entries.push({ path, kind: "directory" });
    for (const [path, file] of this.files) {
      entries.push({ path, kind: "file", size: file.size, mtime: Math.floor(file.lastModified / 1000), file });
    }
    const parts = new Map(entries.map((e) => [e, e.path.split("/")]));
    return entries.sort((a, b) => {
      const x = parts.get(a);
      const y = parts.get(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const order = compare(x[i], y[i]);
        if (order !== 0) return order;
      }
      return x.length - y.length;
    });
  }
}

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** Reads a dropped folder or file (a FileSystemEntry from webkitGetAsEntry) into `selection`. */
export async function addEntry(selection, entry, path = entry.name) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    selection.addFile(path, file);
  } else if (entry.isDirectory) {
    selection.addDirectory(path);
    const reader = entry.createReader();
    for (;;) {
      // readEntries hands out a batch at a time (100 in Chromium) until an empty one.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) await addEntry(selection, child, `${path}/${child.name}`);
    }
  }
}

/**
 * Sends `entries` (Selection.manifest()) over `channel`, the open
 * `tern-transfer` data channel. `maxMessageSize` is the peer's
 * (RTCSctpTransport.maxMessageSize). `progress({bytes, total, file, resumed})`
 * is called as data leaves, `verified(count)` as the receiver confirms files.
 * Resolves with `{files, bytes, sentBytes, resumed, hash}`; rejects with a
 * TransferError, after telling the receiver why when the failure is ours.
 */
export function sendTransfer(channel, entries, { maxMessageSize = 262144, progress = () => {}, verified = () => {}, sodium = null } = {}) {
  if (sodium) useSodiumSHA256(sodium);
  channel.binaryType = "arraybuffer";
  return new Sender(channel, entries, maxMessageSize, progress, verified).run();
}

class Sender {
  constructor(channel, entries, maxMessageSize, progress, verified) {
    this.channel = channel;
    this.entries = entries;
    // A peer that states no limit (0) gets what tern uses.
    this.maxMessageSize = maxMessageSize > 0 ? Math.min(maxMessageSize, 262144) : 262144;
    this.chunkSize = Math.min(maxChunkSize, this.maxMessageSize - chunkHeaderSize);
    this.progress = progress;
    this.verified = verified;
    this.failure = null; // a failure the reply reader met while data was being sent
    this.ends = new Map(); // index -> root, for files whose end left
  }

  /** Whether the channel closed (nothing more comes from the receiver). */
  get closed() {
    return this.inbox.closed;
  }

  wake() {
    this.inbox.wake();
  }

  sleep() {
    return this.inbox.sleep();
  }

  async run() {
    this.inbox = new Inbox(this.channel);
    this.channel.bufferedAmountLowThreshold = lowWater;
    this.channel.onbufferedamountlow = () => this.wake();
    try {
      return await this.protocol();
    } catch (error) {
      const failure = error instanceof TransferError ? error : new TransferError("io", `${error.name}: ${error.message}`);
      if (!failure.fromPeer && !failure.lost) {
        // Told, then the receiver given up to 5 s to read up to it and close (§11.2).
        this.sendJSON(type.error, { code: failure.code, message: failure.message.slice(0, 1000) });
        const deadline = performance.now() + 5000;
        while (!this.closed && performance.now() < deadline) {
          await Promise.race([this.sleep(), new Promise((resolve) => setTimeout(resolve, 100))]);
        }
      }
      throw failure;
    }
  }

  sendJSON(kind, body) {
    if (this.channel.readyState !== "open") return;
    const json = encoder.encode(sortedJSON(body));
    const message = new Uint8Array(1 + json.length);
    message[0] = kind;
    message.set(json, 1);
    this.channel.send(message);
  }

  /**
   * Queues `message` on the channel once its queue is below the high-water
   * mark. A queue that does not move for `stallLimit` means the receiver is
   * gone (a killed process answers nothing; the browser's own verdict on the
   * path takes 30 s).
   */
  async push(message) {
    let least = this.channel.bufferedAmount;
    let moved = performance.now();
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.closed || this.channel.readyState !== "open") throw this.lostError();
      const amount = this.channel.bufferedAmount;
      if (amount <= highWater) break;
      if (amount < least) {
        least = amount;
        moved = performance.now();
      } else if (performance.now() - moved > stallLimit) {
        throw this.lostError(` (nothing left this page for ${stallLimit / 1000} s)`);
      }
      await Promise.race([this.sleep(), new Promise((resolve) => setTimeout(resolve, 500))]);
    }
    this.channel.send(message);
  }

  lostError(why = "") {
    const error = new TransferError("protocol", `the connection to the receiver was lost before the transfer was finished${why}`);
    error.lost = true;
    return error;
  }

  message() {
    return this.inbox.next(() => this.lostError());
  }

  async expectJSON(kind, what) {
    const message = await this.message();
    if (message[0] !== kind) throw new TransferError("protocol", `expected ${what}, got message type ${message[0]}`);
    return jsonBody(message.subarray(1));
  }

  /** Messages of `kind` carrying `items` split so that each fits the peer's maximum message size. */
  async sendList(kind, items, body) {
    let start = 0;
    do {
      let count = Math.min(items.length - start, maxListItems);
      let json = sortedJSON(body(items.slice(start, start + count), start + count < items.length));
      while (encoder.encode(json).length + 1 > this.maxMessageSize && count > 1) {
        count = Math.ceil(count / 2);
        json = sortedJSON(body(items.slice(start, start + count), start + count < items.length));
      }
      await this.push(concat([Uint8Array.of(kind), encoder.encode(json)]));
      start += count;
    } while (start < items.length);
  }

  chunkCount(size) {
    return Math.ceil(size / this.chunkSize);
  }

  async protocol() {
    const chunkSize = this.chunkSize;
    const wire = this.entries.map((e) => (e.kind === "file"
      ? { kind: "file", mtime: e.mtime, path: e.path, size: e.size }
      : { kind: "directory", path: e.path }));
    await this.sendList(type.manifest, wire, (entries, more) => ({ chunk_size: chunkSize, entries, more: more || undefined }));

    // What the receiver holds (ask), our chains for it, where it needs each file from.
    const asks = [];
    const skipped = new Set();
    for (let more = true; more;) {
      const ask = await this.expectJSON(type.ask, "what the receiver holds (ask)");
      if (!Array.isArray(ask.asks ?? []) || !Array.isArray(ask.skip ?? [])) throw new TransferError("protocol", "a malformed ask");
      asks.push(...(ask.asks ?? []));
      if (asks.length > this.entries.length) throw new TransferError("protocol", "more asks than entries");
      for (const index of ask.skip ?? []) {
        if (!Number.isInteger(index) || this.entries[index]?.kind !== "file") {
          throw new TransferError("protocol", `the receiver asked to skip entry ${index}, which is not a file of the manifest`);
        }
        if (skipped.has(index)) throw new TransferError("protocol", `the receiver asked to skip ${shown(this.entries[index].path)} twice`);
        skipped.add(index);
      }
      more = ask.more === true;
    }
    const chains = new Map();
    for (const ask of asks) {
      const entry = this.entries[ask?.index];
      if (!Number.isInteger(ask?.index) || !entry) throw new TransferError("protocol", `an ask for entry ${ask?.index}, outside the manifest`);
      if (entry.kind !== "file") throw new TransferError("protocol", `an ask for ${shown(entry.path)}, which is a directory, not a file`);
      if (chains.has(ask.index) || skipped.has(ask.index)) throw new TransferError("protocol", `two asks, or an ask and a skip, for ${shown(entry.path)}`);
      if (!Number.isSafeInteger(ask.chunks) || ask.chunks < 0 || ask.chunks > this.chunkCount(entry.size)) {
        throw new TransferError("protocol", `an ask for ${ask.chunks} chunks of ${shown(entry.path)}, which has ${this.chunkCount(entry.size)}`);
      }
      chains.set(ask.index, { asked: ask.chunks, chain: await this.prefixChain(entry, ask.chunks) });
    }
    const starts = await this.agreeStarts(chains);

    const files = this.entries.map((e, index) => index).filter((i) => this.entries[i].kind === "file" && !skipped.has(i));
    const total = files.reduce((sum, i) => sum + this.entries[i].size, 0);
    let held = 0;
    for (const [index, start] of starts) held += Math.min(start.from * chunkSize, this.entries[index].size);
    const resumed = held;
    this.progress({ bytes: held, total, resumed, file: "" });

    // Replies (`verified`, `finished`, an `error`) are read alongside the data.
    const replies = this.readReplies(files);
    replies.catch((error) => {
      this.failure ??= error;
      this.wake();
    });
    const roots = [];
    let sentBytes = 0;
    this.batch = null;
    for (const index of files) {
      const entry = this.entries[index];
      const start = starts.get(index) ?? { from: 0, chain: zeros32 };
      let root;
      if (start.from === 0 && entry.size <= chunkSize) {
        root = await this.sendWhole(entry, index);
        sentBytes += entry.size;
        held += entry.size;
        this.progress({ bytes: held, total, file: entry.path });
      } else {
        await this.flush();
        root = await this.sendFile(entry, index, start, (bytes) => {
          sentBytes += bytes;
          held += bytes;
          this.progress({ bytes: held, total, file: entry.path });
        });
      }
      roots.push(root);
    }
    await this.flush();
    await this.push(concat([Uint8Array.of(type.done), encoder.encode(sortedJSON({ bytes: held, files: roots.length }))]));
    const finished = await replies;
    if (finished.files !== roots.length) {
      throw new TransferError("protocol", `the receiver's finished counts ${finished.files} files, but ${roots.length} were sent`);
    }
    if (finished.bytes !== held) throw new TransferError("protocol", `the receiver's finished counts ${finished.bytes} bytes, but it holds ${held}`);
    const hash = hex(await sha256(...(roots.length ? roots : [new Uint8Array()])));
    if (finished.hash !== hash) throw new TransferError("integrity", "the receiver's hash over all files does not match ours");
    return { files: roots.length, bytes: held, sentBytes, resumed, hash };
  }

  /** Our chains for the asks (`hashes`), then the receiver's `need`: one start per ask, 0 or the asked count (§11.3). */
  async agreeStarts(chains) {
    const starts = new Map();
    if (chains.size === 0) return starts;
    const items = [...chains.keys()].sort((a, b) => a - b)
      .map((index) => ({ chain: hex(chains.get(index).chain), chunks: chains.get(index).asked, index }));
    await this.sendList(type.hashes, items, (part, more) => ({ chains: part, more: more || undefined }));
    for (let more = true; more;) {
      const need = await this.expectJSON(type.need, "where the receiver needs the asked files from (need)");
      if (!Array.isArray(need.starts)) throw new TransferError("protocol", "a malformed need");
      for (const start of need.starts) {
        const asked = chains.get(start?.index);
        if (!asked) throw new TransferError("protocol", `the receiver needs entry ${start?.index} from a chunk, but did not ask about it`);
        const path = shown(this.entries[start.index].path);
        if (starts.has(start.index)) throw new TransferError("protocol", `the receiver answered the chain of ${path} twice`);
        if (start.from !== 0 && start.from !== asked.asked) {
          throw new TransferError("protocol", `the receiver needs ${path} from chunk ${start.from}, but asked about ${asked.asked}`);
        }
        starts.set(start.index, start.from === 0 ? { from: 0, chain: zeros32 } : { from: start.from, chain: asked.chain });
      }
      more = need.more === true;
    }
    for (const index of chains.keys()) {
      if (!starts.has(index)) throw new TransferError("protocol", `the receiver did not say where it needs ${shown(this.entries[index].path)} from`);
    }
    return starts;
  }

  /** Bytes `from`..`to` of a chosen file; a file changed or gone since it was chosen is an `io` failure. */
  async read(entry, from, to) {
    let data;
    try {
      data = new Uint8Array(await entry.file.slice(from, to).arrayBuffer());
    } catch (error) {
      throw new TransferError("io", `${shown(entry.path)} cannot be read any more (changed or moved after it was chosen: choose it again): ${error.message}`);
    }
    if (data.length !== to - from) throw new TransferError("io", `${shown(entry.path)} shrank while it was being sent`);
    return data;
  }

  /** The chain over the first `chunks` chunks of a file (§11.4). */
  async prefixChain(entry, chunks) {
    let chain = zeros32;
    for (let number = 0; number < chunks; number++) {
      const from = number * this.chunkSize;
      chain = await sha256(chain, await sha256(await this.read(entry, from, Math.min(from + this.chunkSize, entry.size))));
    }
    return chain;
  }

  /** A file of more than one chunk, or resumed: its chunks from `start.from`, then its `end`. */
  async sendFile(entry, index, start, sent) {
    const chunkSize = this.chunkSize;
    const count = this.chunkCount(entry.size);
    let chain = start.chain;
    const readChunk = (number) => this.read(entry, number * chunkSize, Math.min((number + 1) * chunkSize, entry.size));
    // One chunk read ahead while the one before is hashed and queued.
    let next = start.from < count ? readChunk(start.from) : null;
    for (let number = start.from; number < count; number++) {
      const data = await next;
      next = number + 1 < count ? readChunk(number + 1) : null;
      next?.catch(() => {}); // seen when awaited
      const hash = await sha256(data);
      const message = new Uint8Array(chunkHeaderSize + data.length);
      const view = new DataView(message.buffer);
      message[0] = type.chunk;
      view.setUint32(1, index);
      view.setBigUint64(5, BigInt(number));
      message.set(hash, 13);
      message.set(data, chunkHeaderSize);
      await this.push(message);
      chain = await sha256(chain, hash);
      sent(data.length);
    }
    const root = await sha256(chain, u64be(entry.size));
    this.ends.set(index, root);
    await this.push(concat([Uint8Array.of(type.end), encoder.encode(sortedJSON({ hash: hex(root), index, size: entry.size }))]));
    return root;
  }

  /** A file of at most one chunk sent from its start: a record of a `files` message (§11.2). */
  async sendWhole(entry, index) {
    const data = await this.read(entry, 0, entry.size);
    const chain = data.length === 0 ? zeros32 : await sha256(zeros32, await sha256(data));
    const root = await sha256(chain, u64be(data.length));
    const record = new Uint8Array(40 + data.length);
    const view = new DataView(record.buffer);
    view.setUint32(0, index);
    view.setUint32(4, data.length);
    record.set(root, 8);
    record.set(data, 40);
    if (this.batch && this.batch.bytes + record.length > this.maxMessageSize) await this.flush();
    this.batch ??= { parts: [Uint8Array.of(type.files)], bytes: 1, started: performance.now() };
    this.batch.parts.push(record);
    this.batch.bytes += record.length;
    this.ends.set(index, root);
    if (performance.now() - this.batch.started >= batchDelay) await this.flush();
    return root;
  }

  async flush() {
    if (!this.batch) return;
    const message = concat(this.batch.parts);
    this.batch = null;
    await this.push(message);
  }

  /** `verified` up to `finished`: each covers every file up to the one it names (§11.3 step 5). */
  async readReplies(files) {
    let reported = 0;
    for (;;) {
      const message = await this.message();
      if (message[0] === type.verified) {
        const { index } = jsonBody(message.subarray(1));
        if (!(reported < files.length && files[reported] <= index)) {
          throw new TransferError("protocol", `a verified message for entry ${index}, which is not a file still to verify`);
        }
        while (reported < files.length && files[reported] <= index) {
          if (!this.ends.has(files[reported])) throw new TransferError("protocol", "a verified message for a file not yet sent");
          reported++;
        }
        if (files[reported - 1] !== index) throw new TransferError("protocol", `a verified message for entry ${index}, which is not a file`);
        this.verified(reported);
      } else if (message[0] === type.finished) {
        const body = jsonBody(message.subarray(1));
        return { files: body.files, bytes: body.bytes, hash: body.hash };
      } else {
        throw new TransferError("protocol", `unexpected message type ${message[0]} from the receiver`);
      }
    }
  }
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
