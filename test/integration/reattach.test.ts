// Reattaching a running pod in a process that did not create it (Sandbox.reattach, the pod
// factory's reattachPod): a child process creates the pod (real QEMU under TCG, in a pod netns,
// in a pod cgroup) and is SIGKILLed; this process takes the pod over, reads the output written
// while nobody read and after, runs a new exec, stops an old one with its real status, gets the
// real status of one that exited while nobody was attached, and destroys the pod: VM, virtiofsd,
// mounts, state dir, tap and cgroup are then gone. A pod whose QEMU died fails reattach clearly
// and is left as it was, for its clean-up. One VM at a time.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { cp, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { makeVmFixture, leftovers, type VmFixture } from "./agent-container-vm-fixture.js";
import type { ChildArgs, ChildReport } from "./reattach-child.js";
import { createNetns, deleteNetns } from "../harness/netns.js";
import { run } from "../../src/util/exec.js";
import { vmPodFactoryWithCgroup } from "../../src/shim/sandbox-adapter.js";
import type { PodProcess } from "../../src/shim/pod-port.js";
import { cgroupHierarchies, removeCgroup } from "../../src/sandbox/host-cgroup.js";
import { pidGone } from "../../src/hypervisor/qemu/adopted-vm.js";
import { readRecord } from "../../src/sandbox/state-file.js";
import { cleanupStaleSandbox } from "../../src/sandbox/stale.js";
import { sandboxLayout } from "../../src/sandbox/guest-layout.js";
import { createLogger } from "../../src/util/log.js";
import { isKataError } from "../../src/util/errors.js";
import { pathExists } from "../../src/util/fs.js";
import { QmpClient } from "../../src/hypervisor/qemu/qmp.js";
import { vmLayout } from "../../src/hypervisor/qemu/layout.js";
import { trimSocketName } from "../../src/hypervisor/qemu/tcg-trim.js";

const tag = `krt${process.pid}`;
const netnsName = `${tag}-pod`;
const cgroupsPath = `/kata-ts-test-${tag}`;
let fx: VmFixture;
let netnsPath: string;
const log = createLogger("reattach-test");

before(async () => {
  fx = await makeVmFixture();
  netnsPath = await createNetns(netnsName);
  // A CNI-like veth in the pod netns, so the pod gets a tap to mirror it.
  await run("ip", ["link", "add", `${tag}h`, "type", "veth", "peer", "name", "eth0", "netns", netnsName]);
  await run("ip", ["-n", netnsName, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
  await run("ip", ["-n", netnsName, "link", "set", "eth0", "up"]);
});

after(async () => {
  const left = fx ? leftovers(fx.dir, fx.stateRoot) : [];
  // A failed test's pod, cleaned up as `shim delete` would (after the check: nothing to do when the tests passed).
  for (const id of ["reattach-live", "reattach-dead"]) await cleanupStaleSandbox(id).catch(() => undefined);
  await deleteNetns(netnsName);
  await run("ip", ["link", "del", `${tag}h`], { allowNonZero: true });
  await removeCgroup(cgroupsPath);
  await fx?.cleanup();
  assert.deepEqual(left, [], "nothing left after the tests");
});

/** Starts the child, returns its report once the pod runs; the child is then killed by the caller. */
async function createPodInChild(id: string): Promise<{ child: ChildProcess; report: ChildReport; outFile: string }> {
  const bundle = join(fx.dir, `bundle-${id}`);
  await mkdir(bundle, { recursive: true });
  await cp(fx.rootfs, join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true });
  const outFile = join(fx.dir, `${id}.out`);
  const args: ChildArgs = { id, bundle, netnsPath, cgroupsPath, outFile };
  const child = spawn(process.execPath, [join(import.meta.dirname, "reattach-child.js"), JSON.stringify(args)], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, KATA_TS_LOG_LEVEL: process.env.KATA_TS_LOG_LEVEL ?? "warn" } });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once("line", resolve)),
    new Promise<never>((_r, reject) => child.once("exit", (code) => reject(new Error(`the child exited (${code}) before the pod ran`)))),
  ]);
  return { child, report: JSON.parse(first) as ChildReport, outFile };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

function numbers(text: string): number[] {
  return [...text.matchAll(/line-(\d+)\n/g)].map((m) => Number(m[1]));
}

function collect(p: PodProcess): { text: () => string; chunks: string[] } {
  const chunks: string[] = [];
  p.stdout?.on("data", (b: Buffer) => chunks.push(b.toString()));
  return { text: () => chunks.join(""), chunks };
}

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function cgroupDirs(): Promise<string[]> {
  const out: string[] = [];
  for (const h of await cgroupHierarchies()) if (await pathExists(join(h.mount, cgroupsPath))) out.push(join(h.mount, cgroupsPath));
  return out;
}

async function taps(): Promise<string> {
  return (await run("ip", ["-n", netnsName, "-o", "link", "show"])).stdout;
}

void test("reattach: a pod whose shim was SIGKILLed (mid-trim) is taken over: output, a new exec, real exit statuses, then nothing left", { timeout: 900_000 }, async (t) => {
  const id = "reattach-live";
  const { child, report, outFile } = await createPodInChild(id);
  const rec = await readRecord(sandboxLayout(id).stateFile);
  assert.ok(rec.vmPid !== undefined && rec.virtiofsdPid !== undefined);
  assert.match(await taps(), /tap0_kata/, "the pod has its tap");
  assert.ok((await cgroupDirs()).length > 0, "the pod cgroup exists");
  let copied: number[] = [];
  for (let i = 0; i < 300 && copied.length < 3; i++) {
    await sleep(100);
    copied = numbers(await readFile(outFile, "utf8").catch(() => ""));
  }
  await kill(child);
  const killedAt = Date.now();
  const beforeCrash = numbers(await readFile(outFile, "utf8"));
  assert.ok(beforeCrash.length > 0, "the child copied some output before it was killed");
  assert.equal(await pidGone(rec.vmPid, /^qemu/), false, "the VM survives its shim");
  // Nobody reads for 2 s: ~10 lines wait in the guest.
  await sleep(2000);
  // As if the shim had died mid-trim: a gdbstub session paused the VM and its client went (QEMU
  // keeps the VM paused). The take-over must resume it: its agent answers nothing while paused.
  assert.ok(rec.vmStateDir !== undefined);
  const qmp = await QmpClient.connect(vmLayout(rec.vmStateDir).qmpSocketPath, { timeoutMs: 10_000 });
  const gdbSocket = join(rec.vmStateDir, trimSocketName);
  await qmp.execute("human-monitor-command", { "command-line": `gdbserver unix:${gdbSocket},server=on,wait=off` }, { timeoutMs: 10_000 });
  const gdb = net.createConnection(gdbSocket);
  await once(gdb, "connect");
  for (let i = 0; i < 100 && (await qmp.execute("query-status", undefined, { timeoutMs: 10_000 })).status !== "paused"; i++) await sleep(50);
  gdb.destroy();
  await sleep(200);
  assert.equal((await qmp.execute("query-status", undefined, { timeoutMs: 10_000 })).status, "paused", "the VM stays paused once the gdb client is gone");
  qmp.close();
  await qmp.closed;

  const factory = vmPodFactoryWithCgroup(log);
  assert.ok(factory.reattachPod !== undefined);
  const t0 = performance.now();
  const pod = await factory.reattachPod(report.request);
  t.diagnostic(`reattachPod took ${Math.round(performance.now() - t0)} ms`);
  assert.equal(pod.pid, rec.vmPid, "the pod's pid is its QEMU's");
  assert.ok(pod.reattachProcess !== undefined);
  const init = await pod.reattachProcess("ctr", "", { terminal: false, stdin: false });
  const out = collect(init);
  const sleeper = await pod.reattachProcess("ctr", "sleeper", { terminal: false, stdin: false });
  const quick = await pod.reattachProcess("ctr", "quick", { terminal: false, stdin: false });

  await until("output after the take-over", () => numbers(out.text()).length >= 15);
  const after = numbers(out.text());
  const firstChunk = numbers(out.chunks[0] ?? "");
  const lastBefore = beforeCrash[beforeCrash.length - 1]!;
  // Contiguous from where it resumed; resumed where the dead shim stopped (a chunk the dead shim
  // had taken from the agent, at most one, is lost: docs/shim.md "Reattaching a running pod").
  assert.deepEqual(after, after.map((_n, i) => after[0]! + i), `lines after the take-over are contiguous: ${after.join(",")}`);
  assert.ok(after[0]! > lastBefore - 1 && after[0]! <= lastBefore + 2, `resumed at line ${after[0]} after line ${lastBefore}`);
  const unread = Math.floor((Date.now() - killedAt) / 200);
  t.diagnostic(`the dead shim copied lines ..${lastBefore}; the take-over read from line ${after[0]}, ${firstChunk.length} lines in its first read (~${unread} written since the kill)`);
  assert.ok(firstChunk.length >= 5, `the first read brought the lines written while nobody read (${firstChunk.length} lines; ~${unread} written since the kill)`);

  // A process that exited while no host was attached: its real status.
  assert.equal((await quick.wait()).exitStatus, 7, "the exec that exited while detached reports 7");

  // A new exec on the new connection.
  const echo = await pod.exec({ containerId: "ctr", execId: "echo", process: { args: ["sh", "-c", "echo new-exec"], cwd: "/", env: ["PATH=/bin"], user: { uid: 0, gid: 0 } }, stdio: { stdin: "", stdout: "", stderr: "", terminal: false } });
  const echoOut = collect(echo);
  await echo.start();
  assert.equal((await echo.wait()).exitStatus, 0);
  await until("the new exec's output", () => echoOut.text() === "new-exec\n", 10_000);

  // The old exec, signalled: its real status (SIGTERM: 143).
  await sleeper.signal(15, false);
  assert.equal((await sleeper.wait()).exitStatus, 143, "sleep 600 ends with SIGTERM's status");

  await pod.destroy();
  assert.equal((await init.wait()).exitStatus, 137, "the init still running when the pod went counts as killed");
  assert.equal((await pod.sandboxProcess().wait()).exitStatus, 137, "the sandbox task (started by the dead shim) ends with the VM");
  assert.equal(await pidGone(rec.vmPid, /^qemu/), true, "the VM is gone");
  assert.equal(await pidGone(rec.virtiofsdPid, /^virtiofsd/), true, "virtiofsd is gone");
  assert.equal(await pathExists(sandboxLayout(id).stateDir), false, "the state dir is gone");
  assert.doesNotMatch(await taps(), /tap0_kata/, "the tap is gone");
  assert.deepEqual(await cgroupDirs(), [], "the pod cgroup is gone");
  assert.deepEqual(leftovers(fx.dir, fx.stateRoot), [], "no process, mount or state dir left");
});

void test("reattach: a pod whose QEMU was killed fails with FAILED_PRECONDITION naming it, and is left for its clean-up", { timeout: 900_000 }, async () => {
  const id = "reattach-dead";
  const { child, report } = await createPodInChild(id);
  await kill(child);
  const rec = await readRecord(sandboxLayout(id).stateFile);
  assert.ok(rec.vmPid !== undefined);
  process.kill(rec.vmPid, "SIGKILL");
  for (let i = 0; i < 100 && !(await pidGone(rec.vmPid, /^qemu/)); i++) await sleep(50);

  const factory = vmPodFactoryWithCgroup(log);
  assert.ok(factory.reattachPod !== undefined);
  await assert.rejects(factory.reattachPod(report.request), (err: unknown) => {
    assert.ok(isKataError(err, "FAILED_PRECONDITION"), String(err));
    assert.match(err.message, new RegExp(`pod ${id} cannot be reattached: its VM is gone \\(QEMU pid ${rec.vmPid} no longer runs\\)`));
    return true;
  });
  assert.equal(await pathExists(sandboxLayout(id).stateFile), true, "the failed reattach changed nothing: the record is there for the clean-up");

  // The clean-up `shim delete` would do (its cgroup part reads the spec from the bundle: done here).
  await factory.cleanupPod(id);
  await removeCgroup(cgroupsPath);
  assert.equal(await pidGone(rec.virtiofsdPid ?? 0, /^virtiofsd/), true, "virtiofsd is gone");
  assert.doesNotMatch(await taps(), /tap0_kata/, "the tap is gone");
  assert.deepEqual(await cgroupDirs(), [], "the pod cgroup is gone");
  assert.deepEqual(leftovers(fx.dir, fx.stateRoot), [], "no process, mount or state dir left");
});
