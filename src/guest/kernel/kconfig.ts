// Kernel configuration fragments: files of `CONFIG_X=y` / `# CONFIG_X is not set` lines kept in
// src/guest/kernel/config/<common|arch>/*.conf, one file per concern. The build merges them onto
// allnoconfig; Kconfig silently drops an option whose dependencies are not met, so every option a
// fragment asks for is checked against the final .config and a dropped one fails the build.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";

export interface ConfigFragment {
  /** e.g. "common/netfilter.conf". */
  name: string;
  text: string;
}

/** What a fragment asks for: symbol -> value ("y", "64", "\"-kata-ts\"") or "n" for "is not set". */
export type ConfigRequests = Map<string, { value: string; from: string }>;

const setLine = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const unsetLine = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/** The architectures with fragments; the directory name under config/. */
export type KernelArch = "x86_64";

export function hostKernelArch(arch: string = process.arch): KernelArch {
  if (arch === "x64") return "x86_64";
  throw new KataError("UNIMPLEMENTED", `no guest kernel configuration for ${arch} yet (src/guest/kernel/config/ has x86_64)`);
}

/** Fragments for `arch`: common/ first, then the arch's own, each directory in name order. */
export async function loadFragments(configDir: string, arch: KernelArch): Promise<ConfigFragment[]> {
  const out: ConfigFragment[] = [];
  for (const sub of ["common", arch]) {
    const names = (await readdir(join(configDir, sub)).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `kernel config fragments ${join(configDir, sub)} are missing`, { cause: err });
    })).filter((n) => n.endsWith(".conf")).sort();
    for (const n of names) out.push({ name: `${sub}/${n}`, text: await readFile(join(configDir, sub, n), "utf8") });
  }
  return out;
}

/** Parse the requests of all fragments; a malformed line or a symbol asked for twice is an error. */
export function parseFragments(fragments: readonly ConfigFragment[]): ConfigRequests {
  const requests: ConfigRequests = new Map();
  for (const f of fragments) {
    f.text.split("\n").forEach((raw, i) => {
      const line = raw.trim();
      const set = setLine.exec(line);
      const unset = unsetLine.exec(line);
      if (set === null && unset === null) {
        if (line === "" || line.startsWith("#")) return;
        throw new KataError("INVALID_ARGUMENT", `${f.name}:${i + 1}: not a Kconfig line: ${JSON.stringify(line)}`);
      }
      const [sym, value] = set !== null ? [set[1] ?? "", set[2] ?? ""] : [unset?.[1] ?? "", "n"];
      const prev = requests.get(sym);
      if (prev !== undefined) throw new KataError("INVALID_ARGUMENT", `${sym} is set in both ${prev.from} and ${f.name}:${i + 1}`);
      requests.set(sym, { value, from: `${f.name}:${i + 1}` });
    });
  }
  return requests;
}

/** The fragments as one KCONFIG_ALLCONFIG file. */
export function mergeFragments(fragments: readonly ConfigFragment[]): string {
  return fragments.map((f) => `# --- ${f.name}\n${f.text.endsWith("\n") ? f.text : `${f.text}\n`}`).join("");
}

/** sha256 of the merged fragments: with the source version, it names a kernel build. */
export function configHash(fragments: readonly ConfigFragment[]): string {
  return createHash("sha256").update(mergeFragments(fragments)).digest("hex");
}

/** Symbol values of a .config ("n" for "is not set"; absent symbols are not in the map). */
export function parseDotConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const set = setLine.exec(line);
    if (set?.[1] !== undefined) out.set(set[1], set[2] ?? "");
    const unset = unsetLine.exec(line);
    if (unset?.[1] !== undefined) out.set(unset[1], "n");
  }
  return out;
}

/** Every request the final .config does not honour, as "CONFIG_X=y (from file:line): got n". */
export function unmetRequests(requests: ConfigRequests, dotConfig: string): string[] {
  const have = parseDotConfig(dotConfig);
  const problems: string[] = [];
  for (const [sym, want] of requests) {
    const got = have.get(sym) ?? "n";
    if (got !== want.value) {
      problems.push(`${sym}=${want.value} (${want.from}): ${have.has(sym) ? `got ${got}` : "dropped (a dependency is not met)"}`);
    }
  }
  return problems;
}
