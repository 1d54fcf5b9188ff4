// Faults, end to end through CRI with real VMs: what a user (kubelet) sees when a pod's shim is
// SIGKILLed, when its QEMU or virtiofsd dies, when its QEMU is stopped (SIGSTOP: a wedged guest),
// and when the handler's configuration file is broken. In every case the pod must be stoppable and
// removable over CRI and nothing of it may be left: no shim, QEMU or virtiofsd, no mount, no
// kata-ts state, no virtiofsd pid file. One private containerd serves all cases; besides the
// default `kata-ts` handler it has `kata-ts-broken`, whose ConfigPath names a file with a typo.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { CriError } from "../../src/cri/client.js";
import { ContainerState, PodSandboxState, podSandboxConfig, readCriLog, waitForContainerState } from "../../src/cri/pod.js";
import { installContainerdHandler } from "../../src/deploy/containerd-install.js";
import { packagedShimPath } from "../../src/deploy/paths.js";
import { useCriFixture } from "../harness/cri-fixture.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";
import { processesMentioning, type ProcInfo } from "../harness/processes.js";
import { podLeftovers as leftoversOf, waitUntilEmpty } from "./pod-leftovers.js";

const HANDLER = "kata-ts";
const BROKEN_HANDLER = "kata-ts-broken";
/** `default_vcpu` is a typo of `default_vcpus`: the shim must refuse it, naming file and key. */
const BROKEN_CONFIG = "[hypervisor.qemu]\ndefault_vcpu = 2\n";
/** A shim process per pod (`shim_server = "pod"`), whose death is the pod's (the node-level server's is not: node-shim.test.ts). */
const POD_SHIM_HANDLER = "kata-ts-podshim";

let brokenConfigPath = "";

const fx = useCriFixture({
  // A second handler, added by the installer's code as an operator would, with its own ConfigPath.
  beforeStart: async (configPath) => {
    const dir = dirname(configPath);
    brokenConfigPath = join(dir, "broken", "configuration.toml");
    await mkdir(dirname(brokenConfigPath), { recursive: true });
    await writeFile(brokenConfigPath, BROKEN_CONFIG);
    await installContainerdHandler({
      containerdConfigPath: configPath,
      dropInPath: join(dir, "kata-ts-broken-runtime.toml"),
      handlerName: BROKEN_HANDLER,
      runtimePath: packagedShimPath(),
      kataConfigPath: brokenConfigPath,
    });
    const podShimConfigPath = join(dir, POD_SHIM_HANDLER, "configuration.toml");
    await mkdir(dirname(podShimConfigPath), { recursive: true });
    await writeFile(podShimConfigPath, '[runtime]\nshim_server = "pod"\n');
    await installContainerdHandler({
      containerdConfigPath: configPath,
      dropInPath: join(dir, `${POD_SHIM_HANDLER}-runtime.toml`),
      handlerName: POD_SHIM_HANDLER,
      runtimePath: packagedShimPath(),
      kataConfigPath: podShimConfigPath,
    });
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isQemu(p: ProcInfo): boolean {
  return p.cmdline.some((a) => a.includes("qemu-system"));
}
function isVirtiofsd(p: ProcInfo): boolean {
  return p.cmdline.some((a) => a.endsWith("virtiofsd"));
}
/** The shim server (`... -id <id> ... serve`) of a pod. */
function isShimServer(p: ProcInfo, podId: string): boolean {
  return p.cmdline.at(-1) === "serve" && p.cmdline[p.cmdline.indexOf("-id") + 1] === podId;
}

async function parentPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
}

/** This harness's processes that mention `podId` (QEMU and virtiofsd carry the pod's state dir). */
async function podProcesses(podId: string): Promise<ProcInfo[]> {
  assert.ok(fx.ctd);
  return (await processesMentioning(fx.ctd.baseDir)).filter((p) => p.pid !== fx.ctd?.pid && p.cmdline.some((a) => a.includes(podId)));
}

/** Everything a pod may leave behind, while containerd still runs: processes, mounts, kata-ts state. */
function podLeftovers(): Promise<string[]> {
  assert.ok(fx.ctd);
  return leftoversOf(fx.ctd);
}

/** A kata-ts pod with one running `sleep` container. */
async function runningPod(name: string, runtimeHandler = HANDLER): Promise<{ podSandboxId: string; containerId: string; logDirectory: string }> {
  assert.ok(fx.ctd && fx.cri);
  const logDirectory = join(fx.ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  const { podSandboxId } = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler });
  const { containerId } = await fx.cri.runtime.createContainer({
    podSandboxId,
    sandboxConfig: config,
    config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper/0.log" },
  });
  await fx.cri.runtime.startContainer({ containerId });
  await waitForContainerState(fx.cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 120_000 });
  return { podSandboxId, containerId, logDirectory };
}

/**
 * StopPodSandbox + RemovePodSandbox must succeed (each within `timeoutMs`, as the CRI call's own
 * deadline: kubelet's is 2 minutes), and then nothing of the pod may remain.
 */
async function stopAndRemove(podSandboxId: string, timeoutMs?: number): Promise<void> {
  assert.ok(fx.cri);
  const opts = timeoutMs === undefined ? {} : { timeoutMs };
  await fx.cri.runtime.stopPodSandbox({ podSandboxId }, opts);
  await fx.cri.runtime.removePodSandbox({ podSandboxId }, opts);
  assert.deepEqual((await fx.cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  try {
    await waitUntilEmpty("pod leftovers after RemovePodSandbox", podLeftovers, 60_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await whatThePodSaid(podSandboxId)}`);
  }
}

/**
 * For a pod that left something behind: its shim's kernel state and the last lines containerd's
 * log holds about it (its shim's log included), which are gone with the harness once the file ends.
 */
async function whatThePodSaid(podSandboxId: string): Promise<string> {
  assert.ok(fx.ctd);
  const out: string[] = [];
  for (const p of (await processesMentioning(fx.ctd.baseDir)).filter((q) => isShimServer(q, podSandboxId))) {
    const status = await readFile(`/proc/${p.pid}/status`, "utf8").catch(() => "");
    const wchan = await readFile(`/proc/${p.pid}/wchan`, "utf8").catch(() => "?");
    out.push(`shim ${p.pid}: ${status.match(/^State:.*$/m)?.[0] ?? "State: ?"}, wchan ${wchan}`);
  }
  const log = (await readFile(fx.ctd.logPath, "utf8").catch(() => "")).split("\n").filter((l) => l.includes(podSandboxId));
  out.push(`containerd log, last ${Math.min(log.length, 80)} of ${log.length} lines about ${podSandboxId}:`, ...log.slice(-80));
  return out.join("\n");
}

void test("faults: a broken ConfigPath fails RunPodSandbox naming the file and the key, and leaves nothing", { timeout: 300_000 }, async (t) => {
  assert.ok(fx.ctd && fx.cri);
  const logDirectory = join(fx.ctd.baseDir, "pods", "default_broken_uid-broken");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "broken", uid: "uid-broken", logDirectory });
  const err = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: BROKEN_HANDLER }).then(
    () => assert.fail("RunPodSandbox with a broken configuration must fail"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CriError, String(err));
  t.diagnostic(`RunPodSandbox error: ${err.message}`);
  assert.ok(err.message.includes(brokenConfigPath), `the error names the file: ${err.message}`);
  assert.ok(err.message.includes("hypervisor.qemu.default_vcpu"), `the error names the key: ${err.message}`);
  // containerd removes a sandbox whose start failed; the shim must not keep anything either.
  assert.deepEqual((await fx.cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  await waitUntilEmpty("leftovers of the failed pod", podLeftovers, 60_000);

  // A wrong type is read at the next pod start (ConfigPath is read per pod) and named the same way.
  await writeFile(brokenConfigPath, '[hypervisor.qemu]\ndefault_vcpus = "two"\n');
  const err2 = await fx.cri.runtime.runPodSandbox({ config, runtimeHandler: BROKEN_HANDLER }).then(
    () => assert.fail("RunPodSandbox with a wrongly typed key must fail"),
    (e: unknown) => e,
  );
  assert.ok(err2 instanceof CriError, String(err2));
  t.diagnostic(`RunPodSandbox error: ${err2.message}`);
  assert.ok(err2.message.includes(brokenConfigPath), `the error names the file: ${err2.message}`);
  assert.ok(err2.message.includes("hypervisor.qemu.default_vcpus"), `the error names the key: ${err2.message}`);
  assert.deepEqual((await fx.cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  await waitUntilEmpty("leftovers of the failed pod", podLeftovers, 60_000);
});

void test("faults: QEMU killed while the pod boots: RunPodSandbox fails and leaves nothing", { timeout: 600_000 }, async (t) => {
  assert.ok(fx.ctd && fx.cri);
  const base = fx.ctd.baseDir;
  const logDirectory = join(base, "pods", "default_bootkill_uid-bootkill");
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name: "bootkill", uid: "uid-bootkill", logDirectory });
  const started = fx.cri.runtime.runPodSandbox({ config, runtimeHandler: HANDLER }).then(
    (r) => ({ ok: true as const, podSandboxId: r.podSandboxId }),
    (e: unknown) => ({ ok: false as const, err: e }),
  );
  // No other pod runs now: the first QEMU of this harness is the booting pod's.
  const deadline = Date.now() + 120_000;
  let killed = false;
  while (!killed && Date.now() < deadline) {
    // The pod's VM, not a short-lived QEMU probe: its command line names its state under kata-ts's dir.
    const qemu = (await processesMentioning(base)).find((p) => isQemu(p) && p.cmdline.some((a) => a.includes(`${fx.ctd?.kataStateDir}/`)));
    if (qemu) {
      // Past QEMU's own start-up (QMP up), while the guest kernel boots towards the agent.
      await sleep(3_000);
      process.kill(qemu.pid, "SIGKILL");
      killed = true;
    } else await sleep(50);
  }
  const result = await started;
  if (result.ok) {
    // QEMU died after the agent answered: the pod came up, and must still stop and go away.
    t.diagnostic("QEMU was killed only after the pod was ready");
    await stopAndRemove(result.podSandboxId);
  } else {
    assert.ok(result.err instanceof CriError, String(result.err));
    t.diagnostic(`RunPodSandbox error (gRPC ${grpcStatus[result.err.grpcCode]}): ${result.err.message}`);
    // The boot notices the VM is gone; it does not wait out agent.dial_timeout (120 s) for an agent that cannot answer.
    assert.notEqual(result.err.grpcCode, grpcStatus.DEADLINE_EXCEEDED, result.err.message);
  }
  assert.ok(killed, "QEMU of the booting pod was found and killed");
  assert.deepEqual((await fx.cri.runtime.listPodSandbox({})).items.map((p) => p.id), []);
  await waitUntilEmpty("leftovers of the pod whose VM died while booting", podLeftovers, 60_000);
});

void test("faults: kill -9 of a pod's own shim (shim_server = \"pod\"): containerd's delete path removes the VM; stop and remove succeed", { timeout: 600_000 }, async (t) => {
  assert.ok(fx.ctd && fx.cri);
  const { podSandboxId, containerId } = await runningPod("shimkill", POD_SHIM_HANDLER);
  try {
    const procs = await podProcesses(podSandboxId);
    const shims = procs.filter((p) => isShimServer(p, podSandboxId));
    assert.equal(shims.length, 1, `one shim server for the pod: ${procs.map((p) => p.cmdline.join(" ")).join("\n")}`);
    assert.equal(procs.filter(isQemu).length, 1, "one QEMU for the pod");
    process.kill((shims[0] as ProcInfo).pid, "SIGKILL");
    // containerd sees the shim's connection drop and runs `containerd-shim-kata-ts-v2 ... delete`.
    // Its kata-ts state dir going too shows that the delete path (cleanupPod) ran, before any CRI stop.
    const stateDir = join(fx.ctd.kataStateDir, podSandboxId);
    const vmLeft = async () => [
      ...(await podProcesses(podSandboxId)).filter((p) => isQemu(p) || isVirtiofsd(p)).map((p) => `${p.pid}: ${p.cmdline.join(" ")}`),
      ...((await stat(stateDir).catch(() => undefined)) ? [`state dir ${stateDir}`] : []),
    ];
    await waitUntilEmpty("QEMU/virtiofsd/state of the pod whose shim was killed", vmLeft, 120_000);
    const pod = await fx.cri.runtime.podSandboxStatus({ podSandboxId });
    assert.equal(pod.status?.state, PodSandboxState.SANDBOX_NOTREADY, "the pod is not ready once its shim died");
    // The app container ran in the same shim: CRI must not go on reporting it RUNNING.
    const app = await waitForContainerState(fx.cri, containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
    assert.notEqual(app.exitCode, 0, "a container whose shim died did not succeed");
    t.diagnostic(`app container after the shim died: EXITED, exit code ${app.exitCode}`);
  } finally {
    await stopAndRemove(podSandboxId);
  }
});

void test("faults: QEMU killed: the running container exits 137 naming the cause in its log; stop and remove succeed", { timeout: 600_000 }, async () => {
  assert.ok(fx.ctd && fx.cri);
  const { podSandboxId, containerId, logDirectory } = await runningPod("qemukill");
  try {
    const qemus = (await podProcesses(podSandboxId)).filter(isQemu);
    assert.equal(qemus.length, 1, "one QEMU for the pod");
    process.kill((qemus[0] as ProcInfo).pid, "SIGKILL");
    const status = await waitForContainerState(fx.cri, containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 120_000 });
    assert.notEqual(status.exitCode, 0, "a container whose VM died did not succeed");
    assert.equal(status.exitCode, 137, "the shim reports a lost VM as killed (128+SIGKILL)");
    const stderr = await readCriLog(logDirectory, "sleeper/0.log", "stderr");
    assert.match(stderr, /kata-ts: the VM's QEMU \(pid \d+\) was killed by SIGKILL/, `the container's log names the cause: ${stderr}`);
  } finally {
    await stopAndRemove(podSandboxId, 30_000);
  }
});

void test("faults: virtiofsd killed: the pod fails at once (exec returns, container EXITED 137 naming virtiofsd); stop and remove succeed", { timeout: 600_000 }, async (t) => {
  assert.ok(fx.ctd && fx.cri);
  const { podSandboxId, containerId, logDirectory } = await runningPod("vfskill");
  try {
    const procs = await podProcesses(podSandboxId);
    // virtiofsd forks a worker into its sandbox namespaces once QEMU connects: kill the daemon
    // kata-ts started (the worker's parent); the worker must not outlive it (the leak check).
    const vfs = procs.filter(isVirtiofsd);
    const vfsPids = new Set(vfs.map((p) => p.pid));
    const daemons = [];
    for (const p of vfs) if (!vfsPids.has(await parentPid(p.pid))) daemons.push(p);
    assert.equal(daemons.length, 1, `one virtiofsd daemon for the pod: ${procs.map((p) => p.cmdline.join(" ")).join("\n")}`);
    // An exec in flight when the share dies must come back, not hang until the CRI deadline.
    const exec = fx.cri.runtime.execSync({ containerId, cmd: ["sleep", "600"], timeout: 0n }, { timeoutMs: 120_000 }).then(
      (r) => ({ exitCode: r.exitCode, err: undefined }),
      (e: unknown) => ({ exitCode: undefined, err: e }),
    );
    await sleep(5_000);
    process.kill((daemons[0] as ProcInfo).pid, "SIGKILL");
    const status = await waitForContainerState(fx.cri, containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
    assert.equal(status.exitCode, 137, "the container of a pod whose virtiofsd died is killed (128+SIGKILL)");
    const stderr = await readCriLog(logDirectory, "sleeper/0.log", "stderr");
    t.diagnostic(`container stderr: ${stderr.trim()}`);
    assert.match(stderr, /kata-ts: virtiofsd \(pid \d+\) was killed by SIGKILL/, `the container's log names the cause: ${stderr}`);
    // The sandbox (pause) task exits with the VM; containerd marks the pod NotReady on that event.
    const notReady = async () => {
      const pod = await fx.cri?.runtime.podSandboxStatus({ podSandboxId });
      return pod?.status?.state === PodSandboxState.SANDBOX_NOTREADY ? [] : [`pod ${podSandboxId} state ${pod?.status?.state}`];
    };
    await waitUntilEmpty("a ready pod after its VM was stopped", notReady, 30_000);
    const ran = await exec;
    t.diagnostic(`exec in flight: ${ran.err === undefined ? `exit code ${ran.exitCode}` : String(ran.err)}`);
    if (ran.err !== undefined) {
      assert.ok(ran.err instanceof CriError, String(ran.err));
      assert.notEqual(ran.err.grpcCode, grpcStatus.DEADLINE_EXCEEDED, `the exec came back: ${ran.err.message}`);
    } else assert.notEqual(ran.exitCode, 0, "the exec in flight was killed with its pod");
  } finally {
    await stopAndRemove(podSandboxId, 30_000);
  }
});

void test("faults: QEMU stopped (SIGSTOP, a wedged guest): stop and remove succeed within their deadline; the container EXITED 137 naming the cause", { timeout: 600_000 }, async (t) => {
  assert.ok(fx.ctd && fx.cri);
  const { podSandboxId, containerId, logDirectory } = await runningPod("qemustop");
  const qemus = (await podProcesses(podSandboxId)).filter(isQemu);
  assert.equal(qemus.length, 1, "one QEMU for the pod");
  const qemuPid = (qemus[0] as ProcInfo).pid;
  process.kill(qemuPid, "SIGSTOP");
  let failure: unknown;
  try {
    // The agent's health check goes unanswered for agent.liveness_timeout (30 s): the guest counts
    // as wedged, its VM is killed, and the Kill that StopPodSandbox sent completes. 90 s is well
    // inside kubelet's 2-minute CRI deadline.
    await fx.cri.runtime.stopPodSandbox({ podSandboxId }, { timeoutMs: 90_000 });
    const status = await waitForContainerState(fx.cri, containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 10_000 });
    assert.equal(status.exitCode, 137, "the container of a wedged pod is killed (128+SIGKILL)");
    const stderr = await readCriLog(logDirectory, "sleeper/0.log", "stderr");
    t.diagnostic(`container stderr: ${stderr.trim()}`);
    assert.match(stderr, /kata-ts: the guest agent answered no health check for \d+ s/, `the container's log names the cause: ${stderr}`);
  } catch (err) {
    failure = err;
  }
  try {
    await stopAndRemove(podSandboxId, 30_000);
  } catch (err) {
    // Never leave a stopped QEMU behind a failed assertion (it may be gone already).
    try {
      process.kill(qemuPid, "SIGKILL");
    } catch {
      /* gone */
    }
    failure ??= err;
  }
  if (failure !== undefined) throw failure;
});
