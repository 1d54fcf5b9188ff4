// Puts what a container needs from the host on the share and rewrites its spec to name guest
// paths: the rootfs is bind-mounted under shared/containers/<id>/rootfs; bind mounts of host
// directories (volumes) are bind-mounted under .../mounts/<n>; bind mounts of host files
// (/etc/hosts, resolv.conf, hostname from containerd's sandbox dir) are copied there.
import { copyFile, mkdir, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { KataError } from "../util/errors.js";
import type { OciMount, OciSpec } from "../agent/oci/types.js";
import { containerShareDirs, type SandboxLayout } from "./guest-layout.js";
import { bindMount, unmountAll } from "./mounts.js";
import { UndoStack } from "./undo-stack.js";

export interface SharedContainer {
  spec: OciSpec;
  guestRootfs: string;
  hostDir: string;
}

function isBind(m: OciMount): boolean {
  return m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}

export async function shareContainer(layout: SandboxLayout, id: string, hostSpec: OciSpec, hostRootfs: string, undo: UndoStack): Promise<SharedContainer> {
  const dirs = containerShareDirs(layout, id);
  const st = await stat(hostRootfs).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    throw new KataError("NOT_FOUND", `container rootfs ${hostRootfs} is not a directory; give the path of an unpacked root file system`);
  }
  await mkdir(join(dirs.host, "rootfs"), { recursive: true });
  undo.push(`remove ${dirs.host}`, async () => {
    await unmountAll(dirs.host);
    await rm(dirs.host, { recursive: true, force: true });
  });
  await bindMount(hostRootfs, join(dirs.host, "rootfs"), { readonly: hostSpec.root?.readonly === true });

  const spec = structuredClone(hostSpec);
  const mounts: OciMount[] = [];
  for (const [i, m] of (spec.mounts ?? []).entries()) {
    if (!isBind(m) || m.source === undefined) {
      mounts.push(m);
      continue;
    }
    const src = await stat(m.source).catch(() => undefined);
    if (src === undefined) throw new KataError("NOT_FOUND", `bind mount source ${m.source} (for ${m.destination}) does not exist on the host`);
    const name = `${i}-${basename(m.source) || "root"}`;
    const hostTarget = join(dirs.host, "mounts", name);
    await mkdir(join(dirs.host, "mounts"), { recursive: true });
    if (src.isDirectory()) {
      await mkdir(hostTarget, { recursive: true });
      await bindMount(m.source, hostTarget, { readonly: (m.options ?? []).includes("ro") });
    } else {
      // A snapshot of a small host file; containerd writes these once before the container starts.
      await copyFile(m.source, hostTarget);
    }
    mounts.push({ ...m, source: `${dirs.guest}/mounts/${name}` });
  }
  spec.mounts = mounts;
  return { spec, guestRootfs: `${dirs.guest}/rootfs`, hostDir: dirs.host };
}
