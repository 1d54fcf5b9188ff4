// The QEMU command line for the root image: virtio-blk (Debian kernel) or virtio-pmem (DAX), and
// the balloon with free page reporting, the agent's virtio-serial bus.
import { test } from "node:test";
import assert from "node:assert/strict";
import { qemuArgs } from "../../src/hypervisor/qemu/cmdline.js";
import { vmLayout } from "../../src/hypervisor/qemu/layout.js";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { isKataError } from "../../src/util/errors.js";

const base: VmConfig = { id: "t", stateDir: "/s", vcpus: 1, memoryMiB: 512, kernelPath: "/a/vmlinux", rootfsPath: "/a/rootfs.erofs", kernelCmdline: ["ro"], accel: "tcg" };
const tuning = { accel: "tcg" as const, seccomp: false };

void test("qemu args: a virtio-pmem root maps the image read-only and private, on a PCIe microvm with room for it", () => {
  const args = qemuArgs({ ...base, rootfsDevice: "virtio-pmem" }, vmLayout("/s"), { ...tuning, rootfsBytes: 100 * 1048576 });
  assert.equal(args[args.indexOf("-machine") + 1], "microvm,acpi=on,pcie=on");
  assert.equal(args[args.indexOf("-m") + 1], "512M,slots=1,maxmem=612M");
  assert.ok(args.includes("memory-backend-file,id=rootfs-mem,mem-path=/a/rootfs.erofs,size=104857600,share=off,readonly=on"));
  assert.ok(args.includes("virtio-pmem-pci,memdev=rootfs-mem,id=rootfs"));
  assert.ok(!args.some((a) => a.startsWith("virtio-blk-device")), "no root disk");
  assert.throws(() => qemuArgs({ ...base, rootfsDevice: "virtio-pmem" }, vmLayout("/s"), tuning), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});

void test("qemu args: a virtio-blk root keeps the plain machine and memory; the balloon reports free pages unless turned off", () => {
  const args = qemuArgs(base, vmLayout("/s"), tuning);
  assert.equal(args[args.indexOf("-machine") + 1], "microvm,acpi=on");
  assert.equal(args[args.indexOf("-m") + 1], "512M");
  assert.ok(args.includes("virtio-blk-device,drive=rootfs"));
  assert.ok(args.includes("virtio-balloon-device,id=balloon0,free-page-reporting=on"));
  assert.ok(!qemuArgs(base, vmLayout("/s"), { ...tuning, freePageReporting: false }).some((a) => a.startsWith("virtio-balloon")));
});

void test("qemu args: the agent's virtio-serial bus has room for port 0 and the agent port only (each possible port costs guest RAM)", () => {
  const args = qemuArgs(base, vmLayout("/s"), tuning);
  assert.ok(args.includes("virtio-serial-device,id=vser0,max_ports=2"));
  assert.equal(args.filter((a) => a.startsWith("virtserialport,")).length, 1);
});
