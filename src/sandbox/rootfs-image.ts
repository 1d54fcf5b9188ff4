// A container's root filesystem as a block image, for VMMs without virtio-fs (Firecracker): an
// erofs image built from the unpacked rootfs directory with mkfs.erofs (no mount, no loop device,
// uncompressed: the fastest build, and erofs is the filesystem the guest kernel already has for
// its own root). It is read-only; the guest puts a tmpfs overlay on it for the container's writes
// (block-rootfs.ts).
import { lstat, rm, stat } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";

export interface RootfsImage {
  path: string;
  sizeBytes: number;
}

export async function buildRootfsImage(rootfsDir: string, imagePath: string): Promise<RootfsImage> {
  const st = await lstat(rootfsDir).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    throw new KataError("NOT_FOUND", `container rootfs ${rootfsDir} is not a directory; give the path of an unpacked root file system`);
  }
  if ((await lstat(imagePath).catch(() => undefined)) !== undefined) {
    throw new KataError("ALREADY_EXISTS", `rootfs image ${imagePath} already exists`);
  }
  try {
    // Owners, modes, xattrs and device nodes are kept as they are in the tree (mkfs runs as root).
    await run("mkfs.erofs", ["--quiet", "--preserve-mtime", imagePath, rootfsDir], { timeoutMs: 300_000 });
  } catch (err) {
    await rm(imagePath, { force: true });
    throw new KataError("INTERNAL", `cannot build a block image of ${rootfsDir}: ${err instanceof Error ? err.message : String(err)} (needs mkfs.erofs from erofs-utils)`, {
      cause: err,
    });
  }
  return { path: imagePath, sizeBytes: (await stat(imagePath)).size };
}
