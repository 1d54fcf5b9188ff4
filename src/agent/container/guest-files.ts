// Small host files copied into the guest for a container on a block rootfs (a VMM without a shared
// fs: Firecracker), as Kata does: the host sends them inline in CreateContainer, the agent writes
// them into the container's file dir on its rootfs tmpfs, and the spec's bind mounts name them
// there. The host is trusted, but what it sends is still checked: plain names only (nothing can
// land outside the dir), no name twice, the size limit, permission bits only.
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import { GUEST_FILE_NAME_RE, GUEST_FILES_LIMIT_BYTES, guestBlockFilesDir, guestBlockRootfsPaths } from "../../protocol/contract/guest.js";

export interface GuestFileInput {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  data: Uint8Array;
}

/** Checks `files` before anything is mounted or written; throws INVALID_ARGUMENT naming the file. */
export function checkGuestFiles(containerId: string, files: readonly GuestFileInput[], mountTargets: readonly string[]): void {
  if (files.length === 0) return;
  if (!mountTargets.includes(guestBlockRootfsPaths(containerId).rw)) {
    throw new KataError("INVALID_ARGUMENT", `container ${containerId}: files are copied in only for a container with a block rootfs (its tmpfs at ${guestBlockRootfsPaths(containerId).rw} among the mounts)`);
  }
  const seen = new Set<string>();
  let total = 0;
  for (const f of files) {
    if (!GUEST_FILE_NAME_RE.test(f.name)) throw new KataError("INVALID_ARGUMENT", `copied-in file name ${JSON.stringify(f.name)} must match ${GUEST_FILE_NAME_RE.source}`);
    if (seen.has(f.name)) throw new KataError("INVALID_ARGUMENT", `copied-in file ${f.name} is given twice`);
    seen.add(f.name);
    if ((f.mode & ~0o7777) !== 0) throw new KataError("INVALID_ARGUMENT", `copied-in file ${f.name}: mode ${f.mode.toString(8)} has more than permission bits`);
    total += f.data.length;
  }
  if (total > GUEST_FILES_LIMIT_BYTES) {
    throw new KataError("INVALID_ARGUMENT", `container ${containerId}: ${total} bytes of copied-in files, more than the ${GUEST_FILES_LIMIT_BYTES}-byte limit`);
  }
}

/** Writes the (checked) files into the container's file dir, after its tmpfs is mounted. */
export async function writeGuestFiles(containerId: string, files: readonly GuestFileInput[]): Promise<void> {
  if (files.length === 0) return;
  const dir = guestBlockFilesDir(containerId);
  await mkdir(dir, { mode: 0o755 });
  for (const f of files) {
    const path = join(dir, f.name);
    // "wx": never through something already there.
    await writeFile(path, f.data, { flag: "wx", mode: 0o600 });
    await chown(path, f.uid, f.gid);
    // After chown (which clears setuid/setgid), and not subject to the umask.
    await chmod(path, f.mode);
  }
}
