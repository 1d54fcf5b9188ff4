// Pod start, kata-ts against runc, through CRI on one private containerd (test/harness): wall time
// from RunPodSandbox until ContainerStatus says the pod's one container (busybox `sleep`) is
// RUNNING, i.e. RunPodSandbox + CreateContainer + StartContainer + the first RUNNING poll. Runs
// interleave kata-ts and runc so that load from elsewhere on the host hits both alike. Then the
// host memory of one idle kata-ts pod: PSS (/proc/<pid>/smaps_rollup) of its shim server, QEMU and
// virtiofsd. Prints figures; never asserts.
//   node dist/bench/pod-start.js [--runs 5]
// (bench/overhead.ts measures the same PSS sum, plus CPU, for the RuntimeClass overhead; both use
// bench/lib/pod-pss.ts.)
import { mkdir } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { podPss } from "./lib/pod-pss.js";

type Handler = "kata-ts" | "runc";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Starts a pod with one running container; resolves with the wall ms and the pod id. */
async function startPod(ctd: PrivateContainerd, cri: CriClient, handler: Handler, name: string): Promise<{ ms: number; podSandboxId: string }> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const t0 = performance.now();
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper.log" },
  });
  await cri.runtime.startContainer({ containerId });
  await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000, pollMs: 20 });
  return { ms: performance.now() - t0, podSandboxId };
}

async function removePod(cri: CriClient, podSandboxId: string): Promise<void> {
  await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
  await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
  const runs = Number(values.runs);
  const ctd = await startContainerd();
  const cri = connectCri(ctd.address);
  try {
    await importTestImages(ctd);
    const times: Record<Handler, number[]> = { "kata-ts": [], runc: [] };
    for (let i = 0; i < runs; i++) {
      for (const handler of ["kata-ts", "runc"] as const) {
        const { ms, podSandboxId } = await startPod(ctd, cri, handler, `start-${handler}-${i}`);
        times[handler].push(ms);
        console.log(`run ${i + 1}/${runs} ${handler.padEnd(7)} ${fmt(ms)}`);
        await removePod(cri, podSandboxId);
      }
    }
    const k = median(times["kata-ts"]);
    const r = median(times.runc);
    console.log(`RunPodSandbox -> container RUNNING, median of ${runs}: kata-ts ${fmt(k)}  runc ${fmt(r)}  ratio ${(k / r).toFixed(1)}x`);
    console.log(`  kata-ts min ${fmt(Math.min(...times["kata-ts"]))} max ${fmt(Math.max(...times["kata-ts"]))}; runc min ${fmt(Math.min(...times.runc))} max ${fmt(Math.max(...times.runc))}`);

    const { podSandboxId } = await startPod(ctd, cri, "kata-ts", "idle");
    try {
      await new Promise((res) => setTimeout(res, 10_000)); // let boot-time work settle
      const byRole = await podPss(ctd.baseDir, podSandboxId);
      const total = Object.values(byRole).reduce((a, b) => a + b, 0);
      const parts = Object.entries(byRole).map(([role, kib]) => `${role} ${(kib / 1024).toFixed(1)}`).join(", ");
      console.log(`idle kata-ts pod host memory: PSS ${(total / 1024).toFixed(1)} MiB (${parts} MiB)`);
    } finally {
      await removePod(cri, podSandboxId);
    }
    console.log(`(2-core TCG host; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(" ")})`);
  } finally {
    cri.close();
    await ctd.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
