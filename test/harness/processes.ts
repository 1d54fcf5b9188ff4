// Finds processes that belong to one test harness: containerd, its shims, and whatever the shims
// start (runc containers, QEMU, virtiofsd). Shims re-parent themselves away from containerd, so
// ancestry is not enough; instead each harness process carries the harness's unique temp dir in
// its command line or environment (containerd passes its environment on to shims).
import { readFileSync } from "node:fs";
import { readdir, readFile, readlink } from "node:fs/promises";

export interface ProcInfo {
  pid: number;
  cmdline: string[];
}

async function readNul(path: string): Promise<string[] | undefined> {
  try {
    const raw = await readFile(path, "utf8");
    return raw.split("\0").filter((s) => s.length > 0);
  } catch {
    return undefined; // the process exited, or is a kernel thread we may not read
  }
}

/** Live processes (not zombies) whose command line or environment mentions `marker`. */
export async function processesMentioning(marker: string): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const cmdline = await readNul(`/proc/${pid}/cmdline`);
    if (cmdline === undefined || cmdline.length === 0) continue; // zombies and kernel threads
    const env = (await readNul(`/proc/${pid}/environ`)) ?? [];
    if (cmdline.some((a) => a.includes(marker)) || env.some((e) => e.includes(marker))) {
      out.push({ pid, cmdline });
    }
  }
  return out;
}

/** Processes whose root directory lies under `dir` (containers on a rootfs under the state dir). */
export async function processesRootedUnder(dir: string): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let root: string;
    try {
      root = await readlink(`/proc/${pid}/root`);
    } catch {
      continue;
    }
    if (root.startsWith(`${dir}/`)) {
      const cmdline = (await readNul(`/proc/${pid}/cmdline`)) ?? [];
      if (cmdline.length > 0) out.push({ pid, cmdline });
    }
  }
  return out;
}

/** Processes whose cgroup path names any of `ids` (containers run by runc under a shim). */
export async function processesInCgroups(ids: readonly string[]): Promise<ProcInfo[]> {
  if (ids.length === 0) return [];
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let cg: string;
    try {
      cg = await readFile(`/proc/${pid}/cgroup`, "utf8");
    } catch {
      continue;
    }
    if (ids.some((id) => cg.includes(id))) {
      const cmdline = (await readNul(`/proc/${pid}/cmdline`)) ?? [];
      if (cmdline.length > 0) out.push({ pid, cmdline });
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL each process; then wait (bounded) until they are gone. */
export async function killAll(procs: readonly ProcInfo[], timeoutMs = 10_000): Promise<void> {
  for (const p of procs) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (procs.some((p) => isAlive(p.pid) && !isZombie(p.pid)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

function isZombie(pid: number): boolean {
  try {
    // Synchronous read is fine here: a tiny procfs file, polled in a teardown loop.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}
