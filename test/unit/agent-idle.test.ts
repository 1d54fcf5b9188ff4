// The agent's idle-time behaviour outside a VM: OOM kills noticed through an inotify watch on
// memory.events (no poll), the polling fallback when a watch cannot be set, and the boot-memory
// release writing the reporting order before dropping the page cache, never throwing.
// In a real guest: test/integration/agent-container-vm.test.ts (OOM event) and bench/boot.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OomWatcher } from "../../src/agent/container/oom-watcher.js";
import { PAGE_REPORTING_ORDER, bootMemoryPlan, releaseBootMemory } from "../../src/agent/boot-memory.js";

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-agent-idle-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const events = (kills: number): string => `low 0\nhigh 0\nmax 3\noom ${kills}\noom_kill ${kills}\n`;

void test("oom watcher: a growing oom_kill is noticed through the file watch, with no poll timer", async () => {
  await withTmp(async (dir) => {
    await writeFile(join(dir, "memory.events"), events(0));
    // A poll interval far beyond the test's deadline: only the watch can deliver in time.
    const w = new OomWatcher(3_600_000);
    try {
      w.watch("c1", dir);
      assert.equal(w.polled, 0, "memory.events is watched, not polled");
      const next = w.next(AbortSignal.timeout(10_000));
      await writeFile(join(dir, "memory.events"), events(1));
      assert.equal(await next, "c1");
      // The same count again is no new kill; a second kill is.
      await writeFile(join(dir, "memory.events"), events(1));
      const second = w.next(AbortSignal.timeout(10_000));
      await writeFile(join(dir, "memory.events"), events(2));
      assert.equal(await second, "c1");
    } finally {
      w.stop();
    }
  });
});

void test("oom watcher: a kill already counted before the watch, and one just before unwatch, are both reported", async () => {
  await withTmp(async (dir) => {
    await writeFile(join(dir, "memory.events"), events(1));
    const w = new OomWatcher(3_600_000, () => {
      throw new Error("no inotify here");
    });
    try {
      w.watch("c2", dir);
      assert.equal(await w.next(AbortSignal.timeout(5_000)), "c2");
      assert.equal(w.polled, 1, "a container whose file cannot be watched is polled");
      await writeFile(join(dir, "memory.events"), events(2));
      await w.unwatch("c2");
      assert.equal(await w.next(AbortSignal.timeout(1_000)), "c2");
      assert.equal(w.polled, 0);
    } finally {
      w.stop();
    }
  });
});

void test("oom watcher: the polling fallback notices a kill by itself", async () => {
  await withTmp(async (dir) => {
    await writeFile(join(dir, "memory.events"), events(0));
    const w = new OomWatcher(50, () => {
      throw new Error("ENOSPC: inotify watches exhausted");
    });
    // The poll timer is unref'd (in the agent the ttRPC server keeps the process alive), and so is
    // AbortSignal.timeout's: without a handle of its own the test's process could exit while the
    // kill is still waiting for the next poll (it did, in CI).
    const keepAlive = setInterval(() => undefined, 1_000);
    try {
      w.watch("c3", dir);
      const next = w.next(AbortSignal.timeout(10_000));
      await writeFile(join(dir, "memory.events"), events(1));
      assert.equal(await next, "c3");
    } finally {
      clearInterval(keepAlive);
      w.stop();
    }
  });
});

void test("boot memory: the reporting order is lowered, then the page cache dropped; a missing file only warns", async () => {
  await withTmp(async (dir) => {
    const reportingOrder = join(dir, "page_reporting_order");
    const dropCaches = join(dir, "drop_caches");
    const cmdline = join(dir, "cmdline");
    await writeFile(cmdline, "root=/dev/vda quiet\n");
    await writeFile(reportingOrder, "9\n");
    await writeFile(dropCaches, "0\n", { mode: 0o200 }); // write-only, as /proc/sys/vm/drop_caches is
    const warnings: string[] = [];
    await releaseBootMemory((m) => warnings.push(m), { reportingOrder, dropCaches, cmdline });
    assert.equal(warnings.length, 0, warnings.join("; "));
    assert.equal((await readFile(reportingOrder, "utf8")).slice(0, String(PAGE_REPORTING_ORDER).length), String(PAGE_REPORTING_ORDER));
    assert.equal((await readFile(dropCaches, "utf8"))[0], "1");
    await releaseBootMemory((m) => warnings.push(m), { reportingOrder: join(dir, "absent"), dropCaches, cmdline });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /page reporting order: .*absent not written/);
  });
});

void test("boot memory: kernel parameters override the order and turn the cache drop off", async () => {
  assert.deepEqual(bootMemoryPlan("root=/dev/vda quiet"), { order: PAGE_REPORTING_ORDER, dropCache: true });
  assert.deepEqual(bootMemoryPlan("quiet kata_ts.page_reporting_order=0 kata_ts.drop_boot_cache=0"), { order: 0, dropCache: false });
  assert.deepEqual(bootMemoryPlan("kata_ts.page_reporting_order=kernel"), { order: undefined, dropCache: true });
  assert.deepEqual(bootMemoryPlan("kata_ts.page_reporting_order=99"), { order: PAGE_REPORTING_ORDER, dropCache: true }, "an out-of-range order keeps the default");
  await withTmp(async (dir) => {
    const p = { reportingOrder: join(dir, "order"), dropCaches: join(dir, "drop"), cmdline: join(dir, "cmdline") };
    await writeFile(p.cmdline, "kata_ts.page_reporting_order=kernel kata_ts.drop_boot_cache=0\n");
    const warnings: string[] = [];
    await releaseBootMemory((m) => warnings.push(m), p); // neither file exists: nothing is written, nothing to warn about
    assert.equal(warnings.length, 0, warnings.join("; "));
  });
});

void test("oom watcher: a memory.events that appears later (crun enables the memory controller) moves the container from the poll to a watch", async () => {
  await withTmp(async (dir) => {
    // The agent watches before crun runs: the file is not there yet, so the first watch fails.
    const w = new OomWatcher(20);
    try {
      w.watch("c4", dir);
      assert.equal(w.polled, 1, "no memory.events yet: polled");
      await writeFile(join(dir, "memory.events"), events(0));
      const deadline = Date.now() + 10_000;
      while (w.polled > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(w.polled, 0, "the poll set the watch once the file existed, and stopped");
      const next = w.next(AbortSignal.timeout(10_000));
      await writeFile(join(dir, "memory.events"), events(1));
      assert.equal(await next, "c4", "the kill is noticed through the watch");
    } finally {
      w.stop();
    }
  });
});
