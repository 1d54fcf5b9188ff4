// Guest RAM. With a vhost-user device (virtio-fs) the daemon maps guest memory itself, so RAM must
// be a shareable file (memfd, or a file on a tmpfs) rather than anonymous memory. Device memory
// (virtio-pmem) lives in the hotplug area above RAM: `slots` and `maxmem` make room for it.
import { qemuOpts } from "./opts.js";

export const sharedMemoryBackendId = "mem";

/**
 * Where shared guest RAM lives: a memfd (4 KiB shmem pages while the host's `shmem_enabled` is
 * `never`), or an unlinked file QEMU creates in `dir`, a tmpfs mounted with `huge=` (guest-ram-dir.ts),
 * so guest RAM comes in 2 MiB pages (docs/guest.md "Guest RAM in huge pages").
 */
export type SharedMemoryBacking = { kind: "memfd" } | { kind: "huge-tmpfs"; dir: string };

export interface MemoryOptions {
  sizeMiB: number;
  /** Back RAM with a shared object (machine memory-backend= must name it). */
  shared: boolean;
  /** How shared RAM is backed; default a memfd. */
  backing?: SharedMemoryBacking;
  /** Bytes of device memory to make room for (virtio-pmem); 0 or absent: none. */
  deviceMemoryBytes?: number;
}

const MiB = 1024 * 1024;

/** A huge page: the mapping must start on one so the host can map guest RAM with PMD entries. */
export const hugePageAlignMiB = 2;

export function renderMemory(opts: MemoryOptions): string[] {
  const device = opts.deviceMemoryBytes ?? 0;
  const size =
    device > 0 ? qemuOpts(`${opts.sizeMiB}M`, { slots: 1, maxmem: `${opts.sizeMiB + Math.ceil(device / MiB)}M` }) : `${opts.sizeMiB}M`;
  const args = ["-m", size];
  if (!opts.shared) return args;
  const backing = opts.backing ?? { kind: "memfd" };
  if (backing.kind === "memfd") {
    args.push("-object", qemuOpts("memory-backend-memfd", { id: sharedMemoryBackendId, size: `${opts.sizeMiB}M`, share: true }));
  } else {
    // mem-path naming a directory: QEMU creates its file there with mkstemp and unlinks it at once,
    // so the RAM goes with the last process mapping it (QEMU, virtiofsd) and no path is left behind
    // on any exit (QEMU 7.2 file_ram_open). align: QEMU's own default for a file is its page size.
    args.push(
      "-object",
      qemuOpts("memory-backend-file", { id: sharedMemoryBackendId, "mem-path": backing.dir, size: `${opts.sizeMiB}M`, share: true, align: `${hugePageAlignMiB}M` }),
    );
  }
  return args;
}
