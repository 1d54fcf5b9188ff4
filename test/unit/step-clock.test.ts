// StepClock (the shim's pod start steps) and the guest's `ip -batch` line check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { StepClock } from "../../src/util/step-clock.js";
import { ipBatch } from "../../src/agent/network/ip-tool.js";

void test("StepClock: each step adds its wall time, also when it throws; summary keeps first-finished order and a total", async () => {
  const clock = new StepClock();
  await clock.time("a", () => sleep(20));
  await assert.rejects(clock.time("b", async () => {
    await sleep(10);
    throw new Error("boom");
  }), /boom/);
  clock.add("a", 5);
  const s = clock.summary();
  assert.deepEqual(Object.keys(s), ["a", "b", "total"]);
  assert.ok((s.a ?? 0) >= 24 && (s.b ?? 0) >= 9, JSON.stringify(s));
  assert.ok((s.total ?? 0) >= 29);
});

void test("StepClock timeline: when each step ran, parallel steps overlapping, in start order, from a wall-clock start", async () => {
  const before = Date.now();
  const made = performance.now();
  const clock = new StepClock();
  assert.ok(clock.startedAt >= before && clock.startedAt <= Date.now());
  await clock.time("first", () => sleep(20));
  const firstEnded = performance.now() - made; // "first" ended by then, however long a loaded host took
  // Two at once: both start after "first" ended, and overlap each other. The slow one ends only
  // after the fast one did, whatever the timers' lateness (a stall past both of them must not reorder).
  let fastEnded!: () => void;
  const fastDone = new Promise<void>((r) => (fastEnded = r));
  await Promise.all([clock.time("slow", () => fastDone.then(() => sleep(5))), sleep(5).then(() => clock.time("fast", () => sleep(10))).then(fastEnded)]);
  // A round trip reported when it settled (as agent calls are): its span ends now.
  clock.add("call", 15);
  const tl = clock.timeline();
  assert.deepEqual(Object.keys(tl), ["first", "slow", "fast", "call"]);
  const [f0, f1] = tl.first ?? [NaN, NaN];
  const [s0, s1] = tl.slow ?? [NaN, NaN];
  const [q0, q1] = tl.fast ?? [NaN, NaN];
  const [c0, c1] = tl.call ?? [NaN, NaN];
  assert.ok(f0 >= 0 && f1 >= 19 && f1 <= firstEnded + 1, JSON.stringify(tl));
  assert.ok(s0 >= f1 - 1 && q0 >= s0 && q1 <= s1 + 1, `the fast step runs inside the slow one: ${JSON.stringify(tl)}`);
  assert.ok(c1 - c0 === 15 && c1 <= clock.elapsed() + 1, JSON.stringify(tl));
});

void test("ipBatch refuses lines a batch cannot carry (options, blanks, quotes) before running ip", async () => {
  await assert.rejects(ipBatch(4, [["-4", "route", "show"]]), /not allowed in a batch/);
  await assert.rejects(ipBatch(undefined, [["link", "set", "dev", "eth 0", "up"]]), /not allowed in a batch/);
  await assert.rejects(ipBatch(undefined, [["addr", "add", "", "dev", "eth0"]]), /not allowed in a batch/);
});
