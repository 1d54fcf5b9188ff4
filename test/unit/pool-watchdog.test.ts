// The pool's watchdog (src/pool/watchdog.ts), with stand-in processes: once the daemon's pipe
// closes it kills every process naming a VM dir under vms/, a dir being reclaimed (<vm>.untaken,
// whose processes still name <vm>/) included, removes those dirs and the pool's files, and leaves
// alone a process naming anything else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { access, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWatchdog } from "../../src/pool/watchdog.js";

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** The exit signal, or "still running" after ms (the watchdog has exited by then: it missed it). */
function exitWithin(exit: Promise<NodeJS.Signals | null>, ms: number): Promise<NodeJS.Signals | null | "still running"> {
  return Promise.race([exit, new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), ms).unref())]);
}

/** A process whose command line names `path` (as QEMU's names its VM dir's sockets). */
function standIn(path: string): { child: ChildProcess; exit: Promise<NodeJS.Signals | null> } {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 600000)", path], { stdio: "ignore" });
  return { child, exit: new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal))) };
}

void test("the watchdog kills what names a pooled VM's dir, or a dir being reclaimed, and removes them; nothing else", { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-watchdog-"));
  const others: ChildProcess[] = [];
  try {
    const pooled = join(root, "vms", "p000000000001");
    const reclaiming = join(root, "vms", "p000000000002.untaken");
    await mkdir(pooled, { recursive: true });
    await mkdir(reclaiming, { recursive: true });
    await mkdir(join(root, "elsewhere"));
    const daemonPid = 999_999_999;
    await writeFile(join(root, "pool.pid"), String(daemonPid));
    const a = standIn(join(pooled, "vm", "qmp.sock"));
    const b = standIn(join(root, "vms", "p000000000002", "vm", "qmp.sock"));
    const keep = standIn(join(root, "elsewhere", "x"));
    others.push(a.child, b.child, keep.child);
    const wd = startWatchdog(root, daemonPid);
    wd.release();
    await wd.exited;
    assert.equal(await exitWithin(a.exit, 5000), "SIGKILL", "a pooled VM's process is killed");
    assert.equal(await exitWithin(b.exit, 5000), "SIGKILL", "a reclaimed VM's process (naming the dir's old name) is killed");
    assert.equal(keep.child.exitCode === null && keep.child.signalCode === null, true, "a process naming no VM dir runs on");
    assert.equal(await exists(pooled), false);
    assert.equal(await exists(reclaiming), false);
    assert.equal(await exists(join(root, "pool.pid")), false, "the pool's files are removed");
  } finally {
    for (const c of others) c.kill("SIGKILL");
    await rm(root, { recursive: true, force: true });
  }
});
