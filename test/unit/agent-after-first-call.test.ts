// The agent defers its boot-memory release until its first call is answered: work waits for the
// first event on the channel (or the fallback timer) and runs exactly once.
import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import test from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { afterFirstCall } from "../../src/agent/after-first-call.js";

void test("afterFirstCall: work runs only after the first published call, once, and unsubscribes", async () => {
  const name = "kata-ts:test:after-first-call:1";
  const channel = diagnostics.channel(name);
  let runs = 0;
  const done = afterFirstCall(async () => ++runs, 60_000, name);
  await sleep(20);
  assert.equal(runs, 0, "nothing runs before a call was answered");
  assert.equal(channel.hasSubscribers, true);
  channel.publish({ method: "Check" });
  channel.publish({ method: "Version" });
  assert.equal(await done, 1);
  await sleep(20);
  assert.equal(runs, 1, "a second call does not run the work again");
  assert.equal(channel.hasSubscribers, false, "the subscription is gone");
});

void test("afterFirstCall: without any call the work runs after the fallback delay, and its error is the promise's", async () => {
  const name = "kata-ts:test:after-first-call:2";
  const started = performance.now();
  await assert.rejects(afterFirstCall(async () => { throw new Error("boom"); }, 50, name), /boom/);
  assert.ok(performance.now() - started >= 45, "waited for the fallback");
  assert.equal(diagnostics.channel(name).hasSubscribers, false);
});
