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
// Usage: see USAGE below (`node dist/bench/pod-start.js --help`).
// (bench/overhead.ts measures the same PSS sum, plus CPU, for the RuntimeClass overhead; both use
// bench/lib/pod-pss.ts.)
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { ContainerState, podSandboxConfig, waitForContainerState } from "../src/cri/pod.js";
import { NamespaceMode } from "../src/cri/gen/runtime/v1/api_pb.js";
import { startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../test/harness/images.js";
import { poolStatus, startPoolDaemon, waitPooled, type PoolDaemon } from "../test/e2e/pool-fixture.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { podPss } from "./lib/pod-pss.js";

const USAGE = `usage: node dist/bench/pod-start.js [--runs N] [--pool | --no-pool] [--burst N] [--log FILE] [--share-pid] [--ab-shim FILE] [--ab-config TOML] [--json]

Pod start through CRI on a private containerd, kata-ts against runc, interleaved: RunPodSandbox until
the pod's container is RUNNING, then ExecSync \`true\`; kata-ts without the VM pool and with a warm
pool; then pods back to back with the pool, and the host PSS of one idle kata-ts pod.

  --runs N         pod starts per variant, each beside a runc one (default 5)
  --pool           only the pool variant (the default configuration, a VM ready before each start)
  --no-pool        only the no-pool variant (every pod boots its VM); default: both variants
  --burst N        pods started back to back with the pool, kata-ts then runc; 0 skips (default 10)
  --log FILE       keep containerd's log, with the shims' lines, in FILE (default: not kept)
  --share-pid      pods share one PID namespace (CRI's POD mode: a pause container in the guest);
                   default: each container its own, as kubelet sends without shareProcessNamespace
  --ab-shim FILE   another build's shim entry (its dist/src/shim/main.js, or a sh launcher) as handler kata-ts-a,
                   its pooled starts interleaved with this build's against the same pool (default: none)
  --ab-config TOML the configuration file of handler kata-ts-a (with --ab-shim; e.g. this build's
                   dist/src/shim/containerd-shim-kata-ts-v2-front.cjs to A/B a setting); the pool
                   daemon then reads a copy of kata-ts's file, so both handlers load theirs at Create
  --json           end with one line {"figures": {...}}: kata_pod_start_ms is the pool variant's when
                   it ran; kata_nopool_pod_start_ms / kata_pool_pod_start_ms name each
  --help           this text`;

type Handler = "kata-ts" | "kata-ts-a" | "runc";
const EXECS_PER_POD = 3;
type Variant = "runc" | "no-pool" | "pool" | "pool-a";

/**
 * What kubelet sends for a pod without shareProcessNamespace (what `kubectl run` makes): the
 * network and IPC namespaces are the pod's, the PID namespace is each container's own. CRI's zero
 * value (POD) would share the PID namespace, which makes kata-ts run a pause container in the
 * guest (docs/pool.md); --share-pid measures that case.
 */
function namespaceOptions(sharePid: boolean) {
  return { network: NamespaceMode.POD, ipc: NamespaceMode.POD, pid: sharePid ? NamespaceMode.POD : NamespaceMode.CONTAINER };
}
let sharePid = false;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Starts a pod with one running container; resolves with the wall ms and the pod id. */
async function startPod(ctd: PrivateContainerd, cri: CriClient, handler: Handler, name: string): Promise<{ ms: number; podSandboxId: string; execMs: number }> {
  const logDirectory = join(ctd.baseDir, "pods", name);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, namespaceOptions: namespaceOptions(sharePid) });
  const t0 = performance.now();
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: handler });
  const { containerId } = await cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper.log", linux: { securityContext: { namespaceOptions: namespaceOptions(sharePid) } } },
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

/** Median ms per step of the adopted pods' starts, from the shims' "pod VM ready" log lines, per variant. */
function printSteps(containerdLog: string, variantOf: Map<string, Variant>): void {
  const perVariant = new Map<Variant, Map<string, number[]>>();
  for (const line of containerdLog.split("\n")) {
    if (!line.includes('"pod VM ready"') || !line.includes('"pooled":true')) continue;
    const entry = JSON.parse(line) as { id?: string; steps?: Record<string, number> };
    const variant = variantOf.get(entry.id ?? "") ?? "pool";
    const perStep = perVariant.get(variant) ?? new Map<string, number[]>();
    perVariant.set(variant, perStep);
    for (const [k, v] of Object.entries(entry.steps ?? {})) perStep.set(k, [...(perStep.get(k) ?? []), v]);
  }
  for (const [variant, perStep] of perVariant) {
    console.log(`adopted pod (${variant}), shim steps (median ms of ${perStep.get("total")?.length ?? 0}): ${[...perStep].map(([k, v]) => `${k} ${Math.round(median(v))}`).join(", ")}`);
  }
}

async function removePod(cri: CriClient, podSandboxId: string): Promise<void> {
  await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
  await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      runs: { type: "string", default: "5" },
      pool: { type: "boolean", default: false },
      "no-pool": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      burst: { type: "string", default: "10" },
      log: { type: "string" },
      "share-pid": { type: "boolean", default: false },
      "ab-shim": { type: "string" },
      "ab-config": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  const { runs, burstPods } = checkOptions(USAGE, () => ({ runs: intOption("runs", values.runs, 1), burstPods: intOption("burst", values.burst, 0) }));
  sharePid = values["share-pid"];
  // --ab-shim A/main.js: another build's shim entry (e.g. main's dist) as handler kata-ts-a; its
  // pooled pods start interleaved with this build's, against the same pool daemon (this build's).
  const abShim = values["ab-shim"];
  const variants: Variant[] = ["runc", ...(values.pool && !values["no-pool"] ? [] : (["no-pool"] as const)), ...(values["no-pool"] && !values.pool ? [] : (["pool"] as const))];
  const configDir = await mkdtempDir();
  const kataConfigPath = join(configDir, "configuration.toml");
  // One handler for both kata-ts variants; the shim reads the file at each pod start: the pool
  // variant runs with the defaults (pool on, pool_size 1), the other with the pool off.
  const useConfig = (variant: Variant) => writeFile(kataConfigPath, variant === "pool" ? "" : "[factory]\nenable_pool = false\n");
  await useConfig("no-pool");
  // --ab-config: kata-ts-a reads a file of its own; the daemon a copy of kata-ts's (written below),
  // so that neither handler's pods get the configuration the daemon's warm servers hold.
  const abConfig = values["ab-config"];
  const abConfigPath = abConfig === undefined ? kataConfigPath : join(configDir, "configuration-a.toml");
  if (abConfig !== undefined) await writeFile(abConfigPath, abConfig.replaceAll("\\n", "\n"));
  const daemonConfigPath = abConfig === undefined ? kataConfigPath : join(configDir, "configuration-daemon.toml");
  const abRuntimeType = "io.containerd.katatsa.v2";
  const ctd = await startContainerd({
    kataTs: { kataConfigPath },
    pool: true,
    ...(abShim === undefined
      ? {}
      : {
          shims: { [abRuntimeType]: abShim },
          runtimes: { "kata-ts-a": { runtime_type: abRuntimeType, privileged_without_host_devices: true, pod_annotations: ["io.katats.*"], options: { ConfigPath: abConfigPath } } },
        }),
  });
  const cri = connectCri(ctd.address);
  let daemon: PoolDaemon | undefined;
  try {
    await importTestImages(ctd);
    const figures: Record<string, number> = {};
    const variantOf = new Map<string, Variant>();
    const times: Record<Variant, number[]> = { runc: [], "no-pool": [], pool: [], "pool-a": [] };
    const execs: Record<Variant, number[]> = { runc: [], "no-pool": [], pool: [], "pool-a": [] };
    for (const variant of variants.filter((v) => v !== "runc")) {
      await useConfig(variant);
      if (variant === "pool" && daemonConfigPath !== kataConfigPath) await copyFile(kataConfigPath, daemonConfigPath);
      if (variant === "pool") daemon = await startPoolDaemon(ctd, daemonConfigPath);
      const order: Variant[] = variant === "pool" && abShim !== undefined ? ["pool-a", "pool", "runc"] : [variant, "runc"];
      for (let i = 0; i < runs; i++) {
        // A/B: who goes first alternates, so neither always follows runc.
        const round = variant === "pool" && abShim !== undefined && i % 2 === 1 ? (["pool", "pool-a", "runc"] as Variant[]) : order;
        for (const v of round) {
          if (daemon !== undefined && v !== "runc") await waitPooled(daemon.paths, 1); // pool warm
          const handler: Handler = v === "runc" ? "runc" : v === "pool-a" ? "kata-ts-a" : "kata-ts";
          const { ms, execMs, podSandboxId } = await startPod(ctd, cri, handler, `start-${v}-${i}`);
          times[v].push(ms);
          variantOf.set(podSandboxId, v);
          execs[v].push(execMs);
          console.log(`run ${i + 1}/${runs} ${v.padEnd(7)} ${fmt(ms)}  exec ${execMs.toFixed(0)} ms`);
          await removePod(cri, podSandboxId);
        }
      }
    }
    if (daemon !== undefined && burstPods > 0) {
      // 10 pods back to back with the default pool (one ready VM of the default shape): the first
      // takes the pooled VM, the others boot while the pool refills behind them.
      await waitPooled(daemon.paths, 1);
      const burst = await backToBack(ctd, cri, "kata-ts", burstPods);
      const burstRunc = await backToBack(ctd, cri, "runc", burstPods);
      const adopted = (await poolStatus(daemon.paths)).taken - times.pool.length;
      console.log(`${burstPods} pods back to back (pool size default): kata-ts ${fmt(burst)} (${adopted} adopted)  runc ${fmt(burstRunc)}`);
      figures.kata_pool_10pods_ms = Math.round(burst);
      figures.kata_pool_10pods_adopted = adopted;
      figures.runc_10pods_ms = Math.round(burstRunc);
    }
    if (daemon !== undefined) {
      // The idle pod below boots its own VM (an adopted one is not a child of its shim).
      process.kill(daemon.pid, "SIGTERM");
      await daemon.exited;
      daemon = undefined;
    }
    await useConfig("no-pool");
    printSteps(await readFile(ctd.logPath, "utf8"), variantOf);
    const r = median(times.runc);
    const rExec = median(execs.runc);
    figures.runc_pod_start_ms = Math.round(r);
    figures.runc_exec_ms = Math.round(rExec);
    for (const v of [...variants.filter((x) => x !== "runc"), ...(abShim === undefined ? [] : (["pool-a"] as const))]) {
      const k = median(times[v]);
      const kExec = median(execs[v]);
      console.log(`RunPodSandbox -> container RUNNING, median of ${runs}: kata-ts ${v} ${fmt(k)}  runc ${fmt(r)}  ratio ${(k / r).toFixed(1)}x; exec ${kExec.toFixed(0)} ms vs ${rExec.toFixed(0)} ms`);
      const key = v === "pool" ? "kata_pool" : v === "pool-a" ? "kata_pool_a" : "kata_nopool";
      figures[`${key}_pod_start_ms`] = Math.round(k);
      figures[`${key}_exec_ms`] = Math.round(kExec);
      figures[`${key}_ratio`] = Number((k / r).toFixed(2));
      figures[`${key}_exec_ratio`] = Number((kExec / rExec).toFixed(2));
      if (v === "pool-a") continue;
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
    if (values.log !== undefined) await copyFile(ctd.logPath, values.log).catch(() => undefined);
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
