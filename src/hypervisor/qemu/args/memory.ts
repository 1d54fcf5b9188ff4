// Guest RAM. With a vhost-user device (virtio-fs) the daemon maps guest memory itself, so RAM must
// be a shareable memfd object rather than anonymous memory. Device memory (virtio-pmem) lives in
// the hotplug area above RAM: `slots` and `maxmem` make room for it.
import { qemuOpts } from "./opts.js";

export const sharedMemoryBackendId = "mem";

export interface MemoryOptions {
  sizeMiB: number;
  /** Back RAM with memory-backend-memfd,share=on (machine memory-backend= must name it). */
  shared: boolean;
  /** Bytes of device memory to make room for (virtio-pmem); 0 or absent: none. */
  deviceMemoryBytes?: number;
}

const MiB = 1024 * 1024;

export function renderMemory(opts: MemoryOptions): string[] {
  const device = opts.deviceMemoryBytes ?? 0;
  const size =
    device > 0 ? qemuOpts(`${opts.sizeMiB}M`, { slots: 1, maxmem: `${opts.sizeMiB + Math.ceil(device / MiB)}M` }) : `${opts.sizeMiB}M`;
  const args = ["-m", size];
  if (opts.shared) {
    args.push("-object", qemuOpts("memory-backend-memfd", { id: sharedMemoryBackendId, size: `${opts.sizeMiB}M`, share: true }));
  }
  return args;
}
