// PodOverhead, measured: the host cost of one kata-ts pod beyond its containers, through the real
// CRI path (private containerd, kata-ts handler, real VM), with --pods idle pods (one `sleep`
// container each) running at once, as on a node: the PSS (/proc/<pid>/smaps_rollup) of every
// pod's shim server, QEMU and virtiofsd summed and divided by the number of pods (PSS splits
// pages the pods share, such as QEMU's and node's binaries and the guest kernel file, between
// them, so one pod measured alone over-counts them), and their CPU use over a sampling window
// (utime+stime from /proc/<pid>/stat) per pod. Then, with the idle pods still running, a busy
// pod (64 MiB written to the guest's /dev/shm, then a CPU loop) and its own processes' figures.
// Prints figures; never asserts. Ctrl-C or SIGTERM removes every pod it started.
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
import { podProcesses, pssKiB } from "./lib/pod-pss.js";
import { PodsCleanup } from "./lib/pods-cleanup.js";

const USAGE = `usage: node dist/bench/overhead.js [--pods N] [--settle-s S] [--window-s S] [--write] [--json]

The host cost of one kata-ts pod beyond its containers, through CRI on a private containerd: N idle
pods (busybox sleep) at once, their shim servers', QEMUs' and virtiofsds' PSS and CPU per pod; then a
busy pod beside them. Prints the RuntimeClass overhead.podFixed those figures give. Ctrl-C or SIGTERM
removes every pod the bench started.

  --pods N        idle pods running at once (default 5)
  --settle-s S    seconds after the last idle pod starts before the window (default 15)
  --window-s S    seconds over which CPU is measured, idle and busy (default 15)
  --write         store the idle per-pod figures in src/deploy/manifests/overhead.json, which the
                  RuntimeClass's overhead.podFixed is computed from
  --json          end with one line {"figures": {...}}
  --help          this text`;

const CLK_TCK = 100; // USER_HZ on Linux x86-64

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
      write: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { windowS, pods, settleS } = checkOptions(USAGE, () => ({
    windowS: numberOption("window-s", values["window-s"], 1),
    pods: intOption("pods", values.pods, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
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
    const busyCmd = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null; while :; do :; done"];
    const busyId = await startPod(ctd, cri, cleanup, "busy", busyCmd);
    await new Promise((r) => setTimeout(r, 5_000));
    const busy = await window(ctd.baseDir, windowS, 1, busyId);
    console.log(`busy pod beside them: PSS ${busy.pssMiB.toFixed(1)} MiB ${JSON.stringify(busy.byRoleMiB)}, CPU ${busy.cpuMillicores.toFixed(0)} millicores`);
    const load = loadavg().map((l) => l.toFixed(1)).join(" ");
    console.log(`(load average at the end ${load})`);
    const path = overheadDataPath();
    const old = overheadDataSchema.parse(JSON.parse(await readFile(path, "utf8")));
    const data: OverheadData = {
      measuredPssMiB: +idle.pssMiB.toFixed(1),
      measuredCpuMillicores: Math.round(idle.cpuMillicores),
      busyPssMiB: +busy.pssMiB.toFixed(1),
      busyCpuMillicores: Math.round(busy.cpuMillicores),
      marginPercent: old.marginPercent,
      measuredAt: new Date().toISOString(),
      command: `node dist/bench/overhead.js --window-s ${windowS} --pods ${pods} --settle-s ${settleS} --write (per pod with ${pods} idle pods running; load average ${load})`,
    };
    const fixed = podFixedOverhead(data);
    console.log(`RuntimeClass overhead.podFixed (idle per pod at ${pods} pods + ${data.marginPercent}% margin): memory ${fixed.memory}, cpu ${fixed.cpu}`);
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
