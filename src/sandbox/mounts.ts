// Host mounts the sandbox makes: bind mounts into the shared dir, and the shared dir itself made
// a shared mount so that binds added after virtiofsd started (it runs in its own mount namespace,
// a slave copy) still reach it. Node has no mount(2): the mount tool does it.
import { readFile } from "node:fs/promises";
import { run } from "../util/exec.js";

export async function bindMount(source: string, target: string, opts: { readonly?: boolean; recursive?: boolean } = {}): Promise<void> {
  await run("mount", [opts.recursive === false ? "--bind" : "--rbind", source, target], { timeoutMs: 30_000 });
  if (opts.readonly) await run("mount", ["-o", "remount,bind,ro", target], { timeoutMs: 30_000 });
}

export async function makeSharedMountPoint(dir: string): Promise<void> {
  await run("mount", ["--bind", dir, dir], { timeoutMs: 30_000 });
  await run("mount", ["--make-shared", dir], { timeoutMs: 30_000 });
}

/** Every mount point at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = info
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\040/g, " "))
    .filter((p) => p === dir || p.startsWith(prefix));
  return points.sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or below `dir` (lazily, so a busy mount cannot block teardown). */
export async function unmountAll(dir: string): Promise<void> {
  for (let round = 0; round < 8; round++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) return;
    for (const p of points) await run("umount", ["-l", p], { timeoutMs: 30_000, allowNonZero: true });
  }
}
