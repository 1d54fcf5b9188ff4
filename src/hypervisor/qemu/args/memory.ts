// Guest RAM. With a vhost-user device (virtio-fs) the daemon maps guest memory itself, so RAM must
// be a shareable memfd object rather than anonymous memory.
import { qemuOpts } from "./opts.js";

export const sharedMemoryBackendId = "mem";

export interface MemoryOptions {
  sizeMiB: number;
  /** Back RAM with memory-backend-memfd,share=on (machine memory-backend= must name it). */
  shared: boolean;
}

export function renderMemory(opts: MemoryOptions): string[] {
  const args = ["-m", `${opts.sizeMiB}M`];
  if (opts.shared) {
    args.push("-object", qemuOpts("memory-backend-memfd", { id: sharedMemoryBackendId, size: `${opts.sizeMiB}M`, share: true }));
  }
  return args;
}
