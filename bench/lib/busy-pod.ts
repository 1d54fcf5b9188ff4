// The busy-pod case of bench/overhead.ts, run as kubelet would enforce the RuntimeClass overhead:
// a kata-ts pod whose containers have memory limits (L for the busy container, a small one for a
// hog) under a pod cgroup limited to their sum + overhead.podFixed (test/harness/pod-cgroup.ts).
// The busy container fills its memory to near L (64 MiB in /dev/shm, then an anonymous buffer held
// by a blocked `dd`), burns CPU, and a busy exec runs in it; then the hog container exceeds its own
// limit. The verdict: no host process of the pod (shim, QEMU, virtiofsd) was OOM-killed for the
// VM's memory (the pod cgroup's and the sandbox cgroup's oom_kill stay 0, the processes live, the
// pod stays ready, the busy container keeps running), while the hog is OOM-killed inside the guest
// (CRI reason OOMKilled, as on runc). Figures only; the bench never asserts.
import { mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { ContainerState, PodSandboxState, podSandboxConfig, waitForContainerState } from "../../src/cri/pod.js";
import type { PrivateContainerd } from "../../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF } from "../../test/harness/images.js";
import { createPodCgroup, type CgroupMemory } from "../../test/harness/pod-cgroup.js";
import { podProcesses } from "./pod-pss.js";
import type { PodsCleanup } from "./pods-cleanup.js";

const MiB = 1024 * 1024;
/** /dev/shm is the pod's 64 MiB guest tmpfs (src/sandbox/copied-files.ts). */
const SHM_FILL_MIB = 64;
/** What the busy exec allocates (a dd buffer) on top of the fill. */
const EXEC_MIB = 16;
/** Left free under L for the shell, sleep, dd and the busybox pages the container reads. */
const SLACK_MIB = 12;

export interface BusyPodOptions {
  limitMiB: number;
  hogLimitMiB: number;
  podFixedMiB: number;
  /** Measures the pod's processes (PSS, CPU) over the bench's window while the exec runs. */
  measure: (podId: string) => Promise<{ pssMiB: number; cpuMillicores: number; byRoleMiB: Record<string, number> }>;
  log: (line: string) => void;
}

export interface BusyPodResult {
  pssMiB: number;
  cpuMillicores: number;
  byRoleMiB: Record<string, number>;
  podCgroupLimitMiB: number;
  /** Highest charge of the pod cgroup over the run, and what was charged at the end of the window. */
  podCgroupPeakMiB: number;
  /** The pod cgroup at the end of the measuring window (at the end of the run if it never came). */
  podCgroupAtWindowEnd: CgroupMemory;
  /** The pod cgroup's peak beyond the containers' limits: what podFixed has to cover. */
  overheadUsedMiB: number;
  /**
   * The most the pod cgroup held beyond what the busy container used in the guest (CRI stats,
   * sampled together every 2 s while it ran full): the VM's cost over its container's memory.
   */
  vmOverBusyContainerMaxMiB: number;
  hostOomKills: number;
  /** What the pod's host /dev/shm tmpfs (the CRI plugin's) held at the window's end, MiB. */
  hostShmMiB: number;
  /** The busy container's memory use as the guest reports it (CRI ContainerStats), MiB. */
  containerUsageMiB: number;
  vmSurvived: boolean;
  busyContainerRunning: boolean;
  podReady: boolean;
  hogReason: string;
  hogExitCode: number;
  problems: string[];
}

export async function runBusyPod(ctd: PrivateContainerd, cri: CriClient, cleanup: PodsCleanup, o: BusyPodOptions): Promise<BusyPodResult> {
  const limitsMiB = o.limitMiB + o.hogLimitMiB;
  const podCg = await createPodCgroup((limitsMiB + o.podFixedMiB) * MiB);
  const problems: string[] = [];
  let peak = 0;
  let vmOver = 0;
  const track = async (): Promise<CgroupMemory> => {
    const m = await podCg.memory();
    peak = Math.max(peak, m.usageBytes, Number.isFinite(m.peakBytes) ? m.peakBytes : 0);
    return m;
  };
  try {
    const name = "busy";
    const logDirectory = join(ctd.baseDir, "pods", name);
    await mkdir(logDirectory, { recursive: true });
    const config = podSandboxConfig({
      name,
      uid: `uid-${name}`,
      logDirectory,
      cgroupParent: podCg.parent,
      resources: { memoryLimitInBytes: BigInt(limitsMiB * MiB) },
    });
    const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: "kata-ts" });
    cleanup.add(podSandboxId);
    const vmPids = (await podProcesses(ctd.baseDir, podSandboxId)).map((p) => p.pid);
    const fillMiB = o.limitMiB - SHM_FILL_MIB - EXEC_MIB - SLACK_MIB;
    if (fillMiB < 1) throw new Error(`--busy-limit-mib ${o.limitMiB} leaves nothing to fill (needs > ${SHM_FILL_MIB + EXEC_MIB + SLACK_MIB})`);
    const busyId = await startContainer(cri, podSandboxId, config, "busy", ["sh", "-c", fillScript(fillMiB)], o.limitMiB);
    let measured: Awaited<ReturnType<BusyPodOptions["measure"]>> = { pssMiB: 0, cpuMillicores: 0, byRoleMiB: {} };
    let atEnd: CgroupMemory | undefined;
    let containerUsageMiB = 0;
    let hostShmMiB = Number.NaN;
    let hog: Awaited<ReturnType<typeof waitForContainerState>> | undefined;
    // Each step may fail because the host OOM-killed the VM: that is a finding, not a crash.
    try {
      await waitFilled(cri, busyId, track);
      const plan = await cri.runtime.execSync({ containerId: busyId, cmd: ["cat", "/dev/shm/fill-plan"], timeout: 60n }).then((r) => Buffer.from(r.stdout).toString().trim(), () => "");
      o.log(`busy container filled (${SHM_FILL_MIB} MiB /dev/shm + ${plan || `${fillMiB} MiB`} held, of its ${o.limitMiB} MiB limit)`);
      const exec = cri.runtime
        .execSync({ containerId: busyId, cmd: ["sh", "-c", `dd if=/dev/zero bs=${EXEC_MIB}M count=1 of=/dev/null 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done`], timeout: 300n }, { timeoutMs: 330_000 })
        .then((r) => (r.exitCode === 0 ? "" : `busy exec exited ${r.exitCode}`), (err: unknown) => `busy exec failed: ${String(err)}`);
      const sampler = setInterval(() => void track().catch(() => undefined), 500);
      const overSampler = setInterval(() => void vmOverContainer(cri, busyId, podCg.memory).then((v) => (vmOver = Math.max(vmOver, v)), () => undefined), 2000);
      try {
        measured = await o.measure(podSandboxId);
        atEnd = await track();
        const execProblem = await exec;
        if (execProblem !== "") problems.push(execProblem);
      } finally {
        clearInterval(sampler);
        clearInterval(overSampler);
      }
      const shm = await statfs(join(ctd.stateDir, "io.containerd.grpc.v1.cri", "sandboxes", podSandboxId, "shm")).catch(() => undefined);
      hostShmMiB = shm === undefined ? Number.NaN : ((shm.blocks - shm.bfree) * shm.bsize) / MiB;
      const stats = await cri.runtime.containerStats({ containerId: busyId });
      containerUsageMiB = Number(stats.stats?.memory?.usageBytes?.value ?? 0n) / MiB;
      // A container over its own limit: the guest's OOM killer ends it, the VM must not notice.
      const hogId = await startContainer(cri, podSandboxId, config, "hog", ["tail", "/dev/zero"], o.hogLimitMiB);
      hog = await waitForContainerState(cri, hogId, ContainerState.CONTAINER_EXITED, { timeoutMs: 180_000 });
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
    await track();
    const busy = await cri.runtime.containerStatus({ containerId: busyId });
    const pod = await cri.runtime.podSandboxStatus({ podSandboxId });
    const alive = (await podProcesses(ctd.baseDir, podSandboxId)).map((p) => p.pid);
    const final = await track();
    const sandbox = await podCg.sandboxMemory(podSandboxId).catch(() => undefined);
    await cleanup.remove([podSandboxId]);
    return {
      ...measured,
      podCgroupLimitMiB: limitsMiB + o.podFixedMiB,
      podCgroupPeakMiB: +(peak / MiB).toFixed(1),
      podCgroupAtWindowEnd: atEnd ?? final,
      overheadUsedMiB: +(peak / MiB - limitsMiB).toFixed(1),
      vmOverBusyContainerMaxMiB: +vmOver.toFixed(1),
      hostOomKills: final.oomKills + (sandbox?.oomKills ?? 0),
      hostShmMiB: +hostShmMiB.toFixed(1),
      containerUsageMiB: +containerUsageMiB.toFixed(1),
      vmSurvived: vmPids.length >= 3 && vmPids.every((p) => alive.includes(p)),
      busyContainerRunning: busy.status?.state === ContainerState.CONTAINER_RUNNING,
      podReady: pod.status?.state === PodSandboxState.SANDBOX_READY,
      hogReason: hog?.reason ?? "",
      hogExitCode: hog?.exitCode ?? -1,
      problems,
    };
  } finally {
    await podCg.remove().catch((err: unknown) => o.log(`removing the pod cgroup: ${String(err)}`));
  }
}

async function startContainer(cri: CriClient, podSandboxId: string, sandboxConfig: ReturnType<typeof podSandboxConfig>, name: string, command: string[], limitMiB: number): Promise<string> {
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig,
    config: { metadata: { name }, image: { image: BUSYBOX_IMAGE_REF }, command, logPath: `${name}.log`, linux: { resources: { memoryLimitInBytes: BigInt(limitMiB * MiB) } } },
  });
  await cri.runtime.startContainer({ containerId });
  return containerId;
}

/** The pod cgroup's charge minus the container's own use in the guest, MiB (both read at once). */
async function vmOverContainer(cri: CriClient, containerId: string, podMemory: () => Promise<CgroupMemory>): Promise<number> {
  const [stats, pod] = await Promise.all([cri.runtime.containerStats({ containerId }), podMemory()]);
  const used = Number(stats.stats?.memory?.usageBytes?.value ?? 0n);
  return used > 0 ? (pod.usageBytes - used) / MiB : 0;
}

/** The most one dd holds: read(2) returns at most ~2 GiB, so a larger block would touch only that. */
const FILL_CHUNK_MIB = 1024;

/**
 * The busy container's command: 64 MiB into /dev/shm, then `fillMiB` of anonymous memory in blocks of
 * at most FILL_CHUNK_MIB, each held by a dd that has read its whole block from /dev/zero (touching
 * it) and blocks on its first write: `head` takes one byte and marks the block done, and a `sleep`
 * keeps the pipe open without reading further. Once every block is held, /dev/shm/filled marks the
 * fill done and the shell spins.
 */
export function fillScript(fillMiB: number): string {
  // The limit the container runs under (memory.max of its cgroup v2, which /proc/self/cgroup names)
  // can be below the one asked: kata-ts lowers it by the guest page metadata podFixed does not cover
  // (src/shim/guest-memory-limit.ts). The fill is then lowered by as much, to stay near the limit.
  const hold =
    `n=0; left=$fill; while [ $left -gt 0 ]; do c=$(( left < ${FILL_CHUNK_MIB} ? left : ${FILL_CHUNK_MIB} )); ` +
    `dd if=/dev/zero bs=\${c}M count=1 2>/dev/null | { head -c 1 >/dev/null; touch /dev/shm/held.$n; exec sleep 2147483647; } & ` +
    `n=$((n+1)); left=$((left-c)); done; `;
  return (
    `asked=${fillMiB}; cg=$(sed -n 's/^0:://p' /proc/self/cgroup); max=$(cat /sys/fs/cgroup$cg/memory.max 2>/dev/null || echo max); fill=$asked; ` +
    `case $max in max|'') ;; *) short=$(( (${fillMiB + SHM_FILL_MIB + EXEC_MIB + SLACK_MIB} * 1048576 - max + 1048575) / 1048576 )); [ $short -gt 0 ] && fill=$((asked - short)) ;; esac; ` +
    // What holding the fill costs within the limit grows with it: its page tables (1/512) and each
    // block's dd, head, sleep and shell (~1 MiB); at 8 GiB that is past SLACK_MIB.
    `fill=$(( fill - fill / 512 - (fill + ${FILL_CHUNK_MIB - 1}) / ${FILL_CHUNK_MIB} )); ` +
    `echo "fill $fill MiB (memory.max $max)" > /dev/shm/fill-plan; ` +
    `dd if=/dev/zero of=/dev/shm/fill bs=1M count=${SHM_FILL_MIB} 2>/dev/null; ${hold}` +
    `while [ "$(ls /dev/shm | grep -c '^held[.]')" -lt $n ]; do sleep 1; done; touch /dev/shm/filled; while :; do :; done`
  );
}

/** Polls (ExecSync) for the fill's marker; the VM may die meanwhile, which the caller reports. */
async function waitFilled(cri: CriClient, containerId: string, track: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    await track();
    const r = await cri.runtime.execSync({ containerId, cmd: ["test", "-e", "/dev/shm/filled"], timeout: 60n }).catch(() => undefined);
    if (r?.exitCode === 0) return;
    const { status } = await cri.runtime.containerStatus({ containerId });
    if (status?.state !== ContainerState.CONTAINER_RUNNING) throw new Error(`the busy container stopped while filling its memory (exit ${status?.exitCode}, ${status?.reason})`);
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error("the busy container did not fill its memory within 300 s");
}
