// The guest clock at PrepareSandbox/CreateSandbox (src/agent/clock.ts): set only when it is off by
// more than the bound, to the host's time carried forward by the time spent before setting it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CLOCK_BOUND_MS, syncClock } from "../../src/agent/clock.js";

function recorder(): { set: (ms: number) => Promise<void>; calls: number[] } {
  const calls: number[] = [];
  return { calls, set: async (ms) => void calls.push(ms) };
}

void test("a guest clock within the bound of the host's is left alone: no date process", async () => {
  const host = new Date(1_800_000_000_000);
  for (const skew of [0, 250, -250, CLOCK_BOUND_MS, -CLOCK_BOUND_MS]) {
    const r = recorder();
    assert.equal(await syncClock(host, { now: () => host.getTime() + skew, set: r.set }), false, `skew ${skew} ms`);
    assert.deepEqual(r.calls, [], `skew ${skew} ms: not set`);
  }
});

void test("a guest clock off by more than the bound (ahead, behind, or a fresh guest's 1970) is set to the host's", async () => {
  const host = new Date(1_800_000_000_000);
  for (const guestNow of [host.getTime() + CLOCK_BOUND_MS + 1, host.getTime() - 5000, 3_000]) {
    const r = recorder();
    let t = guestNow;
    // 40 ms pass in the guest between the request's arrival and the setter.
    const now = (): number => {
      const v = t;
      t += 40;
      return v;
    };
    assert.equal(await syncClock(host, { now, set: r.set }), true);
    assert.deepEqual(r.calls, [host.getTime() + 40], "the host's time plus what passed in the guest since the request arrived");
  }
});
