// The host side of the host-mount tests: a hostPath tree as a systemd host has it (a shared mount
// with shared submounts, so that any propagation back from a pod's copy would reach it), a
// read-only volume with a submount, and single files to bind. What a pod must never change:
// every mount listed by `hostMounts()` is still there after the pod is gone.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../src/util/exec.js";
import { mountsUnder, unmountAllUnder } from "../harness/mounts.js";

export interface HostMountTree {
  dir: string;
  /** rw volume: shared tmpfs with submount sub/ and an empty dir late/ for a mount added mid-pod. */
  tree: string;
  /** read-only volume: shared tmpfs with submount sub/, a file in each. */
  ro: string;
  /** rw single-file mount. */
  file: string;
  /** ro single-file mount. */
  roFile: string;
}

async function sharedTmpfs(dir: string, name: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run("mount", ["-t", "tmpfs", "-o", "size=1m", name, dir], { timeoutMs: 10_000 });
  await run("mount", ["--make-shared", dir], { timeoutMs: 10_000 });
}

export async function makeHostMountTree(): Promise<HostMountTree> {
  const dir = await mkdtemp(join(tmpdir(), "kts-hostpath-"));
  const t: HostMountTree = { dir, tree: join(dir, "tree"), ro: join(dir, "rotree"), file: join(dir, "rw.txt"), roFile: join(dir, "ro.txt") };
  try {
    // The holder makes `dir` a shared mount of its own, like / under systemd.
    await sharedTmpfs(dir, "kts-hostpath");
    for (const root of [t.tree, t.ro]) {
      await sharedTmpfs(root, "kts-hostpath-vol");
      await sharedTmpfs(join(root, "sub"), "kts-hostpath-sub");
      await writeFile(join(root, "top.txt"), "top\n");
      await writeFile(join(root, "sub", "sub.txt"), "sub\n");
    }
    await mkdir(join(t.tree, "late"));
    await writeFile(t.file, "from-host-1\n");
    await writeFile(t.roFile, "read-only\n");
    return t;
  } catch (err) {
    await removeHostMountTree(t);
    throw err;
  }
}

/** A mount the host adds while the pod runs (under the rw volume). */
export async function mountLate(t: HostMountTree): Promise<void> {
  await sharedTmpfs(join(t.tree, "late"), "kts-hostpath-late");
  await writeFile(join(t.tree, "late", "late.txt"), "late\n");
}

/** The host's mounts in the tree, shallowest first. */
export async function hostMounts(t: HostMountTree): Promise<string[]> {
  return (await mountsUnder([t.dir])).reverse();
}

export async function removeHostMountTree(t: HostMountTree): Promise<void> {
  await unmountAllUnder([t.dir]);
  await rm(t.dir, { recursive: true, force: true });
}
