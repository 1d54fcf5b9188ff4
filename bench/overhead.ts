// PodOverhead, measured: the host cost of one kata-ts pod beyond its containers, through the real
// CRI path (private containerd, kata-ts handler, real VM, the VM pool as configured by default),
// with --pods idle pods (one `sleep` container each) running at once, as on a node, each under a
// kubelet-like pod cgroup (test/harness/pod-cgroup.ts; the shim moves its VM there). Per pod: the
// PSS (/proc/<pid>/smaps_rollup) of the pod's own processes (its shim server, QEMU, virtiofsd: the
// processes in its pod cgroup), what its pod cgroup is charged, and CPU (utime+stime over a
// window). Node-level, apart: the pool daemon, its ready VM(s) and warm shim server(s), which sit
// in the pool's own cgroups, are charged to no pod and do not grow with the pods: kubelet's
// systemReserved, not PodOverhead (bench/lib/pod-memory-split.ts). Then, with the idle pods still
// running, a busy pod under a pod cgroup limited to its containers' limits + overhead.podFixed
// (bench/lib/busy-pod.ts): its own processes' figures, the pod cgroup's peak against its limit,
// and whether the host OOM-killed any of the VM's processes while the guest OOM-killed a container
// over its own limit. Prints figures; never asserts. Ctrl-C or SIGTERM removes every pod it started.
// Usage: see USAGE below (`node dist/bench/overhead.js --help`).
// --write stores the per-pod idle figures in src/deploy/manifests/overhead.json, which the
// RuntimeClass's overhead.podFixed is computed from (measured + marginPercent), and the pool's
// node-level memory (+ the same margin) as nodeReservedMiB.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { nodeReservedMiB, overheadDataPath, overheadDataSchema, podFixedBasisMiB, podFixedOverhead, workingPodMemory, type IdlePodMemory, type OverheadData } from "../src/deploy/manifests/overhead.js";
import { poolPathsOf, waitPooled } from "../test/e2e/pool-fixture.js";
import { stopPoolDaemon } from "./lib/pool-daemon.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { createPodCgroup, type PodCgroup } from "../test/harness/pod-cgroup.js";
import { checkOptions, exitWithUsage, intOption, numberOption, parseBenchArgs } from "./lib/args.js";
import { runBusyPod } from "./lib/busy-pod.js";
import { memorySplit, type MemorySplit } from "./lib/pod-memory-split.js";
import { podProcesses, pssKiB } from "./lib/pod-pss.js";
import { PodsCleanup } from "./lib/pods-cleanup.js";

const USAGE = `usage: node dist/bench/overhead.js [--pods N] [--settle-s S] [--window-s S] [--busy-limit-mib L]
       [--busy-pod-fixed-mib M] [--no-pool | --adopt] [--write] [--json]

The host cost of one kata-ts pod beyond its containers, through CRI on a private containerd: N idle
pods (busybox sleep) at once, each under a kubelet-like pod cgroup: per pod, its own shim server's,
QEMU's and virtiofsd's PSS and CPU, and its pod cgroup's charge; apart, the node-level VM pool (its
daemon, ready VM, warm shim server), which belongs in kubelet's systemReserved. Then a busy pod beside
them, under a pod cgroup limited as kubelet limits it (its containers' memory limits +
overhead.podFixed): is any of its VM's host processes OOM-killed? Prints the RuntimeClass
overhead.podFixed those figures give. Ctrl-C or SIGTERM removes every pod the bench started.

  --pods N        idle pods running at once (default 5)
  --settle-s S    seconds after the last idle pod starts before the window (default 15)
  --window-s S    seconds over which CPU is measured, idle and busy (default 15)
  --busy-limit-mib L       the busy container's memory limit; it fills memory to near it (default 256)
  --busy-pod-fixed-mib M   podFixed charged to the busy pod's cgroup (default: the podFixed this run
                  computes with --write, else the one overhead.json gives)
  --no-pool       the VM pool off (every pod boots its VM in its own pod cgroup; no node-level figure)
  --adopt         before each idle pod but the first, wait (up to 540 s) for a ready pooled VM, so
                  that those pods adopt one (default: pods start back to back; most boot their own)
  --write         store the idle per-pod figures in src/deploy/manifests/overhead.json, which the
                  RuntimeClass's overhead.podFixed is computed from
  --json          end with one line {"figures": {...}}
  --help          this text`;

const CLK_TCK = 100; // USER_HZ on Linux x86-64
/** The busy pod's second container, which exceeds this limit on purpose. */
const HOG_LIMIT_MIB = 32;
/** An idle pod's containers have no memory limit, so kubelet sets none on its pod cgroup: in effect none. */
const IDLE_POD_CGROUP_LIMIT = 64 * 1024 ** 3;
const MiB = 1024 * 1024;

interface Sample {
  pssKiB: number;
  cpuTicks: number;
  byRole: Record<string, number>;
}

/** PSS and CPU ticks of the pod processes under the harness (of one pod when `podId` is given). */
async function sample(baseDir: string, podId?: string): Promise<Sample> {
  const s: Sample = { pssKiB: 0, cpuTicks: 0, byRole: {} };
  for (const { pid, role } of await podProcesses(baseDir, podId)) {
    const pss = await pssKiB(pid);
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    s.pssKiB += pss;
    s.cpuTicks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime, stime
    s.byRole[role] = (s.byRole[role] ?? 0) + pss;
  }
  return s;
}

async function startPod(ctd: PrivateContainerd, cri: CriClient, cleanup: PodsCleanup, name: string, command: string[], cgroupParent: string): Promise<string> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, cgroupParent });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
  cleanup.add(podSandboxId);
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name }, image: { image: BUSYBOX_IMAGE_REF }, command, logPath: `${name}.log` },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 180_000 });
  return podSandboxId;
}

/** PSS per pod (MiB) at the end of the window, CPU per pod (millicores) over it, for `pods` pods. */
async function window(baseDir: string, windowS: number, pods: number, podId?: string) {
  const a = await sample(baseDir, podId);
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const b = await sample(baseDir, podId);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    pssMiB: b.pssKiB / 1024 / pods,
    cpuMillicores: ((b.cpuTicks - a.cpuTicks) / CLK_TCK / secs / pods) * 1000,
    byRoleMiB: Object.fromEntries(Object.entries(b.byRole).map(([k, v]) => [k, +(v / 1024 / pods).toFixed(1)])),
  };
}

interface IdleFigures {
  /** Per pod, averages over the pods: its own processes' PSS (by role) and CPU. */
  podPssMiB: number;
  podPssByRoleMiB: Record<string, number>;
  podCpuMillicores: number;
  /** Its pod cgroup's charge at the window's end: average and most, and what it is made of (average). */
  podCgroupAvgMiB: number;
  podCgroupMaxMiB: number;
  podCgroupKindAvgMiB: Record<string, number>;
  /** The most TCG cache an idle pod's QEMU gave back and would take again once it works, MiB. */
  podTcgRefillMaxMiB: number;
  /** Each pod as it holds while it works: podFixed's basis (workingPodMemory). */
  working: IdlePodMemory;
  /** Pods whose VM came from the pool (its boot pages stay charged to the pool's cgroup). */
  adopted: number;
  /** Node-level, in all (not per pod): PSS by role, CPU. */
  nodePssMiB: number;
  nodePssByRoleMiB: Record<string, number>;
  nodeCpuMillicores: number;
  /** The density figure's definition: every process, node-level ones included, divided by the pods. */
  pssWithNodeShareMiB: number;
  perPod: string[];
}

const r1 = (x: number): number => +x.toFixed(1);
const perMiB = (o: Record<string, number>, div: number): Record<string, number> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, r1(v / 1024 / div)]));

/** The idle pods' split (bench/lib/pod-memory-split.ts) at the end of a window, CPU over it. */
async function idleWindow(baseDir: string, windowS: number, pods: ReadonlyMap<string, PodCgroup>): Promise<IdleFigures> {
  const a = await memorySplit(baseDir, pods);
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const b: MemorySplit = await memorySplit(baseDir, pods);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = b.pods.length;
  const millicores = (ticks: number, div: number) => (ticks / CLK_TCK / secs / div) * 1000;
  const podTicks = b.pods.reduce((t, p) => t + p.cpuTicks - (a.pods.find((q) => q.podId === p.podId)?.cpuTicks ?? p.cpuTicks), 0);
  const podPssKiB = b.pods.reduce((t, p) => t + p.pssKiB, 0);
  const byRole: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  for (const p of b.pods) {
    for (const [k, v] of Object.entries(p.byRoleKiB)) byRole[k] = (byRole[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.cgroup.byKindMiB)) kinds[k] = (kinds[k] ?? 0) + v;
  }
  const charged = b.pods.map((p) => p.cgroup.usageBytes / MiB);
  return {
    podPssMiB: podPssKiB / 1024 / n,
    podPssByRoleMiB: perMiB(byRole, n),
    podCpuMillicores: millicores(podTicks, n),
    podCgroupAvgMiB: charged.reduce((x, y) => x + y, 0) / n,
    podCgroupMaxMiB: Math.max(...charged),
    podTcgRefillMaxMiB: Math.max(0, ...b.pods.map((p) => p.tcgRefillKiB / 1024)),
    working: workingPodMemory(
      b.pods.map((p) => ({ pssMiB: p.pssKiB / 1024, cgroupMiB: p.cgroup.usageBytes / MiB, tcgRefillMiB: p.tcgRefillKiB / 1024 })),
      b.node.pssKiB / 1024,
    ),
    podCgroupKindAvgMiB: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, r1(v / n)])),
    adopted: b.pods.filter((p) => p.adopted).length,
    nodePssMiB: b.node.pssKiB / 1024,
    nodePssByRoleMiB: perMiB(b.node.byRoleKiB, 1),
    nodeCpuMillicores: millicores(b.node.cpuTicks - a.node.cpuTicks, 1),
    pssWithNodeShareMiB: (podPssKiB + b.node.pssKiB) / 1024 / n,
    perPod: b.pods.map(
      (p) =>
        `${p.podId.slice(0, 12)}${p.adopted ? " (adopted)" : " (booted) "} PSS ${r1(p.pssKiB / 1024)} MiB ${JSON.stringify(perMiB(p.byRoleKiB, 1))}, ` +
        `pod cgroup ${r1(p.cgroup.usageBytes / MiB)} MiB ${JSON.stringify(p.cgroup.byKindMiB)}`,
    ),
  };
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      "window-s": { type: "string", default: "15" },
      pods: { type: "string", default: "5" },
      "settle-s": { type: "string", default: "15" },
      "busy-limit-mib": { type: "string", default: "256" },
      "busy-pod-fixed-mib": { type: "string", default: "" },
      "no-pool": { type: "boolean", default: false },
      adopt: { type: "boolean", default: false },
      write: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { windowS, pods, settleS, busyLimitMiB, busyPodFixedMiB, pool } = checkOptions(USAGE, () => ({
    windowS: numberOption("window-s", values["window-s"], 1),
    pods: intOption("pods", values.pods, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
    busyLimitMiB: intOption("busy-limit-mib", values["busy-limit-mib"], 128),
    busyPodFixedMiB: values["busy-pod-fixed-mib"] === "" ? undefined : intOption("busy-pod-fixed-mib", values["busy-pod-fixed-mib"], 1),
    pool: !values["no-pool"],
  }));
  if (values.write && values["no-pool"]) exitWithUsage(USAGE, "--write needs the pool on: it stores the pool's node-level memory too");
  if (values.adopt && values["no-pool"]) exitWithUsage(USAGE, "--adopt needs the pool on: drop --no-pool");
  const ctd = await startContainerd({ pool });
  const cri = connectCri(ctd.address);
  const cleanup = new PodsCleanup(ctd, cri);
  // Each idle pod's kubelet-like pod cgroup, by pod id; made before its pod, removed after all are.
  const idleCgroups = new Map<string, PodCgroup>();
  const madeCgroups: PodCgroup[] = [];
  cleanup.afterRemove(async () => {
    await stopPoolDaemon(ctd);
    for (const cg of madeCgroups) await cg.remove().catch((err: unknown) => console.error(`removing pod cgroup ${cg.parent}: ${String(err)}`));
  });
  try {
    await importTestImages(ctd);
    for (let i = 0; i < pods; i++) {
      // The first pod's shim starts the pool daemon; from the second on, --adopt waits for its VM.
      if (values.adopt && i > 0) await waitPooled(poolPathsOf(ctd), 1);
      const cg = await createPodCgroup(IDLE_POD_CGROUP_LIMIT);
      madeCgroups.push(cg);
      idleCgroups.set(await startPod(ctd, cri, cleanup, `idle${i}`, ["sleep", "3600"], cg.parent), cg);
      console.log(`idle pod ${i + 1}/${pods} running`);
    }
    await new Promise((r) => setTimeout(r, settleS * 1000)); // let boot-time work settle
    const idle = await idleWindow(ctd.baseDir, windowS, idleCgroups);
    for (const line of idle.perPod) console.log(`  idle pod ${line}`);
    console.log(
      `${pods} idle pods at once (${idle.adopted} with a VM from the pool), per pod: own processes' PSS ${idle.podPssMiB.toFixed(1)} MiB ${JSON.stringify(idle.podPssByRoleMiB)}, ` +
        `CPU ${idle.podCpuMillicores.toFixed(0)} millicores; pod cgroup charged ${idle.podCgroupAvgMiB.toFixed(1)} MiB on average ${JSON.stringify(idle.podCgroupKindAvgMiB)}, ${idle.podCgroupMaxMiB.toFixed(1)} MiB at most`,
    );
    console.log(
      `node-level (the VM pool: in no pod's cgroup, not growing with the pods): PSS ${idle.nodePssMiB.toFixed(1)} MiB ${JSON.stringify(idle.nodePssByRoleMiB)}, CPU ${idle.nodeCpuMillicores.toFixed(0)} millicores; ` +
        `with its share divided among the pods (the density figure's definition) ${idle.pssWithNodeShareMiB.toFixed(1)} MiB per pod`,
    );
    const path = overheadDataPath();
    const old = overheadDataSchema.parse(JSON.parse(await readFile(path, "utf8")));
    const idleMemory: IdlePodMemory = idle.working;
    if (idle.podTcgRefillMaxMiB > 0) {
      console.log(
        `idle pods' TCG caches given back: up to ${idle.podTcgRefillMaxMiB.toFixed(1)} MiB per pod, which a working pod takes again: ` +
          `as they work, the pods' PSS ${idle.working.podPssMiB.toFixed(1)} MiB on average, their cgroups ${idle.working.podCgroupMaxMiB.toFixed(1)} MiB at most (podFixed's basis)`,
      );
    }
    const nodeReserved = pool ? nodeReservedMiB(idleMemory, old.marginPercent) : undefined;
    const measured: OverheadData = {
      ...old,
      measuredPssMiB: podFixedBasisMiB(idleMemory),
      measuredCpuMillicores: Math.round(idle.podCpuMillicores),
      ...(nodeReserved === undefined ? {} : { nodeReservedMiB: nodeReserved }),
    };
    const fixed = podFixedOverhead(measured);
    console.log(
      `RuntimeClass overhead.podFixed (the larger of an idle pod's own PSS and its cgroup's most, each with the TCG cache it gave back taken again as a working pod does, ${measured.measuredPssMiB} MiB at ${pods} pods, + ${old.marginPercent}% margin): memory ${fixed.memory}, cpu ${fixed.cpu}`,
    );
    if (nodeReserved !== undefined) console.log(`node reservation for the VM pool (kubelet systemReserved memory, + ${old.marginPercent}% margin): ${nodeReserved}Mi`);
    // The overhead the busy pod is charged: what this run writes, else what the manifests declare now.
    const chargedMiB = busyPodFixedMiB ?? Number.parseInt((values.write ? fixed : podFixedOverhead(old)).memory, 10);
    const busy = await runBusyPod(ctd, cri, cleanup, {
      limitMiB: busyLimitMiB,
      hogLimitMiB: HOG_LIMIT_MIB,
      podFixedMiB: chargedMiB,
      measure: (podId) => window(ctd.baseDir, windowS, 1, podId),
      log: (line) => console.log(line),
    });
    const cg = busy.podCgroupAtWindowEnd;
    console.log(`busy pod beside them: PSS ${busy.pssMiB.toFixed(1)} MiB ${JSON.stringify(busy.byRoleMiB)}, CPU ${busy.cpuMillicores.toFixed(0)} millicores`);
    console.log(
      `busy pod's cgroup (limits ${busyLimitMiB} + ${HOG_LIMIT_MIB} MiB + podFixed ${chargedMiB} MiB = ${busy.podCgroupLimitMiB} MiB): peak ${busy.podCgroupPeakMiB} MiB ` +
        `(${busy.overheadUsedMiB} MiB beyond the containers' limits; at most ${busy.vmOverBusyContainerMaxMiB} MiB beyond the busy container's own use), at the window's end ${(cg.usageBytes / 1048576).toFixed(1)} MiB ${JSON.stringify(cg.byKindMiB)}, limit hit ${cg.limitHits} times; ` +
        `the busy container uses ${busy.containerUsageMiB} MiB in the guest; the pod's host /dev/shm holds ${busy.hostShmMiB} MiB`,
    );
    console.log(
      `host OOM kills in the pod's cgroups: ${busy.hostOomKills}; VM processes all alive: ${busy.vmSurvived}; pod ready: ${busy.podReady}; busy container running: ${busy.busyContainerRunning}; ` +
        `hog over its ${HOG_LIMIT_MIB} MiB limit: exit ${busy.hogExitCode} ${busy.hogReason}`,
    );
    for (const p of busy.problems) console.log(`busy pod: ${p}`);
    const vmOomKilled = busy.hostOomKills > 0 || !busy.vmSurvived || !busy.podReady;
    console.log(vmOomKilled ? `VERDICT: the busy pod's VM was OOM-killed (or lost) at podFixed ${chargedMiB} MiB` : `VERDICT: the busy pod holds at podFixed ${chargedMiB} MiB; the guest, not the host, OOM-killed the container over its limit`);
    const load = loadavg().map((l) => l.toFixed(1)).join(" ");
    console.log(`(load average at the end ${load})`);
    const data: OverheadData = {
      ...measured,
      busyPssMiB: +busy.pssMiB.toFixed(1),
      busyCpuMillicores: Math.round(busy.cpuMillicores),
      measuredAt: new Date().toISOString(),
      command: `node dist/bench/overhead.js --window-s ${windowS} --pods ${pods} --settle-s ${settleS} --write (per pod with ${pods} idle pods running, ${idle.adopted} adopted from the pool; load average ${load})`,
    };
    if (values.write) {
      await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
      console.log(`wrote ${path}`);
    }
    if (values.json) {
      const figures = {
        pods,
        idle_pss_mib: r1(idle.podPssMiB),
        idle_pss_with_node_share_mib: r1(idle.pssWithNodeShareMiB),
        idle_pod_cgroup_avg_mib: r1(idle.podCgroupAvgMiB),
        idle_pod_cgroup_max_mib: r1(idle.podCgroupMaxMiB),
        idle_pod_tcg_refill_max_mib: r1(idle.podTcgRefillMaxMiB),
        ...Object.fromEntries(Object.entries(idle.podCgroupKindAvgMiB).map(([k, v]) => [`idle_pod_cgroup_${k}_avg_mib`, v])),
        idle_pods_adopted: idle.adopted,
        idle_cpu_millicores: data.measuredCpuMillicores,
        node_level_pss_mib: r1(idle.nodePssMiB),
        node_cpu_millicores: Math.round(idle.nodeCpuMillicores),
        ...(nodeReserved === undefined ? {} : { node_reserved_mib: nodeReserved }),
        pod_fixed_basis_mib: data.measuredPssMiB,
        busy_pss_mib: data.busyPssMiB,
        busy_cpu_millicores: data.busyCpuMillicores,
        busy_limit_mib: busyLimitMiB,
        busy_pod_fixed_mib: chargedMiB,
        busy_pod_cgroup_limit_mib: busy.podCgroupLimitMiB,
        busy_pod_cgroup_peak_mib: busy.podCgroupPeakMiB,
        busy_overhead_used_mib: busy.overheadUsedMiB,
        busy_vm_over_container_max_mib: busy.vmOverBusyContainerMaxMiB,
        busy_container_usage_mib: busy.containerUsageMiB,
        busy_host_shm_mib: busy.hostShmMiB,
        busy_host_oom_kills: busy.hostOomKills,
        busy_vm_oom_killed: vmOomKilled ? 1 : 0,
        busy_hog_oom_killed_in_guest: busy.hogReason === "OOMKilled" ? 1 : 0,
        pod_fixed_memory_mib: Number.parseInt(fixed.memory, 10),
        pod_fixed_cpu_millicores: Number.parseInt(fixed.cpu, 10),
      };
      console.log(JSON.stringify({ figures }));
    }
  } finally {
    await cleanup.removeAll();
    cri.close();
    await ctd.stop();
    cleanup.dispose();
  }
}

await main();
