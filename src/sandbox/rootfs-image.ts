// A container's root filesystem as a block image, for VMMs without virtio-fs (Firecracker): an ext4
// file built from the unpacked rootfs directory with `mkfs.ext4 -d` (no mount, no loop device), sized
// from what the directory holds plus headroom, sparse on disk. The first step of the Firecracker
// rootfs path described in docs/hypervisor.md; attaching it and mounting it in the guest are not
// built yet.
import { lstat, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";

const blockSize = 4096;
const mib = 1024 * 1024;
/** ext4 metadata (superblocks, inode tables, journal-less) and room for the container's own writes. */
const headroomMiB = 16;

/** Bytes the tree needs as 4 KiB blocks, one block per directory entry for inodes and dirents. */
async function treeBytes(dir: string): Promise<number> {
  let total = blockSize;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const st = await lstat(path);
    total += blockSize + Math.ceil(st.size / blockSize) * blockSize;
    if (entry.isDirectory()) total += await treeBytes(path);
  }
  return total;
}

export interface RootfsImage {
  path: string;
  sizeBytes: number;
}

export async function buildRootfsImage(rootfsDir: string, imagePath: string): Promise<RootfsImage> {
  const st = await lstat(rootfsDir).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    throw new KataError("NOT_FOUND", `container rootfs ${rootfsDir} is not a directory; give the path of an unpacked root file system`);
  }
  const used = await treeBytes(rootfsDir);
  const sizeBytes = Math.ceil((used * 1.1) / mib + headroomMiB) * mib;
  await writeFile(imagePath, "", { flag: "wx" }).catch((err: unknown) => {
    throw new KataError("ALREADY_EXISTS", `rootfs image ${imagePath} already exists`, { cause: err });
  });
  try {
    await truncate(imagePath, sizeBytes);
    // -d copies the tree with owners and modes as they are; no journal: the image lives as long as the container.
    await run("mkfs.ext4", ["-q", "-F", "-b", String(blockSize), "-O", "^has_journal", "-L", "rootfs", "-d", rootfsDir, imagePath], { timeoutMs: 120_000 });
  } catch (err) {
    await rm(imagePath, { force: true });
    throw new KataError("INTERNAL", `cannot build a block image of ${rootfsDir}: ${err instanceof Error ? err.message : String(err)} (needs mkfs.ext4 from e2fsprogs 1.43+)`, { cause: err });
  }
  return { path: imagePath, sizeBytes };
}
