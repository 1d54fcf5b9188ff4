// Puts what a container needs from the host on the share and rewrites its spec to name guest
// paths: the rootfs is bound under shared/containers/<id>/rootfs, and each bind mount of a host
// directory or file (volumes, /etc/hosts, resolv.conf, termination-log) under .../mounts/<n>, so
// the container reads and writes the host's own files, as under runc. Binds are made by
// mounts.ts: read-only on the host for every submount, and never propagating back to the host.
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { KataError } from "../util/errors.js";
import type { OciMount, OciSpec } from "../protocol/contract/oci.js";
import { isBindMount } from "../protocol/contract/guest.js";
import { containerShareDirs, type SandboxLayout } from "./guest-layout.js";
import { createMountPoint } from "./mount-points.js";
import { bindThroughStage, unmountAll, withStage, type BindOptions } from "./mounts.js";
import { UndoStack } from "./undo-stack.js";

export interface SharedContainer {
  spec: OciSpec;
  guestRootfs: string;
  hostDir: string;
}

/**
 * How the host copy of a bind mount is made from its OCI options. rshared is taken as rslave: the
 * guest's own mounts live in another kernel and cannot reach the host. A read-only mount is
 * always private: a mount the host adds later would arrive writable (the kernel copies its
 * flags), as Kubernetes' recursiveReadOnly also requires mountPropagation None.
 */
export function bindOptionsOf(m: OciMount): BindOptions {
  const o = m.options ?? [];
  const readonly = o.includes("ro");
  const follows = ["rslave", "slave", "rshared", "shared"].some((p) => o.includes(p));
  return { readonly, recursive: o.includes("rbind"), propagation: follows && !readonly ? "slave" : "private" };
}

/** Per mount: "dir" or "file" for a bind (its source's kind), undefined for other mounts. */
async function bindSourceKinds(mounts: readonly OciMount[]): Promise<("dir" | "file" | undefined)[]> {
  const kinds: ("dir" | "file" | undefined)[] = [];
  for (const m of mounts) {
    if (!isBindMount(m) || m.source === undefined) {
      kinds.push(undefined);
      continue;
    }
    const src = await stat(m.source).catch(() => undefined);
    if (src === undefined) throw new KataError("NOT_FOUND", `bind mount source ${m.source} (for ${m.destination}) does not exist on the host`);
    kinds.push(src.isDirectory() ? "dir" : "file");
  }
  return kinds;
}

/** Undoes shareContainer: the container's binds unmounted and its directory on the share removed. */
export function pushUnshare(undo: UndoStack, layout: SandboxLayout, id: string): void {
  const { host } = containerShareDirs(layout, id);
  undo.push(`remove ${host}`, async () => {
    // Throws if a mount is left, before rm could reach into a host directory through it.
    await unmountAll(host);
    await rm(host, { recursive: true, force: true });
  });
}

export async function shareContainer(layout: SandboxLayout, id: string, hostSpec: OciSpec, hostRootfs: string, undo: UndoStack): Promise<SharedContainer> {
  const dirs = containerShareDirs(layout, id);
  const st = await stat(hostRootfs).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    throw new KataError("NOT_FOUND", `container rootfs ${hostRootfs} is not a directory; give the path of an unpacked root file system`);
  }
  await mkdir(join(dirs.host, "rootfs"), { recursive: true });
  pushUnshare(undo, layout, id);

  const spec = structuredClone(hostSpec);
  const mounts: OciMount[] = [];
  const sourceKinds = await bindSourceKinds(spec.mounts ?? []);
  if (hostSpec.root?.readonly === true) {
    for (const [i, m] of (spec.mounts ?? []).entries()) await createMountPoint(hostRootfs, { destination: m.destination, isFile: sourceKinds[i] === "file" });
  }
  await withStage(join(layout.stateDir, "stage", id), async (stage) => {
    const rootfsOpts: BindOptions = { readonly: hostSpec.root?.readonly === true, recursive: true, propagation: "private" };
    await bindThroughStage(hostRootfs, join(dirs.host, "rootfs"), stage, { ...rootfsOpts, isDirectory: true });
    for (const [i, m] of (spec.mounts ?? []).entries()) {
      if (!isBindMount(m) || m.source === undefined) {
        mounts.push(m);
        continue;
      }
      const isDirectory = sourceKinds[i] === "dir";
      const name = `${i}-${basename(m.source) || "root"}`;
      const hostTarget = join(dirs.host, "mounts", name);
      await mkdir(join(dirs.host, "mounts"), { recursive: true });
      // The mount point takes the source's kind: a file is bound onto a file.
      if (isDirectory) await mkdir(hostTarget);
      else await writeFile(hostTarget, "");
      await bindThroughStage(m.source, hostTarget, stage, { ...bindOptionsOf(m), isDirectory });
      mounts.push({ ...m, source: `${dirs.guest}/mounts/${name}` });
    }
  });
  spec.mounts = mounts;
  return { spec, guestRootfs: `${dirs.guest}/rootfs`, hostDir: dirs.host };
}
