// What the page remembers between visits, in this origin's IndexedDB: the
// folder an interrupted receive was writing into (a FileSystemDirectoryHandle,
// which IndexedDB can hold; the browser asks the person again for write
// access after a reload where it needs to), the offered names and how much
// of them was verified, so that the next offer of the same items resumes
// into the same folder (docs/web.md, "Resume").

const database = "tern";
const store = "resume";
const key = "last";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(database, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(store);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(store, mode);
      const request = action(transaction.objectStore(store));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = transaction.onabort = () => reject(transaction.error);
    });
  } finally {
    db.close();
  }
}

/**
 * The interrupted receive: `{directory, private, folder, names, total,
 * kept}`, or null (also where IndexedDB is not available: private windows
 * of some browsers).
 */
export async function loadResume() {
  try {
    const record = await run("readonly", (s) => s.get(key));
    return record && record.directory && Array.isArray(record.names) ? record : null;
  } catch {
    return null;
  }
}

export async function saveResume(record) {
  try { await run("readwrite", (s) => s.put(record, key)); } catch { /* nothing remembered: a resume then needs the same folder picked */ }
}

export async function forgetResume() {
  try { await run("readwrite", (s) => s.delete(key)); } catch { /* nothing to forget */ }
}

/** Whether `record` is about the items of `offer` (the same top-level names). */
export function resumes(record, offer) {
  if (!record) return false;
  const names = offer.entries.map((e) => e.name).sort();
  const held = [...record.names].sort();
  return names.length === held.length && names.every((name, i) => name === held[i]);
}
