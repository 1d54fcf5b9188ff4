// Memory-backed emptyDir volumes (medium: Memory) as tmpfs in the guest. The host names them in a
// container's spec as mounts of type POD_TMPFS_TYPE (source: the volume's name, options: size=N);
// the first container that uses one mounts a tmpfs of that size under POD_TMPFS_ROOT, and every
// container gets a bind mount of it, so the volume is shared like kubelet's host tmpfs, but its
// pages are the VM's memory. It lives as long as the VM (the pod).
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import type { OciSpec } from "../../protocol/contract/oci.js";
import { mountOne } from "./sandbox-setup.js";

/** Keep in step with src/sandbox/memory-volumes.ts. */
export const POD_TMPFS_TYPE = "kata-ts.pod-tmpfs";
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

export class PodTmpfs {
  private readonly mounted = new Map<string, Promise<void>>();

  constructor(private readonly root: string) {}

  /** Mounts the tmpfs volumes `spec` names (once per pod) and rewrites them into binds of them. */
  async prepare(spec: OciSpec): Promise<void> {
    for (const m of spec.mounts ?? []) {
      if (m.type !== POD_TMPFS_TYPE) continue;
      const name = m.source ?? "";
      if (!NAME_RE.test(name)) throw new KataError("INVALID_ARGUMENT", `memory volume name ${JSON.stringify(name)} must match ${NAME_RE.source}`);
      const size = (m.options ?? []).find((o) => o.startsWith("size="));
      const target = join(this.root, name);
      let done = this.mounted.get(name);
      if (done === undefined) {
        done = mountOne({ source: "tmpfs", target, fstype: "tmpfs", options: ["nosuid", "nodev", ...(size === undefined ? [] : [size])] });
        this.mounted.set(name, done);
        done.catch(() => this.mounted.delete(name));
      }
      await done;
      const rest = (m.options ?? []).filter((o) => !o.startsWith("size="));
      m.type = "bind";
      m.source = target;
      m.options = ["rbind", ...rest];
    }
  }
}
