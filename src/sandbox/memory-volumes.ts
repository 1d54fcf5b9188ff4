// Memory-backed emptyDir volumes (medium: Memory). kubelet mounts a tmpfs, sized by the volume's
// limit, at .../volumes/kubernetes.io~empty-dir/<name> and bind-mounts it into each container.
// Shared over virtio-fs its pages would be host memory outside the pod VM; instead the spec names
// the volume for the agent (src/agent/container/pod-tmpfs.ts), which mounts a guest tmpfs of the
// same size once per pod and binds it into every container that mounts the volume.
// The pod's /dev/shm is the same case: the CRI plugin mounts a tmpfs per sandbox (64 MiB) and
// binds it into each container at /dev/shm. Shared over virtio-fs, a container's writes there
// were host pages charged to virtiofsd, so to the pod's host cgroup, outside the container's
// memory limit (and a second copy sat in the guest's page cache): up to 64 MiB per pod that the
// RuntimeClass overhead had to cover on top of the VM (bench/overhead.ts, docs/density.md). It
// is a guest tmpfs volume too, as on a VMM without a shared fs (copied-files.ts).
import { readFile } from "node:fs/promises";
import type { OciSpec } from "../protocol/contract/oci.js";

/** Keep in step with POD_TMPFS_TYPE in src/agent/container/pod-tmpfs.ts. */
export const POD_TMPFS_TYPE = "kata-ts.pod-tmpfs";
const EMPTY_DIR_RE = /\/volumes\/kubernetes\.io~empty-dir\/([A-Za-z0-9][A-Za-z0-9_.-]*)\/?$/;
/** The pod tmpfs volume that stands for the sandbox's /dev/shm (copied-files.ts uses it too). */
export const DEV_SHM_VOLUME = "kata-ts.dev-shm";

/** The guest volume a bind of a host tmpfs stands for: an emptyDir's name, or the pod's /dev/shm. */
function volumeName(m: { destination: string; source?: string; type?: string; options?: string[] }): string | undefined {
  if (m.source === undefined) return undefined;
  const emptyDir = EMPTY_DIR_RE.exec(m.source)?.[1];
  if (emptyDir !== undefined) return emptyDir;
  const bind = m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
  return m.destination === "/dev/shm" && bind ? DEV_SHM_VOLUME : undefined;
}

/** tmpfs mount points on this host (as the shim sees them) and their size= option. */
async function tmpfsMounts(): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const line of (await readFile("/proc/self/mountinfo", "utf8")).split("\n")) {
    const [left, right] = line.split(" - ");
    const fields = left?.split(" ") ?? [];
    const [fstype, , superOpts] = right?.split(" ") ?? [];
    const point = fields[4]?.replace(/\\040/g, " ");
    if (fstype !== "tmpfs" || point === undefined) continue;
    out.set(point, superOpts?.split(",").find((o) => o.startsWith("size=")));
  }
  return out;
}

/** The spec with each memory-backed emptyDir bind, and the pod's /dev/shm, turned into a guest tmpfs volume. */
export async function guestMemoryVolumes(spec: OciSpec): Promise<OciSpec> {
  const candidates = (spec.mounts ?? []).filter((m) => volumeName(m) !== undefined);
  if (candidates.length === 0) return spec;
  const tmpfs = await tmpfsMounts();
  const mounts = (spec.mounts ?? []).map((m) => {
    const name = volumeName(m);
    const src = m.source?.replace(/\/$/, "");
    if (name === undefined || src === undefined || !tmpfs.has(src)) return m;
    const size = tmpfs.get(src);
    const keep = (m.options ?? []).filter((o) => o === "ro" || o === "rw" || o === "nosuid" || o === "nodev" || o === "noexec");
    return { destination: m.destination, type: POD_TMPFS_TYPE, source: name, options: [...(size === undefined ? [] : [size]), ...keep] };
  });
  return { ...spec, mounts };
}
