import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { withDirLock } from "../../src/util/dir-lock.js";

void test("dir lock: two holders never overlap, and the lock is gone afterwards", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-lock-"));
  try {
    const lock = join(dir, "sub", "build.lock");
    const events: string[] = [];
    const job = (name: string) => withDirLock(lock, name, 10_000, async () => {
      events.push(`${name}:in`);
      await sleep(50);
      events.push(`${name}:out`);
    });
    await Promise.all([job("a"), job("b")]);
    assert.ok(events[0]!.endsWith(":in") && events[1] === events[0]!.replace(":in", ":out"), events.join(" "));
    assert.equal(existsSync(lock), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("dir lock: a lock left by a dead process is taken over; a live holder times out with a clear error", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-lock-"));
  try {
    const lock = join(dir, "build.lock");
    const dead = spawnSync("true").pid!;
    await mkdir(lock);
    await writeFile(join(lock, "pid"), String(dead));
    assert.equal(await withDirLock(lock, "stale", 5_000, async () => "taken"), "taken");

    await mkdir(lock);
    await writeFile(join(lock, "pid"), String(process.pid));
    await assert.rejects(withDirLock(lock, "building x", 600, async () => "never"), (err: Error & { code?: string }) =>
      err.code === "DEADLINE_EXCEEDED" && err.message.includes(lock) && err.message.includes("building x"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
