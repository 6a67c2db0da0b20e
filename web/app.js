// The page: receive what `tern send` offers, with the code typed or taken
// from the link's fragment (#7-bluebird-caravan, never sent to a server).
// Pairing (rendezvous.js), the browser's RTCPeerConnection for ICE, DTLS and
// SCTP, and the transfer protocol (transfer.js).

import { loadSodium } from "./sodium.js";
import { Rendezvous, SessionError, parseCode } from "./rendezvous.js";
import { receiveTransfer, DirectorySink, MemorySink } from "./transfer.js";
import { shown, humanBytes } from "./paths.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// The relay is the server that served this page, unless ?relay= names another.
const relayBase = params.get("relay") || location.origin;
// ?save=private keeps files in this browser's own storage (the origin
// private file system) instead of asking for a folder.
const savePrivately = params.get("save") === "private";
const canPickFolder = typeof window.showDirectoryPicker === "function";

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function state(name) {
  document.body.dataset.state = name;
}

function describe(entry) {
  const parts = [];
  if (entry.kind === "directory") {
    parts.push(`${entry.files} file${entry.files === 1 ? "" : "s"}`);
    if (entry.directories) parts.push(`${entry.directories} folder${entry.directories === 1 ? "" : "s"}`);
    if (entry.links) parts.push(`${entry.links} link${entry.links === 1 ? "" : "s"}`);
  }
  if (entry.size !== undefined && entry.size !== null) parts.push(humanBytes(entry.size));
  else if (entry.kind === "stream") parts.push("a stream of unknown length");
  return `${shown(entry.name)}${entry.kind === "directory" ? "/" : ""} (${parts.join(", ")})`;
}

function checkOffer(message) {
  const entries = message.offer?.entries;
  if (message.type !== "offer" || !Array.isArray(entries) || entries.length < 1 || entries.length > 1024) {
    throw new SessionError("protocol", "the sender's offer is malformed");
  }
  for (const entry of entries) {
    if (typeof entry?.name !== "string" || !["file", "directory", "stream", "text"].includes(entry.kind)) {
      throw new SessionError("protocol", "the sender's offer has a malformed entry");
    }
  }
  return message.offer;
}

/** Waits for the person to accept (with where to save) or decline. */
function askToAccept(offer) {
  return new Promise((resolve) => {
    $("offer-items").replaceChildren(...offer.entries.map((entry) => {
      const item = document.createElement("li");
      item.textContent = describe(entry);
      return item;
    }));
    const total = offer.entries.reduce((sum, e) => sum + (e.size ?? 0), 0);
    $("save-where").textContent = savePrivately ? "Files are kept in this browser's private storage."
      : canPickFolder ? `You choose a folder next; ${humanBytes(total)} will be written into it.`
        : "Files are kept in memory and offered as downloads when they are complete.";
    $("offer").hidden = false;
    state("offer");
    $("accept").focus();
    $("accept").onclick = async () => {
      $("accept").disabled = $("decline").disabled = true;
      try {
        // The folder picker needs the click itself: nothing is awaited before it.
        const directory = savePrivately ? await navigator.storage.getDirectory()
          : canPickFolder ? await window.showDirectoryPicker({ id: "tern", mode: "readwrite" }) : null;
        resolve({ accept: true, directory });
      } catch {
        $("accept").disabled = $("decline").disabled = false;
        status("No folder was chosen: choose one to accept, or decline.");
      }
    };
    $("decline").onclick = () => {
      $("accept").disabled = $("decline").disabled = true;
      resolve({ accept: false });
    };
  });
}

/** Runs ICE through the browser until both sides said `connected`; resolves with the data channel. */
async function connect(rendezvous) {
  const description = await rendezvous.next();
  if (description.type !== "description" || description.kind !== "offer" || typeof description.sdp !== "string") {
    throw new SessionError("protocol", "the sender did not send its session description");
  }
  const configuration = { iceServers: rendezvous.iceServers() };
  if (params.get("relayed") === "1") configuration.iceTransportPolicy = "relay";
  const pc = new RTCPeerConnection(configuration);
  const channel = new Promise((resolve) => {
    pc.ondatachannel = ({ channel }) => { if (channel.label === "tern-transfer") resolve(channel); };
  });
  let selfConnected = false;
  let peerConnected = false;
  let wake = null;
  const connected = new Promise((resolve, reject) => {
    pc.oniceconnectionstatechange = () => {
      if (!selfConnected && ["connected", "completed"].includes(pc.iceConnectionState)) {
        selfConnected = true;
        rendezvous.send({ type: "connected" });
        resolve();
      } else if (pc.iceConnectionState === "failed") {
        reject(new SessionError("noPath", "no network path to the sender was found"));
      }
      if (wake) wake();
    };
  });
  pc.onicecandidate = ({ candidate }) => {
    if (selfConnected && peerConnected) return;
    if (candidate && candidate.candidate) {
      rendezvous.send({ type: "candidate", candidate: candidate.candidate, mid: candidate.sdpMid ?? "0" });
    } else if (!candidate) {
      rendezvous.send({ type: "end-of-candidates" });
    }
  };
  await pc.setRemoteDescription({ type: "offer", sdp: description.sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  rendezvous.send({ type: "description", kind: "answer", sdp: pc.localDescription.sdp });

  // Candidates and the sender's `connected` until both sides have a pair (§7.1 step 4).
  while (!peerConnected) {
    const message = await rendezvous.next();
    if (message.type === "candidate" && typeof message.candidate === "string") {
      if (/\.local /.test(message.candidate)) continue;
      try {
        await pc.addIceCandidate({ candidate: message.candidate, sdpMid: message.mid ?? "0" });
      } catch { /* a candidate the browser refuses is skipped, as tern does */ }
    } else if (message.type === "end-of-candidates") {
      try { await pc.addIceCandidate(); } catch { /* optional */ }
    } else if (message.type === "connected") {
      peerConnected = true;
    }
  }
  await connected;
  return { pc, channel: await channel };
}

async function receive(code) {
  state("pairing");
  $("receive").disabled = true;
  $("offer").hidden = $("progress-section").hidden = $("result").hidden = true;
  let rendezvous = null;
  let sodium = null;
  try {
    const parsed = parseCode(code);
    status("Connecting to the relay…");
    sodium = await loadSodium();
    rendezvous = new Rendezvous(sodium, relayBase, "receiver");
    await rendezvous.connect();
    status("Waiting for the sender…");
    await rendezvous.pair(parsed.code);
    status("Paired. Reading the offer…");
    const offer = checkOffer(await rendezvous.next());
    if (offer.entries[0].kind === "text") {
      rendezvous.send({ type: "answer", accept: true });
      $("result-text").textContent = shown(offer.text ?? "", 32768);
      $("result").hidden = false;
      status("Received a text.");
      state("done");
      rendezvous.close("happy");
      return;
    }
    status("The sender is waiting for your answer.");
    const choice = await askToAccept(offer);
    $("offer").hidden = true;
    if (!choice.accept) {
      rendezvous.send({ type: "answer", accept: false, reason: "declined by the receiver" });
      rendezvous.close("happy");
      status("Declined: nothing was received.");
      state("declined");
      return;
    }
    rendezvous.send({ type: "answer", accept: true });
    status("Connecting to the sender…");
    state("connecting");
    const { pc, channel } = await connect(rendezvous);
    status("Connected.");
    state("receiving");
    const downloads = [];
    const sink = choice.directory ? new DirectorySink(choice.directory)
      : new MemorySink((path, blob) => downloads.push({ path, blob }));
    const total = offer.entries.reduce((sum, e) => sum + (e.size ?? 0), 0);
    let received = 0;
    const started = performance.now();
    $("progress-section").hidden = false;
    $("progress").max = Math.max(total, 1);
    const result = await receiveTransfer(channel, offer, sink, ({ bytes, file }) => {
      received += bytes;
      const seconds = (performance.now() - started) / 1000;
      const rate = received / Math.max(seconds, 0.001);
      const eta = total > received && rate > 0 ? Math.ceil((total - received) / rate) : 0;
      $("progress").value = received;
      $("progress-text").textContent = `${humanBytes(received)} of ${humanBytes(total)} · ${humanBytes(rate)}/s` +
        (eta ? ` · about ${eta} s left` : "") + ` · ${shown(file, 80)}`;
    }, sodium);
    const seconds = (performance.now() - started) / 1000;
    rendezvous.close("happy");
    setTimeout(() => pc.close(), 2000);
    $("progress").value = $("progress").max;
    $("result-text").textContent = `Received and verified ${result.files} file${result.files === 1 ? "" : "s"}, ` +
      `${humanBytes(result.bytes)} in ${seconds.toFixed(1)} s (transfer hash ${result.hash.slice(0, 16)}…)` +
      (result.links ? `; ${result.links} link${result.links === 1 ? "" : "s"} not made (a browser cannot make links)` : "") + ".";
    $("downloads").replaceChildren(...downloads.map(({ path, blob }) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = path.split("/").pop();
      link.textContent = `Save ${shown(path)}`;
      item.append(link);
      return item;
    }));
    $("result").hidden = false;
    document.body.dataset.hash = result.hash;
    status("Done.");
    state("done");
  } catch (error) {
    const known = error instanceof SessionError || error.name === "TransferError";
    status(known ? error.message : `Something went wrong: ${error.message}`, true);
    document.body.dataset.failure = error.kind ?? error.code ?? "other";
    if (rendezvous) rendezvous.close(error.kind === "wrongCode" ? "scary" : error.kind === "noPath" ? "lonely" : "errory");
    state("failed");
  } finally {
    $("receive").disabled = false;
  }
}

$("insecure").hidden = isSecureContext;
$("receive-form").addEventListener("submit", (event) => {
  event.preventDefault();
  receive($("code").value);
});
if (location.hash.length > 1) {
  $("code").value = decodeURIComponent(location.hash.slice(1));
  // The code in the link came from the sender: start at once.
  receive($("code").value);
} else {
  $("code").focus();
}
