// The page's service worker: streamed downloads for browsers without the
// File System Access API (docs/web.md, "Where received files go"). The page
// registers a download (an id, the file's name and size, and a
// MessagePort), then opens download/ID; this worker answers that request
// with a ReadableStream that it fills with the chunks the page sends
// through the port, each already checked against its SHA-256. The stream
// asks the page for the next chunk only while its queue is below 4 MiB,
// so the browser's download, writing to disk, sets the pace and nothing
// is held whole. The page ends the stream only after the file's root hash
// matched; otherwise it errors the stream and the browser drops the
// download.

const downloads = new Map(); // id -> {port, name, size}
const queueBytes = 4 << 20;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  const { type, id, name, size } = event.data ?? {};
  const port = event.ports[0];
  if (type !== "download" || !port || typeof id !== "string" || !/^[0-9a-f]{32}$/.test(id) || typeof name !== "string") return;
  downloads.set(id, { port, name, size: Number.isSafeInteger(size) ? size : null });
  port.postMessage({ type: "registered" });
});

/** `attachment` with the name as ASCII (others replaced) and as UTF-8 (RFC 6266, RFC 8187). */
function disposition(name) {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

self.addEventListener("fetch", (event) => {
  const prefix = new URL("download/", self.registration.scope).pathname;
  const url = new URL(event.request.url);
  if (url.origin !== location.origin || !url.pathname.startsWith(prefix)) return;
  const id = url.pathname.slice(prefix.length);
  const download = downloads.get(id);
  downloads.delete(id);
  if (!download) {
    event.respondWith(new Response("This download is over or was never registered.", { status: 404 }));
    return;
  }
  const { port } = download;
  let wake = null;
  const stream = new ReadableStream({
    start(controller) {
      port.onmessage = ({ data }) => {
        if (data?.type === "chunk" && data.bytes instanceof ArrayBuffer) {
          controller.enqueue(new Uint8Array(data.bytes));
        } else if (data?.type === "end") {
          controller.close();
          port.close();
        } else if (data?.type === "abort") {
          controller.error(new Error(String(data.reason ?? "the transfer stopped")));
          port.close();
        }
        const waking = wake;
        wake = null;
        waking?.();
      };
    },
    pull() {
      return new Promise((resolve) => {
        wake = resolve;
        port.postMessage({ type: "pull" });
      });
    },
    cancel() {
      port.postMessage({ type: "cancelled" });
      port.close();
    },
  }, { highWaterMark: queueBytes, size: (chunk) => chunk.byteLength });
  const headers = {
    "Content-Type": "application/octet-stream",
    "Content-Disposition": disposition(download.name),
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
  };
  if (download.size !== null) headers["Content-Length"] = String(download.size);
  event.respondWith(new Response(stream, { headers }));
});
