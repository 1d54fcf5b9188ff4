// The root image as virtio-pmem: QEMU maps the file into guest-physical memory (a read-only,
// private memory-backend-file: pages the guest only reads stay the host's page-cache pages, shared
// by every VM that maps the same image) and the guest mounts it with DAX, executing straight from
// those pages instead of copying the image into its own page cache. Needs a machine that plugs
// memory devices (q35: it maps the device into its -m ...,slots=,maxmem= area above RAM, see
// memory.ts). QEMU's microvm never plugs them: there the device reports address 0 and the guest
// gets no /dev/pmem0 (docs/guest.md), so cmdline.ts refuses that combination.
import { qemuOpts } from "./opts.js";

export interface PmemOptions {
  id: string;
  path: string;
  /** Bytes; the file's size, a multiple of pmemAlignment. */
  sizeBytes: number;
  /** Guest-physical address of the region (QEMU's memaddr=); default: QEMU's first free one. */
  address?: number;
}

/** The guest maps device memory in 2 MiB (huge page) units; images are padded to it at build time. */
export const pmemAlignment = 2 * 1024 * 1024;

export function renderPmem(opts: PmemOptions): string[] {
  const memdev = `${opts.id}-mem`;
  return [
    "-object",
    qemuOpts("memory-backend-file", { id: memdev, "mem-path": opts.path, size: opts.sizeBytes, share: false, readonly: true }),
    "-device",
    qemuOpts("virtio-pmem-pci", { memdev, id: opts.id, memaddr: opts.address }),
  ];
}

const GiB = 1024 * 1024 * 1024;

/**
 * Device-memory room left free below the image for a guest without ACPI (q35 with acpi=off). qboot
 * assigns no PCI BARs and, without ACPI's _CRS, the kernel does not know QEMU's PCI windows: it puts
 * every virtio function's 64-bit BAR at the first free address above 4 GiB, which is where q35's
 * device-memory area starts. With the image there, the BARs land on its bytes and the second
 * function's reset never ends (docs/guest.md "acpi=off"); with the image placed this far above the
 * area's start, the BARs take the empty part (a few hundred KiB for all of a pod's functions) and
 * QEMU routes them there: a gap in the device-memory area falls through to PCI memory.
 */
export const pmemBarRoomBytes = GiB;

/**
 * Where q35 (QEMU 7.2) starts its device-memory area: above the RAM it maps over 4 GiB, on a GiB.
 * Below 2.75 GiB of RAM all of it is mapped under 4 GiB; from there on, only 2 GiB is.
 */
export function q35DeviceMemoryBase(ramMiB: number): number {
  const ram = ramMiB * 1024 * 1024;
  const below4g = ram >= 0xb000_0000 ? 0x8000_0000 : ram;
  return Math.ceil((4 * GiB + (ram - below4g)) / GiB) * GiB;
}

/**
 * How the root image is placed in q35's device memory: without ACPI, pmemBarRoomBytes above the
 * area's start (the area grows by as much); with ACPI wherever QEMU puts it (the kernel then knows
 * QEMU's PCI windows and keeps BARs out of the area).
 */
export function pmemPlacement(opts: { ramMiB: number; acpi: boolean; imageBytes: number }): { deviceMemoryBytes: number; address?: number } {
  if (opts.acpi) return { deviceMemoryBytes: opts.imageBytes };
  return { deviceMemoryBytes: opts.imageBytes + pmemBarRoomBytes, address: q35DeviceMemoryBase(opts.ramMiB) + pmemBarRoomBytes };
}
