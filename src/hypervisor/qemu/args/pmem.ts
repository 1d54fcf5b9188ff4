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
}

/** The guest maps device memory in 2 MiB (huge page) units; images are padded to it at build time. */
export const pmemAlignment = 2 * 1024 * 1024;

export function renderPmem(opts: PmemOptions): string[] {
  const memdev = `${opts.id}-mem`;
  return [
    "-object",
    qemuOpts("memory-backend-file", { id: memdev, "mem-path": opts.path, size: opts.sizeBytes, share: false, readonly: true }),
    "-device",
    qemuOpts("virtio-pmem-pci", { memdev, id: opts.id }),
  ];
}
