// The VM pool end to end, on by default: a private containerd whose kata-ts handler has the
// default [factory] (only max_shapes raised, for the tenant case) and a shim per pod, the first pod's shim starting
// the node's pool daemon, which keeps one VM ready. Pods started over CRI take the pooled VM (their
// sandbox runs the very QEMU the pool booted) and are complete pods: own IP reachable from the
// harness netns, port-forward, the veth's MAC, hostname, sysctls, rootfs, guest kernel, the pod's
// cgroup. Two pods adopted one after the other share nothing; the pool refills; a SIGKILLed pool owner leaves
// its adopted pods running and its pooled VMs dead; a VM handed over and never taken is reclaimed;
// a stopped pool and removed pods leave nothing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { access, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectCri, type CriClient } from "../../src/cri/client.js";
import { ContainerState, readCriLog, waitForContainerState } from "../../src/cri/pod.js";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { cgroupDirsOf } from "../../src/sandbox/host-cgroup.js";
import { run } from "../../src/util/exec.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../harness/containerd.js";
import { defaultRuntimes } from "../harness/containerd-config.js";
import { BUSYBOX_IMAGE_REF, importTestImages } from "../harness/images.js";
import { PodSandboxState } from "../../src/cri/gen/runtime/v1/api_pb.js";
import { podSandboxConfig } from "../../src/cri/pod.js";
import { mkdir } from "node:fs/promises";
import { mountsUnder } from "../harness/mounts.js";
import { HANDLER } from "./kata-pod-flow.js";
import { httpBody, httpGetScript, inHarnessNetns, podNetnsPath, startWebPod, WEB_PORT, type WebPod } from "./network-pods.js";
import { POOL_CGROUP, POOL_VMS_CGROUP, POOL_VMS_CPU_SHARES } from "../../src/pool/priority.js";
import { poolDaemonNodeFlags } from "../../src/pool/owner.js";
import { serverMallocEnv } from "../../src/shim/server-env.js";
import { parseConfig, selectedVmmConfig } from "../../src/config/index.js";
import { pidGone } from "../../src/hypervisor/qemu/adopted-vm.js";
import { untakenDir } from "../../src/pool/pooled-vm.js";
import { poolCall } from "../../src/pool/protocol.js";
import { podAssets, poolShape } from "../../src/pool/shape.js";
import { virtiofsdPidFile } from "../../src/sandbox/virtiofsd.js";
import { CLOCK_BOUND_MS } from "../../src/agent/clock.js";
import { childrenOf, foundPoolDaemon, niceOf, pooledQemus, poolPathsOf, poolStatus, processesNamingPool, readyWarmShim, sandboxRecord, sessionOf, shimActionOf, shimPidOf, startPoolDaemon, waitPooled, warmShimServers, type PoolDaemon } from "./pool-fixture.js";

const FAULT_SHIM = fileURLToPath(new URL("../harness/adopt-fault-shim.js", import.meta.url));
const FAULT_RUNTIME_TYPE = "io.containerd.katatsfault.v2";
const FAULT_HANDLER = "kata-ts-fault";
const PORT_FORWARD_CLIENT = fileURLToPath(new URL("../harness/port-forward-client.js", import.meta.url));
// The defaults (pool on, pool_size 1) but for a second shape, for the per-tenant case.
// A shim process per pod: this file tests the pool's warm shim servers, which only that mode has
// (the node-level server, the default, takes pooled VMs too: node-shim-pool.test.ts).
// (Tests append [factory] keys to it: [factory] comes last.)
const kataConfig = '[runtime]\nshim_server = "pod"\n[factory]\nmax_shapes = 2\n';
let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;
let configDir: string | undefined;
let daemon: PoolDaemon | undefined;
const pods: WebPod[] = [];
const seenVmIds = new Set<string>();
let podA: WebPod | undefined;
let podB: WebPod | undefined;

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

before(async () => {
  configDir = await mkdtemp(join(tmpdir(), "kts-pool-config-"));
  const kataConfigPath = join(configDir, "configuration.toml");
  await writeFile(kataConfigPath, kataConfig);
  ctd = await startContainerd({
    kataTs: { kataConfigPath },
    pool: true,
    // The production shim with an adopter that makes the guest refuse UpdateNetwork (test/harness/adopt-fault-shim.ts).
    shims: { [FAULT_RUNTIME_TYPE]: FAULT_SHIM },
    runtimes: { ...defaultRuntimes, [FAULT_HANDLER]: { runtime_type: FAULT_RUNTIME_TYPE, privileged_without_host_devices: true, pod_annotations: ["io.katats.*"], options: { ConfigPath: kataConfigPath } } },
  });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
});

after(async () => {
  for (const p of pods) await p.remove().catch(() => undefined);
  if (daemon?.running() === true) {
    process.kill(daemon.pid, "SIGTERM");
    await daemon.exited;
  }
  cri?.close();
  await ctd?.stop();
  if (configDir) await rm(configDir, { recursive: true, force: true });
  if (ctd) await assertNoLeaks(ctd);
  const netns = await readdir("/var/run/netns").catch(() => [] as string[]);
  assert.deepEqual(netns.filter((n) => [...seenVmIds].some((id) => n === `kts-pool-${id}`)), [], "no pooled VM's netns name left");
});

/** Adopt: the pod's sandbox runs the QEMU that was pooled. */
async function startAdoptedPod(name: string, pooledPid: number, extra: { sysctls?: Record<string, string>; prepare?: string; dns?: { servers: string[]; searches: string[]; options: string[] } } = {}): Promise<WebPod> {
  assert.ok(ctd && cri);
  const pod = await startWebPod(ctd, cri, { name, handler: HANDLER, ...extra });
  pods.push(pod);
  assert.equal((await sandboxRecord(ctd, pod.podSandboxId)).vmPid, pooledPid, `pod ${name} runs in the pooled VM`);
  return pod;
}

void test("the first pod's shim starts the node's pool daemon, which outlives it in a session and cgroup of its own at normal priority, its pooled VMs low in a cgroup beside it", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri);
  const paths = poolPathsOf(ctd);
  assert.equal(await exists(paths.socket), false, "no pool daemon before the first pod");
  // No pool yet: this pod boots its own VM, and its shim starts the daemon.
  const first = await startWebPod(ctd, cri, { name: "pool-first", handler: HANDLER });
  pods.push(first);
  const d = await foundPoolDaemon(paths);
  daemon = d;
  const shimPid = await shimPidOf(ctd, first.podSandboxId);
  assert.equal(await shimActionOf(shimPid), "serve", "no pool yet: the pod's start spawned its server (no warm one to take)");
  assert.notEqual(await sessionOf(d.pid), await sessionOf(shimPid), "the daemon is in a session of its own");
  const dirs = await cgroupDirsOf(d.pid);
  assert.ok(dirs.length > 0 && dirs.every((dir) => dir.endsWith(`/${POOL_CGROUP}`)), `the daemon is in the pool's own cgroup, not the pod's: ${dirs.join(", ")}`);
  assert.equal(await niceOf(d.pid), 0, "the daemon answers takes at normal priority");
  // Started as a long-lived idle Node process (src/pool/owner.ts poolDaemonSpawn): the server's V8
  // flags and glibc's trim settings, for itself only (its pooled VMs' processes below keep the defaults).
  const daemonArgv = (await readFile(`/proc/${d.pid}/cmdline`, "utf8")).split("\0");
  for (const flag of poolDaemonNodeFlags) assert.ok(daemonArgv.indexOf(flag) > 0 && daemonArgv.indexOf(flag) < daemonArgv.findIndex((a) => a.endsWith("kata-ts.js")), `the daemon runs with ${flag}: ${daemonArgv.join(" ")}`);
  const daemonEnviron = (await readFile(`/proc/${d.pid}/environ`, "utf8")).split("\0");
  for (const [k, v] of Object.entries(serverMallocEnv)) assert.ok(daemonEnviron.includes(`${k}=${v}`), `the daemon started with ${k}=${v}`);
  for (const dir of dirs) {
    const shares = await readFile(join(dir, "cpu.shares"), "utf8").catch(() => undefined);
    if (shares !== undefined) assert.equal(Number(shares), 1024, `the daemon's cgroup has the default CPU weight (${dir})`);
  }
  const vms = await waitPooled(d.paths, 1);
  for (const id of vms.keys()) seenVmIds.add(id);
  const vmsDirs = dirs.map((dir) => join(dir, "..", POOL_VMS_CGROUP));
  for (const qemu of vms.values()) {
    const virtiofsd = (await processesNamingPool(d.paths)).filter((p) => p !== qemu);
    assert.ok(virtiofsd.length > 0, "the pooled VM's virtiofsd");
    for (const pid of [qemu, ...virtiofsd]) {
      const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
      for (const k of Object.keys(serverMallocEnv)) assert.ok(!environ.some((e) => e.startsWith(`${k}=`)), `pooled VM process ${pid} keeps glibc's default ${k} (the daemon's own setting)`);
      assert.deepEqual(await cgroupDirsOf(pid), vmsDirs, `pooled VM process ${pid} waits in the VMs' cgroup beside the daemon's`);
      for (const tid of await readdir(`/proc/${pid}/task`)) assert.equal(await niceOf(pid, tid), 19, `thread ${tid} of pooled VM process ${pid} at refill_nice`);
    }
  }
  for (const dir of vmsDirs) {
    const shares = await readFile(join(dir, "cpu.shares"), "utf8").catch(() => undefined);
    if (shares !== undefined) assert.equal(Number(shares), POOL_VMS_CPU_SHARES, `the VMs' cgroup has the low CPU weight (${dir})`);
  }
  // The pod that started it goes; the daemon stays.
  await first.remove();
  pods.splice(pods.indexOf(first), 1);
  assert.equal(d.running(), true, "the daemon outlives the shim that started it");
  assert.equal((await poolStatus(d.paths)).pid, d.pid);
});

void test("a pod adopted from the pool: its IP answers from the harness netns; port-forward, veth MAC, hostname, sysctls, rootfs, guest kernel, pod cgroup, priority", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri && daemon);
  const pooledVms = await pooledQemus(daemon.paths);
  const pooled = [...pooledVms.values()];
  assert.equal(pooled.length, 1, "one VM pooled");
  const pid = pooled[0] as number;
  assert.equal(await niceOf(pid), 19, "a pooled VM waits at the refill priority");
  // [factory] warm_up_containers (default on): the pooled guest has run its own container and
  // removed it before the pod adopts it (what is left of it in the guest: none, see
  // test/integration/agent-container-warm-up-vm.test.ts).
  const consoleLog = join(daemon.paths.vmsDir, [...pooledVms.keys()][0] as string, "vm", "console.log");
  let consoleText = "";
  for (let i = 0; i < 600 && !/container warm-up (done|failed)/.test(consoleText); i++) {
    await new Promise((r) => setTimeout(r, 500));
    consoleText = await readFile(consoleLog, "utf8").catch(() => "");
  }
  assert.match(consoleText, /container warm-up done in \d+ ms/, `the pooled VM warmed up before adoption:\n${consoleText.split("\n").filter((l) => l.includes("kata-ts-agent")).join("\n")}`);
  // [factory] warm_shims (default 1): a shim server started and loaded, waiting at the refill
  // priority, which pod A's start takes instead of spawning one.
  const warm = await readyWarmShim(daemon.paths);
  assert.equal(await niceOf(warm), 19, "a warm shim server waits at the refill priority");
  // A's container starts a process of its own (the next test looks for it in B).
  podA = await startAdoptedPod("pool-a", pid, { sysctls: { "kernel.shm_rmid_forced": "1" }, prepare: "(sleep 3600 &)", dns: { servers: ["10.96.0.10"], searches: ["pool-a.svc.cluster.local"], options: [] } });
  const a = podA;

  const page = await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(a.ip)]);
  assert.equal(httpBody(page.stdout), "pool-a\n", "the pod IP answers from the harness netns");
  const { url } = await cri.runtime.portForward({ podSandboxId: a.podSandboxId, port: [WEB_PORT] });
  const pf = await run("nsenter", [`--net=${ctd.netnsPath}`, "--", process.execPath, PORT_FORWARD_CLIENT, url, String(WEB_PORT)], { input: "GET / HTTP/1.0\r\n\r\n", allowNonZero: true, timeoutMs: 90_000 });
  assert.equal(pf.stderr, "", "port-forward into the adopted VM");
  assert.equal(httpBody(pf.stdout), "pool-a\n", "port-forward reaches the adopted VM's server");
  const addr = await a.exec(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
  assert.match(addr.stdout, new RegExp(`inet ${a.ip.replaceAll(".", "\\.")}/`), addr.stdout);
  const guestMac = /link\/ether ([0-9a-f:]{17})/.exec((await a.exec(["ip", "link", "show", "dev", "eth0"])).stdout)?.[1];
  const veth = JSON.parse((await run("nsenter", [`--net=${await podNetnsPath(cri, a.podSandboxId)}`, "--", "ip", "-j", "link", "show", "dev", "eth0"])).stdout) as { address: string }[];
  assert.equal(guestMac, veth[0]?.address, "the pooled VM's NIC took the veth's MAC");

  // The guest clock was set at pool time; adoption sets it again only when off by more than the
  // bound (CLOCK_BOUND_MS): either way the pod's clock is within it of the host's (`date +%s` has
  // whole seconds, so one more second of slack).
  const before = Date.now();
  const guestSecs = Number((await a.exec(["date", "+%s"])).stdout.trim());
  const afterExec = Date.now();
  assert.ok(guestSecs * 1000 + 1000 >= before - CLOCK_BOUND_MS && guestSecs * 1000 <= afterExec + CLOCK_BOUND_MS, `guest clock ${guestSecs} s is within ${CLOCK_BOUND_MS} ms of the host's (${before}..${afterExec} ms)`);
  assert.equal((await a.exec(["hostname"])).stdout.trim(), "pool-a");
  assert.equal((await a.exec(["cat", "/proc/sys/kernel/shm_rmid_forced"])).stdout.trim(), "1", "the pod's sysctl");
  // The share was mounted in the guest at pool time, before the pod's files were bound into it.
  assert.equal((await a.exec(["cat", "/www/index.html"])).stdout, "pool-a\n", "the container's own rootfs, in the share mounted at pool time");
  const resolv = (await a.exec(["cat", "/etc/resolv.conf"])).stdout;
  assert.match(resolv, /nameserver 10\.96\.0\.10/, `the pod's resolv.conf (a host file bound into the share after it was mounted) is seen: ${resolv}`);
  const kernel = (await a.exec(["uname", "-r"])).stdout.trim();
  assert.equal(kernel, (await loadGuestAssets()).kernelRelease);
  assert.notEqual(kernel, release());

  const rec = await sandboxRecord(ctd, a.podSandboxId);
  assert.equal(await shimPidOf(ctd, a.podSandboxId), warm, "pod A is served by the pool's warm shim server");
  assert.equal((await readFile(`/proc/${warm}/oom_score_adj`, "utf8")).trim(), (await readFile(`/proc/${ctd.pid}/oom_score_adj`, "utf8")).trim(), "with the oom_score_adj its start had (containerd's)");
  for (const p of [pid, rec.virtiofsdPid as number, warm]) {
    const dirs = await cgroupDirsOf(p);
    assert.ok(dirs.length > 0 && dirs.every((d) => d.endsWith(`/${a.podSandboxId}`)), `pid ${p} is in the pod's cgroup: ${dirs.join(", ")}`);
    assert.equal(await niceOf(p), 0, `pid ${p} runs at the shim's priority once adopted`);
  }
});

void test("the pool is refilled after a VM is taken", { timeout: 600_000 }, async () => {
  assert.ok(ctd && daemon && podA);
  const taken = (await sandboxRecord(ctd, podA.podSandboxId)).vmPid as number;
  const vms = await waitPooled(daemon.paths, 1, new Set([taken]));
  for (const id of vms.keys()) seenVmIds.add(id);
  const shimA = await shimPidOf(ctd, podA.podSandboxId);
  const warm = await readyWarmShim(daemon.paths, new Set([shimA]));
  assert.notEqual(warm, shimA, "a new warm shim server");
  const status = await poolStatus(daemon.paths);
  assert.equal(status.taken, 1);
  assert.ok((status.warmShims?.taken ?? 0) >= 1, `the pool counts warm shim servers handed over: ${JSON.stringify(status.warmShims)}`);
  assert.ok(status.shapes[0] !== undefined && status.shapes[0].rssKiB > 0, "status reports the pooled VM's memory");
});

void test("two pods adopted one after the other see neither each other's files nor processes", { timeout: 600_000 }, async () => {
  assert.ok(ctd && daemon && podA);
  const a = podA;
  assert.equal((await a.exec(["sh", "-c", "echo secret > /tmp/a-secret && echo ok"])).stdout.trim(), "ok");
  const [pooled] = [...(await pooledQemus(daemon.paths)).values()];
  assert.ok(pooled !== undefined);
  podB = await startAdoptedPod("pool-b", pooled);
  const b = podB;
  assert.notEqual((await sandboxRecord(ctd, a.podSandboxId)).vmPid, pooled, "a fresh VM, not pod A's");
  assert.notEqual((await b.exec(["test", "-e", "/tmp/a-secret"])).exitCode, 0, "A's file is not in B");
  const psA = (await a.exec(["ps", "-o", "args"])).stdout;
  assert.match(psA, /sleep 3600/, "A's process runs in A");
  // The agent's warm `ip -batch -` (started at pool time, ended once adoption's UpdateNetwork used it) is no pod's to see.
  assert.doesNotMatch(psA, /ip .*-batch/, "the agent's warm ip is not seen from the pod");
  assert.doesNotMatch((await b.exec(["ps", "-o", "args"])).stdout, /sleep 3600/, "A's process is not in B");
  const bootA = (await a.exec(["cat", "/proc/sys/kernel/random/boot_id"])).stdout.trim();
  const bootB = (await b.exec(["cat", "/proc/sys/kernel/random/boot_id"])).stdout.trim();
  assert.notEqual(bootA, bootB, "two kernels, not one");
  assert.equal(httpBody((await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(b.ip)])).stdout), "pool-b\n");
});

void test("pools are per tenant: a pod of another tenant boots its own VM, and that tenant gets a pool of its own", { timeout: 600_000 }, async () => {
  assert.ok(ctd && cri && daemon);
  const before = new Set((await pooledQemus(daemon.paths)).values());
  const pod = await startWebPod(ctd, cri, { name: "pool-t", handler: HANDLER, annotations: { "io.katats.pool-tenant": "team-x" } });
  pods.push(pod);
  const vmPid = (await sandboxRecord(ctd, pod.podSandboxId)).vmPid;
  assert.ok(vmPid !== undefined && !before.has(vmPid), "the tenant's pod did not take the tenant-less pooled VM");
  const status = await poolStatus(daemon.paths);
  assert.deepEqual(status.shapes.map((s) => s.tenant).sort(), ["", "team-x"], "the tenant's shape is pooled from now on");
  assert.equal(status.taken, 2, "only pods A and B took pooled VMs");
  await pod.remove();
  pods.splice(pods.indexOf(pod), 1);
});

// A lost pod's teardown may outlast containerd's patience with Delete: the shim must not exit
// before it is over (its share mount p/shared once outlived RemovePodSandbox that way).
/** A status call may go unanswered for a while on a busy host: ask again. */
async function waitTenantlessReady(d: PoolDaemon): Promise<void> {
  const ready = async (): Promise<boolean> => (await poolStatus(d.paths).catch(() => undefined))?.shapes.some((s) => s.tenant === "" && s.ready > 0) ?? false;
  for (let i = 0; i < 1000 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 500));
}

void test("an adopted pod is watched like a booted one: its virtiofsd killed, the container exits 137 naming virtiofsd; the pod stops and is removed", { timeout: 600_000 }, async (t) => {
  assert.ok(ctd && cri && daemon);
  // Another tenant's shape is pooled too by now: wait for a tenant-less VM (the pool refills at low priority).
  await waitTenantlessReady(daemon);
  const pooled = new Set((await pooledQemus(daemon.paths)).values());
  const pod = await startWebPod(ctd, cri, { name: "pool-vfs", handler: HANDLER });
  pods.push(pod);
  try {
    const rec = await sandboxRecord(ctd, pod.podSandboxId);
    assert.ok(pooled.has(rec.vmPid as number), `pod pool-vfs runs in a pooled VM (${rec.vmPid} in ${[...pooled].join(", ")})`);
    const vfsPid = rec.virtiofsdPid as number;
    process.kill(vfsPid, "SIGKILL");
    const status = await waitForContainerState(cri, pod.containerId, ContainerState.CONTAINER_EXITED, { timeoutMs: 60_000 });
    assert.equal(status.exitCode, 137, "the container of a pod whose virtiofsd died is killed (128+SIGKILL)");
    const stderr = await readCriLog(join(ctd.baseDir, "pods", "default_pool-vfs_uid-pool-vfs"), "web/0.log", "stderr");
    t.diagnostic(`container stderr: ${stderr.trim()}`);
    assert.match(stderr, new RegExp(`kata-ts: virtiofsd \\(pid ${vfsPid}\\) ended`), `the container's log names the cause: ${stderr}`);
    await pod.remove();
    pods.splice(pods.indexOf(pod), 1);
    // The shim removes a lost pod's state as it exits, which may be just after RemovePodSandbox answers.
    const stateDir = join(ctd.kataStateDir, pod.podSandboxId);
    for (let i = 0; i < 120 && (await exists(stateDir)); i++) await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(await mountsUnder([stateDir]), [], "no mount of the pod's left");
    assert.equal(await exists(stateDir), false, "the pod's state dir is gone");
    for (const p of [rec.vmPid as number, vfsPid]) {
      const cmdline = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
      assert.equal(cmdline.includes(pod.podSandboxId), false, `pid ${p} of the pod is gone`);
    }
  } finally {
    if (pods.includes(pod)) {
      await pod.remove().catch(() => undefined);
      pods.splice(pods.indexOf(pod), 1);
    }
  }
});

void test("a deferred adoption that fails after RunPodSandbox returned (the guest refuses UpdateNetwork): the pending container start fails naming it, the sandbox turns NOTREADY, Stop/Remove leave nothing", { timeout: 600_000 }, async (t) => {
  assert.ok(ctd && cri && daemon);
  await waitTenantlessReady(daemon);
  const pooled = new Set((await pooledQemus(daemon.paths)).values());
  const name = "pool-deferred-fault";
  const logDirectory = join(ctd.baseDir, "pods", `default_${name}_uid-${name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = podSandboxConfig({ name, uid: `uid-${name}`, logDirectory });
  // RunPodSandbox returns once the VM is the pod's on the host; the guest's set-up goes on and fails
  // (the fault shim's adopter: UpdateNetwork names a MAC no guest NIC has, and the network's host
  // side is held 8 s, so that the container's start below is pending when it fails).
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: FAULT_HANDLER });
  const stateDir = join(ctd.kataStateDir, podSandboxId);
  let qemuPid = 0;
  let vfsPid = 0;
  try {
    const rec = await sandboxRecord(ctd, podSandboxId);
    qemuPid = rec.vmPid as number;
    vfsPid = rec.virtiofsdPid as number;
    assert.ok(pooled.has(qemuPid), `the sandbox took a pooled VM (${qemuPid} in ${[...pooled].join(", ")})`);
    assert.equal((await cri.runtime.podSandboxStatus({ podSandboxId })).status?.state, PodSandboxState.SANDBOX_READY, "the sandbox is ready while its guest's set-up still runs");
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name: "sleeper" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sleep", "3600"], logPath: "sleeper.log" },
    });
    await assert.rejects(cri.runtime.startContainer({ containerId }), (err: Error) => {
      t.diagnostic(`StartContainer: ${err.message}`);
      assert.match(err.message, /its guest was never set up for the pod, so no container can be created in it \(\S+ was not\): adopting the pooled VM \(QEMU pid \d+\) failed after the sandbox was reported started: .*no guest NIC has MAC 02:de:ad:00:be:ef/, "the container's start names the failed adoption and its cause");
      return true;
    });
    let state: PodSandboxState | undefined;
    for (let i = 0; i < 240; i++) {
      state = (await cri.runtime.podSandboxStatus({ podSandboxId })).status?.state;
      if (state === PodSandboxState.SANDBOX_NOTREADY) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(state, PodSandboxState.SANDBOX_NOTREADY, "the sandbox task exited: kubelet sees the sandbox not ready (and recreates it)");
    for (let i = 0; i < 100 && !(await pidGone(qemuPid, /^qemu/)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await pidGone(qemuPid, /^qemu/), true, "the adopted VM is stopped");
  } finally {
    await cri.runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
    await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
  }
  // The shim removes the pod's state as it exits, which may be just after RemovePodSandbox answers.
  for (let i = 0; i < 120 && (await exists(stateDir)); i++) await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(await mountsUnder([stateDir]), [], "no mount of the pod's left");
  assert.equal(await exists(stateDir), false, "the pod's state dir is gone");
  for (const p of [qemuPid, vfsPid]) {
    const cmdline = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
    assert.equal(cmdline.includes(podSandboxId), false, `pid ${p} of the pod is gone`);
  }
  assert.equal(await exists(join(ctd.stateDir, "io.containerd.runtime.v2.task", "k8s.io", podSandboxId)), false, "no bundle of the sandbox left");
});

void test("pool owner SIGKILLed: adopted pods keep running and can be stopped; pooled VMs die with it; nothing leaks", { timeout: 600_000 }, async () => {
  assert.ok(ctd && daemon && podA && podB);
  // Wait for the refill to have started (a pooled VM booting or ready), so the watchdog has one to kill.
  for (let i = 0; i < 600 && (await pooledQemus(daemon.paths)).size === 0; i++) await new Promise((r) => setTimeout(r, 100));
  for (const id of (await pooledQemus(daemon.paths)).keys()) seenVmIds.add(id);
  const adopted = new Set<number>();
  for (const p of [podA, podB]) {
    const rec = await sandboxRecord(ctd, p.podSandboxId);
    adopted.add(rec.vmPid as number).add(rec.virtiofsdPid as number);
  }
  for (const p of [...adopted]) for (const kid of await childrenOf(p)) adopted.add(kid); // virtiofsd's sandboxed child
  const podShims = new Set([await shimPidOf(ctd, podA.podSandboxId), await shimPidOf(ctd, podB.podSandboxId)]);
  process.kill(daemon.pid, "SIGKILL");
  await daemon.exited;
  const deadline = Date.now() + 30_000;
  while ((await exists(daemon.paths.root)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await exists(daemon.paths.root), false, "the watchdog removed the pool's dir");
  const left = (await processesNamingPool(daemon.paths)).filter((p) => !adopted.has(p));
  assert.deepEqual(left, [], "no pooled QEMU or virtiofsd outlives the pool owner");
  for (let i = 0; i < 100 && (await warmShimServers(daemon.paths)).some((p) => !podShims.has(p)); i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual((await warmShimServers(daemon.paths)).filter((p) => !podShims.has(p)), [], "no untaken warm shim server outlives the pool owner");
  for (const p of [podA, podB]) {
    assert.equal(httpBody((await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(p.ip)])).stdout), `${p.name}\n`, `${p.name} still serves`);
  }
  for (const p of [podA, podB]) {
    await p.remove();
    pods.splice(pods.indexOf(p), 1);
    assert.equal(await exists(join(ctd.kataStateDir, p.podSandboxId)), false, `${p.name}'s state dir is gone`);
  }
  assert.deepEqual(await processesNamingPool(daemon.paths), [], "the adopted VMs ended with their pods");
});

// The pool hands a VM over and the shim takes it by renaming its dir; a shim killed in between
// never renames it. Here the take and nothing after it, with a short [factory] handover_timeout.
void test("a VM handed to a shim that never takes it is stopped after handover_timeout: no QEMU, virtiofsd, mount, pid file or dir of it left", { timeout: 600_000 }, async () => {
  assert.ok(ctd && configDir);
  // A daemon of its own, with a short timeout. The SIGKILL test before ended the first one; run
  // alone, end it the same way (a SIGTERMed daemon waits for its handed-over VMs' virtiofsd, which
  // pod A still uses) and let its watchdog finish before the next daemon pools a VM there.
  if (daemon?.running() === true) {
    const first = daemon;
    process.kill(first.pid, "SIGKILL");
    await first.exited;
    for (let i = 0; i < 150 && (await exists(first.paths.root)); i++) await new Promise((r) => setTimeout(r, 200));
  }
  const configPath = join(configDir, "handover.toml");
  await writeFile(configPath, `${kataConfig}handover_timeout = 2\n`);
  daemon = await startPoolDaemon(ctd, configPath);
  const d = daemon;
  const pooled = await waitPooled(d.paths, 1);
  for (const id of pooled.keys()) seenVmIds.add(id);
  // The shape a pod without limits asks for, computed as a shim does.
  const config = parseConfig(await readFile(configPath, "utf8"), configPath);
  const vmm = selectedVmmConfig(config);
  const shape = poolShape(config, await podAssets(config), { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
  const res = await poolCall(d.paths.socket, { op: "take", shape }, 30_000);
  assert.ok(res.ok && res.vm !== undefined, `the pool hands a VM over: ${JSON.stringify(res)}`);
  const vm = res.vm;
  assert.ok([...pooled.values()].includes(vm.qemuPid), "the pooled VM");
  assert.equal(await pidGone(vm.qemuPid, /^qemu/), false, "handed over, the VM still runs (its shim would own it now)");
  const deadline = Date.now() + 120_000;
  while ((await poolStatus(d.paths)).reclaimed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  assert.equal((await poolStatus(d.paths)).reclaimed, 1, "the pool reclaimed the VM no shim took");
  assert.equal(await pidGone(vm.qemuPid, /^qemu/), true, "its QEMU is gone");
  assert.equal(await pidGone(vm.virtiofsdPid, /^virtiofsd/), true, "its virtiofsd is gone");
  const naming: number[] = [];
  for (const pid of await processesNamingPool(d.paths)) if ((await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes(`${vm.dir}/`)) naming.push(pid);
  assert.deepEqual(naming, [], "no process names its dir");
  assert.equal(await exists(vm.dir), false, "its dir is gone");
  assert.equal(await exists(untakenDir(vm.dir)), false, "the dir it was reclaimed under is gone");
  assert.equal(await exists(virtiofsdPidFile(join(vm.dir, "vfs.sock"))), false, "virtiofsd's pid file is gone");
  assert.deepEqual(await mountsUnder([vm.dir, untakenDir(vm.dir)]), [], "its share is unmounted");
  assert.equal(d.running(), true, "the pool serves on");
});

const stopPoolCli = async (): Promise<void> => {
  assert.ok(ctd);
  // Fails (non-zero exit) when the daemon does not end within `pool stop`'s own deadline.
  const c = ctd;
  await run(process.execPath, [join(import.meta.dirname, "..", "..", "..", "bin", "kata-ts.js"), "pool", "stop"], {
    env: { ...process.env, KATA_TS_STATE_DIR: c.kataStateDir },
    timeoutMs: 120_000,
  }).catch(async (err: unknown) => {
    const log = (await readFile(join(c.baseDir, "pool.log"), "utf8").catch(() => "")).split("\n").slice(-25).join("\n");
    throw new Error(`${String(err)}\nthe pool's log ends:\n${log}`);
  });
};

void test("a pool stopped while a pod it handed a VM to runs: the daemon ends, the pod serves on; a stopped pool and removed pods leave no QEMU, virtiofsd, netns, mount or dir", { timeout: 600_000 }, async () => {
  assert.ok(ctd && configDir && daemon?.running() === true);
  // The previous test's daemon (short handover_timeout) ends first; a daemon with the defaults
  // hands its VM to pod C.
  await stopPoolCli();
  await daemon.exited;
  daemon = await startPoolDaemon(ctd, join(configDir, "configuration.toml"));
  const pooled = await waitPooled(daemon.paths, 1);
  for (const id of pooled.keys()) seenVmIds.add(id);
  const podC = await startAdoptedPod("pool-c", [...pooled.values()][0] as number);
  // The daemon lets go of what it handed over (QEMU and virtiofsd are the pod's now): it ends at
  // once rather than when pod C ends.
  const shimC = await shimPidOf(ctd, podC.podSandboxId);
  await stopPoolCli();
  await daemon.exited;
  assert.deepEqual((await warmShimServers(daemon.paths)).filter((p) => p !== shimC), [], "the stopped pool's untaken warm shim server is gone");
  assert.equal(httpBody((await inHarnessNetns(ctd, "busybox", ["sh", "-c", httpGetScript(podC.ip)])).stdout), "pool-c\n", "pod C serves on");
  await podC.remove();
  pods.splice(pods.indexOf(podC), 1);
  assert.deepEqual(await processesNamingPool(daemon.paths), []);
  const d = daemon;
  for (let i = 0; i < 100 && (await warmShimServers(d.paths)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await warmShimServers(d.paths), [], "no shim server of the pool's left (pod C's ended with it)");
  assert.equal(await exists(daemon.paths.root), false);
  assert.deepEqual(await mountsUnder([ctd.kataStateDir]), []);
});
