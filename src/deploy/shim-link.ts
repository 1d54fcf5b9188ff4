// containerd 1.6 does not use a CRI handler's runtime_path when it starts a pod's shim: it looks
// up containerd-shim-<name>-v2 from the runtime_type on PATH (then beside the containerd binary).
// So the installer also links the shim into a directory on containerd's PATH.
import { lstat, readlink, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";

/** The binary name containerd derives from runtime_type io.containerd.kata-ts.v2. */
export const SHIM_BINARY_NAME = "containerd-shim-kata-ts-v2";
export const DEFAULT_SHIM_LINK_DIR = "/usr/local/bin";

async function currentTarget(path: string): Promise<string | undefined | null> {
  try {
    const st = await lstat(path);
    return st.isSymbolicLink() ? await readlink(path) : null; // null: a real file is there
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Make <dir>/containerd-shim-kata-ts-v2 a symlink to `runtimePath`; refuses to replace anything else. */
export async function linkShim(dir: string, runtimePath: string): Promise<{ linkPath: string; changed: boolean }> {
  const linkPath = join(dir, SHIM_BINARY_NAME);
  if (linkPath === runtimePath) return { linkPath, changed: false };
  const target = await currentTarget(linkPath);
  if (target === runtimePath) return { linkPath, changed: false };
  if (target !== undefined) {
    throw new KataError(
      "ALREADY_EXISTS",
      `${linkPath} already exists${target === null ? "" : ` (a link to ${target})`}; remove it or pass another shim link dir; nothing was changed`,
    );
  }
  await symlink(runtimePath, linkPath);
  return { linkPath, changed: true };
}

/** Remove the link if it is still ours (points at `runtimePath`). */
export async function unlinkShim(linkPath: string, runtimePath: string): Promise<boolean> {
  if ((await currentTarget(linkPath)) !== runtimePath) return false;
  await rm(linkPath);
  return true;
}
