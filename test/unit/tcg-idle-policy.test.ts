// When an idle pod VM's TCG translation cache is given back (src/sandbox/tcg-idle-policy.ts): QEMU
// CPU samples in, trim or not out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pruneSamples, shouldTrim, type TcgIdlePolicy, type TcgIdleSample } from "../../src/sandbox/tcg-idle-policy.js";

const MiB = 1024 * 1024;
const policy: TcgIdlePolicy = { idleWindowMs: 60_000, idleMillicores: 30, minCacheBytes: 8 * MiB, rearmCpuMs: 4000 };

/** One sample every 5 s for `seconds`, QEMU using `millicores`, the cache at `cacheMiB`. */
function run(seconds: number, millicores: number, cacheMiB = 40, from: TcgIdleSample = { atMs: 0, cpuMs: 10_000, cacheBytes: 0 }): TcgIdleSample[] {
  const out: TcgIdleSample[] = [];
  for (let t = 5; t <= seconds; t += 5) out.push({ atMs: from.atMs + t * 1000, cpuMs: from.cpuMs + t * millicores, cacheBytes: cacheMiB * MiB });
  return out;
}

void test("an idle VM is trimmed once it has been idle for a whole window, not before", () => {
  const start: TcgIdleSample = { atMs: 0, cpuMs: 10_000, cacheBytes: 40 * MiB };
  assert.equal(shouldTrim([start, ...run(55, 9)], undefined, policy), false, "55 s idle: no sample a window old yet");
  assert.equal(shouldTrim([start, ...run(60, 9)], undefined, policy), true, "60 s at 9 millicores");
  assert.equal(shouldTrim([start, ...run(60, 30)], undefined, policy), true, "at the threshold");
});

void test("a busy VM, or one busy in part of the window, is not trimmed", () => {
  const start: TcgIdleSample = { atMs: 0, cpuMs: 10_000, cacheBytes: 40 * MiB };
  assert.equal(shouldTrim([start, ...run(120, 200)], undefined, policy), false, "200 millicores");
  // Idle, then an exec costing 2 s of QEMU CPU 10 s ago: 2000 ms over the 60 s window is 33 millicores.
  const samples = [start, ...run(120, 0)];
  const last = samples.length - 1;
  for (let i = last - 1; i <= last; i++) {
    const s = samples[i];
    if (s !== undefined) samples[i] = { ...s, cpuMs: s.cpuMs + 2000 };
  }
  assert.equal(shouldTrim(pruneSamples(samples, 120_000, policy.idleWindowMs), undefined, policy), false);
});

void test("a cache too small to be worth it is left alone", () => {
  assert.equal(shouldTrim([{ atMs: 0, cpuMs: 0, cacheBytes: 0 }, ...run(60, 5, 4, { atMs: 0, cpuMs: 0, cacheBytes: 0 })], undefined, policy), false);
});

void test("after a trim, the VM is trimmed again only once it has used rearmCpuMs of CPU since, and is idle again", () => {
  // Trimmed at t=0 with QEMU at 10 s of CPU; then a probe every 10 s costing ~100 ms (10 + 9 millicores idle).
  const trimmedAtCpu = 10_000;
  const probing = [{ atMs: 0, cpuMs: trimmedAtCpu, cacheBytes: 0 }, ...run(150, 19, 26)];
  assert.equal(shouldTrim(probing, trimmedAtCpu, policy), false, "150 s of probes: 2.85 s of CPU since the trim, not yet 4");
  const longer = [{ atMs: 0, cpuMs: trimmedAtCpu, cacheBytes: 0 }, ...run(240, 19, 26)];
  assert.equal(shouldTrim(pruneSamples(longer, 240_000, policy.idleWindowMs), trimmedAtCpu, policy), true, "240 s: 4.56 s since the trim, idle at 19 millicores");
  // A truly idle VM whose cache stayed small after the trim is not trimmed again.
  const idle = [{ atMs: 0, cpuMs: trimmedAtCpu, cacheBytes: 0 }, ...run(900, 9, 3)];
  assert.equal(shouldTrim(pruneSamples(idle, 900_000, policy.idleWindowMs), trimmedAtCpu, policy), false);
});

void test("pruneSamples keeps the newest sample a window old and every later one", () => {
  const samples = run(100, 10);
  const kept = pruneSamples(samples, 100_000, 60_000);
  assert.equal(kept[0]?.atMs, 40_000);
  assert.equal(kept.at(-1)?.atMs, 100_000);
  assert.equal(shouldTrim([], undefined, policy), false);
});
