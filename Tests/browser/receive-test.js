// Drives the real page (/web/index.html) in a same-origin iframe as a person
// would: it opens the link with the code, clicks Accept (or Decline), and
// when the page says it is done, reads what the page saved in the origin's
// private file system and reports each file's SHA-256 to /report.
const report = (what, detail) =>
  fetch("/report", { method: "POST", body: JSON.stringify({ what, detail: String(detail ?? "") }) });
const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function listFiles(directory, prefix, out) {
  for await (const [name, handle] of directory.entries()) {
    if (handle.kind === "directory") {
      out.directories.push(prefix + name);
      await listFiles(handle, `${prefix}${name}/`, out);
    } else {
      const file = await handle.getFile();
      out.files[prefix + name] = { size: file.size, sha256: hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer())) };
    }
  }
  return out;
}

async function run() {
  let cases;
  for (;;) {
    const response = await fetch("/cases");
    if (response.status === 200) { cases = await response.json(); break; }
    await sleep(50);
  }
  // Start from an empty private file system.
  const root = await navigator.storage.getDirectory();
  for await (const name of root.keys()) await root.removeEntry(name, { recursive: true });

  const frame = document.createElement("iframe");
  frame.src = `/web/index.html?relay=${encodeURIComponent(cases.relay)}&save=private${cases.relayed ? "&relayed=1" : ""}#${cases.code}`;
  frame.style.width = "400px";
  frame.style.height = "700px";
  document.body.append(frame);
  let last = "";
  for (let i = 0; i < 2400; i++) {
    await sleep(50);
    const body = frame.contentDocument?.body;
    const state = body?.dataset.state ?? "";
    if (state !== last) {
      last = state;
      await report("state", state);
    }
    if (state === "offer") {
      const items = Array.from(frame.contentDocument.querySelectorAll("#offer-items li"), (li) => li.textContent);
      await report("offer", JSON.stringify(items));
      frame.contentDocument.getElementById(cases.action === "decline" ? "decline" : "accept").click();
    } else if (state === "done" || state === "failed" || state === "declined") {
      const statusText = frame.contentDocument.getElementById("status").textContent;
      const listing = await listFiles(await navigator.storage.getDirectory(), "", { files: {}, directories: [] });
      await report("end", JSON.stringify({
        state, status: statusText, failure: body.dataset.failure ?? "", hash: body.dataset.hash ?? "",
        result: frame.contentDocument.getElementById("result-text").textContent, ...listing,
        heap: performance.memory ? performance.memory.usedJSHeapSize : null,
      }));
      return;
    }
  }
  await report("end", JSON.stringify({ state: "timeout", status: frame.contentDocument?.getElementById("status")?.textContent }));
}

run().catch((error) => report("error", `${error.name}: ${error.message}\n${error.stack}`));
