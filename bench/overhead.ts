// PodOverhead, measured: the host cost of one kata-ts pod beyond its containers, through the real
// CRI path (private containerd, kata-ts handler, real VM). For idle pods (one `sleep` container;
// the median of --pods of them) and a busy one (64 MiB written to the guest's /dev/shm, then a CPU loop) it sums the PSS
// (/proc/<pid>/smaps_rollup) of the pod's shim server, QEMU and virtiofsd, and their CPU use over
// a sampling window (utime+stime from /proc/<pid>/stat). Prints figures; never asserts.
//   node dist/bench/overhead.js [--window-s N] [--pods N] [--write]
// --write stores the idle figures in src/deploy/manifests/overhead.json, which the RuntimeClass's
// overhead.podFixed is computed from (measured + marginPercent).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { overheadDataPath, overheadDataSchema, podFixedOverhead, type OverheadData } from "../src/deploy/manifests/overhead.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { podProcesses, pssKiB } from "./lib/pod-pss.js";

const CLK_TCK = 100; // USER_HZ on Linux x86-64

interface Sample {
  pssKiB: number;
  cpuTicks: number;
  byRole: Record<string, number>;
}

async function sample(baseDir: string): Promise<Sample> {
  const s: Sample = { pssKiB: 0, cpuTicks: 0, byRole: {} };
  for (const { pid, role } of await podProcesses(baseDir)) {
    const pss = await pssKiB(pid);
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    s.pssKiB += pss;
    s.cpuTicks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime, stime
    s.byRole[role] = (s.byRole[role] ?? 0) + pss;
  }
  return s;
}

async function measurePod(ctd: PrivateContainerd, cri: CriClient, name: string, command: string[], windowS: number) {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
  try {
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name }, image: { image: BUSYBOX_IMAGE_REF }, command, logPath: `${name}.log` },
    });
    await cri.runtime.startContainer({ containerId });
    await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 5_000)); // let boot-time work settle
    const a = await sample(ctd.baseDir);
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const b = await sample(ctd.baseDir);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    return {
      pssMiB: b.pssKiB / 1024,
      cpuMillicores: ((b.cpuTicks - a.cpuTicks) / CLK_TCK / secs) * 1000,
      byRoleMiB: Object.fromEntries(Object.entries(b.byRole).map(([k, v]) => [k, +(v / 1024).toFixed(1)])),
    };
  } finally {
    await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
    await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { "window-s": { type: "string", default: "10" }, pods: { type: "string", default: "3" }, write: { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const windowS = Number(values["window-s"]);
  const pods = Number(values.pods);
  const ctd = await startContainerd();
  const cri = connectCri(ctd.address);
  try {
    await importTestImages(ctd);
    // Idle pods one after another; the median of each figure (other work on the host adds noise).
    const idles = [];
    for (let i = 0; i < pods; i++) {
      const m = await measurePod(ctd, cri, `idle${i}`, ["sleep", "3600"], windowS);
      console.log(`idle pod ${i + 1}/${pods}: PSS ${m.pssMiB.toFixed(1)} MiB ${JSON.stringify(m.byRoleMiB)}, CPU ${m.cpuMillicores.toFixed(0)} millicores`);
      idles.push(m);
    }
    const idle = { pssMiB: median(idles.map((m) => m.pssMiB)), cpuMillicores: median(idles.map((m) => m.cpuMillicores)) };
    console.log(`idle pod, median of ${pods}: PSS ${idle.pssMiB.toFixed(1)} MiB, CPU ${idle.cpuMillicores.toFixed(0)} millicores`);
    const busyCmd = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null; while :; do :; done"];
    const busy = await measurePod(ctd, cri, "busy", busyCmd, windowS);
    console.log(`busy pod: PSS ${busy.pssMiB.toFixed(1)} MiB ${JSON.stringify(busy.byRoleMiB)}, CPU ${busy.cpuMillicores.toFixed(0)} millicores`);
    const path = overheadDataPath();
    const old = overheadDataSchema.parse(JSON.parse(await readFile(path, "utf8")));
    const data: OverheadData = {
      measuredPssMiB: +idle.pssMiB.toFixed(1),
      measuredCpuMillicores: Math.round(idle.cpuMillicores),
      busyPssMiB: +busy.pssMiB.toFixed(1),
      busyCpuMillicores: Math.round(busy.cpuMillicores),
      marginPercent: old.marginPercent,
      measuredAt: new Date().toISOString(),
      command: `node dist/bench/overhead.js --window-s ${windowS} --pods ${pods} --write`,
    };
    const fixed = podFixedOverhead(data);
    console.log(`RuntimeClass overhead.podFixed (idle + ${data.marginPercent}% margin): memory ${fixed.memory}, cpu ${fixed.cpu}`);
    if (values.write) {
      await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
      console.log(`wrote ${path}`);
    }
    if (values.json) {
      const figures = {
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
    cri.close();
    await ctd.stop();
  }
}

await main();
