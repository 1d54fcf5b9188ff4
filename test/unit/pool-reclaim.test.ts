// PooledVm.reclaimUntaken (src/pool/pooled-vm.ts) with stand-in processes named like QEMU and
// virtiofsd (a symlink to node: the kernel names a process after the file it ran): a VM handed over
// and never taken (its dir still in the pool) is claimed back by rename, its processes killed and
// its dir removed; one a shim took (renamed its dir out first) is left alone. The hand-over timer
// and a real VM: test/e2e/pool.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { access, mkdir, mkdtemp, rename, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PooledVm, untakenDir } from "../../src/pool/pooled-vm.js";
import { pooledVmPaths } from "../../src/pool/layout.js";
import type { PooledVmHandle } from "../../src/pool/protocol.js";

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** The exit signal, or "still running" after ms. */
function exitWithin(exit: Promise<NodeJS.Signals | null>, ms: number): Promise<NodeJS.Signals | null | "still running"> {
  return Promise.race([exit, new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), ms).unref())]);
}

interface StandIn {
  child: ChildProcess;
  exit: Promise<NodeJS.Signals | null>;
}

function standIn(bin: string, detached: boolean): StandIn {
  const child = spawn(bin, ["-e", "setTimeout(() => {}, 600000)"], { stdio: "ignore", detached });
  return { child, exit: new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal))) };
}

/** A handed-over PooledVm without a booted VM behind it: only what reclaimUntaken uses. */
async function handedOver(root: string, id: string): Promise<{ vm: PooledVm; qemu: StandIn; virtiofsd: StandIn }> {
  const paths = pooledVmPaths(join(root, "vms"), id);
  await mkdir(paths.sharedDir, { recursive: true });
  const qemu = standIn(join(root, "bin", "qemu-system-x86_64"), false);
  const virtiofsd = standIn(join(root, "bin", "virtiofsd"), true);
  const handle: PooledVmHandle = { vmId: id, dir: paths.dir, qemuPid: qemu.child.pid ?? 0, virtiofsdPid: virtiofsd.child.pid ?? 0, accel: "tcg", tapName: "tap0_kata", mac: "02:00:00:00:00:01", bootedAt: new Date().toISOString() };
  const vm = Object.assign(Object.create(PooledVm.prototype) as PooledVm, { handle, paths });
  return { vm, qemu, virtiofsd };
}

void test("a handed-over VM never taken is claimed back, its QEMU and virtiofsd killed, its dir removed; one a shim took is left alone", { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-reclaim-"));
  const started: ChildProcess[] = [];
  try {
    await mkdir(join(root, "bin"));
    await symlink(process.execPath, join(root, "bin", "qemu-system-x86_64"));
    await symlink(process.execPath, join(root, "bin", "virtiofsd"));

    const untaken = await handedOver(root, "p000000000001");
    started.push(untaken.qemu.child, untaken.virtiofsd.child);
    assert.equal(await untaken.vm.reclaimUntaken(), true, "reclaimed");
    assert.equal(await exitWithin(untaken.qemu.exit, 5000), "SIGKILL", "its QEMU is killed");
    assert.equal(await exitWithin(untaken.virtiofsd.exit, 5000), "SIGKILL", "its virtiofsd is killed");
    assert.equal(await exists(untaken.vm.paths.dir), false, "its dir is gone");
    assert.equal(await exists(untakenDir(untaken.vm.paths.dir)), false, "and the name it was claimed under");

    const taken = await handedOver(root, "p000000000002");
    started.push(taken.qemu.child, taken.virtiofsd.child);
    const shimDir = join(root, "sandbox", "p");
    await mkdir(join(root, "sandbox"));
    await rename(taken.vm.paths.dir, shimDir); // the shim's take
    assert.equal(await taken.vm.reclaimUntaken(), false, "a taken VM is not reclaimed");
    assert.equal(taken.qemu.child.exitCode === null && taken.qemu.child.signalCode === null, true, "its QEMU runs on");
    assert.equal(taken.virtiofsd.child.exitCode === null && taken.virtiofsd.child.signalCode === null, true, "its virtiofsd runs on");
    assert.equal(await exists(shimDir), true, "the shim's dir is untouched");
  } finally {
    for (const c of started) c.kill("SIGKILL");
    await rm(root, { recursive: true, force: true });
  }
});
