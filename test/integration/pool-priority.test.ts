// Where the pool daemon and its VMs run (src/pool/priority.ts), with real processes and the host's
// real cgroups: the daemon in `kata-ts-pool` at the default CPU weight and its own nice value (it
// answers takes, which pod starts wait on); a pooled VM's process, every thread and its children,
// in `kata-ts-pool-vms` beside it, at the low weight and refill_nice.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { joinPoolCgroup, lowerPooledProcess, POOL_CGROUP, POOL_VMS_CGROUP, POOL_VMS_CPU_SHARES, POOL_VMS_CPU_WEIGHT, withDescendants } from "../../src/pool/priority.js";
import { cgroupDirsOf } from "../../src/sandbox/host-cgroup.js";

const children: ChildProcess[] = [];
/** Every process the test started (a grandchild too). */
const pids: number[] = [];

const gone = async (pid: number): Promise<boolean> => {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat === "" || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
};

after(async () => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once("exit", r)))));
  for (const pid of pids) {
    for (let i = 0; i < 100 && !(await gone(pid)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await gone(pid), true, `test process ${pid} is gone`);
  }
});

function start(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: "ignore" });
  children.push(c);
  if (c.pid !== undefined) pids.push(c.pid);
  return c;
}

async function niceOfThread(pid: number, tid: string): Promise<number> {
  const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

/** The CPU weight file the dir's hierarchy has: v1 cpu.shares, v2 cpu.weight; undefined for other controllers. */
async function cpuWeight(dir: string): Promise<{ shares?: number; weight?: number }> {
  const shares = await readFile(join(dir, "cpu.shares"), "utf8").catch(() => undefined);
  const weight = await readFile(join(dir, "cpu.weight"), "utf8").catch(() => undefined);
  return { ...(shares === undefined ? {} : { shares: Number(shares) }), ...(weight === undefined ? {} : { weight: Number(weight) }) };
}

void test("the daemon's cgroup keeps the default CPU weight and the daemon its nice value; a pooled VM's process, every thread and child, goes into the low-weight cgroup beside it at refill_nice", { timeout: 60_000 }, async () => {
  // Stand-ins: a "daemon" (any process), and a "VM": a multi-threaded node with a child.
  const daemon = start("sleep", ["600"]);
  const vm = start(process.execPath, ["-e", "require('node:child_process').spawn('sleep', ['600'], { stdio: 'ignore' }); setInterval(() => {}, 1000);"]);
  let kids: number[] = [];
  for (let i = 0; i < 100 && kids.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    kids = await withDescendants(vm.pid ?? -1);
  }
  assert.equal(kids.length, 2, "the VM stand-in and its child");
  pids.push(kids[1] as number);

  await joinPoolCgroup(daemon.pid ?? -1);
  const daemonDirs = await cgroupDirsOf(daemon.pid ?? -1);
  assert.ok(daemonDirs.length > 0 && daemonDirs.every((d) => basename(d) === POOL_CGROUP), daemonDirs.join(", "));
  const daemonCpu = await Promise.all(daemonDirs.map(cpuWeight));
  assert.ok(daemonCpu.some((w) => w.shares === 1024 || w.weight === 100), `the daemon's cgroup has the default CPU weight: ${JSON.stringify(daemonCpu)}`);

  await lowerPooledProcess(vm.pid ?? -1, 19);
  for (const pid of kids) {
    const dirs = await cgroupDirsOf(pid);
    assert.ok(dirs.length > 0 && dirs.every((d) => basename(d) === POOL_VMS_CGROUP), `pid ${pid} in the VMs' cgroup: ${dirs.join(", ")}`);
    const tids = await readdir(`/proc/${pid}/task`);
    for (const tid of tids) assert.equal(await niceOfThread(pid, tid), 19, `thread ${tid} of ${pid} at refill_nice`);
    if (pid === vm.pid) assert.ok(tids.length > 1, "node has several threads, all lowered");
  }
  const vmCpu = await Promise.all((await cgroupDirsOf(vm.pid ?? -1)).map(cpuWeight));
  assert.ok(vmCpu.some((w) => w.shares === POOL_VMS_CPU_SHARES || w.weight === POOL_VMS_CPU_WEIGHT), `the VMs' cgroup has the low CPU weight: ${JSON.stringify(vmCpu)}`);
  // The split: the daemon stays where it is, at its own priority.
  assert.deepEqual(await cgroupDirsOf(daemon.pid ?? -1), daemonDirs);
  for (const tid of await readdir(`/proc/${daemon.pid}/task`)) assert.equal(await niceOfThread(daemon.pid ?? -1, tid), 0, "the daemon keeps nice 0");
  // Sibling cgroups at the root: the VMs' weight is not nested inside the daemon's.
  assert.deepEqual(daemonDirs.map((d) => join(d, "..")), (await cgroupDirsOf(vm.pid ?? -1)).map((d) => join(d, "..")));
});
