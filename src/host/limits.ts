// What this host can give one pod VM: its online CPUs and its memory. A VM asked for more does not
// fail cleanly later: QEMU starts a 64 GiB guest on a 24 GiB host (guest RAM is allocated lazily),
// a 1 TiB guest touches GiBs of page tables while it boots and stalls, and 64 TCG vCPUs on 2 cores
// never get the agent to answer. So the pod's size is checked against these before anything starts.
import { readFile } from "node:fs/promises";
import { cpus } from "node:os";
import { KataError } from "../util/errors.js";

export interface HostLimits {
  cpus: number;
  /** Where `cpus` came from, for error messages. */
  cpusSource: string;
  memoryMiB: number;
  /** Where `memoryMiB` came from, for error messages. */
  memorySource: string;
}

/** "0-3,8,10-11" -> 7 */
export function countCpuList(list: string): number {
  let n = 0;
  for (const part of list.trim().split(",")) {
    if (part === "") continue;
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || !Number.isInteger(a)) return NaN;
    n += b === undefined ? 1 : Number.isInteger(b) && b >= a ? b - a + 1 : NaN;
  }
  return n;
}

/** MemTotal in MiB from /proc/meminfo text. */
export function memTotalMiB(meminfo: string): number {
  const m = /^MemTotal:\s+(\d+)\s+kB$/m.exec(meminfo);
  return m?.[1] === undefined ? NaN : Math.floor(Number(m[1]) / 1024);
}

/**
 * The one rule for a VM's size on this host, for callers that size a VM from their own flags
 * (`kata-ts run`); pods go through src/shim/pod-sizing.ts, which names the pod's sources.
 */
export function requireFitsHost(vm: { vcpus: number; memoryMiB: number }, host: HostLimits, names: { vcpus: string; memoryMiB: string }): void {
  if (vm.vcpus > host.cpus) {
    throw new KataError("RESOURCE_EXHAUSTED", `${names.vcpus} ${vm.vcpus} is more than this host's ${host.cpus} CPUs (${host.cpusSource})`);
  }
  if (!(vm.memoryMiB <= host.memoryMiB)) {
    throw new KataError("RESOURCE_EXHAUSTED", `${names.memoryMiB} ${vm.memoryMiB} MiB is more than this host's ${host.memoryMiB} MiB (${host.memorySource})`);
  }
}

export async function hostLimits(): Promise<HostLimits> {
  const online = await readFile("/sys/devices/system/cpu/online", "utf8").catch(() => "");
  const fromSys = countCpuList(online);
  const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
  return {
    cpus: fromSys > 0 ? fromSys : cpus().length,
    cpusSource: fromSys > 0 ? "online CPUs in /sys/devices/system/cpu/online" : "CPUs listed by the OS",
    memoryMiB: memTotalMiB(meminfo),
    memorySource: "MemTotal in /proc/meminfo",
  };
}
