// The agent's wait for crun's pid file: woken by inotify (well before the fallback poll), a pid
// written just before the writer stopped still counts, and a writer that stopped without one or a
// deadline give distinct answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitForPidFile } from "../../src/agent/container/pid-file.js";

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-pidfile-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const never = new Promise<void>(() => undefined);

void test("pid file: a write wakes the waiter long before the fallback poll", async () => {
  await withTmp(async (dir) => {
    const file = join(dir, "init.pid");
    const t0 = performance.now();
    const waiting = waitForPidFile(file, { stopped: never, timeoutMs: 10_000, pollMs: 60_000 });
    await sleep(50);
    await writeFile(file, "4242");
    assert.deepEqual(await waiting, { kind: "pid", pid: 4242 });
    assert.ok(performance.now() - t0 < 5_000, "answered through inotify, not the 60 s poll");
  });
});

void test("pid file: already there, or written just before the writer stopped", async () => {
  await withTmp(async (dir) => {
    const file = join(dir, "a.pid");
    await writeFile(file, "17\n");
    assert.deepEqual(await waitForPidFile(file, { stopped: never, timeoutMs: 10_000 }), { kind: "pid", pid: 17 });
    const late = join(dir, "b.pid");
    const stopped = writeFile(late, "18");
    assert.deepEqual(await waitForPidFile(late, { stopped, timeoutMs: 10_000, pollMs: 60_000 }), { kind: "pid", pid: 18 });
  });
});

void test("pid file: a writer that stops without one, an empty file, and a deadline", async () => {
  await withTmp(async (dir) => {
    const file = join(dir, "c.pid");
    await writeFile(file, ""); // crun creates it before it writes the number
    assert.deepEqual(await waitForPidFile(file, { stopped: sleep(20), timeoutMs: 10_000 }), { kind: "stopped" });
    assert.deepEqual(await waitForPidFile(join(dir, "none.pid"), { stopped: never, timeoutMs: 100, pollMs: 20 }), { kind: "timed-out" });
  });
});
