// Streamed downloads through the page's service worker (web/sw.js), for
// browsers without the File System Access API on a secure context: each
// received file becomes one download that the browser writes to disk as
// the verified chunks arrive, never held whole in this page's memory.

import { TransferError } from "./transfer.js";

/** The active service worker's registration, or null where there is none (not a secure context, or refused). */
export async function downloadWorker() {
  if (!isSecureContext || !navigator.serviceWorker) return null;
  try {
    await navigator.serviceWorker.register("sw.js", { scope: "./" });
    const registration = await Promise.race([
      navigator.serviceWorker.ready, new Promise((resolve) => setTimeout(() => resolve(null), 5000)),
    ]);
    return registration?.active ? registration : null;
  } catch {
    return null;
  }
}

const randomID = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * Files handed to the service worker, one download each (the browser's
 * downloads have no folders: a file of a folder is saved under its own
 * name, and the browser numbers names that repeat). No resume.
 */
export class DownloadSink {
  constructor(registration) {
    this.registration = registration;
    this.resumable = false;
  }

  async exists() { return false; }
  async makeDirectory() {}

  async open(components, from = 0, size = null) {
    const worker = this.registration.active;
    if (!worker) throw new TransferError("io", "the page's download worker stopped: reload the page and receive again");
    const id = randomID();
    const { port1: port, port2 } = new MessageChannel();
    let pulls = 0;
    let cancelled = false;
    let waiter = null;
    const wake = () => {
      const waking = waiter;
      waiter = null;
      waking?.();
    };
    const registered = new Promise((resolve) => {
      port.onmessage = ({ data }) => {
        if (data?.type === "registered") resolve();
        else if (data?.type === "pull") pulls++;
        else if (data?.type === "cancelled") cancelled = true;
        wake();
      };
    });
    worker.postMessage({ type: "download", id, name: components[components.length - 1], size }, [port2]);
    await Promise.race([registered, new Promise((_, reject) => setTimeout(
      () => reject(new TransferError("io", "the page's download worker did not answer: reload the page and receive again")), 5000))]);
    // Opening the worker's URL starts the download; the page stays (the answer is an attachment).
    const link = document.createElement("a");
    link.href = new URL(`download/${id}`, this.registration.scope).href;
    link.click();
    return {
      // Sent only when the worker's stream asks for more: the download's pace is the page's.
      write: async (bytes) => {
        while (pulls === 0 && !cancelled) await new Promise((resolve) => { waiter = resolve; });
        if (cancelled) throw new TransferError("cancelled", `the download of ${components.join("/")} was cancelled in the browser`);
        pulls--;
        const copy = bytes.slice();
        port.postMessage({ type: "chunk", bytes: copy.buffer }, [copy.buffer]);
      },
      finish: async () => {
        port.postMessage({ type: "end" });
        port.close();
      },
      abandon: async () => {
        port.postMessage({ type: "abort", reason: "the transfer stopped" });
        port.close();
      },
    };
  }
}
