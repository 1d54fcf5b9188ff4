// The machine type and the virtio transport that goes with it.
//
// microvm: no firmware, no legacy PCI, virtio-mmio devices. acpi=on: the kernels find their
// virtio-mmio devices through ACPI (the Debian kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). The
// legacy PIC/PIT/RTC stay on: the kernel's early timer calibration uses them, and turning them off
// did not speed up a TCG boot here. microvm never plugs memory devices (QEMU 7.2): a virtio-pmem
// device on it reports address 0 and the guest cannot map it (docs/guest.md).
//
// q35: the one machine here that plugs memory devices (virtio-pmem, for a DAX root) while booting
// the PVH vmlinux directly. Its firmware is qboot (QEMU's minimal BIOS: it loads the ACPI tables
// and jumps to the kernel; SeaBIOS cost ~0.1 s more CPU per boot here), every virtio device is on
// PCI, and the chipset parts the guest has no driver for are left out (SATA, SMBus, HPET, vmport).
import type { GuestKernelTraits, ResolvedAccel } from "../../types.js";
import { qemuOpts } from "./opts.js";

export type MachineType = "microvm" | "q35";
export type VirtioTransport = "mmio" | "pci";

/** QEMU's minimal firmware for q35/pc, found by name in QEMU's data dir (/usr/share/qemu). */
export const Q35_FIRMWARE = "qboot.rom";

export interface MachineOptions {
  /** Default microvm. */
  type?: MachineType;
  /**
   * false: no ACPI tables at all, for a guest kernel that boots with acpi=off (it finds the CPUs
   * and the IO-APIC in the firmware's MP table). Default true.
   */
  acpi?: boolean;
  /** Id of a memory backend object to use as guest RAM (needed for vhost-user devices). */
  memoryBackendId?: string;
}

export function virtioTransport(type: MachineType): VirtioTransport {
  return type === "q35" ? "pci" : "mmio";
}

/** A virtio device's QEMU name on a transport: virtio-blk-device (mmio) or virtio-blk-pci. */
export function virtioDevice(kind: string, transport: VirtioTransport): string {
  return `${kind}-${transport === "pci" ? "pci" : "device"}`;
}

/**
 * Whether the machine gets ACPI tables for this guest: not on q35 when the guest's kernel
 * parameters say acpi=off (the project's kernel, under TCG by default: tcgDefaultAcpiOff; it finds
 * the CPUs and the IO-APIC in qboot's MP table). QEMU then builds no tables at all (no table blob in its memory,
 * nothing for qboot to copy), and the guest's panic device must be pvpanic-pci (control.ts).
 * microvm always has them: they are how a guest kernel finds microvm's virtio-mmio devices.
 */
export function machineAcpi(type: MachineType, kernelParams: readonly string[]): boolean {
  return type !== "q35" || !kernelParams.includes("acpi=off");
}

/**
 * Whether the VMM adds acpi=off for this guest: on q35 under TCG, for a kernel that boots without
 * ACPI (the project's: MP table, pvpanic-pci) and takes the preset APIC timer period, unless the
 * guest's parameters already say acpi=... (`kernel_params = ["acpi=force"]` keeps ACPI). It saves
 * ~60-100 ms of QEMU CPU per boot and ~3 MiB per VM; its cost under TCG, the kernel verifying its
 * APIC timer against the PIT (which fails on a busy host), is gone with the preset period
 * (docs/guest.md "Boot time, round 10"). KVM keeps ACPI (not measured here).
 */
export function tcgDefaultAcpiOff(o: { machine: MachineType; accel: ResolvedAccel; kernelParams: readonly string[]; traits?: GuestKernelTraits }): boolean {
  const t = o.traits;
  const presetTimer = t?.addedParams.includes("lapic_timer_period") === true;
  return o.machine === "q35" && o.accel === "tcg" && t?.bootsWithoutAcpi === true && presetTimer && !o.kernelParams.some((p) => p.startsWith("acpi="));
}

/** The guest's kernel parameters as the machine honours them: acpi=off is dropped on microvm (machineAcpi). */
export function machineKernelParams(type: MachineType, kernelParams: readonly string[]): string[] {
  return type === "q35" ? [...kernelParams] : kernelParams.filter((p) => p !== "acpi=off");
}

export function renderMachine(opts: MachineOptions): string[] {
  if (opts.type === "q35") {
    return [
      "-machine",
      qemuOpts("q35", { sata: false, smbus: false, hpet: false, vmport: "off", acpi: opts.acpi === false ? false : undefined, "memory-backend": opts.memoryBackendId }),
      "-bios",
      Q35_FIRMWARE,
      // No `-global virtio-pci.disable-legacy=on`: vhost-user-fs-pci (modern only) has no such
      // property and QEMU refuses the global for it. The guest kernel drives the other, transitional,
      // devices through their modern interface anyway.
    ];
  }
  return [
    "-machine",
    qemuOpts("microvm", { acpi: true, "memory-backend": opts.memoryBackendId }),
    // Every virtio-mmio device modern (virtio 1.0): virtiofsd refuses legacy virtio.
    "-global",
    "virtio-mmio.force-legacy=false",
  ];
}
