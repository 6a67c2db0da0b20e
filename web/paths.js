// Received paths, checked by the rules of Sources/TernTransfer/RelativePath.swift
// (docs/protocol.md §11.6), and names made safe to show.

const encoder = new TextEncoder();
const byteLength = (text) => encoder.encode(text).length;
export const maxComponentBytes = 255;
export const maxPathBytes = 4096;
export const maxComponents = 256;

const deviceNames = new Set(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]);
for (const port of ["COM", "LPT"]) {
  for (const digit of ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3"]) {
    deviceNames.add(port + digit);
  }
}
const reservedSuffixes = [".TERN-PARTIAL", ".TERN-STATE", ".TERN-STATE.TMP"];
const asciiUpper = (text) => text.replace(/[a-z]/g, (c) => c.toUpperCase());

/** Why a path component is refused, or null. */
export function componentProblem(component) {
  const bytes = byteLength(component);
  if (bytes === 0) return "it has an empty component";
  if (component === ".") return "it has a '.' component";
  if (component === "..") return "it climbs out with '..'";
  if (bytes > maxComponentBytes) return `a component is longer than ${maxComponentBytes} bytes`;
  for (const character of component) {
    const value = character.codePointAt(0);
    if (value === 0x2f) return "a component contains '/'";
    if (value === 0x5c) return "it contains a backslash, which Windows reads as a separator";
    if (value === 0x3a) {
      return /^[A-Za-z]:/.test(component)
        ? "it starts with a Windows drive letter"
        : "it contains ':', which Windows reads as a drive or a stream name";
    }
    if (value <= 0x1f || (value >= 0x7f && value <= 0x9f)) return "it contains a control character";
    if (value === 0xfffd) return "it contains U+FFFD, the mark of bytes that were not UTF-8";
  }
  if (component.endsWith(".") || component.endsWith(" ")) {
    return "a component ends with a dot or a space, which Windows strips";
  }
  const stem = component.split(".")[0].replace(/ +$/, "");
  if (deviceNames.has(asciiUpper(stem))) return "it uses a name Windows reserves for a device";
  const upper = asciiUpper(component);
  if (reservedSuffixes.some((suffix) => upper.endsWith(suffix))) {
    return "names ending in .tern-partial or .tern-state are kept for tern's resume files";
  }
  return null;
}

/** The components of a received path, or throws an Error naming the rule it breaks. */
export function checkedPath(raw) {
  if (typeof raw !== "string") throw new Error("the path is not a string");
  let problem = null;
  if (raw.length === 0) problem = "the path is empty";
  else if (byteLength(raw) > maxPathBytes) problem = `the path is longer than ${maxPathBytes} bytes`;
  else if (raw.startsWith("\\\\")) problem = "it is a Windows network (UNC) path";
  else if (raw.startsWith("//")) problem = "it is a network (UNC) path";
  else if (raw.startsWith("/")) problem = "it is an absolute path";
  else if (raw.endsWith("/")) problem = "it ends with '/'";
  const components = raw.split("/");
  if (!problem && components.length > maxComponents) problem = `it has more than ${maxComponents} components`;
  if (!problem) problem = components.map(componentProblem).find((p) => p) ?? null;
  if (problem) throw new Error(`refused the path "${shown(raw)}": ${problem}`);
  return components;
}

/**
 * Text from the peer made safe to show: control characters, bidirectional
 * overrides and other invisible format characters become \u{…} escapes,
 * a backslash is doubled, and long text is cut; with `keepLines`, line feeds
 * and tabs stay (a text message's lines). (The page also only ever sets textContent.)
 */
export function shown(text, limit = 200, keepLines = false) {
  let out = "";
  let count = 0;
  for (const character of String(text)) {
    if (count++ >= limit) return out + "…";
    const value = character.codePointAt(0);
    // A text message's line feeds and tabs are kept (`keepLines`): in an
    // element with white-space: pre-wrap they only break lines.
    if (keepLines && (value === 0x0a || value === 0x09)) { out += character; continue; }
    const invisible = value <= 0x1f || (value >= 0x7f && value <= 0x9f) || value === 0xad ||
      (value >= 0x200b && value <= 0x200f) || (value >= 0x202a && value <= 0x202e) ||
      (value >= 0x2060 && value <= 0x206f) || value === 0xfeff || (value >= 0xfff9 && value <= 0xfffb);
    // A backslash is doubled, as the CLI does, so a name that holds the
    // text "\u{202e}" cannot pass for an escaped control character.
    out += character === "\\" ? "\\\\" : invisible ? `\\u{${value.toString(16)}}` : character;
  }
  return out;
}

/** Sizes as a person reads them (1000-based, as the CLI shows them). */
export function humanBytes(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}
