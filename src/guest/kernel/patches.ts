// Kernel patches: unified diffs kept in src/guest/kernel/patches/<common|arch>/*.patch, applied to
// the unpacked linux-source tree in name order (common/ first, then the arch's own) with
// `patch -p1 --forward`. Each opens with a header saying what it changes and why; a header line
// `Adds-Parameter: NAME` declares a kernel parameter the patch adds, which the manifest records so
// the host passes it only to a kernel that takes it. The set's sha256 is part of the kernel's
// identity (build cache key, manifest), so a changed patch builds the kernel again.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";
import type { KernelArch } from "./kconfig.js";

export interface KernelPatch {
  /** e.g. "common/0001-lapic-timer-period.patch". */
  name: string;
  text: string;
}

const addsParameterLine = /^Adds-Parameter:\s*([A-Za-z0-9_.-]+)\s*$/;
const diffStart = /^(diff |--- |Index: )/;

/** Patches for `arch`: common/ first, then the arch's own, each directory in name order. A missing directory has none. */
export async function loadPatches(patchesDir: string, arch: KernelArch): Promise<KernelPatch[]> {
  const out: KernelPatch[] = [];
  for (const sub of ["common", arch]) {
    const names = (await readdir(join(patchesDir, sub)).catch(() => [] as string[])).filter((n) => n.endsWith(".patch")).sort();
    for (const n of names) out.push({ name: `${sub}/${n}`, text: await readFile(join(patchesDir, sub, n), "utf8") });
  }
  for (const p of out) checkPatch(p);
  return out;
}

/** A patch needs a header (what and why) before its first diff, and at least one file it changes. */
export function checkPatch(p: KernelPatch): void {
  const lines = p.text.split("\n");
  const first = lines.findIndex((l) => diffStart.test(l));
  if (first < 0 || patchedFiles([p]).length === 0) {
    throw new KataError("INVALID_ARGUMENT", `kernel patch ${p.name} is not a unified diff (no "--- a/..." / "+++ b/..." lines)`);
  }
  if (!lines.slice(0, first).some((l) => l.trim() !== "")) {
    throw new KataError("INVALID_ARGUMENT", `kernel patch ${p.name} has no header: say what it changes and why before the diff`);
  }
}

/** sha256 over the patches' names and texts, in application order; undefined for none (a stock kernel keeps its identity). */
export function patchesHash(patches: readonly KernelPatch[]): string | undefined {
  if (patches.length === 0) return undefined;
  const h = createHash("sha256");
  for (const p of patches) h.update(`${p.name}\0${p.text}\0`);
  return h.digest("hex");
}

/** The kernel parameters the patches declare (`Adds-Parameter:` header lines), sorted. */
export function addedParameters(patches: readonly KernelPatch[]): string[] {
  const out = new Set<string>();
  for (const p of patches) {
    for (const line of p.text.split("\n")) {
      if (diffStart.test(line)) break;
      const m = addsParameterLine.exec(line.trim());
      if (m?.[1] !== undefined) out.add(m[1]);
    }
  }
  return [...out].sort();
}

/** Source files the patches change (relative to the tree's root, -p1), sorted. */
export function patchedFiles(patches: readonly KernelPatch[]): string[] {
  const out = new Set<string>();
  for (const p of patches) {
    for (const line of p.text.split("\n")) {
      const m = /^\+\+\+ (\S+)/.exec(line);
      if (m?.[1] === undefined || m[1] === "/dev/null") continue;
      out.add(m[1].split("/").slice(1).join("/"));
    }
  }
  return [...out].filter((f) => f !== "").sort();
}

/** Apply each patch in order; one that does not apply fails naming it, with what patch said. */
export async function applyPatches(srcDir: string, patches: readonly KernelPatch[], log: (line: string) => void): Promise<void> {
  for (const p of patches) {
    // --forward: a patch that looks applied already is an error, not a question; -r -: no .rej files.
    await run("patch", ["-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-r", "-"], { cwd: srcDir, input: p.text, timeoutMs: 60_000 }).catch((err: unknown) => {
      const missing = err instanceof KataError && err.code === "NOT_FOUND";
      const why = missing ? "the patch command is missing (apt-get install patch; kata-ts setup installs it)" : err instanceof Error ? err.message : String(err);
      throw new KataError("FAILED_PRECONDITION", `kernel patch ${p.name} does not apply to the kernel source: ${why}`, { cause: err });
    });
    log(`kernel: applied ${p.name}`);
  }
}
