// Runs the browser page's pairing cryptography (web/cpace.js over
// sodium.wasm) on the inputs the test PUT to /cases, and POSTs every output
// in hex to /report for BrowserCryptoHeavyTests to compare with the Swift side
// and the draft's vectors.
import { loadSodium } from "/web/sodium.js";
import { CPace, SessionKeys, SealingChannel } from "/web/cpace.js";

const report = (what, detail) =>
  fetch("/report", { method: "POST", body: JSON.stringify({ what, detail: String(detail ?? "") }) });
const bytes = (hex) => Uint8Array.from((hex.match(/../g) ?? []).map((pair) => parseInt(pair, 16)));
const hex = (data) => Array.from(data, (byte) => byte.toString(16).padStart(2, "0")).join("");

function runCase(sodium, input) {
  const common = { password: bytes(input.password), channelIdentifier: bytes(input.ci), sessionID: bytes(input.sid) };
  const a = new CPace(sodium, { ...common, role: "initiator", associatedData: bytes(input.adA), scalar: bytes(input.ya) });
  const b = new CPace(sodium, { ...common, role: "responder", associatedData: bytes(input.adB), scalar: bytes(input.yb) });
  const transcript = a.transcript(b.share, bytes(input.adB));
  const iskA = a.finish(b.share, bytes(input.adB));
  const iskB = b.finish(a.share, bytes(input.adA));
  const keysA = new SessionKeys(sodium, iskA);
  const keysB = new SessionKeys(sodium, iskB);
  const initiator = new SealingChannel(sodium, keysA, "initiator");
  const responder = new SealingChannel(sodium, keysB, "responder");
  const sealedByInitiator = input.messages.map((m) => initiator.seal(bytes(m)));
  const sealedByResponder = input.messages.map((m) => responder.seal(bytes(m)));
  return {
    name: input.name,
    shareA: hex(a.share), shareB: hex(b.share), transcript: hex(transcript),
    iskA: hex(iskA), iskB: hex(iskB),
    confirmInitiator: hex(keysA.confirmInitiator), confirmResponder: hex(keysA.confirmResponder),
    sealInitiatorToResponder: hex(keysA.sealInitiatorToResponder),
    sealResponderToInitiator: hex(keysA.sealResponderToInitiator), sessionSecret: hex(keysA.sessionSecret),
    tagInitiator: hex(keysA.confirmationTag("initiator", transcript)),
    tagResponder: hex(keysB.confirmationTag("responder", transcript)),
    confirmationsVerify: keysB.verifyConfirmation(keysA.confirmationTag("initiator", transcript), "initiator", transcript)
      && keysA.verifyConfirmation(keysB.confirmationTag("responder", transcript), "responder", transcript)
      && !keysA.verifyConfirmation(keysA.confirmationTag("initiator", transcript), "responder", transcript),
    sealedByInitiator: sealedByInitiator.map(hex), sealedByResponder: sealedByResponder.map(hex),
    openedByResponder: sealedByInitiator.map((m) => hex(responder.open(m))),
    openedByInitiator: sealedByResponder.map((m) => hex(initiator.open(m))),
  };
}

function refusal(sodium, share) {
  const run = new CPace(sodium, {
    password: bytes("00"), channelIdentifier: new Uint8Array(), sessionID: new Uint8Array(),
    role: "responder", associatedData: new Uint8Array(),
  });
  try {
    run.finish(bytes(share), new Uint8Array());
    return "accepted";
  } catch (error) {
    return `${error.kind}: ${error.message}`;
  }
}

async function run() {
  let cases;
  for (;;) {
    const response = await fetch("/cases");
    if (response.status === 200) { cases = await response.json(); break; }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const sodium = await loadSodium();
  const results = cases.cases.map((input) => runCase(sodium, input));
  const refusals = cases.badShares.map((share) => refusal(sodium, share));
  await report("results", JSON.stringify({ results, refusals, secureContext: isSecureContext }));
}

run().catch((error) => report("error", `${error.name}: ${error.message}\n${error.stack}`));
