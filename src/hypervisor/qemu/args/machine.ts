// -machine microvm: no PCI, no firmware tables beyond ACPI, virtio-mmio devices only. acpi=on is
// needed because the Debian kernel finds virtio-mmio devices through ACPI (it lacks
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). The legacy PIC/PIT/RTC stay on: the kernel's early timer
// calibration uses them, and turning them off did not speed up a TCG boot here.
import { qemuOpts } from "./opts.js";

export interface MachineOptions {
  /** Id of a memory backend object to use as guest RAM (needed for vhost-user devices). */
  memoryBackendId?: string;
}

export function renderMachine(opts: MachineOptions): string[] {
  return [
    "-machine",
    qemuOpts("microvm", { acpi: true, "memory-backend": opts.memoryBackendId }),
    // Every virtio-mmio device modern (virtio 1.0): virtiofsd refuses legacy virtio.
    "-global",
    "virtio-mmio.force-legacy=false",
  ];
}
