// A container's memory limit in the guest: lowered by its share of the guest page metadata of the
// pod's limits above what podFixed covers ([runtime] overhead_covers_limits_mib), and left as is
// below it, so that a pod using all its memory stays under kubelet's pod limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { guestMemoryLimit, withGuestMemoryLimit, withGuestSpecMemoryLimit } from "../../src/shim/guest-memory-limit.js";
import { parseConfig } from "../../src/config/index.js";
import type { OciSpec } from "../../src/protocol/contract/oci.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

void test("guest memory limit: unchanged while the pod's limits are within what podFixed covers, or the pod has none", () => {
  assert.equal(guestMemoryLimit(512 * MiB, { podLimitsMiB: 512, coveredMiB: 1024 }), 512 * MiB);
  assert.equal(guestMemoryLimit(1 * GiB, { podLimitsMiB: 1024, coveredMiB: 1024 }), 1 * GiB);
  assert.equal(guestMemoryLimit(256 * MiB, { podLimitsMiB: 0, coveredMiB: 1024 }), 256 * MiB, "a VM sized without limits");
  assert.equal(guestMemoryLimit(0, { podLimitsMiB: 8192, coveredMiB: 0 }), 0, "no limit stays no limit");
});

void test("guest memory limit: above the cover, lowered by 1/64 + 1/512 of the uncovered limits, shared by the containers' limits", () => {
  // One container holding the pod's 8 GiB, 1 GiB covered: (8192 - 1024) * (1/64 + 1/512) = 112 + 14 MiB lower.
  assert.equal(guestMemoryLimit(8 * GiB, { podLimitsMiB: 8192, coveredMiB: 1024 }), 8 * GiB - 126 * MiB);
  // Nothing covered: the whole limit's metadata, 1/64 + 1/512.
  assert.equal(guestMemoryLimit(4 * GiB, { podLimitsMiB: 4096, coveredMiB: 0 }), 4 * GiB - 72 * MiB);
  // Two containers of 3 GiB and 1 GiB share the 54 MiB of (4096 - 1024) * 9/512 as 3:1.
  const cover = { podLimitsMiB: 4096, coveredMiB: 1024 };
  const big = guestMemoryLimit(3 * GiB, cover);
  const small = guestMemoryLimit(1 * GiB, cover);
  assert.equal(3 * GiB - big, 40.5 * MiB);
  assert.equal(1 * GiB - small, 13.5 * MiB);
  // Rounded to whole 4 KiB pages, never up to a limit above the one asked.
  const odd = guestMemoryLimit(1000 * MiB + 12345, { podLimitsMiB: 3000, coveredMiB: 1024 });
  assert.equal(odd % 4096, (1000 * MiB + 12345) % 4096, "lowered by whole pages");
  assert.ok(odd < 1000 * MiB + 12345);
  // A container's limit over the pod's sum takes the sum's whole share, no more.
  assert.equal(guestMemoryLimit(8 * GiB, { podLimitsMiB: 2048, coveredMiB: 1024 }), 8 * GiB - 18 * MiB);
});

void test("guest memory limit: the spec's limit and swap limit are lowered alike; other resources and the input are untouched", () => {
  const spec: OciSpec = {
    ociVersion: "1.1.0",
    process: { args: ["sh"], cwd: "/", user: { uid: 0, gid: 0 } },
    root: { path: "rootfs" },
    linux: { resources: { memory: { limit: 8 * GiB, swap: 8 * GiB, reservation: 0 }, cpu: { shares: 2 } }, namespaces: [] },
  } as OciSpec;
  const before = JSON.stringify(spec);
  const guest = withGuestSpecMemoryLimit(spec, { podLimitsMiB: 8192, coveredMiB: 1024 });
  assert.deepEqual(guest.linux?.resources, { memory: { limit: 8 * GiB - 126 * MiB, swap: 8 * GiB - 126 * MiB, reservation: 0 }, cpu: { shares: 2 } });
  assert.equal(JSON.stringify(spec), before, "the request's spec is not modified");
  assert.equal(withGuestSpecMemoryLimit(spec, { podLimitsMiB: 8192, coveredMiB: 8192 }), spec, "unchanged: the same object");
  // An explicit swap allowance keeps its size.
  const withSwap = withGuestMemoryLimit({ memory: { limit: 4 * GiB, swap: 5 * GiB } }, { podLimitsMiB: 4096, coveredMiB: 0 });
  assert.deepEqual(withSwap, { memory: { limit: 4 * GiB - 72 * MiB, swap: 5 * GiB - 72 * MiB } });
  // An Update without a memory limit (CPU only) passes as it came.
  const cpuOnly = { cpu: { quota: 50_000, period: 100_000 } };
  assert.equal(withGuestMemoryLimit(cpuOnly, { podLimitsMiB: 4096, coveredMiB: 0 }), cpuOnly);
});

void test("guest memory limit: [runtime] overhead_covers_limits_mib defaults to 512 and refuses a negative value naming the key", () => {
  assert.equal(parseConfig("", "test.toml").runtime.overhead_covers_limits_mib, 512);
  assert.equal(parseConfig("[runtime]\noverhead_covers_limits_mib = 4096\n", "test.toml").runtime.overhead_covers_limits_mib, 4096);
  assert.throws(() => parseConfig("[runtime]\noverhead_covers_limits_mib = -1\n", "test.toml"), /test.toml: runtime.overhead_covers_limits_mib/);
});
