// A deferred guest set-up (src/sandbox/deferred-setup.ts): its outcome for container creation, the
// failure reported once (the sandbox is then lost), a deadline that counts as a failure, and a
// settle-only view for the teardown that waits for the work itself, not for the deadline.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { DeferredSetUp } from "../../src/sandbox/deferred-setup.js";
import { KataError } from "../../src/util/errors.js";

void test("done resolves when the work does; no failure is reported", async () => {
  const failures: unknown[] = [];
  const d = new DeferredSetUp(sleep(10), 5000, (err) => failures.push(err));
  await d.done;
  await d.settled;
  assert.deepEqual(failures, []);
});

void test("a failed work rejects done with its error and reports it once", async () => {
  const failures: unknown[] = [];
  const cause = new KataError("NOT_FOUND", "no guest NIC has MAC 02:de:ad:00:be:ef");
  const d = new DeferredSetUp(Promise.reject(cause), 5000, (err) => failures.push(err));
  await assert.rejects(d.done, (err) => err === cause);
  await assert.rejects(d.done, (err) => err === cause);
  await d.settled; // never rejects
  assert.deepEqual(failures, [cause]);
});

void test("a work past its deadline fails DEADLINE_EXCEEDED, while settled waits for the work itself", async (t) => {
  const failures: unknown[] = [];
  let finish!: () => void;
  const work = new Promise<void>((r) => (finish = r));
  const d = new DeferredSetUp(work, 50, (err) => failures.push(err));
  const alive = setInterval(() => undefined, 1000); // the deadline's timer does not keep a process alive
  t.after(() => clearInterval(alive));
  await assert.rejects(d.done, (err: unknown) => err instanceof KataError && err.code === "DEADLINE_EXCEEDED" && /within 0.05 s/.test(err.message));
  assert.equal(failures.length, 1);
  let settled = false;
  void d.settled.then(() => (settled = true));
  await sleep(20);
  assert.equal(settled, false, "the teardown still waits for the work (it pushes undo steps until it ends)");
  finish();
  await d.settled;
  assert.equal(failures.length, 1, "reported once");
});
