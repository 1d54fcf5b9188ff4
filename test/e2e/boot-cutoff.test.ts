// A pod start cut off while its VM boots, end to end through CRI: the CRI client cancels
// RunPodSandbox (kubelet's context ended), the pod's shim is SIGKILLed, or the boot deadline
// (agent.dial_timeout) fires before the agent answers (QEMU killed mid-boot: faults.test.ts); with
// the VM pool off, then on (a cut-off while the pod boots its own VM beside the pool's first boot;
// adoption of a pooled VM is not cut off here: waiting for a pooled VM costs a full niced boot,
// minutes on a loaded machine). Whatever containerd and kubelet then do (containerd's own clean-up of a
// failed start, then StopPodSandbox + RemovePodSandbox of any pod still listed), nothing of the pod
// may remain: no shim, QEMU or virtiofsd, no mount under the harness's dirs (share, overlays, pod
// netns), no kata-ts state, no virtiofsd pid file, no cgroup under the pod's cgroup parent. The
// pool's own daemon and pooled VMs are not the pod's; they go when the pool is stopped at the end.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { CriError } from "../../src/cri/client.js";
import { podSandboxConfig } from "../../src/cri/pod.js";
import { installContainerdHandler } from "../../src/deploy/containerd-install.js";
import { packagedShimPath } from "../../src/deploy/paths.js";
import { isNodeShimCmdline } from "../../src/shim/bundle-path.js";
import { joinCgroup, type JoinedCgroup } from "../../src/sandbox/host-cgroup.js";
import { stopPool } from "../../src/pool/stop.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { processesMentioning, type ProcInfo } from "../harness/processes.js";
import { podLeftovers, waitUntilEmpty } from "./pod-leftovers.js";
import { poolPathsOf } from "./pool-fixture.js";

/** The default handler: the VM pool on (its first pod's shim starts the pool daemon). */
const POOL_HANDLER = "kata-ts";
const NO_POOL_HANDLER = "kata-ts-nopool";
/** Pool off, and a boot deadline shorter than any boot to an answering agent here. */
const SHORT_BOOT_HANDLER = "kata-ts-shortboot";
/** Pool off, and a shim process per pod (`[runtime] shim_server = "pod"`) instead of the node-level server. */
const POD_SHIM_HANDLER = "kata-ts-podshim";
const EXTRA_HANDLERS: Record<string, string> = {
  [NO_POOL_HANDLER]: "[factory]\nenable_pool = false\n",
  [POD_SHIM_HANDLER]: '[factory]\nenable_pool = false\n[runtime]\nshim_server = "pod"\n',
  [SHORT_BOOT_HANDLER]: "[factory]\nenable_pool = false\n[agent]\ndial_timeout = 1\n",
};

// Registered before the fixture's: the pool goes before containerd stops and the leak check runs.
after(async () => {
  if (fx.ctd) await stopPool(poolPathsOf(fx.ctd));
});

const fx = useCriFixture({
  pool: true,
  beforeStart: async (configPath) => {
    const dir = dirname(configPath);
    for (const [handlerName, config] of Object.entries(EXTRA_HANDLERS)) {
      const kataConfigPath = join(dir, handlerName, "configuration.toml");
      await mkdir(dirname(kataConfigPath), { recursive: true });
      await writeFile(kataConfigPath, config);
      await installContainerdHandler({ containerdConfigPath: configPath, dropInPath: join(dir, `${handlerName}-runtime.toml`), handlerName, runtimePath: packagedShimPath(), kataConfigPath });
    }
  },
});

// kubelet's pod cgroup, made before the pod as kubelet does; the shim nests the sandbox's below it.
const cgroupParent = `/kata-ts-cutoff-${randomBytes(4).toString("hex")}`;
let holder: ChildProcess | undefined;
let podCgroup: JoinedCgroup | undefined;
before(async () => {
  holder = spawn("sleep", ["3600"], { stdio: "ignore" });
  podCgroup = await joinCgroup(cgroupParent, holder.pid);
});
after(async () => {
  holder?.kill("SIGKILL");
  // A failed case may have left the sandbox's cgroups below ours (empty: their processes are gone).
  for (const dir of podCgroup?.dirs ?? []) {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await rmdir(join(dir, e.name)).catch(() => undefined);
  }
  await podCgroup?.release();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The first process of this harness that `match` accepts, waited for up to two minutes. */
async function waitForProcess(what: string, match: (p: ProcInfo) => boolean): Promise<ProcInfo> {
  assert.ok(fx.ctd);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const p = (await processesMentioning(fx.ctd.baseDir)).find(match);
    if (p !== undefined) return p;
    if (Date.now() > deadline) assert.fail(`no ${what} appeared within 120 s`);
    await sleep(50);
  }
}

/** The pool's daemon and pooled VMs (their command lines name the pool's dir): not a pod's. */
function isPools(p: ProcInfo): boolean {
  return p.cmdline.some((a) => a.includes("/kata-ts-pool")) || (p.cmdline.includes("pool") && p.cmdline.includes("serve"));
}

/** The booting pod's QEMU (not a probe, not a pooled VM): its command line names its sandbox state dir. */
function isPodQemu(p: ProcInfo): boolean {
  return p.cmdline.some((a) => a.includes("qemu-system")) && p.cmdline.some((a) => a.includes(`${fx.ctd?.kataStateDir}/`)) && !isPools(p);
}
/** A pod's own shim server (`... -bundle <dir> serve`) or the node-level server (`node-server`). */
function isShimServer(p: ProcInfo): boolean {
  return (p.cmdline.at(-1) === "serve" && p.cmdline.includes("-bundle")) || (p.cmdline.includes("node-server") && isNodeShimCmdline(p.cmdline));
}

async function parentPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
}

/** What a pod may leave, less what the pool owns (its daemon and reaper, pooled VMs, the pool's dir). */
async function leftovers(): Promise<string[]> {
  assert.ok(fx.ctd);
  const poolDir = join(fx.ctd.kataStateDir, "kata-ts-pool");
  const procs = await processesMentioning(fx.ctd.baseDir);
  const poolPids = new Set(procs.filter(isPools).map((p) => p.pid));
  for (const p of procs) if (poolPids.has(await parentPid(p.pid))) poolPids.add(p.pid);
  const pooled = [...poolPids].map((pid) => `process ${pid}:`);
  return (await podLeftovers(fx.ctd, { cgroupParent })).filter(
    (l) => !pooled.some((p) => l.startsWith(p)) && !l.includes(`${poolDir}`) && !l.includes(poolDir.replaceAll("/", ".")),
  );
}

type Outcome = { ok: true; podSandboxId: string } | { ok: false; err: unknown };

/** Starts a pod, cuts it off with `cut`, then does what kubelet does with what is left; nothing may remain. */
async function cutOff(t: { diagnostic(m: string): void }, name: string, handler: string, cut: (abort: () => void) => Promise<void>): Promise<CriError | undefined> {
  assert.ok(fx.ctd && fx.cri);
  const cri = fx.cri;
  const logDirectory = join(fx.ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory, cgroupParent });
  const ac = new AbortController();
  const started: Promise<Outcome> = cri.runtime.runPodSandbox({ config, runtimeHandler: handler }, { signal: ac.signal }).then(
    (r) => ({ ok: true, podSandboxId: r.podSandboxId }),
    (err: unknown) => ({ ok: false, err }),
  );
  await cut(() => ac.abort());
  const outcome = await started;
  if (outcome.ok) t.diagnostic(`the pod came up before it was cut off (${outcome.podSandboxId})`);
  else t.diagnostic(`RunPodSandbox: ${String(outcome.err)}`);
  // kubelet's garbage collection: every pod containerd still lists is stopped and removed.
  for (const pod of (await cri.runtime.listPodSandbox({})).items) {
    await cri.runtime.stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 120_000 });
    await cri.runtime.removePodSandbox({ podSandboxId: pod.id }, { timeoutMs: 120_000 });
  }
  assert.deepEqual((await cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  await waitUntilEmpty(`leftovers of pod ${name}`, leftovers, 90_000);
  if (outcome.ok) return undefined;
  assert.ok(outcome.err instanceof CriError, String(outcome.err));
  return outcome.err;
}

/** Cancels RunPodSandbox once the pod's own QEMU runs (the guest is booting then). */
async function cancelWhileBooting(abort: () => void): Promise<void> {
  await waitForProcess("pod QEMU", isPodQemu);
  abort();
}

/** SIGKILLs the pod's shim once the pod's own QEMU runs. */
async function killShimWhileBooting(): Promise<void> {
  await waitForProcess("pod QEMU", isPodQemu);
  process.kill((await waitForProcess("shim server", isShimServer)).pid, "SIGKILL");
}

void test("boot cut-off, pool off: RunPodSandbox cancelled by the client while the VM boots leaves nothing", { timeout: 600_000 }, async (t) => {
  const err = await cutOff(t, "cancelled", NO_POOL_HANDLER, cancelWhileBooting);
  if (err !== undefined) assert.equal(err.grpcCode, grpcStatus.CANCELLED, err.message);
});

// The node-level server (the default) records a Create in progress with its keeper; the server
// started after it gives the half-made pod up, and containerd's cleanup removes it.
void test("boot cut-off, pool off: the node-level shim server SIGKILLed while the VM boots leaves nothing", { timeout: 600_000 }, async (t) => {
  await cutOff(t, "nodeshimkilled", NO_POOL_HANDLER, killShimWhileBooting);
});

void test("boot cut-off, pool off: a per-pod shim SIGKILLed while the VM boots leaves nothing", { timeout: 600_000 }, async (t) => {
  await cutOff(t, "shimkilled", POD_SHIM_HANDLER, killShimWhileBooting);
});

void test("boot cut-off, pool off: the boot deadline (agent.dial_timeout) fires before the agent answers: the error says so, nothing is left", { timeout: 600_000 }, async (t) => {
  const err = await cutOff(t, "deadline", SHORT_BOOT_HANDLER, () => Promise.resolve());
  assert.ok(err !== undefined, "a 1 s boot deadline cannot be met under TCG");
  assert.match(err.message, /did not answer within/, err.message);
});

void test("boot cut-off, pool on: RunPodSandbox cancelled while the pod boots its own VM (the pool has none ready) leaves nothing", { timeout: 600_000 }, async (t) => {
  // The first pool pod: its shim starts the pool daemon and, with no pooled VM ready, boots its own.
  const err = await cutOff(t, "poolboot", POOL_HANDLER, cancelWhileBooting);
  if (err !== undefined) assert.equal(err.grpcCode, grpcStatus.CANCELLED, err.message);
});
