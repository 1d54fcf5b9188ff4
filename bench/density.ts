// Density: the host cost per idle pod when many run at once, kata-ts against runc in the same run.
// N pods (one busybox `sleep` container each) are started through CRI on one private containerd
// and left running; after a settling time the bench sums the PSS of every pod-side host process
// (shims, QEMU, virtiofsd, runc's containers) and divides by N, and reads the drop in MemAvailable
// since before the first pod. Then the pods are removed and the same is done with runc.
// kata-ts runs as configured by default: the VM pool on (--no-pool turns it off). The pool's own
// processes (its daemon, ready VM, warm shim server: node-level, in the pool's cgroups) are
// counted in the kata-ts figure as a share divided by N, as issue 14 defines density, and are
// reported apart too; before reading, the bench waits for the pool to hold its ready VM again.
// With the node-level shim server (`[runtime] shim_server = "node"` in --kata-config), its keeper
// and server serve every pod: they are the "node-shim" role, summed and divided by N like the rest.
// Where pod VMs give their TCG translation cache back while idle ([hypervisor.qemu] tcg_idle_trim_s),
// it then waits (--trim-wait-s) for that idle state, and prints the cache's share of QEMU's figure.
// Prints figures; never asserts.
// Idle CPU: utime+stime of the same processes over --cpu-window-s after the settling time, per
// pod by role, in millicores (an idle TCG guest still costs host CPU; on 2 cores that can cap
// density before memory does).
// Ctrl-C or SIGTERM stops and removes every pod the bench started, then its containerd.
// Usage: see USAGE below (`node dist/bench/density.js --help`).
import { mkdir, readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { poolPathsOf, waitPooled } from "../test/e2e/pool-fixture.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { processesMentioning } from "../test/harness/processes.js";
import { checkOptions, exitWithUsage, intOption, numberOption, parseBenchArgs } from "./lib/args.js";
import { podRole, pssKiB } from "./lib/pod-pss.js";
import { tcgJitMemfd } from "./lib/vmm-memory.js";
import { podSideProcesses } from "./lib/process-tree.js";
import { inPoolCgroup, stopPoolDaemon } from "./lib/pool-daemon.js";
import { PodsCleanup } from "./lib/pods-cleanup.js";

type Handler = "kata-ts" | "runc";

interface DensityFigures {
  /** Every pod-side process and a 1/N share of the node-level pool, per pod. */
  pssPerPodMiB: number;
  /** The pods' own processes only, per pod. */
  podsOnlyPssPerPodMiB: number;
  /** The node-level pool in all (not divided), and by role. */
  poolPssMiB: number;
  poolByRoleMiB: Record<string, number>;
  memAvailablePerPodMiB: number;
  byRoleMiB: Record<string, number>;
  /** Host CPU per idle pod over the window, millicores, by role. */
  cpuByRoleMillicores: Record<string, number>;
  startMs: number[];
  /** The pods' QEMUs' TCG code buffers (PSS, per pod) when they are memfds (split-wx); else undefined. */
  tcgCachePerPodMiB: number | undefined;
  /** Pods whose TCG cache was given back while idle ([hypervisor.qemu] tcg_idle_trim_s), and after how long. */
  trimmedPods: number;
  trimWaitS: number;
  /** Pods measured: --pods, or fewer when MemAvailable reached --floor-mib. */
  pods: number;
}

/** MemAvailable an idle kata-ts pod takes, MiB, rounded up from the measured ~130-140 (docs/density.md): for the check before the run. */
const KATA_POD_ESTIMATE_MIB = 150;

const USAGE = `usage: node dist/bench/density.js [--pods N] [--settle-s S] [--trim-wait-s S] [--cpu-window-s S] [--floor-mib M] [--no-pool] [--no-runc] [--kata-config FILE] [--json]

Starts N idle pods (busybox sleep) through CRI on a private containerd with kata-ts, then the same
with runc, and prints the host cost per pod: PSS of the pod-side processes, MemAvailable drop,
idle CPU. kata-ts runs with the VM pool on, as configured by default: its daemon, ready VM and warm
shim server are node-level and counted as a share divided by N (and printed apart). Ctrl-C or SIGTERM removes every pod the bench started.

  --pods N            idle pods running at once, per runtime (default 10)
  --settle-s S        seconds after the last pod starts before memory is read (default 15)
  --trim-wait-s S     then, under TCG with idle trimming on ([hypervisor.qemu] tcg_idle_trim_s), up to
                      S more seconds for every pod's VM to give its translation cache back, as an idle
                      pod's does (default 120; 0: do not wait)
  --cpu-window-s S    seconds over which idle CPU is measured, after the settling time (default 30)
  --floor-mib M       MemAvailable (MiB) the host keeps: the bench refuses to start when N pods at
                      ~${KATA_POD_ESTIMATE_MIB} MiB each would take it below M, and starts no more pods
                      (measuring those running) once it falls below M (default 2048; the host is shared)
  --no-pool           kata-ts with the VM pool off (every pod boots its own VM; no node-level share)
  --no-runc           skip the runc pods (kata-ts only)
  --kata-config FILE  a kata-ts configuration.toml for the kata-ts handler (an A/B of a setting, e.g.
                      [hypervisor.qemu] tcg_idle_reclaim_agent = true); default: the built-in defaults
  --json              end with one line {"figures": {...}}
  --help              this text`;

const CLK_TCK = 100; // USER_HZ on Linux x86-64

/** A pod VM's TCG cache counts as given back once its PSS is under this (a full one is 40-52 MiB). */
const TRIMMED_TCG_KIB = 12 * 1024;

/** The TCG code buffer's PSS (KiB) of each pod's own QEMU (not the pool's), when it is a memfd. */
async function podTcgCachesKiB(baseDir: string): Promise<number[]> {
  const out: number[] = [];
  for (const [pid, role] of await podSideRoles(baseDir)) {
    if (role !== "qemu") continue;
    const cache = await tcgJitMemfd(pid);
    if (cache !== undefined) out.push(cache.pssKiB);
  }
  return out;
}

/**
 * Waits up to `waitS` for every pod's QEMU to hold a trimmed TCG cache (an idle pod's steady
 * state when [hypervisor.qemu] tcg_idle_trim_s is on); returns how many are and after how long.
 * Returns at once when no QEMU has a memfd cache (trimming off, or not TCG).
 */
async function waitIdleTrim(baseDir: string, waitS: number): Promise<{ trimmed: number; afterS: number }> {
  const t0 = performance.now();
  for (;;) {
    const caches = await podTcgCachesKiB(baseDir);
    const trimmed = caches.filter((k) => k <= TRIMMED_TCG_KIB).length;
    const afterS = (performance.now() - t0) / 1000;
    if (caches.length === 0 || trimmed === caches.length || afterS >= waitS) return { trimmed, afterS };
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** utime+stime (clock ticks) of every pod-side process, by role. */
async function podSideCpuTicks(baseDir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [pid, role] of await podSideRoles(baseDir)) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    if (stat === "") continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    out[role] = (out[role] ?? 0) + Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return out;
}

async function memAvailableKiB(): Promise<number> {
  const info = await readFile("/proc/meminfo", "utf8");
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(info)?.[1] ?? 0);
}

async function startIdlePod(ctd: PrivateContainerd, cri: CriClient, cleanup: PodsCleanup, handler: Handler, name: string): Promise<string> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  cleanup.add(podSandboxId);
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "86400"], logPath: "sleeper.log" },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 180_000, pollMs: 50 });
  return podSandboxId;
}

const POOL_ROLE_PREFIX = "pool-";

/**
 * Every pod-side process with its role: kata-ts roles, else "other" (runc shims, containers); the
 * node-level pool's own processes (in the pool's cgroups) as "pool-daemon" or "pool-<role>".
 */
async function podSideRoles(baseDir: string): Promise<Map<number, string>> {
  const known = new Map((await processesMentioning(baseDir)).map((p) => [p.pid, p.cmdline]));
  const out = new Map<number, string>();
  for (const pid of await podSideProcesses(baseDir)) {
    const cmdline = known.get(pid) ?? (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    const role = podRole({ pid, cmdline }) ?? "other";
    if (!(await inPoolCgroup(pid))) out.set(pid, role);
    else out.set(pid, cmdline.includes("pool") && cmdline.includes("serve") ? `${POOL_ROLE_PREFIX}daemon` : `${POOL_ROLE_PREFIX}${role}`);
  }
  return out;
}

/** PSS of every pod-side process, by role (podSideRoles). */
async function podSidePss(baseDir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [pid, role] of await podSideRoles(baseDir)) out[role] = (out[role] ?? 0) + (await pssKiB(pid));
  return out;
}

const isPoolRole = (role: string): boolean => role.startsWith(POOL_ROLE_PREFIX);

/**
 * `poolShare`: count the node-level pool's processes as a 1/N share (kata-ts with the pool on),
 * after waiting for its ready VM; else leave them out (runc's pods, which do not use it).
 */
async function measure(ctd: PrivateContainerd, cri: CriClient, cleanup: PodsCleanup, handler: Handler, wanted: number, settleS: number, trimWaitS: number, cpuWindowS: number, floorMiB: number, poolShare: boolean): Promise<DensityFigures> {
  const before = await memAvailableKiB();
  const ids: string[] = [];
  const startMs: number[] = [];
  let pods = wanted;
  try {
    for (let i = 0; i < wanted; i++) {
      const available = (await memAvailableKiB()) / 1024;
      if (available < floorMiB) {
        console.log(`${handler}: MemAvailable ${available.toFixed(0)} MiB is below --floor-mib ${floorMiB}: no more pods, measuring the ${i} running`);
        pods = i;
        break;
      }
      const t0 = performance.now();
      ids.push(await startIdlePod(ctd, cri, cleanup, handler, `density-${handler}-${i}`));
      startMs.push(performance.now() - t0);
      console.log(`${handler}: pod ${i + 1}/${pods} running (${(startMs.at(-1)! / 1000).toFixed(2)} s)`);
    }
    if (pods === 0) throw new Error(`${handler}: MemAvailable was below --floor-mib ${floorMiB} before the first pod`);
    // The pool refills the VM the pods took one at a time; read it as a node holds it, ready.
    if (poolShare) await waitPooled(poolPathsOf(ctd), 1);
    await new Promise((r) => setTimeout(r, settleS * 1000));
    const trim = handler === "kata-ts" ? await waitIdleTrim(ctd.baseDir, trimWaitS) : { trimmed: 0, afterS: 0 };
    const caches = await podTcgCachesKiB(ctd.baseDir);
    const allRoles = await podSidePss(ctd.baseDir);
    const after = await memAvailableKiB();
    const byRole = Object.fromEntries(Object.entries(allRoles).filter(([r]) => !isPoolRole(r)));
    const poolByRole = poolShare ? Object.fromEntries(Object.entries(allRoles).filter(([r]) => isPoolRole(r))) : {};
    const podsOnly = Object.values(byRole).reduce((a, b) => a + b, 0);
    const pool = Object.values(poolByRole).reduce((a, b) => a + b, 0);
    const cpuBefore = await podSideCpuTicks(ctd.baseDir);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, cpuWindowS * 1000));
    const cpuAfter = await podSideCpuTicks(ctd.baseDir);
    const windowS = (performance.now() - t0) / 1000;
    const cpuByRoleMillicores = Object.fromEntries(
      Object.entries(cpuAfter).filter(([r]) => poolShare || !isPoolRole(r)).map(([r, ticks]) => [r, ((ticks - (cpuBefore[r] ?? 0)) / CLK_TCK / windowS / pods) * 1000]),
    );
    return {
      pssPerPodMiB: (podsOnly + pool) / 1024 / pods,
      podsOnlyPssPerPodMiB: podsOnly / 1024 / pods,
      poolPssMiB: pool / 1024,
      poolByRoleMiB: Object.fromEntries(Object.entries(poolByRole).map(([r, kib]) => [r, kib / 1024])),
      memAvailablePerPodMiB: (before - after) / 1024 / pods,
      byRoleMiB: Object.fromEntries(Object.entries(byRole).map(([r, kib]) => [r, kib / 1024 / pods])),
      cpuByRoleMillicores,
      startMs,
      tcgCachePerPodMiB: caches.length === 0 ? undefined : caches.reduce((a, b) => a + b, 0) / 1024 / caches.length,
      trimmedPods: trim.trimmed,
      trimWaitS: trim.afterS,
      pods,
    };
  } finally {
    await cleanup.remove(ids);
  }
}

const mib = (x: number) => Number(x.toFixed(1));
const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? 0 : s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** The configuration file's text; the shim validates it (a bad key fails the first pod, naming it). */
async function readKataConfig(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    return exitWithUsage(USAGE, `--kata-config ${path}: ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      pods: { type: "string", default: "10" },
      "settle-s": { type: "string", default: "15" },
      "trim-wait-s": { type: "string", default: "120" },
      "cpu-window-s": { type: "string", default: "30" },
      "floor-mib": { type: "string", default: "2048" },
      "no-pool": { type: "boolean", default: false },
      "no-runc": { type: "boolean", default: false },
      "kata-config": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { pods, settleS, trimWaitS, cpuWindowS, floorMiB } = checkOptions(USAGE, () => ({
    pods: intOption("pods", values.pods, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
    trimWaitS: numberOption("trim-wait-s", values["trim-wait-s"], 0),
    cpuWindowS: numberOption("cpu-window-s", values["cpu-window-s"], 1),
    floorMiB: intOption("floor-mib", values["floor-mib"], 0),
  }));
  const availableMiB = (await memAvailableKiB()) / 1024;
  const needMiB = pods * KATA_POD_ESTIMATE_MIB;
  if (availableMiB - needMiB < floorMiB) {
    console.error(
      `density: ${pods} kata-ts pods need ~${needMiB} MiB (${KATA_POD_ESTIMATE_MIB} MiB each) and the host has ${availableMiB.toFixed(0)} MiB available, ` +
        `which would leave less than --floor-mib ${floorMiB}: run fewer pods, or free memory first`,
    );
    process.exitCode = 1;
    return;
  }
  const pool = !values["no-pool"];
  const configFile = values["kata-config"];
  const kataConfig = configFile === undefined ? undefined : await readKataConfig(configFile);
  const ctd = await startContainerd({ pool, ...(kataConfig === undefined ? {} : { kataConfig }) });
  const cri = connectCri(ctd.address);
  const cleanup = new PodsCleanup(ctd, cri);
  cleanup.afterRemove(() => stopPoolDaemon(ctd));
  try {
    await importTestImages(ctd);
    const kata = await measure(ctd, cri, cleanup, "kata-ts", pods, settleS, trimWaitS, cpuWindowS, floorMiB, pool);
    const parts = Object.entries(kata.byRoleMiB).map(([r, m]) => `${r} ${m.toFixed(1)}`).join(", ");
    const poolParts = Object.entries(kata.poolByRoleMiB).map(([r, m]) => `${r} ${m.toFixed(1)}`).join(", ");
    console.log(
      `kata-ts, ${kata.pods} idle pods${pool ? ", VM pool on" : ", VM pool off"}: PSS per pod ${kata.pssPerPodMiB.toFixed(1)} MiB = pods' own ${kata.podsOnlyPssPerPodMiB.toFixed(1)} (${parts})` +
        (pool ? ` + the pool's share ${(kata.poolPssMiB / kata.pods).toFixed(1)} (node-level, in all ${kata.poolPssMiB.toFixed(1)} MiB: ${poolParts})` : "") +
        `; MemAvailable drop per pod ${kata.memAvailablePerPodMiB.toFixed(1)} MiB`,
    );
    if (kata.tcgCachePerPodMiB !== undefined) {
      console.log(
        `kata-ts, TCG translation cache per pod (in qemu's figure): ${kata.tcgCachePerPodMiB.toFixed(1)} MiB; ` +
          `given back while idle in ${kata.trimmedPods} of ${kata.pods} pods (waited ${kata.trimWaitS.toFixed(0)} s after the settling time)`,
      );
    }
    const cpuParts = Object.entries(kata.cpuByRoleMillicores).map(([r, m]) => `${r} ${m.toFixed(1)}`).join(", ");
    const cpuTotal = Object.values(kata.cpuByRoleMillicores).reduce((a, b) => a + b, 0);
    console.log(`kata-ts, idle CPU per pod over ${cpuWindowS} s: ${cpuTotal.toFixed(1)} millicores (${cpuParts})`);
    // runc on a node without the pool: its pods do not use it, and its MemAvailable drop starts clean.
    await stopPoolDaemon(ctd);
    const runc = values["no-runc"] ? undefined : await measure(ctd, cri, cleanup, "runc", kata.pods, settleS, 0, cpuWindowS, floorMiB, false);
    if (runc !== undefined) {
      console.log(`runc, ${runc.pods} idle pods: PSS per pod ${runc.pssPerPodMiB.toFixed(1)} MiB; MemAvailable drop per pod ${runc.memAvailablePerPodMiB.toFixed(1)} MiB`);
    }
    console.log(`(2-core TCG host; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(" ")})`);
    if (values.json) {
      const figures: Record<string, number> = {
        pods: kata.pods,
        pool: pool ? 1 : 0,
        pss_per_pod_mib: mib(kata.pssPerPodMiB),
        pods_only_pss_per_pod_mib: mib(kata.podsOnlyPssPerPodMiB),
        pool_pss_mib: mib(kata.poolPssMiB),
        pool_share_pss_per_pod_mib: mib(kata.poolPssMiB / kata.pods),
        ...Object.fromEntries(Object.entries(kata.poolByRoleMiB).map(([r, m]) => [`${r.replaceAll("-", "_")}_pss_mib`, mib(m)])),
        memavailable_per_pod_mib: mib(kata.memAvailablePerPodMiB),
        ...Object.fromEntries(Object.entries(kata.byRoleMiB).map(([r, m]) => [`${r.replaceAll("-", "_")}_pss_per_pod_mib`, mib(m)])),
        idle_cpu_per_pod_millicores: mib(Object.values(kata.cpuByRoleMillicores).reduce((a, b) => a + b, 0)),
        pod_start_median_s: mib(median(kata.startMs) / 1000),
        pods_start_total_s: mib(kata.startMs.reduce((a, b) => a + b, 0) / 1000),
        ...Object.fromEntries(Object.entries(kata.cpuByRoleMillicores).map(([r, m]) => [`${r.replaceAll("-", "_")}_cpu_per_pod_millicores`, mib(m)])),
      };
      if (kata.tcgCachePerPodMiB !== undefined) {
        figures.qemu_tcg_cache_per_pod_mib = mib(kata.tcgCachePerPodMiB);
        figures.tcg_trimmed_pods = kata.trimmedPods;
      }
      if (runc !== undefined) {
        figures.runc_pss_per_pod_mib = mib(runc.pssPerPodMiB);
        figures.runc_memavailable_per_pod_mib = mib(runc.memAvailablePerPodMiB);
      }
      console.log(JSON.stringify({ figures }));
    }
  } finally {
    await cleanup.removeAll();
    cri.close();
    await ctd.stop();
    cleanup.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
