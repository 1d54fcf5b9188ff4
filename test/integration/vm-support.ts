// Shared by the vm*.test.ts suites: guest assets, per-test state dirs, and leak checks that look at
// the real system (processes in /proc, files on disk), not at our own bookkeeping.
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestAssets, type GuestAssets } from "../../src/guest/assets.js";
import type { VmConfig } from "../../src/hypervisor/types.js";

export async function assets(): Promise<GuestAssets> {
  return loadGuestAssets();
}

/** A private temp dir for one test; each VM gets a state dir inside it. */
export async function tempRoot(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `kata-ts-${name}-`));
}

export function vmConfig(a: GuestAssets, root: string, id: string, overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    id,
    stateDir: join(root, id),
    vcpus: 1,
    memoryMiB: 512,
    kernelPath: a.kernelPath,
    ...(a.initrdPath === undefined ? {} : { initrdPath: a.initrdPath }),
    rootfsPath: a.rootfsPath,
    kernelCmdline: a.kernelCmdline,
    accel: "tcg",
    ...overrides,
  };
}

/** Pids of processes whose command line mentions `marker` (e.g. a test's temp root). */
export async function processesMentioning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Kill whatever a failed test left behind (by pid, found by marker), then remove the temp root. */
export async function cleanupRoot(root: string): Promise<void> {
  for (const pid of await processesMentioning(root)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await rm(root, { recursive: true, force: true });
}
