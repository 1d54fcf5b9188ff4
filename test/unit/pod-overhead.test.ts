// PodOverhead from bench/overhead.ts's idle figures: podFixed memory follows what one pod holds
// (the larger of its own processes' PSS and its pod cgroup's charge) + the margin, rounded up to
// a whole MiB; the node-level VM pool goes to the node's reservation (+ the same margin) and
// never into podFixed, whatever its size or the number of pods.
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../../src/config/index.js";
import { POOL_PART_PSS_MIB, poolReservation } from "../../src/pool/reservation.js";
import { nodeReservedMiB, overheadDataSchema, podFixedBasisMiB, podFixedOverhead, workingPodMemory, type IdlePodMemory, type OverheadData } from "../../src/deploy/manifests/overhead.js";

const base: OverheadData = {
  measuredPssMiB: 0,
  measuredCpuMillicores: 5,
  busyPssMiB: 300,
  busyCpuMillicores: 900,
  marginPercent: 25,
  measuredAt: "2026-12-01T00:00:00.000Z",
  command: "unit test",
};

const podFixedMemory = (m: IdlePodMemory, marginPercent = 25): string => podFixedOverhead({ ...base, marginPercent, measuredPssMiB: podFixedBasisMiB(m) }).memory;

void test("podFixed memory: the pod's own PSS + margin, rounded up; the node-level pool takes no part", () => {
  const m: IdlePodMemory = { podPssMiB: 120.04, podCgroupMaxMiB: 100, nodeLevelPssMiB: 160 };
  assert.equal(podFixedBasisMiB(m), 120);
  assert.equal(podFixedMemory(m), "150Mi");
  // The pool's memory in the pod's figure (what a 1/N share of it did) would have raised podFixed:
  // here it changes nothing, from none to 10 GiB.
  for (const nodeLevelPssMiB of [0, 15, 160, 10240]) assert.equal(podFixedMemory({ ...m, nodeLevelPssMiB }), "150Mi");
});

void test("podFixed memory: the pod cgroup's charge when it exceeds the PSS (page cache charged whole to the first toucher)", () => {
  const m: IdlePodMemory = { podPssMiB: 110, podCgroupMaxMiB: 126.55, nodeLevelPssMiB: 150 };
  assert.equal(podFixedBasisMiB(m), 126.6);
  assert.equal(podFixedMemory(m), "159Mi"); // 126.6 * 1.25 = 158.25, rounded up
  assert.equal(podFixedMemory(m, 10), "140Mi"); // 139.26
  assert.equal(podFixedMemory(m, 0), "127Mi");
});

void test("podFixed memory: the TCG cache an idle pod gave back counts, since a working pod takes it again", () => {
  const pods = [
    { pssMiB: 100, cgroupMiB: 90, tcgRefillMiB: 38 }, // booted: 40 MiB buffer
    { pssMiB: 110, cgroupMiB: 95, tcgRefillMiB: 50 }, // adopted from the pool: 52 MiB buffer
  ];
  const working = workingPodMemory(pods, 150);
  assert.equal(working.podPssMiB, 149); // (138 + 160) / 2
  assert.equal(working.podCgroupMaxMiB, 145); // 95 + 50
  assert.equal(podFixedBasisMiB(working), 149);
  assert.equal(podFixedMemory(working), "187Mi"); // 149 * 1.25 = 186.25
  // Nothing given back: the idle figures as before.
  assert.equal(podFixedBasisMiB(workingPodMemory(pods.map((p) => ({ ...p, tcgRefillMiB: 0 })), 150)), 105);
  assert.throws(() => workingPodMemory([], 0), /no pods/);
});

void test("node reservation: the pool's node-level PSS + the same margin, rounded up, independent of the pods", () => {
  assert.equal(nodeReservedMiB({ podPssMiB: 120, podCgroupMaxMiB: 120, nodeLevelPssMiB: 150.01 }, 25), 188); // 150.0 * 1.25 = 187.5
  assert.equal(nodeReservedMiB({ podPssMiB: 999, podCgroupMaxMiB: 999, nodeLevelPssMiB: 150 }, 25), 188);
  assert.equal(nodeReservedMiB({ podPssMiB: 120, podCgroupMaxMiB: 120, nodeLevelPssMiB: 0 }, 25), 0); // pool off
});

void test("overhead.json: nodeReservedMiB is optional (figures measured before it parse), and must be a number when present", () => {
  assert.equal(overheadDataSchema.safeParse(base).success, true);
  assert.equal(overheadDataSchema.safeParse({ ...base, nodeReservedMiB: 188 }).success, true);
  assert.equal(overheadDataSchema.safeParse({ ...base, nodeReservedMiB: "188Mi" }).success, false);
});

void test("poolReservation: the measured default pool, scaled to the configured counts; an estimate without a measurement; nothing with the pool off", () => {
  const factory = defaultConfig().factory;
  assert.deepEqual([factory.pool_size, factory.max_shapes, factory.warm_shims], [1, 1, 1], "the measurement is of the default pool");
  const measured = poolReservation(factory, { nodeReservedMiB: 162, marginPercent: 25 });
  assert.equal(measured.mib, 162);
  assert.equal(measured.basis, "measured");
  assert.match(measured.text, /162Mi to kubelet's systemReserved/);
  // Two VMs per shape, two shapes, no warm shim: 3 more VMs, one shim less, each with the margin.
  const p = POOL_PART_PSS_MIB;
  assert.equal(poolReservation({ ...factory, pool_size: 2, max_shapes: 2, warm_shims: 0 }, { nodeReservedMiB: 162, marginPercent: 25 }).mib, Math.ceil(162 + (3 * p.readyVm - p.warmShim) * 1.25));
  const estimated = poolReservation(factory, { marginPercent: 25 });
  assert.equal(estimated.basis, "estimated");
  assert.equal(estimated.mib, Math.ceil((p.daemon + p.readyVm + p.warmShim) * 1.25));
  assert.deepEqual(poolReservation({ ...factory, enable_pool: false }, { nodeReservedMiB: 162, marginPercent: 25 }).mib, 0);
});
