// A container's resource figures, read from its cgroup v2 directory in the guest.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export interface ContainerStats {
  cpu: { usageUsec: bigint; userUsec: bigint; systemUsec: bigint; nrPeriods: bigint; nrThrottled: bigint; throttledUsec: bigint };
  memory: {
    usage: bigint;
    limit: bigint; // 0 when unlimited ("max")
    maxUsage: bigint;
    swapUsage: bigint;
    anon: bigint;
    file: bigint;
    inactiveFile: bigint;
    oomEvents: bigint;
    oomKillEvents: bigint;
    pgfault: bigint;
    pgmajfault: bigint;
  };
  pids: { current: bigint; limit: bigint };
  timestamp: Date;
}

/** "key value" lines (cpu.stat, memory.stat, memory.events) as a map; a missing file is empty. */
export async function readKeyed(dir: string, file: string): Promise<Map<string, bigint>> {
  const text = await readFile(join(dir, file), "utf8").catch(() => "");
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k !== undefined && v !== undefined && /^\d+$/.test(v)) out.set(k, BigInt(v));
  }
  return out;
}

/** A single-number file; "max" and missing files read as 0. */
async function readNumber(dir: string, file: string): Promise<bigint> {
  const text = (await readFile(join(dir, file), "utf8").catch(() => "")).trim();
  return /^\d+$/.test(text) ? BigInt(text) : 0n;
}

export async function readStats(dir: string): Promise<ContainerStats> {
  const [cpu, mem, events] = await Promise.all([readKeyed(dir, "cpu.stat"), readKeyed(dir, "memory.stat"), readKeyed(dir, "memory.events")]);
  const n = (m: Map<string, bigint>, k: string): bigint => m.get(k) ?? 0n;
  return {
    cpu: {
      usageUsec: n(cpu, "usage_usec"),
      userUsec: n(cpu, "user_usec"),
      systemUsec: n(cpu, "system_usec"),
      nrPeriods: n(cpu, "nr_periods"),
      nrThrottled: n(cpu, "nr_throttled"),
      throttledUsec: n(cpu, "throttled_usec"),
    },
    memory: {
      usage: await readNumber(dir, "memory.current"),
      limit: await readNumber(dir, "memory.max"),
      maxUsage: await readNumber(dir, "memory.peak"),
      swapUsage: await readNumber(dir, "memory.swap.current"),
      anon: n(mem, "anon"),
      file: n(mem, "file"),
      inactiveFile: n(mem, "inactive_file"),
      oomEvents: n(events, "oom"),
      oomKillEvents: n(events, "oom_kill"),
      pgfault: n(mem, "pgfault"),
      pgmajfault: n(mem, "pgmajfault"),
    },
    pids: { current: await readNumber(dir, "pids.current"), limit: await readNumber(dir, "pids.max") },
    timestamp: new Date(),
  };
}

/** The pids in a cgroup and its descendants (cgroup.procs of each), ascending; a gone cgroup is empty. */
export async function cgroupPids(dir: string): Promise<number[]> {
  const pids = new Set<number>();
  const walk = async (d: string): Promise<void> => {
    const text = await readFile(join(d, "cgroup.procs"), "utf8").catch(() => "");
    for (const line of text.split("\n")) if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name));
  };
  await walk(dir);
  return [...pids].sort((a, b) => a - b);
}
