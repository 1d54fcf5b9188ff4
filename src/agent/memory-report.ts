// Diagnostics for the guest's memory after boot: with kata_ts.memory_report=SECONDS on the kernel
// command line, the agent logs, that many seconds after it is ready, the kernel's view of where
// guest RAM went (/proc/meminfo) and its own resident set (/proc/self/status). Off by default: it
// costs a console line, and under TCG every console byte is emulated.
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { describeError } from "../util/errors.js";

export const MEMORY_REPORT_PARAM = "kata_ts.memory_report";

const MEMINFO_FIELDS = ["MemTotal", "MemFree", "Cached", "Shmem", "AnonPages", "Mapped", "Slab", "SReclaimable", "SUnreclaim", "PageTables", "KernelStack", "Percpu"];
const STATUS_FIELDS = ["VmRSS", "RssAnon", "RssFile", "VmHWM"];

/** Seconds after ready, from `kata_ts.memory_report=N`; undefined when absent or not a number. */
export function memoryReportDelay(cmdline: string): number | undefined {
  const param = cmdline.trim().split(/\s+/).find((p) => p.startsWith(`${MEMORY_REPORT_PARAM}=`));
  const n = param === undefined ? NaN : Number(param.slice(MEMORY_REPORT_PARAM.length + 1));
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** "Name=N" (kB) for each field of a /proc key: value file that is present. */
export function pickFields(text: string, fields: readonly string[]): string {
  const values = new Map(text.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim().split(/\s+/)[0]] as const));
  return fields.filter((f) => values.has(f)).map((f) => `${f}=${values.get(f)}`).join(" ");
}

/** Never throws: a missing /proc file is logged. */
export async function reportMemoryLater(cmdline: string, log: (message: string) => void): Promise<void> {
  const delay = memoryReportDelay(cmdline);
  if (delay === undefined) return;
  await sleep(delay * 1000, undefined, { ref: false });
  const [meminfo, status] = await Promise.all([readFile("/proc/meminfo", "latin1"), readFile("/proc/self/status", "latin1")]).catch((err: unknown) => {
    log(`memory report: ${describeError(err)}`);
    return [undefined, undefined];
  });
  if (meminfo === undefined || status === undefined) return;
  const slabs = await readFile("/proc/slabinfo", "latin1").then(topSlabs, () => "no /proc/slabinfo");
  log(`memory (kB): ${pickFields(meminfo, MEMINFO_FIELDS)}; agent ${pickFields(status, STATUS_FIELDS)}; heap used ${Math.round(process.memoryUsage().heapUsed / 1024)} total ${Math.round(process.memoryUsage().heapTotal / 1024)}; largest slabs (kB): ${slabs}`);
}

/** The eight slab caches holding the most memory, "name=kB" (from /proc/slabinfo: num_slabs * pages per slab). */
export function topSlabs(slabinfo: string): string {
  const rows = slabinfo.split("\n").filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("slabinfo"));
  const sized = rows.map((l) => {
    const f = l.split(/\s+/);
    // name active_objs num_objs objsize objperslab pagesperslab : tunables ... : slabdata active_slabs num_slabs sharedavail
    const pagesPerSlab = Number(f[5]);
    const numSlabs = Number(f[f.indexOf("slabdata") + 2]);
    return [f[0] ?? "?", (pagesPerSlab * numSlabs * 4) | 0] as const;
  });
  return sized.sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, kb]) => `${n}=${kb}`).join(" ");
}
