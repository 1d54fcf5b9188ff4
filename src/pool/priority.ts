// Where the pool daemon and its VMs run. The daemon answers shims' takes, which a pod start waits
// on: it runs at normal priority, in a cgroup of its own (`kata-ts-pool-daemon`, default CPU weight), out
// of the shim's (the pod's) and containerd's. The VMs it boots (QEMU, virtiofsd, with every thread
// and child) are what costs CPU: they go into a sibling cgroup with a low CPU weight,
// `kata-ts-pool-vms`, at refill_nice, so they boot and idle on CPU that running pods leave. Both
// sit at the root of every hierarchy; a VM a shim adopts leaves for its pod's cgroup and priority.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { setPriority } from "node:os";
import { join } from "node:path";
import { joinCgroup } from "../sandbox/host-cgroup.js";

/**
 * The pool daemon's cgroup, under each hierarchy's root (every pool daemon of the host shares it).
 * Not `kata-ts-pool`, where daemons before this split ran with their VMs at the low weight and
 * would set it low again while they run (an upgrade, several state roots on one host).
 */
export const POOL_CGROUP = "kata-ts-pool-daemon";
/** The pooled VMs' cgroup, beside it (not under it: a child's weight counts only within its parent). */
export const POOL_VMS_CGROUP = "kata-ts-pool-vms";

/** The default weights (a daemon of an older kata-ts left its cgroup at the low ones). */
const DEFAULT_CPU_SHARES = 1024;
const DEFAULT_CPU_WEIGHT = 100;
/**
 * The VMs' cgroup's CPU weight against its siblings (the pods' k8s.io parent has the default 1024
 * shares, v2 weight 100): under full contention the pooled VMs get about 6 % of a CPU, enough to
 * refill in a minute or so on a busy node, too little to starve running pods. (nice does not reach
 * across cgroups; the lowest weight, 2, stalled boots for minutes on a loaded host.)
 */
export const POOL_VMS_CPU_SHARES = 64;
export const POOL_VMS_CPU_WEIGHT = 6;

async function setWeight(dirs: readonly string[], shares: number, weight: number): Promise<void> {
  for (const dir of dirs) {
    // Whichever the hierarchy has (v2 cpu.weight, v1 cpu.shares); the others are not there.
    await writeFile(join(dir, "cpu.weight"), String(weight)).catch(() => undefined);
    await writeFile(join(dir, "cpu.shares"), String(shares)).catch(() => undefined);
  }
}

/** Moves `pid` (the daemon) into the pool's own cgroup in every hierarchy, at the default CPU weight. Idempotent. */
export async function joinPoolCgroup(pid: number): Promise<void> {
  await setWeight((await joinCgroup(`/${POOL_CGROUP}`, pid)).dirs, DEFAULT_CPU_SHARES, DEFAULT_CPU_WEIGHT);
}

/** The pid and its descendants (virtiofsd forks a sandboxed child). */
export async function withDescendants(pid: number): Promise<number[]> {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    for (const tid of await readdir(`/proc/${p}/task`).catch(() => [] as string[])) {
      const kids = await readFile(`/proc/${p}/task/${tid}/children`, "utf8").catch(() => "");
      for (const k of kids.split(" ").filter((s) => s.trim() !== "")) out.push(Number(k));
    }
  }
  return out;
}

/** Every thread of `pid` at `nice` (nice is per thread; threads made later inherit their maker's). */
export async function reniceThreads(pid: number, nice: number): Promise<void> {
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // a thread that just ended
    }
  }
}

/**
 * A pooled VM's process (QEMU or virtiofsd) and its descendants into the VMs' low-weight cgroup at
 * `nice`, every thread. Called as each starts and again once the VM is booted (threads made
 * meanwhile by a thread not yet reniced). Idempotent.
 */
export async function lowerPooledProcess(pid: number, nice: number): Promise<void> {
  for (const p of await withDescendants(pid)) {
    const joined = await joinCgroup(`/${POOL_VMS_CGROUP}`, p);
    await setWeight(joined.dirs, POOL_VMS_CPU_SHARES, POOL_VMS_CPU_WEIGHT);
    await reniceThreads(p, nice);
  }
}
