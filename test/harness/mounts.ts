// Mount table helpers for test teardown: containerd, its shims and snapshotters leave mounts
// (overlay rootfs, shm, netns bind mounts) under the private root/state dirs when a test dies
// half-way; teardown must find and unmount them before it can remove the dirs.
import { readFile } from "node:fs/promises";
import { tryRun } from "../../src/util/exec.js";

/** Mount points of this process's mount namespace, in /proc/self/mountinfo order. */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const mp = fields[4];
    // mountinfo escapes space, tab, newline and backslash as octal.
    if (mp !== undefined) out.push(mp.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return out;
}

function isUnder(path: string, dir: string): boolean {
  const d = dir.endsWith("/") ? dir : `${dir}/`;
  return path === dir || path.startsWith(d);
}

/** Mount points at or below any of `dirs`, deepest first (the order to unmount them in). */
export async function mountsUnder(dirs: readonly string[]): Promise<string[]> {
  const all = await mountPoints();
  const hits = all.filter((mp) => dirs.some((d) => isUnder(mp, d)));
  return [...new Set(hits)].sort((a, b) => b.length - a.length);
}

/** Unmount everything below `dirs`; a lazy unmount is the fallback for busy mounts. */
export async function unmountAllUnder(dirs: readonly string[]): Promise<void> {
  // Stacked mounts on one point need one umount each: loop until nothing is left or no progress.
  for (let round = 0; round < 8; round++) {
    const mps = await mountsUnder(dirs);
    if (mps.length === 0) return;
    for (const mp of mps) {
      if ((await tryRun("umount", [mp], { timeoutMs: 10_000 })) === undefined) {
        await tryRun("umount", ["-l", mp], { timeoutMs: 10_000 });
      }
    }
  }
}
