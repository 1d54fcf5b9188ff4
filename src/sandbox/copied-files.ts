// A container's bind mounts on a VMM without a shared fs (Firecracker), as Kata does there: a bind
// of a small regular host file (the CRI plugin's /etc/hosts, /etc/resolv.conf, /etc/hostname,
// /dev/termination-log) is copied into the guest with CreateContainer (the agent writes it into
// the container's file dir, guest-files.ts) and the mount names the copy; the CRI plugin's bind of
// the sandbox's /dev/shm becomes the pod's guest tmpfs (a pod tmpfs volume, shared by its
// containers). The copy is a snapshot: host changes after create are not seen, and the
// container's writes to a writable copy stay in the guest. Anything else (directories, devices,
// files over the limit) is refused with the mount named. Options (ro included) stay as they are.
import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { bindMountRefused } from "../hypervisor/no-shared-fs.js";
import { GUEST_FILES_LIMIT_BYTES, guestBlockFilesDir, isBindMount } from "../protocol/contract/guest.js";
import type { OciMount, OciSpec } from "../protocol/contract/oci.js";
import type { GuestFileSpec } from "./agent-client.js";
import { DEV_SHM_VOLUME, POD_TMPFS_TYPE } from "./memory-volumes.js";
/** containerd's default sandbox /dev/shm size (64 MiB). */
const DEV_SHM_SIZE = "size=65536k";

export interface CopiedMounts {
  spec: OciSpec;
  files: GuestFileSpec[];
}

function guestFileName(index: number, source: string): string {
  const base = basename(source).replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 100);
  return `${index}-${base === "" ? "file" : base}`;
}

export async function copyBindMounts(vmm: string, containerId: string, spec: OciSpec): Promise<CopiedMounts> {
  const files: GuestFileSpec[] = [];
  let total = 0;
  const mounts: OciMount[] = [];
  for (const [i, m] of (spec.mounts ?? []).entries()) {
    if (!isBindMount(m)) {
      mounts.push(m);
      continue;
    }
    if (m.destination === "/dev/shm") {
      const keep = (m.options ?? []).filter((o) => o === "ro" || o === "rw" || o === "nosuid" || o === "nodev" || o === "noexec");
      mounts.push({ destination: m.destination, type: POD_TMPFS_TYPE, source: DEV_SHM_VOLUME, options: [DEV_SHM_SIZE, ...keep] });
      continue;
    }
    const st = m.source === undefined ? undefined : await stat(m.source).catch(() => undefined);
    if (m.source === undefined || st === undefined || !st.isFile()) {
      throw bindMountRefused(vmm, containerId, m, `only regular files up to ${GUEST_FILES_LIMIT_BYTES} bytes in all are copied in, and this is ${st === undefined ? "missing" : st.isDirectory() ? "a directory" : "not a regular file"}`);
    }
    if (total + st.size > GUEST_FILES_LIMIT_BYTES) {
      throw bindMountRefused(vmm, containerId, m, `only regular files up to ${GUEST_FILES_LIMIT_BYTES} bytes in all are copied in, and this file (${st.size} bytes) goes over that limit`);
    }
    const data = await readFile(m.source);
    total += data.length;
    const name = guestFileName(i, m.source);
    files.push({ name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, data: new Uint8Array(data) });
    mounts.push({ ...m, source: `${guestBlockFilesDir(containerId)}/${name}` });
  }
  return { spec: { ...spec, mounts }, files };
}
