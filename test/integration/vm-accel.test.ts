// Accelerator resolution: `auto` asks the boot probe once per host and caches its answer, keyed by
// host kernel release + QEMU version; a stale or missing cache means probing again. The prober
// here is a plain function (the real one boots a guest under KVM: see `kata-ts check`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { kvmDeviceOpenable, kvmProbeCachePath, kvmProbeKey, resolveAccel } from "../../src/hypervisor/accel.js";
import { cleanupRoot, tempRoot } from "./vm-support.js";

let root: string;
const savedCacheDir = process.env.KATA_TS_CACHE_DIR;

before(async () => {
  root = await tempRoot("vm-accel");
  process.env.KATA_TS_CACHE_DIR = root;
});

after(async () => {
  if (savedCacheDir === undefined) delete process.env.KATA_TS_CACHE_DIR;
  else process.env.KATA_TS_CACHE_DIR = savedCacheDir;
  await cleanupRoot(root);
});

void test("accel: tcg is tcg, without probing", async () => {
  let probes = 0;
  assert.equal(await resolveAccel("tcg", () => (probes++, Promise.resolve({ usable: true, detail: "" }))), "tcg");
  assert.equal(probes, 0);
});

void test("accel: auto probes once, caches the answer with this host's key, and follows it", async (t) => {
  if (!(await kvmDeviceOpenable())) {
    assert.equal(await resolveAccel("auto"), "tcg", "no /dev/kvm: TCG without a probe");
    t.skip("no /dev/kvm on this host: the probe path cannot be taken");
    return;
  }
  let probes = 0;
  const unusable = () => (probes++, Promise.resolve({ usable: false, detail: "guest hung" }));
  assert.equal(await resolveAccel("auto", unusable), "tcg");
  assert.equal(probes, 1);
  const cached = JSON.parse(await readFile(kvmProbeCachePath(), "utf8")) as { usable: boolean; key: string; detail: string };
  assert.equal(cached.usable, false);
  assert.equal(cached.key, await kvmProbeKey());
  assert.match(cached.key, /^linux-\S+ qemu-\d+\.\d+\.\d+$/);
  assert.equal(await resolveAccel("auto", unusable), "tcg");
  assert.equal(probes, 1, "the cached answer is used: no second probe");
  assert.equal(await resolveAccel("auto"), "tcg", "without a prober the cache still answers");

  // A cache from another kernel/QEMU is stale: probe again and follow the new answer.
  await writeFile(kvmProbeCachePath(), JSON.stringify({ ...cached, key: "linux-0.0 qemu-0.0.0" }));
  assert.equal(await resolveAccel("auto", () => (probes++, Promise.resolve({ usable: true, detail: "booted" }))), "kvm");
  assert.equal(probes, 2);
});
