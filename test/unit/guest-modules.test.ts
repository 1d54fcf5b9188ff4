// Kernel module load order from modules.dep (lines taken from the Debian 6.1 cloud kernel).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GUEST_MODULES, OPTIONAL_MODULES, loadOrder, moduleName, parseModulesDep } from "../../src/guest/modules.js";
import { isKataError } from "../../src/util/errors.js";

const debianModulesDep = `kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/fs/overlayfs/overlay.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
`;

const name = (p: string) => moduleName(p);

void test("modules: every module comes after all of its dependencies", () => {
  const deps = parseModulesDep(debianModulesDep);
  const order = loadOrder(deps, GUEST_MODULES, OPTIONAL_MODULES);
  for (const [i, path] of order.entries()) {
    for (const dep of deps.get(path) ?? []) {
      assert.ok(order.indexOf(dep) >= 0 && order.indexOf(dep) < i, `${name(dep)} must load before ${name(path)}`);
    }
  }
  assert.equal(new Set(order).size, order.length, "no module twice");
  const names = order.map(name);
  assert.ok(names.indexOf("virtio_ring") < names.indexOf("virtio"));
  assert.ok(names.indexOf("virtio") < names.indexOf("virtio_mmio"));
  assert.ok(names.includes("vmw_vsock_virtio_transport"), "optional module present in this kernel is loaded");
  assert.ok(!names.includes("bridge"), "nothing that was not asked for");
});

void test("modules: the order is exactly the depth-first order of the wanted list", () => {
  const order = loadOrder(parseModulesDep(debianModulesDep), ["virtio_blk", "erofs"]).map(name);
  assert.deepEqual(order, ["virtio_ring", "virtio", "virtio_blk", "libcrc32c", "erofs"]);
});

void test("modules: a missing wanted module is NOT_FOUND, a missing optional one is skipped", () => {
  const deps = parseModulesDep("kernel/a.ko:\n");
  assert.throws(() => loadOrder(deps, ["virtio_blk"]), (e: unknown) => isKataError(e, "NOT_FOUND") && /virtio_blk/.test(e.message));
  assert.deepEqual(loadOrder(deps, ["a"], ["vsock"]), ["kernel/a.ko"]);
});

void test("modules: a dependency cycle is reported, not looped on", () => {
  const deps = parseModulesDep("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n");
  assert.throws(() => loadOrder(deps, ["a"]), (e: unknown) => isKataError(e, "INTERNAL") && /cycle/.test(e.message));
});

void test("modules: names from paths, compressed or dashed", () => {
  assert.equal(moduleName("kernel/fs/fuse/virtiofs.ko.xz"), "virtiofs");
  assert.equal(moduleName("kernel/x/nf-conntrack.ko.zst"), "nf_conntrack");
  assert.equal(moduleName("kernel/x/virtio_net.ko"), "virtio_net");
  assert.deepEqual(loadOrder(parseModulesDep("kernel/x/nf-conntrack.ko.zst:\n"), ["nf-conntrack"]), ["kernel/x/nf-conntrack.ko.zst"]);
});

void test("modules: the appended signature is cut off exactly; unsigned modules are unchanged", async () => {
  const { stripModuleSignature } = await import("../../src/guest/modules.js");
  const body = Buffer.from("\x7fELF module body", "latin1");
  const sig = Buffer.alloc(515, 0xab);
  const info = Buffer.alloc(12);
  info.writeUInt32BE(sig.length, 8);
  const signed = Buffer.concat([body, sig, info, Buffer.from("~Module signature appended~\n", "latin1")]);
  assert.ok(stripModuleSignature(signed).equals(body));
  assert.ok(stripModuleSignature(body).equals(body));
  const bogus = Buffer.from(signed);
  bogus.writeUInt32BE(1 << 20, body.length + sig.length + 8);
  assert.throws(() => stripModuleSignature(bogus), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});
