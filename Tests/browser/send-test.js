// Drives the real page (/web/index.html) in a same-origin iframe as a person
// who sends would: it makes the files the test asked for (contents from a
// seed, so nothing large crosses signal.py), hands them to the page's file
// input (or its folder input, each file with its relative path; a real drop
// is drop.py's), clicks Send, and reports the code the page shows, every state it goes
// through, and how it ended. With `again`, a failed send is retried once with
// "Send again" (a new code), for the resume case.
const report = (what, detail) =>
  fetch("/report", { method: "POST", body: JSON.stringify({ what, detail: String(detail ?? "") }) });
const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `size` bytes of xorshift32 from `seed` (any nonzero 32-bit number). */
function contents(size, seed) {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

async function run() {
  let cases;
  for (;;) {
    const response = await fetch("/cases");
    if (response.status === 200) { cases = await response.json(); break; }
    await sleep(50);
  }
  const frame = document.createElement("iframe");
  frame.src = `/web/index.html?relay=${encodeURIComponent(cases.relay)}${cases.relayed ? "&relayed=1" : ""}`;
  frame.style.width = "400px";
  frame.style.height = "900px";
  document.body.append(frame);
  // The page's module has run once its buttons have their handlers.
  for (let i = 0; !frame.contentDocument?.getElementById("send-start")?.onclick; i++) {
    if (i > 400) throw new Error("the page did not start");
    await sleep(25);
  }
  const page = frame.contentDocument;

  const sources = {};
  const transfer = new DataTransfer();
  for (const spec of cases.files) {
    const data = contents(spec.size, spec.seed);
    sources[spec.path] = hex(await crypto.subtle.digest("SHA-256", data));
    const file = new File([data], spec.path.split("/").pop(), { lastModified: (spec.mtime ?? 1700000000) * 1000 });
    // What a folder input gives each file: its path below the chosen folder's parent.
    if (cases.mode === "folder") Object.defineProperty(file, "webkitRelativePath", { value: spec.path });
    transfer.items.add(file);
  }
  await report("sources", JSON.stringify(sources));
  const input = page.getElementById(cases.mode === "folder" ? "send-folder" : "send-files");
  input.files = transfer.files;
  input.dispatchEvent(new Event("change"));
  for (let i = 0; page.getElementById("send-start").disabled; i++) {
    if (i > 200) throw new Error("the page did not take the files");
    await sleep(25);
  }
  await report("items", JSON.stringify(Array.from(page.querySelectorAll("#send-items li"), (li) => li.firstChild.textContent)));
  page.getElementById("send-start").click();

  let lastState = "";
  let lastCode = "";
  let retried = false;
  for (let i = 0; i < 2400; i++) {
    await sleep(50);
    const body = page.body;
    const state = body.dataset.state ?? "";
    const code = page.getElementById("send-code-section").hidden ? "" : page.getElementById("send-code").textContent;
    if (code && code !== lastCode) {
      lastCode = code;
      await report("code", JSON.stringify({
        code, command: page.getElementById("send-command").textContent, link: page.getElementById("send-link").href,
      }));
    }
    if (state !== lastState) {
      lastState = state;
      await report("state", state);
      const ended = ["done", "declined", "failed"].includes(state);
      const detail = JSON.stringify({
        state, status: page.getElementById("status").textContent, failure: body.dataset.failure ?? "",
        hash: body.dataset.hash ?? "", result: page.getElementById("result-text").textContent,
        heap: performance.memory ? performance.memory.usedJSHeapSize : null,
      });
      if (state === "failed" && cases.again && !retried) {
        retried = true;
        await report("failed", detail);
        page.getElementById("send-again").click();
      } else if (ended) {
        await report("end", detail);
        return;
      }
    }
  }
  await report("end", JSON.stringify({ state: "timeout", status: page.getElementById("status").textContent }));
}

run().catch((error) => report("error", `${error.name}: ${error.message}\n${error.stack}`));
