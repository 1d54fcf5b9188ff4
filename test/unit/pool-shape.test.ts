// VM shapes decide which pod may take which pooled VM.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../../src/config/index.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { poolPaths } from "../../src/pool/layout.js";
import { PoolServer } from "../../src/pool/server.js";
import { parseShape, poolShape, shapeKey } from "../../src/pool/shape.js";
import { createLogger } from "../../src/util/log.js";

const assets = {
  kernelPath: "/a/vmlinux",
  initrdPath: "/a/initrd.cpio",
  rootfsPath: "/a/rootfs.erofs",
  kernelCmdline: ["root=/dev/vda"],
} as GuestAssets;
const size = { vcpus: 1, memoryMiB: 512 };

void test("pool shape: equal inputs give one key; size, image, TCG cache and tenant each give another", () => {
  const config = defaultConfig();
  const base = shapeKey(poolShape(config, assets, size, ""));
  assert.equal(shapeKey(poolShape(config, { ...assets }, { ...size }, "")), base);
  assert.notEqual(shapeKey(poolShape(config, assets, { ...size, memoryMiB: 1024 }, "")), base);
  assert.notEqual(shapeKey(poolShape(config, { ...assets, rootfsPath: "/b/rootfs.erofs" }, size, "")), base);
  assert.equal(poolShape(config, assets, size, "").tcgTbSizeMiB, 52, "a pooled VM that rehearses the pod path gets [factory] tcg_tb_size");
  const bigCache = defaultConfig();
  bigCache.factory.tcg_tb_size = 64;
  assert.equal(poolShape(bigCache, assets, size, "").tcgTbSizeMiB, 64);
  assert.notEqual(shapeKey(poolShape(bigCache, assets, size, "")), base);
  for (const off of [{ rehearse_pod_path: false }, { warm_up_containers: false }]) {
    const plain = defaultConfig();
    Object.assign(plain.factory, off);
    plain.hypervisor.qemu.tcg_tb_size = 48;
    assert.equal(poolShape(plain, assets, size, "").tcgTbSizeMiB, 48, `without the rehearsal (${JSON.stringify(off)}) a pooled VM gets the configured TCG cache, as a booted one does`);
  }
  const noTrim = defaultConfig();
  noTrim.hypervisor.qemu.tcg_idle_trim_s = 0;
  assert.equal(poolShape(config, assets, size, "").tcgSplitWx, true, "pooled VMs run with split-wx when idle pods are trimmed (trimmed once adopted)");
  assert.equal(poolShape(noTrim, assets, size, "").tcgSplitWx, undefined);
  assert.notEqual(shapeKey(poolShape(noTrim, assets, size, "")), base);
  assert.equal(parseShape(JSON.parse(JSON.stringify(poolShape(config, assets, size, "")))).tcgSplitWx, true);
  assert.notEqual(shapeKey(poolShape(config, assets, size, "team-a")), base, "tenants never share a pool");
  assert.notEqual(shapeKey(poolShape(config, assets, size, "team-a")), shapeKey(poolShape(config, assets, size, "team-b")));
});

void test("pool shape: the kernel's traits travel with the shape (they decide the VMM's kernel parameters and ACPI) and are checked on the socket", () => {
  const config = defaultConfig();
  const traits = { hz: 250, addedParams: ["lapic_timer_period"], bootsWithoutAcpi: true };
  const withTraits = poolShape(config, { ...assets, kernelTraits: traits }, size, "");
  assert.deepEqual(withTraits.kernelTraits, traits);
  assert.notEqual(shapeKey(withTraits), shapeKey(poolShape(config, assets, size, "")));
  assert.deepEqual(parseShape(JSON.parse(JSON.stringify(withTraits))), withTraits);
  assert.throws(() => parseShape({ ...withTraits, kernelTraits: { ...traits, hz: "250" } }), /not a VM shape/);
});

void test("pool shape: a bad tenant value or a malformed shape on the socket is refused with what was wrong", () => {
  assert.throws(() => poolShape(defaultConfig(), assets, size, "a b/c"), /io\.katats\.pool-tenant/);
  const good = poolShape(defaultConfig(), assets, size, "");
  assert.deepEqual(parseShape(JSON.parse(JSON.stringify(good))), good);
  assert.throws(() => parseShape({ ...good, memoryMiB: "512" }), /not a VM shape/);
  assert.throws(() => parseShape({ ...good, kernelCmdline: [1] }), /not a VM shape/);
  assert.throws(() => parseShape({ ...good, tcgTbSizeMiB: 2 }), /not a VM shape/);
  const { tcgTbSizeMiB: _older, ...fromOlderShim } = good;
  assert.deepEqual(parseShape(fromOlderShim), fromOlderShim, "a shape from a shim that did not carry the cache size is still taken");
  assert.throws(() => parseShape(null), /not a VM shape/);
});

void test("pool: a VMM other than QEMU is refused by name, by the shape and by the daemon before it creates anything", async () => {
  for (const name of ["cloud-hypervisor", "firecracker"] as const) {
    const config = defaultConfig();
    config.runtime.hypervisor = name;
    config.factory.enable_pool = true;
    assert.throws(() => poolShape(config, assets, size, ""), new RegExp(`QEMU VMs only.*hypervisor = "${name}"`));
    const dir = await mkdtemp(join(tmpdir(), "kts-pool-vmm-"));
    try {
      const paths = poolPaths(join(dir, "pool"));
      await assert.rejects(PoolServer.start({ config, log: createLogger("pool-test"), paths }), (err: Error & { code?: string }) => err.code === "FAILED_PRECONDITION" && err.message.includes(name));
      assert.deepEqual(await readdir(dir), [], "no pool dir, socket or VM was created");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

void test("pool shape: huge_guest_ram is part of the shape (a pooled VM's RAM backing is what the pod would have booted)", () => {
  const config = defaultConfig();
  const off = poolShape(config, assets, size, "");
  assert.equal(off.hugeGuestRam, undefined);
  config.hypervisor.qemu.huge_guest_ram = true;
  const on = poolShape(config, assets, size, "");
  assert.equal(on.hugeGuestRam, true);
  assert.notEqual(shapeKey(on), shapeKey(off));
  assert.deepEqual(parseShape(JSON.parse(JSON.stringify(on))), on);
  assert.throws(() => parseShape({ ...on, hugeGuestRam: "yes" }), /not a VM shape/);
});
