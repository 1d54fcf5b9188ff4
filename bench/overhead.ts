// PodOverhead, measured: the host cost of one kata-ts pod beyond its containers, through the real
// CRI path (private containerd, kata-ts handler, real VM), with --pods idle pods (one `sleep`
// container each) running at once, as on a node: the PSS (/proc/<pid>/smaps_rollup) of every
// pod's shim server, QEMU and virtiofsd summed and divided by the number of pods (PSS splits
// pages the pods share, such as QEMU's and node's binaries and the guest kernel file, between
// them, so one pod measured alone over-counts them), and their CPU use over a sampling window
// (utime+stime from /proc/<pid>/stat) per pod. Then, with the idle pods still running, a busy
// pod under a kubelet-like pod cgroup limited to its containers' limits + overhead.podFixed
// (bench/lib/busy-pod.ts): its own processes' figures, the pod cgroup's peak against its limit,
// and whether the host OOM-killed any of the VM's processes while the guest OOM-killed a container
// over its own limit. Prints figures; never asserts. Ctrl-C or SIGTERM removes every pod it started.
// Usage: see USAGE below (`node dist/bench/overhead.js --help`).
// --write stores the per-pod idle figures in src/deploy/manifests/overhead.json, which the
// RuntimeClass's overhead.podFixed is computed from (measured + marginPercent).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { overheadDataPath, overheadDataSchema, podFixedOverhead, type OverheadData } from "../src/deploy/manifests/overhead.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { checkOptions, intOption, numberOption, parseBenchArgs } from "./lib/args.js";
import { runBusyPod } from "./lib/busy-pod.js";
import { podProcesses, pssKiB } from "./lib/pod-pss.js";
import { PodsCleanup } from "./lib/pods-cleanup.js";

const USAGE = `usage: node dist/bench/overhead.js [--pods N] [--settle-s S] [--window-s S] [--busy-limit-mib L]
       [--busy-pod-fixed-mib M] [--write] [--json]

The host cost of one kata-ts pod beyond its containers, through CRI on a private containerd: N idle
pods (busybox sleep) at once, their shim servers', QEMUs' and virtiofsds' PSS and CPU per pod; then a
busy pod beside them, under a pod cgroup limited as kubelet limits it (its containers' memory limits +
overhead.podFixed): is any of its VM's host processes OOM-killed? Prints the RuntimeClass
overhead.podFixed those figures give. Ctrl-C or SIGTERM removes every pod the bench started.

  --pods N        idle pods running at once (default 5)
  --settle-s S    seconds after the last idle pod starts before the window (default 15)
  --window-s S    seconds over which CPU is measured, idle and busy (default 15)
  --busy-limit-mib L       the busy container's memory limit; it fills memory to near it (default 256)
  --busy-pod-fixed-mib M   podFixed charged to the busy pod's cgroup (default: the podFixed this run
                  computes with --write, else the one overhead.json gives)
  --write         store the idle per-pod figures in src/deploy/manifests/overhead.json, which the
                  RuntimeClass's overhead.podFixed is computed from
  --json          end with one line {"figures": {...}}
  --help          this text`;

const CLK_TCK = 100; // USER_HZ on Linux x86-64
/** The busy pod's second container, which exceeds this limit on purpose. */
const HOG_LIMIT_MIB = 32;

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

async function startPod(ctd: PrivateContainerd, cri: CriClient, cleanup: PodsCleanup, name: string, command: string[]): Promise<string> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
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

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      "window-s": { type: "string", default: "15" },
      pods: { type: "string", default: "5" },
      "settle-s": { type: "string", default: "15" },
      "busy-limit-mib": { type: "string", default: "256" },
      "busy-pod-fixed-mib": { type: "string", default: "" },
      write: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { windowS, pods, settleS, busyLimitMiB, busyPodFixedMiB } = checkOptions(USAGE, () => ({
    windowS: numberOption("window-s", values["window-s"], 1),
    pods: intOption("pods", values.pods, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
    busyLimitMiB: intOption("busy-limit-mib", values["busy-limit-mib"], 128),
    busyPodFixedMiB: values["busy-pod-fixed-mib"] === "" ? undefined : intOption("busy-pod-fixed-mib", values["busy-pod-fixed-mib"], 1),
  }));
  const ctd = await startContainerd();
  const cri = connectCri(ctd.address);
  const cleanup = new PodsCleanup(ctd, cri);
  try {
    await importTestImages(ctd);
    for (let i = 0; i < pods; i++) {
      await startPod(ctd, cri, cleanup, `idle${i}`, ["sleep", "3600"]);
      console.log(`idle pod ${i + 1}/${pods} running`);
    }
    await new Promise((r) => setTimeout(r, settleS * 1000)); // let boot-time work settle
    const idle = await window(ctd.baseDir, windowS, pods);
    console.log(`${pods} idle pods at once, per pod: PSS ${idle.pssMiB.toFixed(1)} MiB ${JSON.stringify(idle.byRoleMiB)}, CPU ${idle.cpuMillicores.toFixed(0)} millicores`);
    const path = overheadDataPath();
    const old = overheadDataSchema.parse(JSON.parse(await readFile(path, "utf8")));
    const measured = { ...old, measuredPssMiB: +idle.pssMiB.toFixed(1), measuredCpuMillicores: Math.round(idle.cpuMillicores) };
    const fixed = podFixedOverhead(measured);
    console.log(`RuntimeClass overhead.podFixed (idle per pod at ${pods} pods + ${old.marginPercent}% margin): memory ${fixed.memory}, cpu ${fixed.cpu}`);
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
      command: `node dist/bench/overhead.js --window-s ${windowS} --pods ${pods} --settle-s ${settleS} --write (per pod with ${pods} idle pods running; load average ${load})`,
    };
    if (values.write) {
      await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
      console.log(`wrote ${path}`);
    }
    if (values.json) {
      const figures = {
        pods,
        idle_pss_mib: data.measuredPssMiB,
        idle_cpu_millicores: data.measuredCpuMillicores,
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
