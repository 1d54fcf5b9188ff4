// The guest root on virtio-pmem with DAX (QEMU q35, `image_device = "pmem"`): the real guest's agent
// answers; the root is mounted dax=always; and the image is mapped read-only and private, so a guest
// that writes over /dev/pmem0 (or through the mount) cannot change the host's file: its sha256 is the
// same after as before. The image is a copy in the test's own dir, so a failure cannot damage the
// assets every other VM boots from.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFile, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { GuestAssets } from "../../src/guest/assets.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { VmExit } from "../../src/hypervisor/types.js";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, exists, guestWithoutAcpi, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

const deadlineMs = 180_000;
let root: string;
let guest: GuestAssets;
let hv: QemuHypervisor;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-pmem");
  hv = await QemuHypervisor.open({ machine: "q35", imageDevice: "pmem" });
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  const late = sleep(ms, undefined, { ref: false }).then(() => {
    throw new Error(`${what} did not happen within ${ms} ms`);
  });
  return Promise.race([p, late]);
}

void test("q35 + pmem: the real guest's agent answers over virtio-serial on PCI, the image attached as virtio-pmem", async () => {
  const { vm, agent, health } = await bootVm(vmConfig(guest, root, "agent"), { deadlineMs, hypervisor: hv });
  try {
    assert.equal((await health.check({})).status, 1 /* SERVING */);
    assert.equal((await health.version({}, { timeoutMs: 10_000 })).kernelRelease, guest.kernelRelease);
    const args = (vm as { args?: string[] }).args ?? [];
    assert.ok(args.some((a) => a.startsWith("q35,")), `machine q35 in ${args.join(" ")}`);
    assert.ok(args.some((a) => a.startsWith("virtio-pmem-pci,")), "the image is a virtio-pmem device");
    assert.ok(!args.some((a) => a.startsWith("virtio-blk")), "and no disk");
  } finally {
    agent.close();
    await vm.stop({ timeoutMs: 5000 });
  }
  assert.equal(await exists(vm.stateDir), false);
});

void test("q35 + pmem: the root is mounted dax=always; a guest writing over /dev/pmem0 and the mount leaves the host image unchanged (sha256)", async () => {
  const image = join(root, "rootfs-copy.erofs");
  await copyFile(guest.rootfsPath, image);
  const before = await sha256(image);
  const mtimeBefore = (await stat(image)).mtimeMs;
  // PID 1 is busybox sh; the kernel splits its command line at spaces, so the script has none
  // (${IFS} expands to the separator inside the shell). It prints markers the test reads back.
  const script = [
    "mount -t proc proc /proc",
    "grep -o dax=always /proc/mounts",
    "touch /kata-ts-write-probe 2>/dev/null; echo mount-write-exit-$?",
    "dd if=/dev/urandom of=/dev/pmem0 bs=4096 count=256 conv=fsync; echo pmem-write-exit-$?",
    "sync",
    // A guest without ACPI ends itself by a reset (counted as a power-off), one with ACPI powers off.
    guestWithoutAcpi(guest) ? "reboot -f" : "poweroff -f",
  ].join(";").replaceAll(" ", "${IFS}");
  const vm = await hv.create(vmConfig(guest, root, "write", { rootfsPath: image, kernelCmdline: busyboxPid1Cmdline(guest, "sh", ["-c", script]) }));
  await vm.start();
  const exit: VmExit = await within(vm.wait(), deadlineMs, "the writing guest's power-off");
  const console = exit.consoleTail ?? "";
  assert.equal(exit.reason, "poweroff", `the script ran to its end; console:\n${console}`);
  assert.match(console, /^dax=always/m, "the root is mounted with DAX");
  assert.match(console, /mount-write-exit-[1-9]/, "the mount is read-only");
  assert.match(console, /256\+0 records out/, "the guest wrote 1 MiB over its root device (dd succeeded in the guest)");
  assert.match(console, /pmem-write-exit-0/);
  assert.equal(await sha256(image), before, "the host image did not change");
  assert.equal((await stat(image)).mtimeMs, mtimeBefore, "nor its mtime");
});
