// Text-level edits of a containerd config.toml's top-level `imports = [...]` array. The installer
// must leave every other byte of an operator's file as it was (comments, ordering, formatting),
// so it never re-serializes the file: it scans the TOML just far enough to find the top-level
// keys and the array's elements, and splices text. The caller re-parses the result to check it.

export interface TopLevelScan {
  /** Offset of the first table header (`[x]` / `[[x]]`), or text.length. */
  tablesStart: number;
  /** End of the `version = N` line (offset after its newline), when it is a top-level key. */
  versionLineEnd?: number;
  imports?: ImportsArray;
}

export interface ImportsArray {
  /** Offset where the `imports` line starts, and where it ends (after its newline, if any). */
  lineStart: number;
  lineEnd: number;
  open: number; // index of "["
  close: number; // index of the matching "]"
  elements: { start: number; end: number; value: string }[];
  /** Offset just after the last element or comma inside the array, or after "[" when empty. */
  lastTokenEnd: number;
  trailingComma: boolean;
}

const isBlank = (c: string | undefined): boolean => c === " " || c === "\t" || c === "\r";

/** Index just after a string starting at `i` (any of the four TOML string forms). */
function skipString(text: string, i: number): number {
  const q = text[i] as string;
  const triple = text.startsWith(q.repeat(3), i);
  const delim = triple ? q.repeat(3) : q;
  let j = i + delim.length;
  while (j < text.length) {
    if (q === '"' && text[j] === "\\") {
      j += 2;
      continue;
    }
    if (text.startsWith(delim, j)) {
      // A multi-line string may end with up to two extra quotes before its delimiter.
      let end = j + delim.length;
      while (triple && text[end] === q && end - j < 5) end++;
      return end;
    }
    if (!triple && text[j] === "\n") return j; // unterminated: let the parser report it
    j++;
  }
  return j;
}

function skipComment(text: string, i: number): number {
  const nl = text.indexOf("\n", i);
  return nl < 0 ? text.length : nl;
}

/** Decode a TOML string token well enough to compare paths (basic escapes and literals). */
function stringValue(token: string): string {
  if (token.startsWith("'")) return token.replace(/^'{1,3}|'{1,3}$/g, "");
  try {
    return JSON.parse(token.replace(/^"""|"""$/g, '"')) as string;
  } catch {
    return token.slice(1, -1);
  }
}

/** Scan one value starting at `i`; returns the index of the newline ending its line (or EOF). */
function scanValue(text: string, i: number, arr?: ImportsArray): number {
  let depth = 0;
  let j = i;
  while (j < text.length) {
    const c = text[j] as string;
    if (c === '"' || c === "'") {
      const end = skipString(text, j);
      if (arr && depth === 1) {
        arr.elements.push({ start: j, end, value: stringValue(text.slice(j, end)) });
        arr.lastTokenEnd = end;
        arr.trailingComma = false;
      }
      j = end;
      continue;
    }
    if (c === "#") {
      j = skipComment(text, j);
      continue;
    }
    if (c === "[" || c === "{") {
      if (arr && depth === 0 && c === "[") {
        arr.open = j;
        arr.lastTokenEnd = j + 1;
      }
      depth++;
    } else if (c === "]" || c === "}") {
      depth--;
      if (arr && depth === 0 && c === "]") arr.close = j;
      if (arr && depth === 1) {
        arr.lastTokenEnd = j + 1;
        arr.trailingComma = false;
      }
    } else if (c === "," && arr && depth === 1) {
      arr.lastTokenEnd = j + 1;
      arr.trailingComma = true;
    } else if (c === "\n" && depth <= 0) {
      return j;
    }
    j++;
  }
  return j;
}

/** Find the top-level keys that matter to the installer. */
export function scanTopLevel(text: string): TopLevelScan {
  const out: TopLevelScan = { tablesStart: text.length };
  let i = 0;
  while (i < text.length) {
    const lineStart = i;
    while (isBlank(text[i])) i++;
    const c = text[i];
    if (c === undefined) break;
    if (c === "\n") {
      i++;
      continue;
    }
    if (c === "#") {
      i = skipComment(text, i) + 1;
      continue;
    }
    if (c === "[") {
      out.tablesStart = lineStart;
      return out;
    }
    const eq = text.indexOf("=", i);
    if (eq < 0) break;
    const key = text.slice(i, eq).trim().replace(/^["']|["']$/g, "");
    if (key === "imports") {
      const arr: ImportsArray = { lineStart, lineEnd: 0, open: -1, close: -1, elements: [], lastTokenEnd: -1, trailingComma: false };
      const end = scanValue(text, eq + 1, arr);
      arr.lineEnd = Math.min(end + 1, text.length);
      out.imports = arr;
      i = end + 1;
    } else {
      const end = scanValue(text, eq + 1);
      if (key === "version") out.versionLineEnd = Math.min(end + 1, text.length);
      i = end + 1;
    }
  }
  return out;
}

const tomlString = (s: string): string => JSON.stringify(s);
/** The line addImport writes when there was no imports key; its comment lets removal tell it apart. */
const addedLine = (path: string): string => `imports = [${tomlString(path)}] # added by kata-ts install\n`;

/** `text` with `path` appended to the top-level imports (added after `version` if absent). */
export function addImport(text: string, path: string): string {
  const scan = scanTopLevel(text);
  const arr = scan.imports;
  if (arr && arr.open >= 0 && arr.close > arr.open) {
    if (arr.elements.some((e) => e.value === path)) return text;
    const at = arr.lastTokenEnd;
    const insert = arr.elements.length === 0 ? tomlString(path) : arr.trailingComma ? ` ${tomlString(path)},` : `, ${tomlString(path)}`;
    return text.slice(0, at) + insert + text.slice(at);
  }
  const line = addedLine(path);
  // After `version = N` when that line ends with a newline; otherwise first in the file.
  if (scan.versionLineEnd !== undefined && text[scan.versionLineEnd - 1] === "\n") {
    const at = scan.versionLineEnd;
    return text.slice(0, at) + line + text.slice(at);
  }
  return line + text;
}

/** The inverse of addImport: drop `path` from the imports, and the line if addImport made it. */
export function removeImport(text: string, path: string): string {
  const arr = scanTopLevel(text).imports;
  if (!arr) return text;
  const idx = arr.elements.findIndex((e) => e.value === path);
  if (idx < 0) return text;
  if (arr.elements.length === 1) {
    if (text.slice(arr.lineStart, arr.lineEnd) === addedLine(path)) return text.slice(0, arr.lineStart) + text.slice(arr.lineEnd);
  }
  const el = arr.elements[idx] as { start: number; end: number };
  const prev = arr.elements[idx - 1];
  if (prev) return text.slice(0, prev.end) + text.slice(el.end); // ", path" goes; the original comma stays
  // First element: take the comma and blanks that follow it too.
  let end = el.end;
  const m = /^\s*,[ \t]*/.exec(text.slice(end, arr.close));
  if (m) end += m[0].length;
  return text.slice(0, el.start) + text.slice(end);
}
