// The QEMU command line for the machine and root image: microvm + virtio-blk, or q35 + virtio-pmem (DAX), and
// the balloon with free page reporting, the agent's virtio-serial bus.
import { test } from "node:test";
import assert from "node:assert/strict";
import { qemuArgs, tcgLapicTimerPeriod, vmmKernelParams } from "../../src/hypervisor/qemu/cmdline.js";
import { classifyExit } from "../../src/hypervisor/qemu/vm.js";
import { vmLayout } from "../../src/hypervisor/qemu/layout.js";
import { q35DeviceMemoryBase } from "../../src/hypervisor/qemu/args/pmem.js";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { isKataError } from "../../src/util/errors.js";

const base: VmConfig = { id: "t", stateDir: "/s", vcpus: 1, memoryMiB: 512, kernelPath: "/a/vmlinux", rootfsPath: "/a/rootfs.erofs", kernelCmdline: ["ro"], accel: "tcg" };
const tuning = { accel: "tcg" as const, seccomp: false };

void test("qemu args: a virtio-pmem root maps the image read-only and private, on q35 with room for it, every device on PCI", () => {
  const q35 = { ...tuning, machine: "q35" as const, rootDevice: "virtio-pmem" as const, rootfsBytes: 100 * 1048576 };
  const cmdline = ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/kata-ts-init"];
  const args = qemuArgs({ ...base, kernelCmdline: cmdline, sharedFs: { socketPath: "/s/fs.sock", tag: "t" } }, vmLayout("/s"), q35);
  assert.equal(args[args.indexOf("-machine") + 1], "q35,sata=off,smbus=off,hpet=off,vmport=off,memory-backend=mem");
  assert.equal(args[args.indexOf("-bios") + 1], "qboot.rom");
  assert.equal(args[args.indexOf("-m") + 1], "512M,slots=1,maxmem=612M");
  assert.ok(args.includes("memory-backend-file,id=rootfs-mem,mem-path=/a/rootfs.erofs,size=104857600,share=off,readonly=on"));
  assert.ok(args.includes("virtio-pmem-pci,memdev=rootfs-mem,id=rootfs"));
  assert.ok(!args.some((a) => a.startsWith("virtio-blk")), "no root disk");
  assert.ok(!args.some((a) => /^(virtio-[a-z]+|vhost-user-fs)-device/.test(a)), "no virtio-mmio device on q35");
  for (const dev of ["virtio-serial-pci,", "vhost-user-fs-pci,", "virtio-balloon-pci,"]) assert.ok(args.some((a) => a.startsWith(dev)), dev);
  // The root parameters follow the device: the assets' root=/dev/vda becomes the DAX pmem root.
  const append = args[args.indexOf("-append") + 1]!.split(" ");
  assert.deepEqual(append.slice(append.indexOf("root=/dev/pmem0"), append.indexOf("root=/dev/pmem0") + 5), ["root=/dev/pmem0", "rootflags=dax=always", "rootwait", "rootfstype=erofs", "ro"]);
  assert.ok(!append.includes("root=/dev/vda"));
  assert.throws(() => qemuArgs(base, vmLayout("/s"), { ...q35, rootfsBytes: 0 }), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});

void test("qemu args: virtio-pmem on microvm is refused with what to configure instead (microvm never maps memory devices)", () => {
  assert.throws(
    () => qemuArgs(base, vmLayout("/s"), { ...tuning, rootDevice: "virtio-pmem", rootfsBytes: 100 * 1048576 }),
    (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && /microvm/.test((e as Error).message) && /machine = "q35"/.test((e as Error).message),
  );
});

void test("qemu args: a virtio-blk root on q35 is a virtio-blk-pci disk, and a pmem root's parameters go back to /dev/vda", () => {
  const args = qemuArgs({ ...base, kernelCmdline: ["root=/dev/pmem0", "rootflags=dax=always", "rootwait", "ro"] }, vmLayout("/s"), { ...tuning, machine: "q35", rootDevice: "virtio-blk" });
  assert.ok(args.includes("virtio-blk-pci,drive=rootfs"));
  assert.ok(args[args.indexOf("-append") + 1]!.endsWith("root=/dev/vda ro"));
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

void test("qemu args: shared guest RAM is a memfd by default, or a file QEMU creates (and unlinks) in the huge-page tmpfs dir, 2 MiB aligned", () => {
  const pod = { ...base, sharedFs: { socketPath: "/s/fs.sock", tag: "t" } };
  const memfd = qemuArgs(pod, vmLayout("/s"), tuning);
  assert.ok(memfd.includes("memory-backend-memfd,id=mem,size=512M,share=on"));
  assert.equal(memfd[memfd.indexOf("-machine") + 1], "microvm,acpi=on,memory-backend=mem");
  const huge = qemuArgs(pod, vmLayout("/s"), { ...tuning, sharedMemory: { kind: "huge-tmpfs", dir: "/run/kata-ts-guest-ram" } });
  assert.ok(huge.includes("memory-backend-file,id=mem,mem-path=/run/kata-ts-guest-ram,size=512M,share=on,align=2M"), huge.join(" "));
  assert.ok(!huge.some((a) => a.startsWith("memory-backend-memfd")));
  assert.equal(huge[huge.indexOf("-machine") + 1], "microvm,acpi=on,memory-backend=mem");
  // Without a share guest RAM stays QEMU's anonymous memory whatever the backing says.
  const plain = qemuArgs(base, vmLayout("/s"), { ...tuning, sharedMemory: { kind: "huge-tmpfs", dir: "/d" } });
  assert.ok(!plain.some((a) => a.startsWith("memory-backend")));
});

void test("qemu args: under TCG the guest keeps its LOCK prefixes (noreplace-smp: rewriting kernel text costs TCG re-translation); not under KVM", () => {
  const append = (accel: "tcg" | "kvm"): string[] => {
    const args = qemuArgs({ ...base, accel }, vmLayout("/s"), { ...tuning, accel });
    return args[args.indexOf("-append") + 1]!.split(" ");
  };
  assert.ok(append("tcg").includes("noreplace-smp"));
  assert.ok(!append("kvm").includes("noreplace-smp"));
});

void test("qemu args: a guest with acpi=off gets a q35 without ACPI tables and pvpanic-pci; microvm keeps ACPI and the guest loses acpi=off", () => {
  const noAcpi = { ...base, kernelCmdline: ["ro", "acpi=off"] };
  const q35 = qemuArgs(noAcpi, vmLayout("/s"), { ...tuning, machine: "q35" });
  assert.equal(q35[q35.indexOf("-machine") + 1], "q35,sata=off,smbus=off,hpet=off,vmport=off,acpi=off");
  assert.ok(q35.includes("pvpanic-pci") && !q35.includes("pvpanic"), "the ISA pvpanic is described in the DSDT only");
  assert.ok(q35[q35.indexOf("-append") + 1]!.split(" ").includes("acpi=off"));
  const withAcpi = qemuArgs(base, vmLayout("/s"), { ...tuning, machine: "q35" });
  assert.equal(withAcpi[withAcpi.indexOf("-machine") + 1], "q35,sata=off,smbus=off,hpet=off,vmport=off");
  assert.ok(withAcpi.includes("pvpanic") && !withAcpi.includes("pvpanic-pci"));
  const microvm = qemuArgs(noAcpi, vmLayout("/s"), tuning);
  assert.equal(microvm[microvm.indexOf("-machine") + 1], "microvm,acpi=on");
  assert.ok(!microvm[microvm.indexOf("-append") + 1]!.split(" ").includes("acpi=off"), "microvm's virtio-mmio devices are described in its ACPI tables");
  assert.ok(microvm.includes("pvpanic"));
});

void test("qemu args: under TCG a kernel that takes it gets the APIC timer's period (QEMU's 1 GHz bus clock per jiffy); KVM, other kernels get none", () => {
  const traits = { hz: 250, addedParams: ["lapic_timer_period"], bootsWithoutAcpi: true };
  assert.equal(tcgLapicTimerPeriod(250), 4_000_000);
  assert.equal(tcgLapicTimerPeriod(1000), 1_000_000);
  assert.ok(vmmKernelParams(tuning, traits).includes("lapic_timer_period=4000000"));
  assert.ok(vmmKernelParams(tuning, { ...traits, hz: 100 }).includes("lapic_timer_period=10000000"));
  assert.ok(!vmmKernelParams({ ...tuning, accel: "kvm" }, traits).some((p) => p.startsWith("lapic_timer_period")), "KVM: TSC-deadline timer");
  assert.ok(!vmmKernelParams(tuning, { ...traits, addedParams: [] }).some((p) => p.startsWith("lapic_timer_period")), "a kernel without the patch");
  assert.ok(!vmmKernelParams(tuning).some((p) => p.startsWith("lapic_timer_period")), "nothing known about the kernel (the Debian kernel)");
  const append = qemuArgs({ ...base, kernelTraits: traits }, vmLayout("/s"), tuning);
  assert.ok(append[append.indexOf("-append") + 1]!.split(" ").includes("lapic_timer_period=4000000"));
});

void test("qemu args: under TCG on q35 a kernel that boots without ACPI and takes the timer period gets acpi=off; KVM, microvm, other kernels and acpi=... in its parameters keep ACPI", () => {
  const traits = { hz: 250, addedParams: ["lapic_timer_period"], bootsWithoutAcpi: true };
  const q35 = { ...tuning, machine: "q35" as const };
  const machineOf = (a: string[]): string => a[a.indexOf("-machine") + 1]!;
  const appendOf = (a: string[]): string[] => a[a.indexOf("-append") + 1]!.split(" ");
  const off = qemuArgs({ ...base, kernelTraits: traits }, vmLayout("/s"), q35);
  assert.equal(machineOf(off), "q35,sata=off,smbus=off,hpet=off,vmport=off,acpi=off");
  assert.ok(appendOf(off).includes("acpi=off") && off.includes("pvpanic-pci"));
  const keeps = (what: string, args: string[]): void => {
    assert.ok(!machineOf(args).includes("acpi=off") && !appendOf(args).includes("acpi=off"), what);
  };
  keeps("KVM", qemuArgs({ ...base, accel: "kvm", kernelTraits: traits }, vmLayout("/s"), { ...q35, accel: "kvm" }));
  keeps("microvm", qemuArgs({ ...base, kernelTraits: traits }, vmLayout("/s"), tuning));
  keeps("no MP table", qemuArgs({ ...base, kernelTraits: { ...traits, bootsWithoutAcpi: false } }, vmLayout("/s"), q35));
  keeps("no timer preset (the APIC timer would be verified against the PIT)", qemuArgs({ ...base, kernelTraits: { ...traits, addedParams: [] } }, vmLayout("/s"), q35));
  keeps("nothing known (Debian kernel)", qemuArgs(base, vmLayout("/s"), q35));
  const forced = qemuArgs({ ...base, kernelCmdline: ["ro", "acpi=force"], kernelTraits: traits }, vmLayout("/s"), q35);
  keeps("the operator's acpi=force", forced);
  assert.ok(appendOf(forced).includes("acpi=force") && forced.includes("pvpanic"));
});

void test("qemu args: without ACPI the pmem image sits 1 GiB into q35's device memory (the kernel puts PCI BARs at its start), with ACPI where QEMU puts it", () => {
  const q35 = { ...tuning, machine: "q35" as const, rootDevice: "virtio-pmem" as const, rootfsBytes: 100 * 1048576 };
  const noAcpi = qemuArgs({ ...base, kernelCmdline: ["ro", "acpi=off"] }, vmLayout("/s"), q35);
  assert.equal(noAcpi[noAcpi.indexOf("-m") + 1], "512M,slots=1,maxmem=1636M", "room for the gap and the image");
  assert.ok(noAcpi.includes(`virtio-pmem-pci,memdev=rootfs-mem,id=rootfs,memaddr=${0x1_4000_0000}`));
  const withAcpi = qemuArgs(base, vmLayout("/s"), q35);
  assert.ok(withAcpi.includes("virtio-pmem-pci,memdev=rootfs-mem,id=rootfs"));
  assert.equal(withAcpi[withAcpi.indexOf("-m") + 1], "512M,slots=1,maxmem=612M");
  // q35 maps RAM up to 2.75 GiB below 4 GiB; from there on only 2 GiB, the rest above, and device
  // memory starts on the next GiB after it.
  assert.equal(q35DeviceMemoryBase(512), 0x1_0000_0000);
  assert.equal(q35DeviceMemoryBase(2816), 0x1_0000_0000 + 0x4000_0000);
  assert.equal(q35DeviceMemoryBase(4096), 0x1_8000_0000);
});

void test("qemu exit: a guest reset is a panic when pvpanic said so or the console shows one, else the guest's own end (no ACPI: it cannot power off)", () => {
  const exited = { code: 0, signal: null };
  const reset = [{ event: "SHUTDOWN", data: { reason: "guest-reset" } }];
  assert.equal(classifyExit(exited, reset, undefined, "kata-ts-init: agent exited with status 1\n"), "poweroff");
  assert.equal(classifyExit(exited, reset, undefined, "[    9.1] Kernel panic - not syncing: Attempted to kill init!\n"), "guest-panic");
  assert.equal(classifyExit(exited, [{ event: "GUEST_PANICKED" }, ...reset], undefined, ""), "guest-panic");
  assert.equal(classifyExit(exited, reset, undefined), "guest-panic", "no console: the old reading");
  assert.equal(classifyExit(exited, [{ event: "SHUTDOWN", data: { reason: "guest-shutdown" } }], undefined, ""), "poweroff");
});
