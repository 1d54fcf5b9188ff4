// Pod start, kata-ts against runc, through CRI on one private containerd (test/harness): wall time
// from RunPodSandbox until ContainerStatus says the pod's one container (busybox `sleep`) is
// RUNNING, i.e. RunPodSandbox + CreateContainer + StartContainer + the first RUNNING poll; then one
// ExecSync `true` round trip in that container. Runs interleave kata-ts and runc so that load from
// elsewhere on the host hits both alike. Two kata-ts variants in the same run: `no-pool` (the pool
// off: every pod boots its VM) and `pool` (the default configuration, `kata-ts pool serve` running
// with one VM ready before each start: pool warm). Then, with the pool, 10 pods started back to
// back (pool size default; runc the same), the median of each adoption step from the shims' logs,
// and the host memory of one idle kata-ts pod: PSS (/proc/<pid>/smaps_rollup) of its shim server,
// QEMU and virtiofsd. Prints figures; never asserts.
//   node dist/bench/pod-start.js [--runs 5] [--pool | --no-pool] [--json]
// (both variants unless one is named; --json ends with {"figures": {...}}: kata_pod_start_ms is the
// pool variant's when it ran; kata_nopool_pod_start_ms / kata_pool_pod_start_ms name each.)
// (bench/overhead.ts measures the same PSS sum, plus CPU, for the RuntimeClass overhead; both use
// bench/lib/pod-pss.ts.)
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { poolStatus, startPoolDaemon, waitPooled, type PoolDaemon } from "../test/e2e/pool-fixture.js";
import { podPss } from "./lib/pod-pss.js";

type Handler = "kata-ts" | "runc";
const EXECS_PER_POD = 3;
type Variant = "runc" | "no-pool" | "pool";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Starts a pod with one running container; resolves with the wall ms and the pod id. */
async function startPod(ctd: PrivateContainerd, cri: CriClient, handler: Handler, name: string): Promise<{ ms: number; podSandboxId: string; execMs: number }> {
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
  const ms = performance.now() - t0;
  // What `kubectl exec` and exec probes cost: CRI ExecSync of `true`, the median of a few (the
  // first one after the start may still share the guest's CPU with the start's after-work).
  const execs: number[] = [];
  for (let i = 0; i < EXECS_PER_POD; i++) {
    const t1 = performance.now();
    const res = await cri.runtime.execSync({ containerId, cmd: ["true"], timeout: 60n });
    execs.push(performance.now() - t1);
    if (res.exitCode !== 0) throw new Error(`${handler}: ExecSync of true exited ${res.exitCode}: ${Buffer.from(res.stderr).toString()}`);
  }
  return { ms, podSandboxId, execMs: median(execs) };
}

/** `n` pods started one after the other (each up to RUNNING), then removed: the wall ms of the starts. */
async function backToBack(ctd: PrivateContainerd, cri: CriClient, handler: Handler, n: number): Promise<number> {
  const ids: string[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < n; i++) ids.push((await startPod(ctd, cri, handler, `burst-${handler}-${i}`)).podSandboxId);
    return performance.now() - t0;
  } finally {
    for (const id of ids) await removePod(cri, id);
  }
}

/** Median ms per step of the adopted pods' starts, from the shims' "pod VM ready" log lines. */
function printSteps(containerdLog: string): void {
  const perStep = new Map<string, number[]>();
  for (const line of containerdLog.split("\n")) {
    if (!line.includes('"pod VM ready"') || !line.includes('"pooled":true')) continue;
    const steps = (JSON.parse(line) as { steps?: Record<string, number> }).steps ?? {};
    for (const [k, v] of Object.entries(steps)) perStep.set(k, [...(perStep.get(k) ?? []), v]);
  }
  if (perStep.size === 0) return;
  console.log(`adopted pod, shim steps (median ms of ${perStep.get("total")?.length ?? 0}): ${[...perStep].map(([k, v]) => `${k} ${Math.round(median(v))}`).join(", ")}`);
}

async function removePod(cri: CriClient, podSandboxId: string): Promise<void> {
  await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
  await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: "string", default: "5" }, pool: { type: "boolean", default: false }, "no-pool": { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const runs = Number(values.runs);
  const variants: Variant[] = ["runc", ...(values.pool && !values["no-pool"] ? [] : (["no-pool"] as const)), ...(values["no-pool"] && !values.pool ? [] : (["pool"] as const))];
  const configDir = await mkdtempDir();
  const kataConfigPath = join(configDir, "configuration.toml");
  // One handler for both kata-ts variants; the shim reads the file at each pod start: the pool
  // variant runs with the defaults (pool on, pool_size 1), the other with the pool off.
  const useConfig = (variant: Variant) => writeFile(kataConfigPath, variant === "pool" ? "" : "[factory]\nenable_pool = false\n");
  await useConfig("no-pool");
  const ctd = await startContainerd({ kataTs: { kataConfigPath }, pool: true });
  const cri = connectCri(ctd.address);
  let daemon: PoolDaemon | undefined;
  try {
    await importTestImages(ctd);
    const figures: Record<string, number> = {};
    const times: Record<Variant, number[]> = { runc: [], "no-pool": [], pool: [] };
    const execs: Record<Variant, number[]> = { runc: [], "no-pool": [], pool: [] };
    for (const variant of variants.filter((v) => v !== "runc")) {
      await useConfig(variant);
      if (variant === "pool") daemon = await startPoolDaemon(ctd, kataConfigPath);
      for (let i = 0; i < runs; i++) {
        if (daemon !== undefined) await waitPooled(daemon.paths, 1); // pool warm
        for (const v of [variant, "runc"] as const) {
          const handler: Handler = v === "runc" ? "runc" : "kata-ts";
          const { ms, execMs, podSandboxId } = await startPod(ctd, cri, handler, `start-${v}-${i}`);
          times[v].push(ms);
          execs[v].push(execMs);
          console.log(`run ${i + 1}/${runs} ${v.padEnd(7)} ${fmt(ms)}  exec ${execMs.toFixed(0)} ms`);
          await removePod(cri, podSandboxId);
        }
      }
    }
    if (daemon !== undefined) {
      // 10 pods back to back with the default pool (one ready VM of the default shape): the first
      // takes the pooled VM, the others boot while the pool refills behind them.
      await waitPooled(daemon.paths, 1);
      const burst = await backToBack(ctd, cri, "kata-ts", 10);
      const burstRunc = await backToBack(ctd, cri, "runc", 10);
      const adopted = (await poolStatus(daemon.paths)).taken - times.pool.length;
      console.log(`10 pods back to back (pool size default): kata-ts ${fmt(burst)} (${adopted} adopted)  runc ${fmt(burstRunc)}`);
      figures.kata_pool_10pods_ms = Math.round(burst);
      figures.kata_pool_10pods_adopted = adopted;
      figures.runc_10pods_ms = Math.round(burstRunc);
      // The idle pod below boots its own VM (an adopted one is not a child of its shim).
      process.kill(daemon.pid, "SIGTERM");
      await daemon.exited;
      daemon = undefined;
    }
    await useConfig("no-pool");
    printSteps(await readFile(ctd.logPath, "utf8"));
    const r = median(times.runc);
    const rExec = median(execs.runc);
    figures.runc_pod_start_ms = Math.round(r);
    figures.runc_exec_ms = Math.round(rExec);
    for (const v of variants.filter((x) => x !== "runc")) {
      const k = median(times[v]);
      const kExec = median(execs[v]);
      console.log(`RunPodSandbox -> container RUNNING, median of ${runs}: kata-ts ${v} ${fmt(k)}  runc ${fmt(r)}  ratio ${(k / r).toFixed(1)}x; exec ${kExec.toFixed(0)} ms vs ${rExec.toFixed(0)} ms`);
      const key = v === "pool" ? "kata_pool" : "kata_nopool";
      figures[`${key}_pod_start_ms`] = Math.round(k);
      figures[`${key}_exec_ms`] = Math.round(kExec);
      figures[`${key}_ratio`] = Number((k / r).toFixed(2));
      figures[`${key}_exec_ratio`] = Number((kExec / rExec).toFixed(2));
      // The headline figures: the pool variant's when it ran.
      figures.kata_pod_start_ms = Math.round(k);
      figures.ratio = Number((k / r).toFixed(2));
      figures.kata_exec_ms = Math.round(kExec);
      figures.exec_ratio = Number((kExec / rExec).toFixed(2));
    }

    const { podSandboxId } = await startPod(ctd, cri, "kata-ts", "idle");
    try {
      await new Promise((res) => setTimeout(res, 10_000)); // let boot-time work settle
      const byRole = await podPss(ctd.baseDir, podSandboxId);
      const total = Object.values(byRole).reduce((a, b) => a + b, 0);
      const parts = Object.entries(byRole).map(([role, kib]) => `${role} ${(kib / 1024).toFixed(1)}`).join(", ");
      console.log(`idle kata-ts pod host memory: PSS ${(total / 1024).toFixed(1)} MiB (${parts} MiB)`);
      figures.kata_idle_pod_pss_mib = Number((total / 1024).toFixed(1));
    } finally {
      await removePod(cri, podSandboxId);
    }
    console.log(`(2-core TCG host; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(" ")})`);
    if (values.json) console.log(JSON.stringify({ figures }));
  } finally {
    if (daemon?.running() === true) {
      process.kill(daemon.pid, "SIGTERM");
      await daemon.exited;
    }
    cri.close();
    await ctd.stop();
    await rm(configDir, { recursive: true, force: true });
  }
}

async function mkdtempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "kts-bench-pool-"));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
