// The page: receive what `tern send` offers, with the code typed or taken
// from the link's fragment (#7-bluebird-caravan, never sent to a server); or
// send dropped or chosen files and folders to `tern receive CODE` (send.js).
// Pairing (rendezvous.js), the browser's RTCPeerConnection for ICE, DTLS and
// SCTP, and the transfer protocol (transfer.js, send.js).

import { loadSodium } from "./sodium.js";
import { Rendezvous, SessionError, parseCode } from "./rendezvous.js";
import { receiveTransfer, DirectorySink, MemorySink } from "./transfer.js";
import { shown, humanBytes } from "./paths.js";
import { Selection, addEntry, newWords, sendTransfer } from "./send.js";
import { loadResume, saveResume, forgetResume, resumes } from "./store.js";
import { downloadWorker, DownloadSink } from "./download.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// The relay is the server that served this page, unless ?relay= names another.
const relayBase = params.get("relay") || location.origin;
// ?save=private keeps files in this browser's own storage (the origin
// private file system) instead of asking for a folder.
const savePrivately = params.get("save") === "private";
const canPickFolder = typeof window.showDirectoryPicker === "function";
// Without a folder: a service worker streams each file to the browser's
// downloads (secure contexts only); without one either, memory.
const downloads = canPickFolder || savePrivately ? Promise.resolve(null) : downloadWorker();
const memoryLimit = 256 * 1000 * 1000;

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

/** Where an interrupted receive's verified data waits, as a person reads it. */
function heldIn(record) {
  return record.private ? "this browser's private storage" : `the folder \u201c${shown(record.folder, 80)}\u201d`;
}

function names(record) {
  const listed = record.names.slice(0, 3).map((name) => shown(name, 60)).join(", ");
  return record.names.length > 3 ? `${listed} and ${record.names.length - 3} more` : listed;
}

/** The note about an interrupted receive that the next offer of the same items resumes. */
async function showResumeNote() {
  const record = await loadResume();
  $("resume-note").hidden = !record;
  if (!record) return;
  $("resume-text").textContent = `A receive of ${names(record)} stopped with ${humanBytes(record.kept ?? 0)} of ` +
    `${humanBytes(record.total ?? 0)} verified in ${heldIn(record)}. When the sender sends the same again, ` +
    "enter the new code: it resumes where it stopped.";
}

/** Write access to a folder remembered from an earlier visit: asked again where the browser wants it (needs the click). */
async function mayWrite(directory) {
  if (typeof directory.queryPermission !== "function") return true;
  if (await directory.queryPermission({ mode: "readwrite" }) === "granted") return true;
  return await directory.requestPermission({ mode: "readwrite" }) === "granted";
}

/** Waits for the person to accept (with where to save) or decline. */
function askToAccept(offer, record, worker) {
  const resuming = resumes(record, offer);
  return new Promise((resolve) => {
    $("offer-items").replaceChildren(...offer.entries.map((entry) => {
      const item = document.createElement("li");
      item.textContent = describe(entry);
      return item;
    }));
    const total = offer.entries.reduce((sum, e) => sum + (e.size ?? 0), 0);
    $("save-where").textContent = resuming
      ? `Resumes into ${heldIn(record)}, where ${humanBytes(record.kept ?? 0)} of it ${record.kept === 1 ? "is" : "are"} already verified: ` +
        "only the rest is sent."
      : savePrivately ? "Files are kept in this browser's private storage."
        : canPickFolder ? `You choose a folder next; ${humanBytes(total)} will be written into it.`
          : worker ? "Each file goes to your browser's downloads as it arrives (the files of a folder each under their own name)."
            : total > memoryLimit
              ? `This browser can only keep received files in memory here, up to ${humanBytes(memoryLimit)}: ` +
                `${humanBytes(total)} is too much. Open this page over https or on localhost (or in a Chromium-based browser) to save it to disk.`
              : "Files are kept in memory and offered as downloads when they are complete.";
    $("accept").textContent = resuming ? "Accept and resume" : "Accept";
    $("accept-elsewhere").hidden = !resuming || savePrivately || !canPickFolder;
    $("offer").hidden = false;
    state(resuming ? "offer-resume" : "offer");
    $("accept").focus();
    const buttons = ["accept", "accept-elsewhere", "decline"];
    const enable = (on) => buttons.forEach((id) => { $(id).disabled = !on; });
    enable(true); // an earlier receive of this page left them disabled
    const accept = async (elsewhere) => {
      enable(false);
      try {
        // The folder picker (and the permission question) needs the click itself: nothing slow is awaited before it.
        if (resuming && !elsewhere) {
          const directory = record.private ? await navigator.storage.getDirectory() : record.directory;
          if (!await mayWrite(directory)) {
            enable(true);
            status(`Write access to ${heldIn(record)} was not given: allow it to resume, save elsewhere, or decline.`);
            return;
          }
          resolve({ accept: true, directory, resuming: true });
          return;
        }
        const directory = savePrivately ? await navigator.storage.getDirectory()
          : canPickFolder ? await window.showDirectoryPicker({ id: "tern", mode: "readwrite" }) : null;
        resolve({ accept: true, directory, worker: directory ? null : worker });
      } catch {
        enable(true);
        status("No folder was chosen: choose one to accept, or decline.");
      }
    };
    $("accept").onclick = () => accept(false);
    $("accept-elsewhere").onclick = () => accept(true);
    $("decline").onclick = () => {
      enable(false);
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
  const opened = await channel;
  // A sender that vanishes (killed, its network gone) sends nothing more:
  // the browser calls the path "disconnected" after about 5 s of no answer
  // (from which it may recover, on a loaded machine too) and the connection
  // "failed" some seconds later (11 s after a kill here). Then the receive
  // ends as lost and keeps what is verified for a resume. Closing a channel
  // whose peer is gone never completes, so its close event is raised here.
  pc.onconnectionstatechange = () => {
    if (pc.connectionState !== "failed") return;
    opened.close();
    opened.dispatchEvent(new Event("close"));
  };
  return { pc, channel: opened };
}

async function receive(code) {
  if (sending) return;
  for (const key of ["failure", "hash", "resumed", "kept"]) delete document.body.dataset[key];
  state("pairing");
  $("receive").disabled = $("send-start").disabled = true;
  $("offer").hidden = $("progress-section").hidden = $("result").hidden = $("send-code-section").hidden = true;
  $("send-again").hidden = true;
  $("progress-title").textContent = "Receiving";
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
    // The code is used up: a reload must not try it again (nor keep it in the history).
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    status("Paired. Reading the offer…");
    const offer = checkOffer(await rendezvous.next());
    if (offer.entries[0].kind === "text") {
      rendezvous.send({ type: "answer", accept: true });
      $("result-text").textContent = shown(offer.text ?? "", 32768, true);
      $("result-text").classList.add("message");
      $("result").hidden = false;
      status("Received a text.");
      state("done");
      rendezvous.close("happy");
      return;
    }
    status("The sender is waiting for your answer.");
    const record = await loadResume();
    const choice = await askToAccept(offer, record, await downloads);
    $("offer").hidden = true;
    if (!choice.accept) {
      rendezvous.send({ type: "answer", accept: false, reason: "declined by the receiver" });
      rendezvous.close("happy");
      status("Declined: nothing was received.");
      state("declined");
      return;
    }
    const total = offer.entries.reduce((sum, e) => sum + (e.size ?? 0), 0);
    // Remembered until the end, so that a reloaded tab or a lost sender
    // resumes into the same folder. (Before the channel opens: nothing may be
    // awaited between it and receiveTransfer, which reads its messages.)
    const remembered = choice.directory ? {
      directory: choice.directory, private: savePrivately, folder: choice.directory.name || "",
      names: offer.entries.map((e) => e.name), total, kept: choice.resuming ? record.kept ?? 0 : 0,
    } : null;
    if (remembered) await saveResume(remembered);
    $("resume-note").hidden = true;
    rendezvous.send({ type: "answer", accept: true });
    status("Connecting to the sender…");
    state("connecting");
    const { pc, channel } = await connect(rendezvous);
    status("Connected.");
    state("receiving");
    const held = [];
    const sink = choice.directory ? new DirectorySink(choice.directory)
      : choice.worker ? new DownloadSink(choice.worker)
        : new MemorySink((path, blob) => held.push({ path, blob }), memoryLimit);
    let received = 0;
    let resumed = 0;
    let started = performance.now();
    $("progress-section").hidden = false;
    $("progress").max = Math.max(total, 1);
    const result = await receiveTransfer(channel, offer, sink, ({ bytes, file }) => {
      received += bytes;
      const seconds = (performance.now() - started) / 1000;
      const rate = received / Math.max(seconds, 0.001);
      const eta = total > resumed + received && rate > 0 ? Math.ceil((total - resumed - received) / rate) : 0;
      $("progress").value = resumed + received;
      $("progress-text").textContent = `${humanBytes(resumed + received)} of ${humanBytes(total)} · ${humanBytes(rate)}/s` +
        (eta ? ` · about ${eta} s left` : "") + ` · ${shown(file, 80)}` + (resumed ? ` · ${humanBytes(resumed)} resumed` : "");
    }, sodium, {
      resumed: (bytes) => {
        resumed = bytes;
        started = performance.now();
        $("progress").value = bytes;
        if (bytes > 0) {
          $("progress-title").textContent = "Resuming";
          $("progress-text").textContent = `${humanBytes(bytes)} of ${humanBytes(total)} already verified here · asking for the rest`;
          state("resuming");
        }
      },
      kept: (bytes) => {
        document.body.dataset.kept = String(bytes);
        if (remembered) saveResume({ ...remembered, kept: bytes });
      },
    });
    const seconds = (performance.now() - started) / 1000;
    if (remembered) await forgetResume();
    rendezvous.close("happy");
    setTimeout(() => pc.close(), 2000);
    $("progress").value = $("progress").max;
    $("progress-title").textContent = "Received";
    $("result-text").textContent = `Received and verified ${result.files} file${result.files === 1 ? "" : "s"}, ` +
      `${humanBytes(result.bytes)} in ${seconds.toFixed(1)} s` +
      (result.resumed ? ` (${humanBytes(result.resumed)} of it resumed from an earlier attempt, ${humanBytes(result.bytes - result.resumed)} sent now)` : "") +
      ` (transfer hash ${result.hash.slice(0, 16)}…)` +
      (result.links ? `; ${result.links} link${result.links === 1 ? "" : "s"} not made (a browser cannot make links)` : "") + ".";
    if (choice.worker) $("result-text").textContent += " Every file is in your browser's downloads.";
    $("downloads").replaceChildren(...held.map(({ path, blob }) => {
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
    document.body.dataset.resumed = String(result.resumed);
    status("Done.");
    state("done");
  } catch (error) {
    const known = error instanceof SessionError || error.name === "TransferError";
    let text = known ? error.message : `Something went wrong: ${error.message}`;
    const record = error.kept > 0 ? await loadResume() : null;
    if (record) {
      await saveResume({ ...record, kept: error.kept });
      text += `. ${humanBytes(error.kept)} verified ${error.kept === 1 ? "is" : "are"} kept in ${heldIn(record)}: ` +
        "when the sender sends the same again, enter the new code to resume.";
    }
    status(text, true);
    document.body.dataset.failure = error.kind ?? error.code ?? "other";
    if (rendezvous) rendezvous.close(error.kind === "wrongCode" ? "scary" : error.kind === "noPath" ? "lonely" : "errory");
    state("failed");
  } finally {
    $("receive").disabled = false;
    $("send-start").disabled = selection.isEmpty;
  }
}

// Sending.

const selection = new Selection();
let sending = false;

function showSelection() {
  const items = selection.items();
  $("send-items").replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const counts = item.kind === "directory"
      ? `${item.files} file${item.files === 1 ? "" : "s"}, ${humanBytes(item.size)}` : humanBytes(item.size);
    li.append(`${shown(item.name)}${item.kind === "directory" ? "/" : ""} (${counts})`);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${shown(item.name)}`);
    remove.disabled = sending;
    remove.onclick = () => {
      selection.remove(item.name);
      showSelection();
    };
    li.append(remove);
    return li;
  }));
  const refused = selection.refused;
  $("send-refused").hidden = refused.length === 0;
  $("send-refused").textContent = refused.length === 0 ? ""
    : `Left out (the receiver would refuse the name): ${refused.slice(0, 5).map((r) => `${shown(r.path, 80)}: ${r.why}`).join("; ")}` +
      (refused.length > 5 ? `; and ${refused.length - 5} more` : "") + ".";
  $("send-start").disabled = sending || selection.isEmpty;
  $("send-clear").hidden = selection.isEmpty || sending;
  // While a send runs, only it is on the page: no second choice, no receive form.
  $("receive-form").hidden = $("drop").hidden = $("send-buttons").hidden = sending;
  $("send-items").classList.toggle("sending", sending);
}

function addChosen(files) {
  for (const file of files) selection.addFile(file.webkitRelativePath || file.name, file);
  showSelection();
}

async function addDropped(dataTransfer) {
  // The entries are taken before anything is awaited: the drop's items are gone after.
  const dropped = Array.from(dataTransfer.items ?? []).filter((item) => item.kind === "file")
    .map((item) => item.webkitGetAsEntry?.() ?? item.getAsFile());
  for (const item of dropped) {
    if (!item) continue;
    try {
      // A FileSystemEntry (a file or a folder), or a File where the browser has no entries.
      if (typeof item.isDirectory === "boolean") await addEntry(selection, item);
      else selection.addFile(item.name, item);
    } catch (error) {
      selection.refuse(item.name, `it cannot be read (${error.message})`);
    }
  }
  showSelection();
}

/** The receive link for `code`: this page with the code in the fragment, which a browser never sends to the server. */
function receiveLink(code) {
  const url = new URL(location.href);
  url.hash = code;
  return url.toString();
}

function showCode(code) {
  $("send-code").textContent = code;
  $("send-command").textContent = `tern receive ${code}`;
  const link = receiveLink(code);
  $("send-link").href = link;
  $("send-link").textContent = link;
  $("send-code-section").hidden = false;
  $("send-code").focus();
  $("copy-command").textContent = "Copy";
  state("send-waiting");
  status("Waiting for the receiver to enter the code…");
}

/** The sender's side of §7.1: our description, trickled candidates, until both sides said `connected`; then the open channel. */
async function offerConnection(rendezvous) {
  const configuration = { iceServers: rendezvous.iceServers() };
  if (params.get("relayed") === "1") configuration.iceTransportPolicy = "relay";
  const pc = new RTCPeerConnection(configuration);
  const channel = pc.createDataChannel("tern-transfer");
  channel.binaryType = "arraybuffer";
  let fail;
  const failure = new Promise((_, reject) => { fail = reject; });
  failure.catch(() => {});
  let selfConnected = false;
  let peerConnected = false;
  let described = false;
  const early = [];
  const connected = new Promise((resolve) => {
    pc.oniceconnectionstatechange = () => {
      if (!selfConnected && ["connected", "completed"].includes(pc.iceConnectionState)) {
        selfConnected = true;
        rendezvous.send({ type: "connected" });
        resolve();
      } else if (pc.iceConnectionState === "failed") {
        fail(new SessionError("noPath", "no network path to the receiver was found"));
      }
    };
  });
  const signal = (message) => (described ? rendezvous.send(message) : early.push(message));
  pc.onicecandidate = ({ candidate }) => {
    if (selfConnected && peerConnected) return;
    if (candidate && candidate.candidate) signal({ type: "candidate", candidate: candidate.candidate, mid: candidate.sdpMid ?? "0" });
    else if (!candidate) signal({ type: "end-of-candidates" });
  };
  await pc.setLocalDescription(await pc.createOffer());
  rendezvous.send({ type: "description", kind: "offer", sdp: pc.localDescription.sdp });
  described = true;
  early.forEach((message) => rendezvous.send(message));

  let answered = false;
  while (!peerConnected) {
    const message = await Promise.race([rendezvous.next(), failure]);
    if (message.type === "description") {
      if (message.kind !== "answer" || typeof message.sdp !== "string" || answered) {
        throw new SessionError("noPath", "the receiver did not answer with a session description");
      }
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      answered = true;
    } else if (message.type === "candidate" && typeof message.candidate === "string" && answered) {
      if (/\.local /.test(message.candidate)) continue;
      try {
        await pc.addIceCandidate({ candidate: message.candidate, sdpMid: message.mid ?? "0" });
      } catch { /* a candidate the browser refuses is skipped, as tern does */ }
    } else if (message.type === "end-of-candidates" && answered) {
      try { await pc.addIceCandidate(); } catch { /* optional */ }
    } else if (message.type === "connected") {
      peerConnected = true;
    }
  }
  await Promise.race([connected, failure]);
  if (channel.readyState !== "open") {
    const opened = new Promise((resolve, reject) => {
      channel.onopen = resolve;
      channel.onclose = () => reject(new SessionError("noPath", "the data channel to the receiver closed before it opened"));
      setTimeout(() => reject(new SessionError("noPath", "the data channel to the receiver did not open")), 20000);
    });
    await Promise.race([opened, failure]);
  }
  // A path that dies under the transfer ends it (the channel closes): at
  // once when ICE fails, after 15 s of no answer to the consent checks
  // (the browser says "failed" only after 30 s).
  let silent = null;
  pc.onconnectionstatechange = () => {
    clearTimeout(silent);
    if (pc.connectionState === "failed") channel.close();
    else if (pc.connectionState === "disconnected") silent = setTimeout(() => channel.close(), 15000);
  };
  return { pc, channel };
}

function sendFailureText(error) {
  if (error instanceof SessionError && error.kind === "wrongCode") {
    return "The receiver used a different code (or someone else tried this one): nothing was sent. Send again for a new code.";
  }
  if (error instanceof SessionError || error.name === "TransferError") return error.message;
  return `Something went wrong: ${error.message}`;
}

async function send() {
  if (sending || selection.isEmpty) return;
  sending = true;
  delete document.body.dataset.failure;
  delete document.body.dataset.hash;
  $("receive").disabled = true;
  $("send-again").hidden = true;
  $("progress-section").hidden = $("result").hidden = $("send-code-section").hidden = true;
  showSelection();
  let rendezvous = null;
  try {
    const offer = selection.offerMessage();
    const manifest = selection.manifest();
    state("send-pairing");
    status("Asking the relay for a code…");
    const sodium = await loadSodium();
    rendezvous = new Rendezvous(sodium, relayBase, "sender");
    rendezvous.onWaiting = showCode;
    await rendezvous.connect();
    await rendezvous.pair(newWords());
    rendezvous.send(offer);
    // The code is used up once paired.
    $("send-code-section").hidden = true;
    state("send-offered");
    status("Paired. Waiting for the receiver to accept…");
    const answer = await rendezvous.next();
    if (answer.type !== "answer" || typeof answer.accept !== "boolean") {
      throw new SessionError("protocol", "the receiver sent something other than an answer");
    }
    if (!answer.accept) {
      rendezvous.close("happy");
      const reason = typeof answer.reason === "string" && answer.reason ? `: ${shown(answer.reason, 1024)}` : "";
      status(`The receiver declined${reason}. Nothing was sent.`);
      state("declined");
      $("send-again").hidden = false;
      return;
    }
    status("Accepted. Connecting to the receiver…");
    state("connecting");
    const { pc, channel } = await offerConnection(rendezvous);
    status("Connected. Sending…");
    state("sending");
    $("progress-title").textContent = "Sending";
    $("progress-section").hidden = false;
    const started = performance.now();
    let resumed = 0;
    const files = manifest.filter((e) => e.kind === "file").length;
    let lastShown = 0;
    const result = await sendTransfer(channel, manifest, {
      maxMessageSize: pc.sctp?.maxMessageSize ?? 262144,
      sodium,
      progress: ({ bytes, total, file, resumed: already }) => {
        if (already !== undefined) resumed = already;
        const now = performance.now();
        if (now - lastShown < 100 && bytes < total) return;
        lastShown = now;
        const seconds = (now - started) / 1000;
        const rate = (bytes - resumed) / Math.max(seconds, 0.001);
        const eta = total > bytes && rate > 0 ? Math.ceil((total - bytes) / rate) : 0;
        $("progress").max = Math.max(total, 1);
        $("progress").value = bytes;
        $("progress-text").textContent = `${humanBytes(bytes)} of ${humanBytes(total)} · ${humanBytes(rate)}/s` +
          (eta ? ` · about ${eta} s left` : "") + (file ? ` · ${shown(file, 80)}` : "") +
          (resumed ? ` · ${humanBytes(resumed)} resumed` : "");
      },
      verified: (count) => { $("progress-title").textContent = `Sending (${count} of ${files} verified by the receiver)`; },
    });
    const seconds = (performance.now() - started) / 1000;
    channel.close();
    rendezvous.close("happy");
    setTimeout(() => pc.close(), 2000);
    $("progress").value = $("progress").max;
    $("progress-title").textContent = `Sent (${result.files} of ${files} verified by the receiver)`;
    $("result-text").textContent = `Sent ${result.files} file${result.files === 1 ? "" : "s"}, ${humanBytes(result.bytes)}, ` +
      `verified by the receiver in ${seconds.toFixed(1)} s` +
      (result.resumed ? ` (${humanBytes(result.resumed)} of it resumed from an earlier attempt)` : "") +
      ` (transfer hash ${result.hash.slice(0, 16)}…).`;
    $("result").hidden = false;
    document.body.dataset.hash = result.hash;
    status("Done.");
    state("done");
  } catch (error) {
    status(sendFailureText(error), true);
    document.body.dataset.failure = error.kind ?? error.code ?? "other";
    if (rendezvous) rendezvous.close(error.kind === "wrongCode" ? "scary" : error.kind === "noPath" ? "lonely" : "errory");
    state("failed");
    // Nothing to try again with a choice that cannot be sent (too many items for one offer).
    $("send-again").hidden = error.code === "unsendable";
  } finally {
    sending = false;
    $("receive").disabled = false;
    showSelection();
  }
}

// Leaving or reloading the page ends a send: the browser asks first.
window.addEventListener("beforeunload", (event) => { if (sending) event.preventDefault(); });
$("pick-files").onclick = () => $("send-files").click();
$("pick-folder").onclick = () => $("send-folder").click();
$("send-files").onchange = (event) => { addChosen(event.target.files); event.target.value = ""; };
$("send-folder").onchange = (event) => { addChosen(event.target.files); event.target.value = ""; };
$("send-start").onclick = send;
$("send-again").onclick = send;
$("send-clear").onclick = () => { selection.clear(); showSelection(); };
$("copy-command").onclick = async () => {
  try {
    await navigator.clipboard.writeText($("send-command").textContent);
    $("copy-command").textContent = "Copied";
  } catch {
    // No clipboard here (not a secure context): select the command for Ctrl-C.
    getSelection().selectAllChildren($("send-command"));
    $("copy-command").textContent = "Selected: press Ctrl-C";
  }
};
for (const name of ["dragenter", "dragover"]) {
  document.addEventListener(name, (event) => {
    if (!event.dataTransfer?.types?.includes("Files")) return;
    event.preventDefault();
    if (!sending) $("drop").classList.add("over");
  });
}
document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) $("drop").classList.remove("over"); });
document.addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  if (!sending && event.dataTransfer) addDropped(event.dataTransfer);
});

$("insecure").hidden = isSecureContext;
$("resume-forget").onclick = async () => {
  await forgetResume();
  $("resume-note").hidden = true;
  $("code").focus();
};
showResumeNote();
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
