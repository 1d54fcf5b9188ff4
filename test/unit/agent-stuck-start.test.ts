// Pieces of the stuck-start report that need no crun: /dev/kmsg records, the /proc process tree
// (of this test's own real child processes) and the crun log tail that never blocks on a FIFO.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeKernelComplaints, parseRecord } from "../../src/agent/container/kernel-complaints.js";
import { describeTree, killTree, processTree } from "../../src/agent/container/process-tree.js";
import { readLogTail, withinStartTime } from "../../src/agent/container/stuck-start.js";
import { isKataError } from "../../src/util/errors.js";

void test("kmsg record: priority, sequence, microseconds since boot, then the text (continuation keys dropped)", () => {
  const rec = parseRecord("1,2301,41234567,-;general protection fault, probably for non-canonical address 0xdead000000000145: 0000 [#1] SMP\n SUBSYSTEM=x\n");
  assert.deepEqual(rec, { at: 41.234567, text: "general protection fault, probably for non-canonical address 0xdead000000000145: 0000 [#1] SMP" });
  assert.equal(parseRecord("no separator"), undefined);
  assert.equal(describeKernelComplaints([rec!, { at: 41.3, text: "RIP: 0010:fuse_invalidate_atime+0x4/0x20" }]), "[41.23] general protection fault, probably for non-canonical address 0xdead000000000145: 0000 [#1] SMP; [41.30] RIP: 0010:fuse_invalidate_atime+0x4/0x20");
});

void test("process tree: a shell and its sleeping child, with their states; SIGKILL ends both", async () => {
  const sh = spawn("sh", ["-c", "sleep 3627 & exec sleep 3628"], { stdio: "ignore" });
  try {
    let tree: Awaited<ReturnType<typeof processTree>> = [];
    // Until both sleeps are asleep: before that the shell may not have forked, or exec'd, yet, and
    // a sleep just exec'd is runnable (state R) until it first gets a CPU.
    for (let i = 0; i < 200 && (tree.length < 2 || tree.some((p) => p.comm !== "sleep" || p.state !== "S")); i++) {
      await new Promise((r) => setTimeout(r, 50));
      tree = await processTree(sh.pid!);
    }
    assert.equal(tree.length, 2, describeTree(tree));
    assert.equal(tree[0]!.pid, sh.pid);
    assert.equal(tree[1]!.ppid, sh.pid);
    assert.match(describeTree(tree), /^sleep \(pid \d+\) state S( in \S+)?, sleep \(pid \d+\) state S/);
    assert.deepEqual(await killTree(tree, 5_000), [], "nothing survives");
    const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    assert.doesNotMatch(ps, /sleep 362[78]/);
  } finally {
    sh.kill("SIGKILL");
  }
  assert.deepEqual(await processTree(999_999_999), [], "a gone process has no tree");
});

void test("crun log tail: the last 4 KiB of a file; a FIFO there is not opened for reading forever", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-logtail-"));
  try {
    const log = join(dir, "crun.log");
    await writeFile(log, `${"x".repeat(10_000)}\nlast line\n`);
    const tail = await readLogTail(log);
    assert.equal(tail.length, 4096 - 1);
    assert.ok(tail.endsWith("last line"));
    assert.equal(await readLogTail(join(dir, "missing.log")), "");
    const fifo = join(dir, "fifo.log");
    execFileSync("mkfifo", [fifo]);
    const t0 = Date.now();
    assert.equal(await Promise.race([readLogTail(fifo), new Promise((r) => setTimeout(() => r("blocked"), 5_000))]), "");
    assert.ok(Date.now() - t0 < 5_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("share wait: a call on a share that never answers ends in DEADLINE_EXCEEDED naming it; a quick one passes through", async () => {
  assert.equal(await withinStartTime(Promise.resolve(7), 1_000, "container c1", undefined), 7);
  const err = await withinStartTime(new Promise(() => undefined), 200, "container c1", undefined).then(
    () => assert.fail("resolved"),
    (e: unknown) => e,
  );
  assert.ok(isKataError(err, "DEADLINE_EXCEEDED"), String(err));
  assert.match(err.message, /the container's files on the shared filesystem did not answer within 0 s while starting container c1/);
});
