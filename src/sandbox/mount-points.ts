// Mount points for a container whose root is read-only: kata-ts makes that root read-only on the
// host (where the guest cannot undo it), so crun in the guest cannot create a missing mount point
// as it does in a writable root. They are made here first, in the container's own root on the
// host, as runc makes them there. The root comes from an image: no symlink in it is followed.
import { lstat, mkdir, open } from "node:fs/promises";
import { join, posix } from "node:path";

export interface MountPoint {
  destination: string;
  /** A bind of a single file: its mount point is an empty file. */
  isFile: boolean;
}

async function lstatOrUndefined(p: string) {
  return lstat(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
}

/**
 * Creates `mp.destination` under `rootfs` unless it exists. A symlink on the way is left to crun
 * (it resolves it inside the container's root): nothing is created through it.
 */
export async function createMountPoint(rootfs: string, mp: MountPoint): Promise<void> {
  const parts = posix.normalize(`/${mp.destination}`).split("/").filter((p) => p !== "" && p !== "..");
  let cur = rootfs;
  for (const [i, part] of parts.entries()) {
    cur = join(cur, part);
    const st = await lstatOrUndefined(cur);
    const last = i === parts.length - 1;
    if (st !== undefined) {
      if (last || !st.isDirectory()) return; // present, or a symlink/file on the way
      continue;
    }
    try {
      // O_CREAT|O_EXCL: fails rather than follow a symlink created meanwhile.
      if (last && mp.isFile) await (await open(cur, "wx", 0o644)).close();
      else await mkdir(cur, { mode: 0o755 });
    } catch (err) {
      // A root that is read-only on the host too (kata-ts run on a read-only dir): crun will say
      // which mount point it misses.
      if ((err as NodeJS.ErrnoException).code === "EROFS") return;
      throw err;
    }
  }
}
