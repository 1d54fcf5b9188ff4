// Splits the host memory of a private containerd's kata-ts pods into what each pod's cgroup holds
// and what is node-level, as kubelet sees it: every pod runs under a kubelet-like pod cgroup
// (test/harness/pod-cgroup.ts) and its shim moves the VM there; what mentions the harness dir but
// sits in no pod cgroup (the pool daemon, its ready VMs, its warm shim servers) is node-level.
// For each pod: the PSS of its processes, its cgroup's charge (memory.usage_in_bytes or
// memory.current, with anon/shmem/file), and whether its VM was adopted from the pool (its QEMU's
// parent is not in the pod's cgroup: the daemon started it, so its pre-adoption pages stay charged
// to the pool's cgroup: memory is charged to whoever touched it first and does not move with a
// process). Figures only, no asserts.
import { readFile } from "node:fs/promises";
import type { CgroupMemory, PodCgroup } from "../../test/harness/pod-cgroup.js";
import { processesMentioning } from "../../test/harness/processes.js";
import { podRole, pssKiB } from "./pod-pss.js";
import { podSideProcesses } from "./process-tree.js";
import { tcgJitMemfd } from "./vmm-memory.js";

export interface PodMemory {
  podId: string;
  pssKiB: number;
  /** utime+stime of the pod's processes, clock ticks. */
  cpuTicks: number;
  byRoleKiB: Record<string, number>;
  cgroup: CgroupMemory;
  adopted: boolean;
  /**
   * What the pod's QEMU would hold again of its TCG code buffer once the guest works (buffer size
   * less what it holds now), KiB: non-zero after an idle pod gave its cache back
   * ([hypervisor.qemu] tcg_idle_trim_s); 0 for an anonymous buffer, which is always whole.
   */
  tcgRefillKiB: number;
}

export interface MemorySplit {
  pods: PodMemory[];
  /** Node-level processes (in no pod cgroup): PSS and CPU ticks in all, PSS by role. */
  node: { pssKiB: number; cpuTicks: number; byRoleKiB: Record<string, number> };
}

/** The memory cgroup path of a process (cgroup v1 `memory` line, else the v2 `0::` line). */
async function memoryCgroupOf(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
  const lines = text.split("\n").map((l) => l.split(":"));
  const v1 = lines.find((f) => f[1]?.split(",").includes("memory"));
  const v2 = lines.find((f) => f[0] === "0" && f[1] === "");
  return (v1 ?? v2)?.slice(2).join(":");
}

async function statOf(pid: number): Promise<{ ppid: number; cpuTicks: number } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  if (stat === "") return undefined;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(f[1]), cpuTicks: Number(f[11] ?? 0) + Number(f[12] ?? 0) };
}

async function roleOf(pid: number, known: Map<number, string[]>): Promise<string> {
  const cmdline = known.get(pid) ?? (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
  if (cmdline.includes("pool") && cmdline.includes("serve")) return "pool-daemon";
  return podRole({ pid, cmdline }) ?? "other";
}

const add = (o: Record<string, number>, k: string, v: number): void => {
  o[k] = (o[k] ?? 0) + v;
};

/** Reads the split now; `pods` maps each pod sandbox id to its pod cgroup. */
export async function memorySplit(baseDir: string, pods: ReadonlyMap<string, PodCgroup>): Promise<MemorySplit> {
  const known = new Map((await processesMentioning(baseDir)).map((p) => [p.pid, p.cmdline]));
  const byParent = [...pods].map(([podId, cg]) => ({ podId, prefix: `${cg.parent}/`, cg }));
  const acc = new Map<string, { pssKiB: number; cpuTicks: number; byRoleKiB: Record<string, number>; qemuPpids: number[]; pids: Set<number>; tcgRefillKiB: number }>();
  for (const { podId } of byParent) acc.set(podId, { pssKiB: 0, cpuTicks: 0, byRoleKiB: {}, qemuPpids: [], pids: new Set(), tcgRefillKiB: 0 });
  const node = { pssKiB: 0, cpuTicks: 0, byRoleKiB: {} as Record<string, number> };
  for (const pid of await podSideProcesses(baseDir)) {
    const [cg, st] = await Promise.all([memoryCgroupOf(pid), statOf(pid)]);
    if (st === undefined) continue; // gone meanwhile
    const pss = await pssKiB(pid);
    const role = await roleOf(pid, known);
    const owner = byParent.find((p) => cg !== undefined && `${cg}/`.startsWith(p.prefix));
    const a = owner === undefined ? node : acc.get(owner.podId)!;
    a.pssKiB += pss;
    a.cpuTicks += st.cpuTicks;
    add(a.byRoleKiB, role, pss);
    if (owner !== undefined) {
      acc.get(owner.podId)!.pids.add(pid);
      if (role === "qemu") {
        acc.get(owner.podId)!.qemuPpids.push(st.ppid);
        const cache = await tcgJitMemfd(pid);
        if (cache !== undefined) acc.get(owner.podId)!.tcgRefillKiB += Math.max(0, cache.bufferKiB - cache.pssKiB);
      }
    }
  }
  const out: PodMemory[] = [];
  for (const { podId, cg } of byParent) {
    const a = acc.get(podId)!;
    out.push({
      podId,
      pssKiB: a.pssKiB,
      cpuTicks: a.cpuTicks,
      byRoleKiB: a.byRoleKiB,
      cgroup: await cg.memory(),
      adopted: a.qemuPpids.length > 0 && a.qemuPpids.every((pp) => !a.pids.has(pp)),
      tcgRefillKiB: a.tcgRefillKiB,
    });
  }
  return { pods: out, node };
}
