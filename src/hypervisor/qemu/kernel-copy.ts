// QEMU 7.2 loads an ELF kernel (the PVH vmlinux) by mapping the whole file and keeping that mapping
// as the source of its ROM blobs, to copy the kernel into guest RAM again at every system reset. The
// reset copy makes every page of it resident in QEMU for the VM's life (15.4 MiB, page cache shared
// by the VMs that map the same file). kata-ts never resets a guest (-no-reboot turns a reboot into
// an exit, and it sends no system_reset), so QEMU is given a private copy of the kernel in the VM's
// state dir, and once QEMU has loaded it (its first reset is done before QMP answers) the copy is
// emptied: truncating a file unmaps its pages from every mapping of it, and re-extending it keeps
// the mapping readable (zeros, not SIGBUS) should QEMU ever read it. The copy is then unlinked. A
// bzImage is not mapped (QEMU reads it into its heap), so only ELF kernels are copied.
import { constants } from "node:fs";
import { copyFile, open, stat, truncate, unlink } from "node:fs/promises";
import { join } from "node:path";

const elfMagic = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Whether the file starts with the ELF magic (a vmlinux, not a bzImage). */
export async function isElfFile(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(elfMagic);
  } finally {
    await fh.close();
  }
}

export interface KernelCopy {
  path: string;
  sizeBytes: number;
}

/** The state dir's copy of an ELF kernel, or undefined when the kernel is not ELF (QEMU does not map it). */
export async function privateKernelCopy(kernelPath: string, stateDir: string): Promise<KernelCopy | undefined> {
  if (!(await isElfFile(kernelPath))) return undefined;
  const path = join(stateDir, "vmlinux");
  // A reflink where the file system has them (XFS, Btrfs), a plain copy elsewhere (~10 ms of CPU).
  await copyFile(kernelPath, path, constants.COPYFILE_FICLONE);
  return { path, sizeBytes: (await stat(path)).size };
}

/** Empties the copy (its pages leave QEMU's mapping and the page cache) and unlinks it. */
export async function releaseKernelCopy(copy: KernelCopy): Promise<void> {
  await truncate(copy.path, 0);
  await truncate(copy.path, copy.sizeBytes);
  await unlink(copy.path);
}
