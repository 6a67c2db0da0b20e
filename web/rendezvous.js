// The rendezvous (docs/protocol.md §4-§6) from the page: JSON frames over a
// WebSocket to the relay, the mailbox messages of the pairing (PAKE, confirm,
// sealed), and the sealed peer messages (§7) after pairing.

import { CPace, SessionKeys, SealingChannel, PairingError, utf8, concat } from "./cpace.js";

/** A failure with the CLI's meaning: `kind` is wrongCode, noPath, peerLeft, relay, protocol or unreachable. */
export class SessionError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "SessionError";
    this.kind = kind;
  }
}

const codePattern = /^([1-9][0-9]{0,5})-([a-z]{4,11})-([a-z]{4,11})$/;

/** `{nameplate, password}` for a typed code (§3: trimmed, lowercased), or throws. */
export function parseCode(text) {
  const code = String(text).trim().toLowerCase();
  const match = codePattern.exec(code);
  if (!match || utf8(code).length > 64) {
    throw new SessionError("wrongCode", "a code looks like 7-bluebird-caravan: a number and two words");
  }
  return { code, nameplate: match[1], password: utf8(`${match[2]}-${match[3]}`) };
}

/** The relay's WebSocket URL for a base like ws://host:4747 or the page's own origin. */
export function relayURL(base) {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  url.pathname = "/v1";
  url.search = "";
  url.hash = "";
  return url.toString();
}

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const bytesOfHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
const base64 = (bytes) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
const unbase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** JSON with sorted keys and no white space, as tern writes it. */
export function sortedJSON(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJSON).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).filter((k) => value[k] !== undefined).sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJSON(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const roles = {
  sender: { role: "initiator", ad: utf8("tern sender"), peerAD: utf8("tern receiver") },
  receiver: { role: "responder", ad: utf8("tern receiver"), peerAD: utf8("tern sender") },
};

/**
 * One side of a pairing through the relay. `side` is "sender" or "receiver".
 * Call `pair()`; then `send(object)` and `next()` exchange sealed peer
 * messages; `close(mood)` leaves the mailbox.
 */
export class Rendezvous {
  constructor(sodium, relay, side) {
    this.sodium = sodium;
    this.relay = relay;
    this.side = side;
    this.sideID = hexOf(crypto.getRandomValues(new Uint8Array(16)));
    this.frames = [];
    this.waiters = [];
    this.failure = null;
    this.addSeq = 0;
    this.received = 0;
    this.welcome = null;
  }

  /** Opens the WebSocket and reads `welcome` (§6.2 step 1). */
  async connect() {
    const socket = new WebSocket(relayURL(this.relay));
    this.socket = socket;
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return this.fail(new SessionError("relay", "the relay sent a binary frame"));
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return this.fail(new SessionError("relay", "the relay sent a frame that is not JSON"));
      }
      if (!frame || typeof frame !== "object" || typeof frame.type !== "string") {
        return this.fail(new SessionError("relay", "the relay sent a frame without a type"));
      }
      this.frames.push(frame);
      this.wake();
    };
    socket.onclose = () => this.fail(new SessionError("unreachable", "the connection to the relay closed"));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new SessionError("unreachable", `cannot reach the relay at ${relayURL(this.relay)}`));
    });
    socket.onerror = () => this.fail(new SessionError("unreachable", "the connection to the relay failed"));
    const welcome = await this.frame();
    if (welcome.type !== "welcome") throw new SessionError("relay", `the relay began with ${welcome.type}, not welcome`);
    if (welcome.version !== 1) throw new SessionError("relay", `the relay speaks version ${welcome.version}, this page 1`);
    this.welcome = welcome;
    return welcome;
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((wake) => wake());
  }

  fail(error) {
    if (!this.failure) this.failure = error;
    this.wake();
  }

  /** The next frame from the relay; relay errors become SessionErrors. */
  async frame() {
    for (;;) {
      if (this.frames.length > 0) {
        const frame = this.frames.shift();
        if (frame.type === "error") {
          const unusable = ["crowded", "expired", "unknown-nameplate"].includes(frame.code);
          throw new SessionError(unusable ? "wrongCode" : "relay",
            unusable ? `this code cannot be used: ${frame.message}` : `the relay refused: ${frame.message}`);
        }
        return frame;
      }
      if (this.failure) throw this.failure;
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }

  sendFrame(frame) {
    this.socket.send(sortedJSON(frame));
  }

  add(body) {
    this.sendFrame({ type: "add", seq: this.addSeq++, body: base64(body) });
  }

  /** The peer's next mailbox message body, in order, duplicates dropped. */
  async mailboxMessage() {
    for (;;) {
      const frame = await this.frame();
      if (frame.type === "message") {
        if (!Number.isInteger(frame.seq) || typeof frame.body !== "string") {
          throw new SessionError("relay", "the relay sent a malformed message frame");
        }
        if (frame.seq < this.received) continue;
        if (frame.seq !== this.received) throw new SessionError("relay", "the relay skipped a mailbox message");
        this.received++;
        return unbase64(frame.body);
      }
      if (frame.type === "peer-closed") {
        if (frame.mood === "scary") throw new SessionError("wrongCode", "the other side closed: wrong code, or someone else tried it");
        if (frame.mood === "lonely") throw new SessionError("noPath", "the other side found no network path to this one");
        throw new SessionError("peerLeft", "the other side left");
      }
      if (frame.type === "turn" && frame.turn && typeof frame.turn === "object") {
        // TURN credentials, sent once both sides are in the mailbox (§4.2).
        this.turn = frame.turn;
        continue;
      }
      // Anything else at this point (a second claimed, attached…) is ignored.
    }
  }

  /** Claims (receiver) or allocates (sender) and runs CPace and key confirmation (§6.2 steps 2-5). */
  async pair(code) {
    const { role, ad, peerAD } = roles[this.side];
    let nameplate;
    let password;
    if (this.side === "receiver") {
      ({ nameplate, password } = parseCode(code));
      this.sendFrame({ type: "claim", nameplate, side: this.sideID });
      const claimed = await this.frame();
      if (claimed.type !== "claimed" || claimed.nameplate !== nameplate) {
        throw new SessionError("relay", `the relay answered the claim with ${claimed.type}`);
      }
      this.mailbox = claimed.mailbox;
    } else {
      this.sendFrame({ type: "allocate", side: this.sideID });
      const allocated = await this.frame();
      if (allocated.type !== "allocated") throw new SessionError("relay", `the relay answered allocate with ${allocated.type}`);
      nameplate = allocated.nameplate;
      this.mailbox = allocated.mailbox;
      this.code = `${nameplate}-${code}`;
      password = utf8(code);
    }
    if (!/^[0-9a-f]{32}$/.test(this.mailbox ?? "")) throw new SessionError("relay", "the relay sent a malformed mailbox id");
    this.nameplate = nameplate;
    const cpace = new CPace(this.sodium, {
      password, channelIdentifier: utf8(`tern v1 nameplate ${nameplate}`), sessionID: bytesOfHex(this.mailbox),
      role, associatedData: ad,
    });
    this.add(concat(Uint8Array.of(0x01, 0x01), cpace.share));
    if (this.onWaiting) this.onWaiting(this.code);

    const pake = await this.mailboxMessage();
    if (pake[0] !== 0x01 || pake.length !== 34 || pake[1] !== 0x01) {
      throw new SessionError("protocol", "the other side's first message is not a PAKE message of version 1");
    }
    const peerShare = pake.subarray(2);
    const transcript = cpace.transcript(peerShare, peerAD);
    let keys;
    try {
      keys = new SessionKeys(this.sodium, cpace.finish(peerShare, peerAD));
    } catch (error) {
      throw new SessionError("protocol", error instanceof PairingError ? `pairing failed: ${error.message}` : String(error));
    }
    this.add(concat(Uint8Array.of(0x02), keys.confirmationTag(role, transcript)));
    const confirm = await this.mailboxMessage();
    if (confirm[0] !== 0x02) throw new SessionError("protocol", "the other side did not confirm the key");
    if (confirm.length !== 33 || !keys.verifyConfirmation(confirm.subarray(1), role === "initiator" ? "responder" : "initiator", transcript)) {
      this.close("scary");
      throw new SessionError("wrongCode", "the code is wrong (or someone else tried it first)");
    }
    this.channel = new SealingChannel(this.sodium, keys, role);
  }

  /** Seals and adds one peer message (§7). */
  send(object) {
    this.add(concat(Uint8Array.of(0x03), this.channel.seal(utf8(sortedJSON(object)))));
  }

  /** The next peer message, opened and parsed. */
  async next() {
    const body = await this.mailboxMessage();
    if (body[0] !== 0x03) throw new SessionError("protocol", "the other side sent an unsealed message after pairing");
    let plaintext;
    try {
      plaintext = this.channel.open(body.subarray(1));
    } catch (error) {
      throw new SessionError("protocol", `a sealed message did not open: ${error.message}`);
    }
    let message;
    try {
      message = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plaintext));
    } catch {
      throw new SessionError("protocol", "the other side sent a message that is not JSON");
    }
    if (!message || typeof message !== "object" || typeof message.type !== "string") {
      throw new SessionError("protocol", "the other side sent a message without a type");
    }
    return message;
  }

  /** Leaves the mailbox with `mood` (§6.2 step 8); does not wait long for `closed`. */
  close(mood) {
    if (this.closed || !this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.closed = true;
    this.sendFrame({ type: "close", mood });
    setTimeout(() => this.socket.close(1000), 1000);
  }

  /** The RTCPeerConnection configuration from the relay's STUN and TURN (§8). */
  iceServers() {
    const servers = [];
    const stun = Array.isArray(this.welcome?.stun) ? this.welcome.stun.slice(0, 16) : [];
    if (stun.length > 0) servers.push({ urls: stun });
    const turn = this.turn ?? this.welcome?.turn;
    if (turn && Array.isArray(turn.uris) && turn.uris.length > 0) {
      servers.push({ urls: turn.uris.slice(0, 16), username: turn.username, credential: turn.credential });
    }
    return servers;
  }
}
