// The receiving side of the transfer protocol (docs/protocol.md §11.2-§11.6)
// over an RTCDataChannel: the manifest checked against the sealed offer, every
// chunk checked against its SHA-256 before it is written, every file against
// its root before it is complete, the transfer hash in `finished`.

import { checkedPath, shown } from "./paths.js";

// Types 2 and 3 are retired (docs/protocol.md §10); 12 and 13 (hashes,
// need) follow only an ask that asked something.
export const type = { manifest: 1, chunk: 4, end: 5, verified: 6, done: 7, finished: 8, error: 9, files: 10, ask: 11, hashes: 12, need: 13 };
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
 *
 * A file is written to `.NAME.tern-partial` beside where it goes, with
 * `.NAME.tern-state` (docs/protocol.md §11.5) saved at each checkpoint, so
 * that a later transfer of the same file resumes it, as the CLI's does. A
 * browser's writable stream writes into a copy that it puts in place only
 * when the stream is closed (a reloaded tab loses what was not closed), so a
 * checkpoint closes the stream, saves the state and opens it again on the
 * kept data.
 */
export class DirectorySink {
  constructor(directory) {
    this.root = directory;
    this.resumable = true;
  }

  async directory(components, create) {
    let handle = this.root;
    for (const name of components) handle = await handle.getDirectoryHandle(name, { create });
    return handle;
  }

  /** The parent's handle and the last name, or null when the parent is not there. */
  async place(components) {
    try {
      return { parent: await this.directory(components.slice(0, -1), false), name: components[components.length - 1] };
    } catch {
      return null;
    }
  }

  async exists(components) {
    const place = await this.place(components);
    if (!place) return false;
    for await (const key of place.parent.keys()) if (key === place.name) return true;
    return false;
  }

  /** The File at `components` (a file, not a folder), or null. */
  async existingFile(components, name = null) {
    const place = await this.place(components);
    if (!place) return null;
    try {
      return await (await place.parent.getFileHandle(name ?? place.name)).getFile();
    } catch {
      return null;
    }
  }

  /** The partial's File and its state's File, each null when it is not there. */
  async resumeFiles(components) {
    const name = components[components.length - 1];
    return {
      partial: await this.existingFile(components, `.${name}.tern-partial`),
      state: await this.existingFile(components, `.${name}.tern-state`),
    };
  }

  async removeResumeFiles(components) {
    const place = await this.place(components);
    if (!place) return;
    for (const name of [`.${place.name}.tern-partial`, `.${place.name}.tern-state`]) {
      try { await place.parent.removeEntry(name); } catch { /* not there */ }
    }
  }

  async makeDirectory(components) {
    await this.directory(components, true);
  }

  /**
   * A writer for a file, from byte `from` of its partial (0: a new one):
   * write(bytes), checkpoint(state) (the data so far kept and `state`
   * saved), finish() (moved into place, the state removed), keep(state) (on
   * a failure: kept for a later resume) or abandon() (both removed).
   */
  async open(components, from = 0) {
    const parent = await this.directory(components.slice(0, -1), true);
    const name = components[components.length - 1];
    const partialName = `.${name}.tern-partial`;
    const stateName = `.${name}.tern-state`;
    const handle = await parent.getFileHandle(partialName, { create: true });
    let offset = from;
    const reopen = async () => {
      const stream = await handle.createWritable({ keepExistingData: offset > 0 });
      if (offset > 0) {
        await stream.truncate(offset);
        await stream.seek(offset);
      }
      return stream;
    };
    let writable = await reopen();
    const saveState = async (state) => {
      const out = await (await parent.getFileHandle(stateName, { create: true })).createWritable();
      await out.write(JSON.stringify(state));
      await out.close();
    };
    const removeState = async () => {
      try { await parent.removeEntry(stateName); } catch { /* not there */ }
    };
    return {
      write: async (bytes) => {
        await writable.write(bytes);
        offset += bytes.length;
      },
      checkpoint: async (state) => {
        await writable.close();
        await saveState(state);
        writable = await reopen();
      },
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
        await removeState();
      },
      keep: async (state) => {
        await writable.close();
        await saveState(state);
      },
      abandon: async () => {
        try { await writable.abort(); } catch { /* already closed */ }
        try { await parent.removeEntry(partialName); } catch { /* not there */ }
        await removeState();
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
 * `progress({bytes, file})` is called as data arrives, `resumed(bytes)` once
 * the sender agreed on what this side already holds (a sink that resumes),
 * `kept(bytes)` at each checkpoint with the verified bytes a later attempt
 * would resume from; `sodium` hashes where WebCrypto is missing (not a
 * secure context). Resolves with `{files, bytes, resumed, hash, links}`;
 * rejects with a TransferError (its `kept`: the verified bytes left for a
 * resume) after sending the peer an `error` message.
 */
export function receiveTransfer(channel, offer, sink, progress = () => {}, sodium = null, { resumed = () => {}, kept = () => {} } = {}) {
  if (sodium) fallbackSHA256 = (data) => sodium.sha256(data);
  channel.binaryType = "arraybuffer";
  const receiver = new Receiver(channel, offer, sink, progress);
  receiver.onResumed = resumed;
  receiver.onKept = kept;
  return receiver.run();
}

/**
 * Verified bytes are kept each second or each 8 MiB, whichever comes first
 * (as the CLI saves its state), but at least four times as long apart as
 * keeping them took: a checkpoint reopens the file's writable stream on the
 * data kept so far, which the browser copies, so its cost grows with the file.
 */
const checkpointInterval = 1000;
const checkpointBytes = 8 << 20;

class Receiver {
  constructor(channel, offer, sink, progress) {
    this.channel = channel;
    this.offer = offer;
    this.sink = sink;
    this.progress = progress;
    this.resumedBytes = 0;
    this.keptBytes = 0; // verified bytes in partials (and files in place) of this attempt
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
      if (!failure.fromPeer) this.send(type.error, { code: failure.code, message: failure.message.slice(0, 1000) });
      // Whatever stopped us, what is verified stays resumable (§11.5), but
      // not a file that failed its root, a stream, or a partial with no chunk.
      const current = this.current;
      if (current?.writer) {
        try {
          if (failure.code !== "integrity" && current.entry.kind === "file" && current.chunks > 0 && this.sink.resumable) {
            await current.writer.keep(this.stateOf(current));
            this.keptBytes += current.received;
          } else {
            await current.writer.abandon();
          }
        } catch { /* the folder went away: nothing more to keep */ }
      }
      failure.kept = this.keptBytes;
      throw failure;
    }
  }

  /** The resume state of the file being written (§11.5). */
  stateOf(current) {
    const state = { chain: hex(current.chain), chunk_size: this.chunkSize, chunks: current.chunks, size: current.entry.size, version: 1 };
    if (current.entry.mtime !== null) state.mtime = current.entry.mtime;
    return state;
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
    const claims = [];
    for (const entry of this.entries) {
      if (entry.kind === "file" || entry.kind === "stream") {
        const claim = await this.claim(entry);
        if (claim) claims.push(claim);
      }
    }
    for (const entry of this.entries) if (entry.kind === "directory") await this.sink.makeDirectory(entry.components);

    // 2-3. What is held here (ask), the sender's chains for it (hashes), where each is needed from (need).
    const asks = claims.map((claim) => ({ chunks: claim.chunks, index: claim.entry.index }));
    for (let start = 0; start === 0 || start < asks.length; start += 4096) {
      const part = asks.slice(start, start + 4096);
      this.send(type.ask, start + 4096 < asks.length ? { asks: part, more: true } : { asks: part });
    }
    if (claims.length > 0) await this.answerChains(claims);
    this.onResumed?.(this.resumedBytes);

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
    return { files: this.files, bytes: this.bytes, resumed: this.resumedBytes, hash, links };
  }

  /**
   * What this side holds of a file (§11.3 step 2): a file already in place
   * of the same size (all its chunks), or a partial whose state matches the
   * entry and whose first chunks still hash to the state's chain; anything
   * else at the path is a conflict, and a state that does not match is
   * removed with its partial.
   */
  async claim(entry) {
    if (!this.sink.resumable) {
      if (await this.sink.exists(entry.components)) throw this.existsError(entry);
      return null;
    }
    const inPlace = await this.sink.existingFile(entry.components);
    if (inPlace || await this.sink.exists(entry.components)) {
      if (!inPlace || entry.kind !== "file" || inPlace.size !== entry.size) throw this.existsError(entry);
      const chunks = Math.ceil(entry.size / this.chunkSize);
      return { entry, complete: true, chunks, chain: await this.chainOf(inPlace, chunks) };
    }
    if (entry.kind !== "file") return null;
    const held = await this.sink.resumeFiles(entry.components);
    if (!held.partial || !held.state || held.state.size > 4096) {
      // A partial with no state (or a state with no partial) cannot resume.
      if (held.partial || held.state) await this.sink.removeResumeFiles(entry.components);
      return null;
    }
    let state = null;
    try { state = JSON.parse(await held.state.text()); } catch { /* not ours */ }
    const chunks = state?.chunks;
    const matches = state && state.version === 1 && state.size === entry.size && state.chunk_size === this.chunkSize &&
      (state.mtime ?? null) === entry.mtime && Number.isSafeInteger(chunks) && chunks > 0 &&
      chunks <= Math.ceil(entry.size / this.chunkSize) && held.partial.size >= Math.min(entry.size, chunks * this.chunkSize) &&
      typeof state.chain === "string";
    // The state is checked against the partial's bytes again (it may promise more than the disk kept).
    const chain = matches ? await this.chainOf(held.partial, chunks) : null;
    if (!chain || hex(chain) !== state.chain) {
      await this.sink.removeResumeFiles(entry.components);
      return null;
    }
    return { entry, complete: false, chunks, chain };
  }

  existsError(entry) {
    return new TransferError("exists", `${shown(entry.path)} is already in the chosen folder and differs; nothing was overwritten`);
  }

  /** The chain over the first `chunks` chunks of `file` (§11.4). */
  async chainOf(file, chunks) {
    let chain = zeros32;
    for (let number = 0; number < chunks; number++) {
      const data = new Uint8Array(await file.slice(number * this.chunkSize, (number + 1) * this.chunkSize).arrayBuffer());
      chain = await sha256(chain, await sha256(data));
    }
    return chain;
  }

  /** The sender's chains for our asks, each compared with ours; `need` says where each file is needed from. */
  async answerChains(claims) {
    const byIndex = new Map(claims.map((claim) => [claim.entry.index, claim]));
    const answered = new Set();
    for (let more = true; more;) {
      const body = await this.expectJSON(type.hashes, "hashes");
      if (!Array.isArray(body.chains)) throw new TransferError("protocol", "a malformed hashes message");
      for (const item of body.chains) {
        const claim = byIndex.get(item?.index);
        if (!claim) throw new TransferError("protocol", `the hashes answer entry ${item?.index}, which this side did not ask about`);
        if (answered.has(item.index)) throw new TransferError("protocol", `the hashes answer ${shown(claim.entry.path)} twice`);
        if (item.chunks !== claim.chunks) throw new TransferError("protocol", `the hashes give another chunk count for ${shown(claim.entry.path)}`);
        answered.add(item.index);
        claim.from = item.chain === hex(claim.chain) ? claim.chunks : 0;
      }
      more = body.more === true;
    }
    if (answered.size !== claims.length) throw new TransferError("protocol", "the hashes leave an ask unanswered");
    const starts = claims.map((claim) => ({ from: claim.from, index: claim.entry.index }));
    for (let start = 0; start < starts.length; start += 4096) {
      const part = starts.slice(start, start + 4096);
      this.send(type.need, start + 4096 < starts.length ? { more: true, starts: part } : { starts: part });
    }
    for (const claim of claims) {
      if (claim.from === 0) {
        // A file in place that differs is a conflict; a partial that differs starts over.
        if (claim.complete && claim.chunks > 0) throw this.existsError(claim.entry);
        if (!claim.complete) await this.sink.removeResumeFiles(claim.entry.components);
        continue;
      }
      claim.entry.resume = claim;
      const bytes = Math.min(claim.entry.size, claim.from * this.chunkSize);
      this.resumedBytes += bytes;
      this.keptBytes += claim.complete ? bytes : 0;
    }
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
    const mtime = entry.kind === "file" && Number.isSafeInteger(entry.mtime) ? entry.mtime : null;
    const record = { path, components, kind: entry.kind, size, mtime, index: this.entries.length };
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
    const resume = entry.resume;
    if (resume) {
      // Resumed (§11.3 step 4): the chunks from `from` on; a file complete in place gets only its end.
      const received = Math.min(entry.size, resume.from * this.chunkSize);
      const writer = resume.complete ? null : await this.sink.open(entry.components, received, entry.size);
      this.current = { entry, writer, chunks: resume.from, received, chain: resume.chain, resumedAt: received };
    } else {
      this.current = { entry, writer: await this.sink.open(entry.components, 0, entry.size), chunks: 0, received: 0, chain: zeros32, resumedAt: 0 };
    }
    this.current.savedAt = performance.now();
    this.current.savedBytes = this.current.received;
    this.current.saveCost = 0;
  }

  /** Keeps the verified data of the file being written, each second at most (§11.5). */
  async maybeCheckpoint() {
    const current = this.current;
    if (!current.writer?.checkpoint || !this.sink.resumable || current.entry.kind !== "file") return;
    const now = performance.now();
    const due = now - current.savedAt >= checkpointInterval || current.received - current.savedBytes >= checkpointBytes;
    if (!due || now - current.savedAt < 4 * current.saveCost) return;
    await current.writer.checkpoint(this.stateOf(current));
    current.savedAt = performance.now();
    current.savedBytes = current.received;
    current.saveCost = current.savedAt - now;
    this.onKept?.(this.keptBytes + current.received);
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
    if (!current.writer) throw new TransferError("protocol", `a chunk of ${shown(entry.path)}, which this side holds whole`);
    await current.writer.write(data);
    current.chain = await sha256(current.chain, actual);
    current.chunks++;
    current.received += data.length;
    this.progress({ file: entry.path, bytes: data.length });
    await this.maybeCheckpoint();
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
    if (current.writer) await current.writer.finish();
    if (!entry.resume?.complete) this.keptBytes += current.received;
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
      const writer = await this.sink.open(entry.components, 0, entry.size);
      this.current = { entry, writer };
      if (length > 0) await writer.write(data);
      await writer.finish();
      this.current = null;
      this.roots.push(actual);
      this.files++;
      this.bytes += length;
      this.keptBytes += length;
      this.progress({ file: entry.path, bytes: length });
      next++;
    }
    return next;
  }
}
