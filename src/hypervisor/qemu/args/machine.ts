// -machine microvm: no firmware, no legacy PCI, virtio-mmio devices. acpi=on: the kernels find
// their virtio-mmio devices through ACPI (the Debian kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES)
// and the PCIe host bridge of pcie=on (needed only for virtio-pmem) is described there too. The
// legacy PIC/PIT/RTC stay on: the kernel's early timer calibration uses them, and turning them off
// did not speed up a TCG boot here.
import { qemuOpts } from "./opts.js";

export interface MachineOptions {
  /** Id of a memory backend object to use as guest RAM (needed for vhost-user devices). */
  memoryBackendId?: string;
  /** A PCIe host bridge (for virtio-pmem-pci). */
  pcie?: boolean;
}

export function renderMachine(opts: MachineOptions): string[] {
  return [
    "-machine",
    qemuOpts("microvm", { acpi: true, pcie: opts.pcie === true ? true : undefined, "memory-backend": opts.memoryBackendId }),
    // Every virtio-mmio device modern (virtio 1.0): virtiofsd refuses legacy virtio.
    "-global",
    "virtio-mmio.force-legacy=false",
  ];
}
