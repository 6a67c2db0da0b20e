// Drives the real page (/web/index.html) in a same-origin frame through a
// large transfer into the origin's private file system (?save=private) and
// watches the JavaScript heap while it runs. The frame shares this window's
// V8 isolate, so performance.memory (exact with Chromium's
// --enable-precise-memory-info) counts the page's heap. Reports:
//   timing     ms from opening the link to the first received byte
//   end        the page's state, the heap before, at most while receiving
//              and after, the transfer hash
//   check      after the test PUTs /cases again with "verify": the saved
//              file read back in slices and compared with the xorshift32
//              stream the test wrote (cases.seed), so no copy of the file
//              is ever held whole
const report = (what, detail) =>
  fetch("/report", { method: "POST", body: JSON.stringify({ what, detail: String(detail ?? "") }) });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const heap = () => performance.memory.usedJSHeapSize;

async function cases(ready) {
  for (;;) {
    const response = await fetch("/cases");
    if (response.status === 200) {
      const value = await response.json();
      if (ready(value)) return value;
    }
    await sleep(100);
  }
}

/** The file the test wrote: xorshift32 (13, 17, 5) words from `seed`, little-endian. */
async function compare(file, seed) {
  let x = seed >>> 0;
  const slice = 4 << 20;
  for (let offset = 0; offset < file.size; offset += slice) {
    const bytes = new Uint8Array(await file.slice(offset, offset + slice).arrayBuffer());
    const words = new Uint32Array(bytes.buffer, 0, bytes.length >>> 2);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      if (words[i] !== x) return `differs in the word at byte ${offset + i * 4}`;
    }
    if (bytes.length % 4 !== 0) return "the size is not a whole number of words";
  }
  return "identical";
}

async function run() {
  const given = await cases(() => true);
  const root = await navigator.storage.getDirectory();
  for await (const name of root.keys()) await root.removeEntry(name, { recursive: true });

  const before = heap();
  const opened = performance.now();
  const frame = document.createElement("iframe");
  frame.src = `/web/index.html?relay=${encodeURIComponent(given.relay)}&save=private#${given.code}`;
  frame.style.width = "400px";
  frame.style.height = "700px";
  document.body.append(frame);
  let most = 0;
  let firstByte = null;
  const samples = []; // [MiB received, MiB of heap], about every second
  let sampled = 0;
  for (let i = 0; i < 12000; i++) {
    await sleep(20);
    const body = frame.contentDocument?.body;
    const state = body?.dataset.state ?? "";
    if (state === "offer") {
      frame.contentDocument.getElementById("accept").click();
    } else if (state === "receiving") {
      most = Math.max(most, heap());
      if (performance.now() - sampled >= 1000) {
        sampled = performance.now();
        samples.push([frame.contentDocument.getElementById("progress").value, heap()].map((n) => Math.round(n / 1048576)));
      }
      if (firstByte === null && frame.contentDocument.getElementById("progress").value > 0) {
        firstByte = performance.now() - opened;
        await report("timing", Math.round(firstByte));
      }
    } else if (state === "done" || state === "failed" || state === "declined") {
      most = Math.max(most, heap());
      await sleep(1000);
      await report("end", JSON.stringify({
        state, status: frame.contentDocument.getElementById("status").textContent,
        result: frame.contentDocument.getElementById("result-text").textContent,
        hash: body.dataset.hash ?? "", before, most, after: heap(), samples,
      }));
      if (state !== "done") return;
      await cases((value) => value.verify === true);
      const handle = await root.getFileHandle(given.name);
      const file = await handle.getFile();
      await report("check", JSON.stringify({ size: file.size, verdict: await compare(file, given.seed) }));
      return;
    }
  }
  await report("end", JSON.stringify({ state: "timeout", status: frame.contentDocument?.getElementById("status")?.textContent }));
}

run().catch((error) => report("error", `${error.name}: ${error.message}\n${error.stack}`));
