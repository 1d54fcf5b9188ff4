// Kernel configuration fragments: parsing, merging, and the check that catches an option Kconfig
// dropped because a dependency was missing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { configHash, loadFragments, mergeFragments, parseFragments, unmetRequests } from "../../src/guest/kernel/kconfig.js";
import { progressPercent } from "../../src/guest/kernel/make-progress.js";
import { isKataError } from "../../src/util/errors.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const configDir = join(repoRoot, "src", "guest", "kernel", "config");

void test("kconfig: the shipped x86_64 fragments parse, ask for no symbol twice, and carry what the guest needs", async () => {
  const fragments = await loadFragments(configDir, "x86_64");
  const names = fragments.map((f) => f.name);
  assert.ok(names.includes("common/netfilter.conf") && names.includes("x86_64/pvh.conf"), names.join(" "));
  assert.ok(names.indexOf("common/base.conf") < names.indexOf("x86_64/pvh.conf"), "common fragments first");
  const req = parseFragments(fragments);
  for (const sym of ["CONFIG_PVH", "CONFIG_VIRTIO_PMEM", "CONFIG_FS_DAX", "CONFIG_EROFS_FS", "CONFIG_BRIDGE", "CONFIG_IP_NF_NAT", "CONFIG_VIRTIO_BALLOON", "CONFIG_CGROUP_BPF", "CONFIG_SECCOMP_FILTER", "CONFIG_SWAP", "CONFIG_ZRAM"]) {
    assert.equal(req.get(sym)?.value, "y", sym);
  }
  assert.equal(req.get("CONFIG_MODULES")?.value, "n", "no loadable modules");
  assert.equal(req.get("CONFIG_BLK_DEV_INITRD")?.value, "n", "no initramfs");
  assert.match(configHash(fragments), /^[0-9a-f]{64}$/);
});

void test("kconfig: a dropped, changed or unset option is reported with the fragment line that asked for it", () => {
  const fragments = [
    { name: "common/a.conf", text: "# comment\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=64\n" },
    { name: "x86_64/b.conf", text: "CONFIG_D=y\n" },
  ];
  const req = parseFragments(fragments);
  const dotConfig = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_N=32\n";
  const unmet = unmetRequests(req, dotConfig);
  assert.deepEqual(unmet, [
    "CONFIG_B=y (common/a.conf:3): got n",
    "CONFIG_C=n (common/a.conf:4): got y",
    "CONFIG_N=64 (common/a.conf:5): got 32",
    "CONFIG_D=y (x86_64/b.conf:1): dropped (a dependency is not met)",
  ]);
  assert.deepEqual(unmetRequests(req, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_N=64\nCONFIG_D=y\n"), [], "an absent symbol counts as not set");
  assert.match(mergeFragments(fragments), /^# --- common\/a.conf\n# comment\n.*# --- x86_64\/b.conf\nCONFIG_D=y\n$/s);
});

void test("kconfig: malformed lines and a symbol asked for twice are errors naming the place", () => {
  assert.throws(
    () => parseFragments([{ name: "common/x.conf", text: "CONFIG_A=y\nCONFIG_B y\n" }]),
    (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("common/x.conf:2"),
  );
  assert.throws(
    () => parseFragments([{ name: "common/x.conf", text: "CONFIG_A=y\n" }, { name: "x86_64/y.conf", text: "# CONFIG_A is not set\n" }]),
    (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("common/x.conf:1") && e.message.includes("x86_64/y.conf:1"),
  );
});

void test("kconfig: build progress never shows 100 % before make is done", () => {
  assert.equal(progressPercent(0, 1900), 0);
  assert.equal(progressPercent(950, 1900), 50);
  assert.equal(progressPercent(5000, 1900), 99);
  assert.equal(progressPercent(3, 0), 0);
});
