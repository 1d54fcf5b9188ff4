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

void test("ipBatch refuses lines a batch cannot carry (options, blanks, quotes) before running ip", async () => {
  await assert.rejects(ipBatch(4, [["-4", "route", "show"]]), /not allowed in a batch/);
  await assert.rejects(ipBatch(undefined, [["link", "set", "dev", "eth 0", "up"]]), /not allowed in a batch/);
  await assert.rejects(ipBatch(undefined, [["addr", "add", "", "dev", "eth0"]]), /not allowed in a batch/);
});
