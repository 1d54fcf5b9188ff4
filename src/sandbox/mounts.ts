// Host mounts the sandbox makes: host paths bound into the shared dir, and the shared dir itself
// made a shared mount so that binds added after virtiofsd started (it runs in its own mount
// namespace, a slave copy) still reach it. Node has no mount(2): the mount tool does it.
//
// Propagation runs one way only: host source -> the pod's copy in the share -> virtiofsd. A bind
// of a shared host mount would join the host's peer group, and the pod's unmounts would then
// unmount the host's own submounts; a bind made straight under the shared share dir would reach
// virtiofsd before a read-only remount (remounts do not propagate). So every bind is prepared in a
// private staging mount (made private or slave, then read-only mount by mount), and only then
// moved into the share, where virtiofsd receives the finished copy.
import { readFile, rm, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";

const MOUNT_TIMEOUT = { timeoutMs: 30_000 };

/** How host mounts reach the pod's copy later: never (private) or host -> pod only (slave). */
export type Propagation = "private" | "slave";

export interface BindOptions {
  readonly: boolean;
  /** Also bind the source's submounts (rbind), as containerd asks for volumes. */
  recursive: boolean;
  propagation: Propagation;
}

/** The share dir as its own shared peer group: never a peer of the host mount it lives on. */
export async function makeSharedMountPoint(dir: string): Promise<void> {
  await run("mount", ["--bind", dir, dir], MOUNT_TIMEOUT);
  await run("mount", ["--make-private", dir], MOUNT_TIMEOUT);
  await run("mount", ["--make-shared", dir], MOUNT_TIMEOUT);
}

/**
 * A private tmpfs at `dir` to prepare binds in (a bind prepared under a shared mount would
 * propagate, and `mount --move` refuses a mount whose parent is shared); removed afterwards.
 */
export async function withStage<T>(dir: string, fn: (stage: string) => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  await run("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "kata-ts-stage", dir], MOUNT_TIMEOUT);
  try {
    await run("mount", ["--make-private", dir], MOUNT_TIMEOUT);
    return await fn(dir);
  } finally {
    await unmountAll(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Binds `source` (a directory or a file) onto `target`, which must exist and be of the same kind,
 * through the private `stage` dir: propagation and read-only (on every submount) are set before
 * the copy becomes visible under `target`.
 */
export async function bindThroughStage(source: string, target: string, stage: string, opts: BindOptions & { isDirectory: boolean }): Promise<void> {
  const staged = join(stage, "bind");
  if (opts.isDirectory) await mkdir(staged);
  else await writeFile(staged, "");
  try {
    await run("mount", [opts.recursive ? "--rbind" : "--bind", source, staged], MOUNT_TIMEOUT);
    // First of all: out of the host's peer group, so nothing done to the copy reaches the host.
    await run("mount", [opts.propagation === "slave" ? "--make-rslave" : "--make-rprivate", staged], MOUNT_TIMEOUT);
    if (opts.readonly) {
      // A bind remount keeps the other per-mount flags (nosuid, nodev, noexec): libmount passes them.
      for (const mp of (await mountsUnder(staged)).reverse()) await run("mount", ["-o", "remount,bind,ro", mp], MOUNT_TIMEOUT);
    }
    await run("mount", ["--move", staged, target], MOUNT_TIMEOUT);
  } finally {
    // Left only if a step failed; on success the move emptied it.
    await unmountAll(staged);
    await rm(staged, { recursive: true, force: true });
  }
}

function unescapeMountPath(p: string): string {
  // mountinfo escapes space, tab, newline and backslash as octal.
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Every mount point at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = info
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map(unescapeMountPath)
    .filter((p) => p === dir || p.startsWith(prefix));
  return points.sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or below `dir`: each outermost mount is detached lazily with its
 * subtree (a busy mount cannot block teardown). Throws if mounts remain, so that no caller goes
 * on to delete the dir's contents through a mount that is still there.
 */
export async function unmountAll(dir: string): Promise<void> {
  let points = await mountsUnder(dir);
  for (let round = 0; round < 8 && points.length > 0; round++) {
    const outermost = points.filter((p) => !points.some((q) => q !== p && p.startsWith(q.endsWith("/") ? q : `${q}/`)));
    for (const p of new Set(outermost)) await run("umount", ["-l", p], { ...MOUNT_TIMEOUT, allowNonZero: true });
    points = await mountsUnder(dir);
  }
  if (points.length > 0) {
    throw new KataError("INTERNAL", `cannot unmount ${points.join(", ")}; not removing ${dir}: unmount them by hand (umount -l), then remove the pod again`);
  }
}
